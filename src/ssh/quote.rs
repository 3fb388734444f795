//! The one audited way to put text into a remote shell command line.
//!
//! Everything is single-quoted for POSIX `sh`: inside single quotes nothing is special except the quote
//! itself, which is closed, escaped and reopened. The login shell of the remote user parses the line
//! first, so the lines we build keep to syntax that sh, bash, zsh, fish and csh all read the same way:
//! - fish also reads `\\` and `\'` inside single quotes, so a backslash is never left inside them (with
//!   `'a\'` a value ending in a backslash would swallow the closing quote, and the next argument's `;`
//!   would run a command). It goes outside, escaped, as `'\\'`.
//! - csh/tcsh expand `!` history events even inside single quotes and in `-c` lines, so `!` goes outside
//!   too, as `'\!'`.
//! - No quoting carries a newline through csh (sh keeps `\<newline>` inside quotes, csh needs it), and
//!   csh runs what follows a newline inside quotes as a new command. So `Connection::exec` refuses
//!   command lines with a newline; a value with one is fine only in a script sent on stdin (`sh -s`).
//! - NUL cannot be passed at all: the command reaches the shell through execve, which ends the string at
//!   the first NUL (exec refuses it too). Callers pass constants, generated ids or config values, which
//!   `config` refuses control characters in.

