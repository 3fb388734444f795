//! `Match` criteria, evaluated as OpenSSH 9's `match_cfg_line` does: `all`, `host`, `originalhost`,
//! `user`, `localuser`, `exec`, and `canonical`/`final` (true only in the final pass, which a
//! `Match final` anywhere requests). Every criterion must hold; `!` negates one; once one fails, later
//! `exec` commands are not run.

use std::process::{Command, Stdio};

use super::lexer::strdelim;
use super::pattern::{match_hostname, match_pattern_list, ListMatch};

/// What the criteria are compared with, at the point of the config where the `Match` line is.
pub struct MatchInput<'a> {
    /// The host being connected to: the typed name with HostName applied so far (final pass: the
    /// resolved host name).
    pub host: &'a str,
    /// The host exactly as given.
    pub original_host: &'a str,
    /// The remote user so far (the local user when none is set yet).
    pub user: &'a str,
    pub local_user: &'a str,
    pub port: u16,
    /// HostKeyAlias so far, else `host` (`%k`).
    pub key_alias: &'a str,
    pub home: &'a str,
    pub local_hostname: &'a str,
    pub final_pass: bool,
    /// `false` where OpenSSH's result is thrown away anyway (a Match in an inactive Include): the
    /// command is not run and counts as failed.
    pub run_exec: bool,
}

/// The outcome of a `Match` line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MatchOutcome {
    pub matched: bool,
    /// A `final` or `canonical`… `final` criterion was seen: the config is read again in a final pass.
    pub wants_final_pass: bool,
}

/// Evaluates the criteria text after `Match`. `Err` is a problem statement for the config error.
pub fn evaluate(criteria: &str, input: &MatchInput) -> Result<MatchOutcome, String> {
    let mut rest = criteria;
    let mut outcome = MatchOutcome {
        matched: true,
        wants_final_pass: false,
    };
    let mut attributes = 0;
    while let Some(word) = strdelim(&mut rest) {
        if word.is_empty() || word.starts_with('#') {
            break;
        }
        let (negate, attribute) = match word.strip_prefix('!') {
            Some(attribute) => (true, attribute.to_ascii_lowercase()),
            None => (false, word.to_ascii_lowercase()),
        };
        if attribute == "all" {
            let next = strdelim(&mut rest);
            if attributes > 0 || next.as_deref().is_some_and(|n| !n.starts_with('#')) {
                return Err(format!(
                    "'{word}' cannot be combined with other Match attributes"
                ));
            }
            outcome.matched &= !negate;
            return Ok(outcome);
        }
        attributes += 1;
        if attribute == "canonical" || attribute == "final" {
            if attribute == "final" {
                outcome.wants_final_pass = true;
            }
            if input.final_pass == negate {
                outcome.matched = false;
            }
            continue;
        }
        let arg = strdelim(&mut rest)
            .filter(|a| !a.is_empty() && !a.starts_with('#'))
            .ok_or_else(|| format!("missing Match criteria for {attribute}"))?;
        let hit = match attribute.as_str() {
            "host" => match_hostname(input.host, &arg),
            "originalhost" => match_hostname(input.original_host, &arg),
            "user" => match_pattern_list(input.user, &arg, false) == ListMatch::Positive,
            "localuser" => match_pattern_list(input.local_user, &arg, false) == ListMatch::Positive,
            "exec" => {
                if !outcome.matched || !input.run_exec {
                    // OpenSSH skips the command once an earlier criterion failed.
                    continue;
                }
                run_exec(&arg, input)?
            }
            // localnetwork, tagged (newer OpenSSH) and anything else: refused like an unknown option,
            // rather than guessed.
            other => return Err(format!("unsupported Match attribute {other}")),
        };
        if hit == negate {
            outcome.matched = false;
        }
    }
    if attributes == 0 {
        return Err("one or more attributes required for Match".into());
    }
    Ok(outcome)
}

/// Runs the command with OpenSSH's tokens, as OpenSSH does: `$SHELL -c`, stdio on /dev/null.
fn run_exec(template: &str, input: &MatchInput) -> Result<bool, String> {
    let port = input.port.to_string();
    let short_host = input.local_hostname.split('.').next().unwrap_or_default();
    let hash = super::connection_hash(input.local_hostname, input.host, &port, input.user);
    let tokens = [
        ('C', hash.as_str()),
        ('L', short_host),
        ('d', input.home),
        ('h', input.host),
        ('k', input.key_alias),
        ('l', input.local_hostname),
        ('n', input.original_host),
        ('p', port.as_str()),
        ('r', input.user),
        ('u', input.local_user),
    ];
    let command = super::expand_shell_tokens(template, &tokens)
        .map_err(|problem| format!("refusing to run Match exec: {problem}"))?;
    let shell = std::env::var("SHELL")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "/bin/sh".into());
    let status = Command::new(&shell)
        .arg("-c")
        .arg(&command)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("match exec '{command}': {shell}: {e}"))?;
    log::debug!("Match exec {command:?} exited with {status}");
    Ok(status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> MatchInput<'static> {
        MatchInput {
            host: "real.example",
            original_host: "pi",
            user: "bob",
            local_user: "me",
            port: 22,
            key_alias: "real.example",
            home: "/home/me",
            local_hostname: "laptop.lan",
            final_pass: false,
            run_exec: true,
        }
    }

    fn matched(criteria: &str) -> bool {
        evaluate(criteria, &input()).unwrap().matched
    }

    #[test]
    fn match_should_require_every_criterion() {
        assert!(matched("all"));
        assert!(!matched("!all"));
        assert!(matched("host *.example originalhost pi"));
        assert!(matched("Host REAL.example"));
        assert!(!matched("host pi"));
        assert!(matched("user bob,alice localuser me"));
        assert!(!matched("user bob !localuser me"));
        assert!(matched("originalhost=pi"));
        assert!(matched("host \"*.example\" # comment"));
    }

    #[test]
    fn match_should_treat_canonical_and_final_as_final_pass_only() {
        let outcome = evaluate("final", &input()).unwrap();
        assert_eq!(
            outcome,
            MatchOutcome {
                matched: false,
                wants_final_pass: true
            }
        );
        assert!(!matched("canonical"));
        assert!(matched("!canonical"));
        let last = MatchInput {
            final_pass: true,
            ..input()
        };
        assert!(evaluate("canonical host *.example", &last).unwrap().matched);
    }

    #[test]
    fn match_exec_should_run_with_tokens_and_skip_after_a_failure() {
        assert!(matched(
            "exec \"test %n = pi && test %h = real.example && test %r = bob\""
        ));
        assert!(!matched("exec false"));
        assert!(matched("!exec false"));
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let criteria = format!("host nothing exec \"touch {}\"", marker.display());
        assert!(!matched(&criteria));
        assert!(!marker.exists(), "exec ran after host failed");
    }

    #[test]
    fn match_exec_should_refuse_a_host_name_a_shell_would_interpret() {
        let hostile = MatchInput {
            original_host: "x$(touch /tmp/owned)",
            ..input()
        };
        assert!(evaluate("exec \"echo %n\"", &hostile).is_err());
        assert!(evaluate("exec \"echo %h\"", &hostile).is_ok());
    }

    #[test]
    fn match_should_reject_what_openssh_rejects() {
        for bad in [
            "all host x",
            "host",
            "user bob all",
            "localnetwork 10.0.0.0/8",
            "",
        ] {
            assert!(evaluate(bad, &input()).is_err(), "{bad}");
        }
    }
}
