//! The order of JavaScript's `a.localeCompare(b)` (ICU's root collation), which OpenCode sorts
//! directory listings and changed files by: case and accents count only when nothing else differs,
//! punctuation sorts before digits and digits before letters. Covers ASCII and the accented Latin-1
//! letters; other characters compare by their lowercase code point after those.

use std::cmp::Ordering;

/// ASCII punctuation and symbols in ICU's root order (whitespace and control first).
const PUNCTUATION: &str = "_-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$";

/// `a.localeCompare(b)`.
pub fn locale_cmp(a: &str, b: &str) -> Ordering {
    let primary = |s: &str| s.chars().map(|c| weight(c).0).collect::<Vec<_>>();
    let secondary = |s: &str| s.chars().map(|c| weight(c).1).collect::<Vec<_>>();
    let tertiary = |s: &str| s.chars().map(|c| weight(c).2).collect::<Vec<_>>();
    primary(a)
        .cmp(&primary(b))
        .then_with(|| secondary(a).cmp(&secondary(b)))
        .then_with(|| tertiary(a).cmp(&tertiary(b)))
        .then_with(|| a.cmp(b))
}

/// (primary, accent, case) weights of one character.
fn weight(c: char) -> (u32, u8, u8) {
    let upper = c.is_uppercase() as u8;
    let lower = c.to_lowercase().next().unwrap_or(c);
    let (base, accent) = fold(lower);
    let primary = if c.is_whitespace() || c.is_control() {
        c as u32
    } else if let Some(i) = PUNCTUATION.find(c) {
        0x100 + i as u32
    } else if c.is_ascii_digit() {
        0x200 + c as u32
    } else if base.is_ascii_lowercase() {
        0x300 + base as u32
    } else {
        0x1000 + base as u32
    };
    (primary, accent, upper)
}

/// A Latin-1 accented letter's base letter and a non-zero accent weight.
fn fold(c: char) -> (char, u8) {
    let base = match c {
        'à'..='å' => 'a',
        'ç' => 'c',
        'è'..='ë' => 'e',
        'ì'..='ï' => 'i',
        'ñ' => 'n',
        'ò'..='ö' | 'ø' => 'o',
        'ù'..='ü' => 'u',
        'ý' | 'ÿ' => 'y',
        _ => return (c, 0),
    };
    (base, 1 + (c as u32 % 16) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Orders computed by Node 22's `[...].sort((a, b) => a.localeCompare(b))`.
    #[test]
    fn locale_cmp_should_sort_like_javascript() {
        let chars = " _-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$0123456789aAbBzZ";
        let mut shuffled: Vec<String> = chars.chars().rev().map(String::from).collect();
        shuffled.sort_by(|a, b| locale_cmp(a, b));
        assert_eq!(shuffled.concat(), chars);
        let want = [
            "_x",
            ".git",
            "a b",
            "a_b",
            "a-b",
            "a.b",
            "a1",
            "a10",
            "a2",
            "ab",
            "ea",
            "éa",
            "eb",
            "nested/",
            "node_modules",
            "readme.md",
            "Readme.md",
            "README.md",
            "src/a",
            "z",
            "Z",
        ];
        let mut got: Vec<&str> = want.iter().rev().copied().collect();
        got.sort_by(|a, b| locale_cmp(a, b));
        assert_eq!(got, want);
    }
}