/// Quote one argument so the remote shell passes it through as exactly one word.
pub fn quote(arg: &str) -> String {
    let mut out = String::with_capacity(arg.len() + 2);
    out.push('\'');
    for c in arg.chars() {
        match c {
            '\'' => out.push_str("'\\''"),
            '\\' => out.push_str("'\\\\'"),
            '!' => out.push_str("'\\!'"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Join quoted arguments into one command line.
pub fn command_line(argv: &[&str]) -> String {
    argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
}

/// Runs command lines through real shells and reads back the words they produced: the test oracle for
/// every command builder (STYLE.md: command builders are tested on exact argv).
#[cfg(test)]
pub(crate) mod oracle {
    use std::process::{Command, Output};

    /// The shells a remote login shell may be. `scripts/setup.sh` installs zsh, fish and tcsh.
    pub const SHELLS: [&str; 6] = ["sh", "dash", "bash", "zsh", "fish", "tcsh"];

    /// Text built from what breaks shells, plus any character at all.
    pub fn hostile_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            3 => any::<char>().prop_map(String::from),
            2 => prop::sample::select(vec![
                "'", "\"", "\\", "\\'", "'\\", "!", "!!", "$", "$(id)", "${HOME}", "`id`", ";", "&", "|",
                "\n", "\r", "\t", " ", "#", "*", "?", "[a]", "{a,b}", "~", "%s", "-oProxyCommand=x",
                "--", "-", "(", ")", "<", ">", "^", "\u{1b}[31m", "\u{7f}", "ü", "\u{feff}", "\u{2028}",
            ])
            .prop_map(String::from),
        ];
        prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
    }

    /// A proptest config that runs `n` cases, keeps no regression files and says how many it ran (on
    /// stderr, past the test harness's capture, so `cargo test` output records the count).
    pub fn cases(n: u32) -> proptest::test_runner::Config {
        use std::io::Write;
        let test = std::thread::current().name().unwrap_or("?").to_string();
        let _ = writeln!(std::io::stderr(), "proptest: {test}: {n} cases");
        proptest::test_runner::Config {
            cases: n,
            failure_persistence: None,
            ..proptest::test_runner::Config::default()
        }
    }

    /// `shell -c <line>`, as sshd runs a command for a user whose login shell is `shell`.
    pub fn run(shell: &str, line: &str) -> Output {
        Command::new(shell)
            .arg("-c")
            .arg(line)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap_or_else(|e| panic!("{shell} must be installed (scripts/setup.sh): {e}"))
    }

    /// The argv `shell` builds from `words` (a command line without its command): each word printed by
    /// the external printf, NUL-terminated, so any byte a shell could pass shows up exactly.
    pub fn words(shell: &str, words: &str) -> Vec<String> {
        let output = run(shell, &format!("/usr/bin/printf '%s\\0' {words}"));
        assert!(
            output.status.success(),
            "{shell} refused {words:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut stdout = output.stdout;
        assert_eq!(stdout.pop(), Some(0), "{shell}: no words from {words:?}");
        stdout
            .split(|&b| b == 0)
            .map(|w| String::from_utf8(w.to_vec()).expect("the shell kept UTF-8 intact"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::oracle::{cases, hostile_text, run, words, SHELLS};
    use super::*;
    use proptest::prelude::*;

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
    fn quote_should_keep_backslashes_and_bangs_outside_quotes() {
        assert_eq!(quote("a\\"), "'a'\\\\''");
        assert_eq!(quote("!x"), "''\\!'x'");
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

    /// The fish injection this module's backslash rule closes: `'a\'` used to swallow the quote, so the
    /// second argument's `;` ended the command and `touch` ran.
    #[test]
    fn quote_should_not_let_a_trailing_backslash_inject_in_fish() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("pwned");
        let second = format!("; touch {} #", marker.display());
        for shell in SHELLS {
            assert_eq!(
                words(shell, &command_line(&["a\\", &second])),
                ["a\\", second.as_str()],
                "{shell}"
            );
        }
        assert!(!marker.exists());
    }

    /// Close to the kernel's 128 KiB limit for one argument (the whole `-c` line is one).
    #[test]
    fn quote_should_round_trip_a_very_long_hostile_value() {
        let long = "'\\!$(x)`y`;\n\"ü".repeat(4_000);
        for shell in ["sh", "bash", "fish"] {
            assert_eq!(words(shell, &quote(&long)), [long.as_str()], "{shell}");
        }
    }

    proptest! {
        #![proptest_config(cases(256))]

        /// Any text without NUL comes out of sh, dash, bash and zsh as exactly the words we put in.
        #[test]
        fn quote_should_round_trip_any_text_through_posix_shells(
            args in prop::collection::vec(hostile_text().prop_filter("no NUL", |s| !s.contains('\0')), 1..6)
        ) {
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            for shell in ["sh", "bash", "zsh"] {
                prop_assert_eq!(words(shell, &command_line(&argv)), args.clone(), "{}", shell);
            }
        }

    }

    proptest! {
        #![proptest_config(cases(128))]

        /// fish reads backslashes inside single quotes and tcsh expands `!` there; newlines are out of
        /// reach for csh (see the module doc), so tcsh gets values without them.
        #[test]
        fn quote_should_round_trip_any_text_through_fish_and_tcsh(
            args in prop::collection::vec(hostile_text().prop_filter("no NUL", |s| !s.contains('\0')), 1..6)
        ) {
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            prop_assert_eq!(words("fish", &command_line(&argv)), args.clone());
            if !args.iter().any(|a| a.contains(['\n', '\r'])) {
                prop_assert_eq!(words("tcsh", &command_line(&argv)), args.clone());
            }
        }

        /// execve ends the line at the first NUL; what is left must fail to parse in every shell, never
        /// run a shortened command. (fish reports the parse error but exits 0, so for it the proof is that
        /// printf never ran.)
        #[test]
        fn quote_should_make_a_nul_truncated_line_fail_to_parse(
            before in hostile_text(), after in hostile_text(), rest in hostile_text()
        ) {
            let value = format!("{before}\0{after}");
            let line = format!("/usr/bin/printf '%s\\0' {} {}", quote(&value), quote(&rest));
            let truncated = &line[..line.find('\0').unwrap()];
            for shell in ["sh", "fish"] {
                let output = run(shell, truncated);
                prop_assert!(output.stdout.is_empty(), "{} ran {:?}", shell, truncated);
                prop_assert!(shell == "fish" || !output.status.success(), "{} accepted {:?}", shell, truncated);
            }
        }
    }
}
