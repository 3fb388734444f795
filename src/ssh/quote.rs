//! The one audited way to put text into a remote shell command line.
//!
//! Everything is single-quoted for POSIX `sh`: inside single quotes nothing is special except the quote
//! itself, which is closed, escaped and reopened. The login shell of the remote user parses the line
//! first, so the lines we build keep to syntax that sh, bash, zsh, fish and csh all read the same way.

/// Quote one argument so the remote shell passes it through as exactly one word.
pub fn quote(arg: &str) -> String {
    let mut out = String::with_capacity(arg.len() + 2);
    out.push('\'');
    for c in arg.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Join quoted arguments into one command line.
pub fn command_line(argv: &[&str]) -> String {
    argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_should_wrap_plain_words() {
        assert_eq!(quote("abc"), "'abc'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn quote_should_escape_single_quotes() {
        assert_eq!(quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn command_line_should_keep_metacharacters_inert() {
        assert_eq!(
            command_line(&["mv", "-f", "--", "$(x) `y`; z", "a\nb"]),
            "'mv' '-f' '--' '$(x) `y`; z' 'a\nb'"
        );
    }

    #[test]
    fn quote_should_round_trip_through_a_real_sh() {
        let hostile = "a'b\"c $(touch /nonexistent/x) `id` ; rm -rf / \n ü\\";
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s' {}", quote(hostile)))
            .output()
            .expect("sh runs");
        assert_eq!(String::from_utf8(output.stdout).unwrap(), hostile);
    }
}
