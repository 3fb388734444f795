//! Splitting ssh_config lines into words exactly as OpenSSH 9's `readconf.c` does, so a value in quotes
//! or with escapes means the same to us as to `ssh`.
//!
//! Three splitters, because OpenSSH uses three: the keyword is cut with `strdelim` (whitespace or one
//! `=`), most values with `argv_split` (quotes anywhere in a word, backslash escapes, `#` starts a
//! comment), `Match` criteria again with `strdelim` (only `"` quotes), and `ProxyCommand`/`ProxyJump`
//! take the rest of the line verbatim.

/// Characters OpenSSH trims from the end of a line (it also allows a form feed there).
const TRAILING: &[char] = &[' ', '\t', '\r', '\n', '\x0c'];

/// One config line cut into its keyword (lower-cased) and the unparsed rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line<'a> {
    pub keyword: String,
    /// Everything after the keyword and its delimiter, with trailing whitespace removed.
    pub rest: &'a str,
}

/// `None` for blank and comment lines. The rest may be empty (OpenSSH then reports a missing argument).
pub fn split_line(line: &str) -> Option<Line<'_>> {
    let line = line.trim_end_matches(TRAILING);
    let mut rest = line.trim_start_matches([' ', '\t']);
    // OpenSSH's strdelim skips leading whitespace as an empty first token.
    let keyword = strdelim(&mut rest)?;
    if keyword.is_empty() || keyword.starts_with('#') {
        return None;
    }
    Some(Line {
        keyword: keyword.to_ascii_lowercase(),
        rest: rest.trim_start_matches([' ', '\t', '\r', '\n']),
    })
}

/// OpenSSH's `strdelim`: the next word, ended by whitespace, a `"` (which quotes the word) or one `=`.
/// Advances `text` past the word and the whitespace (and at most one `=`) after it. `None` on an
/// unterminated quote or at the end.
pub fn strdelim(text: &mut &str) -> Option<String> {
    let s = *text;
    if s.is_empty() {
        return None;
    }
    let Some(stop) = s.find([' ', '\t', '\r', '\n', '"', '=']) else {
        *text = "";
        return Some(s.to_string());
    };
    if s.as_bytes()[stop] == b'"' {
        // A quote ends the unquoted part and the quoted part runs to the next quote.
        let quoted = &s[stop + 1..];
        let end = quoted.find('"')?;
        let word = format!("{}{}", &s[..stop], &quoted[..end]);
        *text = quoted[end + 1..].trim_start_matches([' ', '\t']);
        return Some(word);
    }
    let word = s[..stop].to_string();
    let mut after = &s[stop..];
    let equals = after.starts_with('=');
    after = after[1..].trim_start_matches([' ', '\t']);
    if !equals {
        if let Some(stripped) = after.strip_prefix('=') {
            after = stripped.trim_start_matches([' ', '\t']);
        }
    }
    *text = after;
    Some(word)
}

/// OpenSSH's `argv_split(s, …, terminate_on_comment = 1)`: words split on blanks; `'` and `"` quote
/// anywhere in a word; `\` escapes a quote, a backslash or (outside quotes) a space; a `#` at the start
/// of a word ends the line. `Err` on an unterminated quote ("invalid quotes").
pub fn argv_split(text: &str) -> Result<Vec<String>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut words = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == ' ' || chars[i] == '\t' {
            i += 1;
            continue;
        }
        if chars[i] == '#' {
            break;
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while i < chars.len() {
            let c = chars[i];
            match (c, quote) {
                ('\\', q) => match chars.get(i + 1) {
                    Some(&next @ ('\'' | '"' | '\\')) => {
                        word.push(next);
                        i += 1;
                    }
                    Some(' ') if q.is_none() => {
                        word.push(' ');
                        i += 1;
                    }
                    _ => word.push('\\'),
                },
                (' ' | '\t', None) => break,
                ('"' | '\'', None) => quote = Some(c),
                (c, Some(q)) if c == q => quote = None,
                (c, _) => word.push(c),
            }
            i += 1;
        }
        if quote.is_some() {
            return Err("invalid quotes".into());
        }
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_line_should_accept_blanks_and_one_equals_sign() {
        for text in [
            "HostName x",
            "  HostName=x",
            "hostname = x",
            "HOSTNAME\t=\tx  ",
        ] {
            let line = split_line(text).unwrap();
            assert_eq!(
                (line.keyword.as_str(), line.rest),
                ("hostname", "x"),
                "{text}"
            );
        }
        assert_eq!(split_line("   # comment"), None);
        assert_eq!(split_line(""), None);
        assert_eq!(split_line("  \t "), None);
        assert_eq!(split_line("User").unwrap().rest, "");
    }

    #[test]
    fn argv_split_should_unquote_like_openssh() {
        let words =
            argv_split(r#""/path with space/kh" ~/b a"b c"d 'x y' e\ f g\"h # gone"#).unwrap();
        assert_eq!(
            words,
            ["/path with space/kh", "~/b", "ab cd", "x y", "e f", "g\"h"]
        );
        assert_eq!(argv_split(r"a\qb").unwrap(), [r"a\qb"]);
        assert_eq!(argv_split("'a\"b'").unwrap(), ["a\"b"]);
        assert!(argv_split("\"open").is_err());
        assert!(argv_split("").unwrap().is_empty());
    }

    #[test]
    fn strdelim_should_split_match_criteria() {
        let mut rest = r#"exec "test -f x" host=a,b  !user c"#;
        let mut words = Vec::new();
        while let Some(word) = strdelim(&mut rest) {
            words.push(word);
        }
        assert_eq!(words, ["exec", "test -f x", "host", "a,b", "!user", "c"]);
        let mut open = "exec \"unterminated";
        assert_eq!(strdelim(&mut open).as_deref(), Some("exec"));
        assert_eq!(strdelim(&mut open), None);
    }
}
