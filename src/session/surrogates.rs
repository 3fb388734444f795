//! Lone UTF-16 surrogates in JSON text.
//!
//! OpenCode is JavaScript: a session can hold strings with unpaired surrogates (a model's tool
//! arguments, a broken emoji, a tool output decoded from bytes), and `JSON.stringify` writes them as
//! `\ud800`-style escapes. serde_json refuses those ("lone leading surrogate in hex escape"), which
//! made every `remote_login` of such a session fail. JavaScript itself shows them as U+FFFD, so we
//! do the same before parsing.

use std::borrow::Cow;

/// `bytes` with every `\uXXXX` escape of an unpaired surrogate replaced by `\ufffd` (same length,
/// so nothing else moves). Valid pairs and all other text are untouched.
pub fn replace_lone_surrogates(bytes: &[u8]) -> Cow<'_, [u8]> {
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        // A backslash only appears inside strings in valid JSON; `\\` is skipped as a whole.
        let Some(unit) = escaped_unit(bytes, i) else {
            i += 2;
            continue;
        };
        match unit {
            0xD800..=0xDBFF if escaped_unit(bytes, i + 6).is_some_and(is_low) => i += 12,
            0xD800..=0xDFFF => {
                out.get_or_insert_with(|| bytes.to_vec())[i..i + 6].copy_from_slice(b"\\ufffd");
                i += 6;
            }
            _ => i += 6,
        }
    }
    out.map_or(Cow::Borrowed(bytes), Cow::Owned)
}

/// The code unit of a `\uXXXX` escape starting at `at`.
fn escaped_unit(bytes: &[u8], at: usize) -> Option<u16> {
    let escape = bytes.get(at..at + 6)?;
    if &escape[..2] != b"\\u" {
        return None;
    }
    u16::from_str_radix(std::str::from_utf8(&escape[2..]).ok()?, 16).ok()
}

fn is_low(unit: u16) -> bool {
    (0xDC00..=0xDFFF).contains(&unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(text: &str) -> String {
        String::from_utf8(replace_lone_surrogates(text.as_bytes()).into_owned()).unwrap()
    }

    #[test]
    fn replace_lone_surrogates_should_fix_only_unpaired_escapes() {
        assert_eq!(fixed(r#"["a\udcffb"]"#), r#"["a\ufffdb"]"#);
        assert_eq!(fixed(r#"["\ud800"]"#), r#"["\ufffd"]"#);
        assert_eq!(
            fixed(r#"["\ud800\ud800\udc00"]"#),
            r#"["\ufffd\ud800\udc00"]"#
        );
        assert_eq!(
            fixed(r#"["\ud83d\ude00 \u00e9 \n"]"#),
            r#"["\ud83d\ude00 \u00e9 \n"]"#
        );
        // An escaped backslash followed by "ud800" is text, not an escape.
        assert_eq!(fixed(r#"["\\ud800"]"#), r#"["\\ud800"]"#);
        assert_eq!(fixed(r#"["\\\udc00"]"#), r#"["\\\ufffd"]"#);
        assert_eq!(fixed(r#"["truncated \ud8"#), r#"["truncated \ud8"#);
    }

    #[test]
    fn replace_lone_surrogates_should_borrow_when_nothing_changes() {
        assert!(matches!(
            replace_lone_surrogates(br#"{"a":"\u00e9"}"#),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn replaced_text_should_parse_as_javascript_shows_it() {
        let value: serde_json::Value =
            serde_json::from_slice(&replace_lone_surrogates(br#"["x\udcffy"]"#)).unwrap();
        assert_eq!(value[0], "x\u{fffd}y");
    }
}
