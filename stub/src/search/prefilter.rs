//! A whole-file test that lets grep skip a file without looking at its lines one by one.
//!
//! grep answers per line: the pattern is matched against each line on its own (without `\n`, a
//! trailing `\r` removed, cut at [`MAX_LINE_BYTES`]). Most files of a tree hold no match, and running
//! the regex once over the whole buffer is far cheaper than once per line. That is only sound if
//! "no match in the buffer" implies "no match in any line", so the buffer regex is the same pattern
//! in multi-line mode (`^`/`$` at line breaks) and the prefilter stands aside whenever the two
//! could disagree:
//! - the pattern holds haystack anchors (`\A`, `\z`, or `^`/`$` under an inline `(?-m)`), which
//!   match at every line's edge per line but only at the file's edges in the buffer;
//! - the file holds a `\r` (per line, a trailing `\r` is removed, and `$` matches before it);
//! - the file holds a line longer than the cap (per line, the cut end is an edge).
//!
//! Everything else a buffer match can do beyond a line match (`\n` matched by `\s`, `[^x]` or
//! `(?s).`) only lets more files through to the exact per-line search.

use memchr::{memchr, memchr_iter};
use regex::bytes::{Regex, RegexBuilder};
use regex_syntax::hir::Look;

/// The buffer regex of a grep, when the pattern allows one.
#[derive(Clone)]
pub struct Prefilter {
    regex: Regex,
    max_line: usize,
}

impl Prefilter {
    /// `None` when the pattern holds a haystack anchor (or does not parse: the per-line regex
    /// reports that).
    pub fn new(pattern: &str, case_insensitive: bool, max_line: usize) -> Option<Prefilter> {
        let hir = regex_syntax::ParserBuilder::new()
            .multi_line(true)
            .case_insensitive(case_insensitive)
            .utf8(false)
            .build()
            .parse(pattern)
            .ok()?;
        let looks = hir.properties().look_set();
        if looks.contains(Look::Start) || looks.contains(Look::End) {
            return None;
        }
        let regex = RegexBuilder::new(pattern)
            .multi_line(true)
            .case_insensitive(case_insensitive)
            .build()
            .ok()?;
        Some(Prefilter { regex, max_line })
    }

    /// Whether some line of `buf` may match; `false` only when none can.
    pub fn may_match(&self, buf: &[u8]) -> bool {
        if memchr(b'\r', buf).is_some() || has_line_longer_than(buf, self.max_line) {
            return true;
        }
        self.regex.is_match(buf)
    }
}

fn has_line_longer_than(buf: &[u8], max: usize) -> bool {
    if buf.len() <= max {
        return false;
    }
    let mut start = 0;
    for end in memchr_iter(b'\n', buf) {
        if end - start > max {
            return true;
        }
        start = end + 1;
    }
    buf.len() - start > max
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsops::read_line_capped;

    /// What the per-line search finds: whether any line matches.
    fn any_line_matches(pattern: &str, buf: &[u8], max_line: usize) -> bool {
        let regex = Regex::new(pattern).unwrap();
        let mut reader = buf;
        let mut line = Vec::new();
        while read_line_capped(&mut reader, &mut line, max_line).unwrap() {
            if regex.is_match(&line) {
                return true;
            }
        }
        false
    }

    fn never_hides(pattern: &str, buf: &[u8], max_line: usize) {
        let wanted = any_line_matches(pattern, buf, max_line);
        if let Some(p) = Prefilter::new(pattern, false, max_line) {
            assert!(
                p.may_match(buf) || !wanted,
                "prefilter hid a match of {pattern:?} in {:?}",
                String::from_utf8_lossy(buf)
            );
        }
    }

    #[test]
    fn should_skip_a_file_without_the_word() {
        let p = Prefilter::new("needle", false, 100).unwrap();
        assert!(!p.may_match(b"hay\nstack\n"));
        assert!(p.may_match(b"hay\na needle\n"));
    }

    #[test]
    fn should_treat_line_anchors_per_line() {
        let p = Prefilter::new("^b$", false, 100).unwrap();
        assert!(p.may_match(b"a\nb\nc"));
        assert!(!p.may_match(b"a\nbb\nc"));
    }

    #[test]
    fn should_stand_aside_for_haystack_anchors() {
        assert!(Prefilter::new(r"\Ab", false, 100).is_none());
        assert!(Prefilter::new(r"b\z", false, 100).is_none());
        assert!(Prefilter::new(r"(?-m)^b", false, 100).is_none());
    }

    #[test]
    fn should_never_hide_a_match_in_the_edge_cases() {
        let cases: &[(&str, &[u8])] = &[
            ("x$", b"ax\r\nb"),
            ("a.b", b"a\rb\n"),
            ("^$", b"a\n\nb"),
            ("^$", b""),
            (r"\bfoo\b", b"x\nfoo\ny"),
            (r"\Bo", b"o\nfoo"),
            ("ab$", b"abcdefgh\n"),
            ("(?i)NEEDLE", b"a needle\n"),
            ("[^a]", b"a\na\n"),
            ("", b""),
        ];
        for (pattern, buf) in cases {
            never_hides(pattern, buf, 4);
            never_hides(pattern, buf, 100);
        }
    }

    proptest::proptest! {
        #[test]
        fn should_never_hide_a_line_match(
            pattern in proptest::sample::select(vec![
                "a", "^a", "a$", "^$", "a.b", r"\ba", r"a\b", r"\Ba", "(?s)a.b", r"a\sb", "[^b]",
                "^a$", "b+$", "(?m)^b", "(?i)A", r"a\r?$", "",
            ]),
            buf in proptest::collection::vec(proptest::sample::select(vec![b'a', b'b', b'\n', b'\r', b' ']), 0..40),
            max_line in 1usize..12,
        ) {
            never_hides(pattern, &buf, max_line);
        }
    }
}
