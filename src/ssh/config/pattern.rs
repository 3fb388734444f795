//! OpenSSH's pattern matching (`match.c`): `*` and `?` wildcards, comma lists with `!` negation.
//!
//! Two flavours matter and differ: a `Host` line matches each word as one case-sensitive pattern
//! (commas are not special there), while `Match host/user/...` take comma lists, and host names are
//! compared lower-cased.

/// `match_pattern`: the whole of `text` against one wildcard pattern, case-sensitively.
pub fn match_pattern(text: &str, pattern: &str) -> bool {
    // Greedy with one backtrack point: linear for any pattern, so `*a*a*a…` from a config cannot hang us.
    let t: Vec<char> = text.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    let (mut ti, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == t[ti])) {
            ti += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((star_p, star_t)) = star {
            pi = star_p + 1;
            ti = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Outcome of matching a comma-separated pattern list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListMatch {
    None,
    Positive,
    /// A `!pattern` matched: this beats any positive match.
    Negated,
}

/// `match_pattern_list`: `lower` lower-cases the patterns (the caller lower-cases `text`).
pub fn match_pattern_list(text: &str, list: &str, lower: bool) -> ListMatch {
    let mut result = ListMatch::None;
    for pattern in list.split(',') {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, pattern),
        };
        let pattern = if lower {
            pattern.to_ascii_lowercase()
        } else {
            pattern.to_string()
        };
        if match_pattern(text, &pattern) {
            if negated {
                return ListMatch::Negated;
            }
            result = ListMatch::Positive;
        }
    }
    result
}

/// `match_hostname`: host names compare case-insensitively.
pub fn match_hostname(host: &str, list: &str) -> bool {
    match_pattern_list(&host.to_ascii_lowercase(), list, true) == ListMatch::Positive
}

/// A `Host` line: active when some word matches and no `!word` does.
pub fn host_line_matches(host: &str, words: &[String]) -> bool {
    let mut active = false;
    for word in words {
        let (negated, pattern) = match word.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, word.as_str()),
        };
        if match_pattern(host, pattern) {
            if negated {
                return false;
            }
            active = true;
        }
    }
    active
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_pattern_should_glob_like_openssh() {
        assert!(match_pattern("pi.lan", "*.lan"));
        assert!(match_pattern("pi", "p?"));
        assert!(match_pattern("", "*"));
        assert!(!match_pattern("pi", "p"));
        assert!(!match_pattern("PI", "pi"));
        assert!(match_pattern("a*b", "a*b"));
    }

    #[test]
    fn host_line_should_let_a_negation_win() {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(host_line_matches("b", &words(&["*", "!a"])));
        assert!(!host_line_matches("a", &words(&["*", "!a"])));
        assert!(!host_line_matches("a", &words(&["!a", "*"])));
        assert!(!host_line_matches("a", &words(&["!b"])));
        assert!(!host_line_matches("a", &words(&["a,b"])));
    }

    #[test]
    fn pattern_lists_should_lower_case_host_names_only() {
        assert!(match_hostname("PI", "pi,x"));
        assert!(match_hostname("pi", "PI"));
        assert!(!match_hostname("pi", "*,!pi"));
        assert_eq!(match_pattern_list("Bob", "bob", false), ListMatch::None);
        assert_eq!(
            match_pattern_list("bob", "x,b*", false),
            ListMatch::Positive
        );
    }
}
