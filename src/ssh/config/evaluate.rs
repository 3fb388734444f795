//! Evaluating parsed ssh_config files for one host, as `ssh` does: the first value of an option wins,
//! `Host`/`Match` switch blocks on and off, a `Match` in an included file never changes the includer's
//! block, and a `Match final` (or CanonicalizeHostname) makes a second, final pass in which `Host`
//! patterns see the resolved host name.
//!
//! Every value keeps the line it came from, for `doctor`.

use std::collections::BTreeMap;

use super::matching::{self, MatchInput};
use super::parse::{ConfigFile, Item, Origin};
use super::pattern::host_line_matches;

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The host entry (hosts.json or the address), like an `ssh` command-line option.
    Entry,
    File(Origin),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Entry => f.write_str("the host entry"),
            Source::File(origin) => write!(f, "{origin}"),
        }
    }
}

/// One option's value: the words `argv_split` made, and the verbatim text (ProxyCommand/ProxyJump).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub args: Vec<String>,
    pub raw: String,
    pub source: Source,
}

impl Setting {
    pub fn first(&self) -> &str {
        self.args.first().map_or("", String::as_str)
    }
}

/// The options that applied to one host, first value of each.
#[derive(Debug, Clone, Default)]
pub struct Options {
    single: BTreeMap<String, Setting>,
    /// IdentityFile and CertificateFile accumulate (duplicates dropped, as OpenSSH does).
    lists: BTreeMap<String, Vec<Setting>>,
}

/// Keywords whose every line adds a value instead of the first one winning.
const LIST_KEYWORDS: &[&str] = &["identityfile", "certificatefile"];

impl Options {
    pub fn get(&self, keyword: &str) -> Option<&Setting> {
        self.single.get(keyword)
    }

    pub fn list(&self, keyword: &str) -> &[Setting] {
        self.lists.get(keyword).map_or(&[], Vec::as_slice)
    }

    /// Sets `keyword` before the files are read, as an `ssh` option on the command line would.
    pub fn preset(&mut self, keyword: &str, value: &str) {
        self.single.insert(
            keyword.to_string(),
            Setting {
                args: vec![value.to_string()],
                raw: value.to_string(),
                source: Source::Entry,
            },
        );
    }

    /// Adds to a list option before the files are read, like `ssh -i`.
    pub fn preset_list(&mut self, keyword: &str, value: &str) {
        self.lists
            .entry(keyword.to_string())
            .or_default()
            .push(Setting {
                args: vec![value.to_string()],
                raw: value.to_string(),
                source: Source::Entry,
            });
    }

    fn apply(&mut self, keyword: &str, args: &[String], rest: &str, origin: &Origin) {
        let source = Source::File(origin.clone());
        if LIST_KEYWORDS.contains(&keyword) {
            let Some(first) = args.first() else { return };
            let list = self.lists.entry(keyword.to_string()).or_default();
            if !list.iter().any(|s| s.first() == first) {
                list.push(Setting {
                    args: vec![first.clone()],
                    raw: first.clone(),
                    source,
                });
            }
            return;
        }
        let raw = match keyword {
            // Run through a shell later: kept verbatim, only the keyword's delimiter removed.
            "proxycommand" => {
                if self.single.contains_key("proxyjump") {
                    return;
                }
                rest.trim_start_matches([' ', '\t', '=']).to_string()
            }
            "proxyjump" => {
                if self.single.contains_key("proxycommand") {
                    return;
                }
                let text = rest.trim_start_matches([' ', '\t', '=']);
                let text = text.split('#').next().unwrap_or_default();
                text.trim_end().to_string()
            }
            _ => rest.to_string(),
        };
        self.single.entry(keyword.to_string()).or_insert(Setting {
            args: args.to_vec(),
            raw,
            source,
        });
    }
}

/// What evaluation needs besides the files.
pub struct Host<'a> {
    /// The host as given (OpenSSH's `host_arg`): matched against `Host` patterns in the first pass.
    pub name: &'a str,
    pub local_user: &'a str,
    pub home: &'a str,
    pub local_hostname: &'a str,
}

/// A `Match` line's problem, with its place.
#[derive(Debug)]
pub struct EvalError {
    pub origin: Origin,
    pub problem: String,
}

/// Evaluates `files` (user config first, then the system one) for `host`, on top of `options` (the
/// entry's presets).
pub fn evaluate(
    files: &[ConfigFile],
    host: &Host,
    mut options: Options,
) -> Result<Options, EvalError> {
    let mut pass = Pass {
        host,
        final_pass: false,
        host_pattern_name: host.name.to_string(),
        wants_final_pass: false,
    };
    for file in files {
        let mut active = true;
        pass.walk(&file.items, &mut options, &mut active, false)?;
    }
    let canonicalize = options
        .get("canonicalizehostname")
        .is_some_and(|s| !s.first().eq_ignore_ascii_case("no"));
    if pass.wants_final_pass || canonicalize {
        let final_host = final_hostname(&options, host.name);
        pass.final_pass = true;
        pass.host_pattern_name = final_host;
        for file in files {
            let mut active = true;
            pass.walk(&file.items, &mut options, &mut active, false)?;
        }
    }
    Ok(options)
}

/// The host name to dial: HostName with `%h` expanded, lower-cased unless it is an address (OpenSSH
/// lower-cases names after reading the config; addresses are left as written).
pub fn final_hostname(options: &Options, host: &str) -> String {
    let name = match options.get("hostname") {
        Some(setting) => super::expand_tokens(setting.first(), &[('h', host)]),
        None => host.to_string(),
    };
    if name.parse::<std::net::IpAddr>().is_ok() {
        name
    } else {
        name.to_ascii_lowercase()
    }
}

struct Pass<'a> {
    host: &'a Host<'a>,
    final_pass: bool,
    /// What `Host` lines match: the typed host, or in the final pass the resolved host name.
    host_pattern_name: String,
    wants_final_pass: bool,
}

impl Pass<'_> {
    /// `never_match`: inside an Include that sits in an inactive block, nothing can become active.
    fn walk(
        &mut self,
        items: &[Item],
        options: &mut Options,
        active: &mut bool,
        never_match: bool,
    ) -> Result<(), EvalError> {
        for item in items {
            match item {
                Item::Host { patterns, .. } => {
                    *active = !never_match && host_line_matches(&self.host_pattern_name, patterns);
                }
                Item::Match { origin, criteria } => {
                    let outcome =
                        self.match_line(criteria, options, never_match)
                            .map_err(|problem| EvalError {
                                origin: origin.clone(),
                                problem,
                            })?;
                    self.wants_final_pass |= outcome.wants_final_pass;
                    *active = !never_match && outcome.matched;
                }
                Item::Include { files } => {
                    let outer = *active;
                    for file in files {
                        self.walk(&file.items, options, active, never_match || !outer)?;
                        // A Match in an included file must not change the including file's block.
                        *active = outer;
                    }
                }
                Item::Option {
                    origin,
                    keyword,
                    args,
                    rest,
                } => {
                    if *active {
                        options.apply(keyword, args, rest, origin);
                    }
                }
            }
        }
        Ok(())
    }

    fn match_line(
        &self,
        criteria: &str,
        options: &Options,
        never_match: bool,
    ) -> Result<matching::MatchOutcome, String> {
        let host = if self.final_pass {
            self.host_pattern_name.clone()
        } else {
            match options.get("hostname") {
                Some(setting) => super::expand_tokens(setting.first(), &[('h', self.host.name)]),
                None => self.host.name.to_string(),
            }
        };
        let user = options
            .get("user")
            .map_or(self.host.local_user, |s| s.first());
        let port = options
            .get("port")
            .and_then(|s| s.first().parse().ok())
            .unwrap_or(super::DEFAULT_PORT);
        let key_alias = options
            .get("hostkeyalias")
            .map_or(host.as_str(), |s| s.first());
        let input = MatchInput {
            host: &host,
            original_host: self.host.name,
            user,
            local_user: self.host.local_user,
            port,
            key_alias,
            home: self.host.home,
            local_hostname: self.host.local_hostname,
            final_pass: self.final_pass,
            run_exec: !never_match,
        };
        matching::evaluate(criteria, &input)
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse::{read, Scope};
    use super::*;

    fn eval(text: &str, host: &str) -> Options {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, text).unwrap();
        let file = read(&path, Scope::User, Some(dir.path())).unwrap();
        let host = Host {
            name: host,
            local_user: "me",
            home: "/home/me",
            local_hostname: "laptop",
        };
        evaluate(&[file], &host, Options::default()).unwrap()
    }

    fn value(options: &Options, keyword: &str) -> Option<String> {
        options.get(keyword).map(|s| s.first().to_string())
    }

    #[test]
    fn evaluate_should_keep_the_first_value_and_its_line() {
        let options = eval("Host pi\n  User a\nHost *\n  User b\n  Port 2\n", "pi");
        assert_eq!(value(&options, "user").as_deref(), Some("a"));
        let port = options.get("port").unwrap();
        assert!(matches!(&port.source, Source::File(o) if o.line == 5));
    }

    #[test]
    fn evaluate_should_not_let_an_included_match_leak_into_the_host_block() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("inc"), "Match host zzz\n  User leaked\n").unwrap();
        let text = format!(
            "Host pi\n  Include {}\n  Port 11\n",
            dir.path().join("inc").display()
        );
        let options = eval(&text, "pi");
        assert_eq!(value(&options, "user"), None);
        assert_eq!(value(&options, "port").as_deref(), Some("11"));
    }

    #[test]
    fn evaluate_should_make_a_final_pass_against_the_host_name() {
        let text =
            "Match final\n  User fin\nHost b.example\n  Port 7\nHost pi\n  HostName B.example\n";
        let options = eval(text, "pi");
        assert_eq!(value(&options, "user").as_deref(), Some("fin"));
        assert_eq!(value(&options, "port").as_deref(), Some("7"));
        let without = eval("Match canonical\n  Port 9\n", "pi");
        assert_eq!(value(&without, "port"), None);
    }

    #[test]
    fn evaluate_should_let_the_first_of_proxycommand_and_proxyjump_win() {
        let options = eval(
            "Host a\n  ProxyCommand nc %h %p # not a comment\n  ProxyJump j\n",
            "a",
        );
        assert_eq!(
            options.get("proxycommand").unwrap().raw,
            "nc %h %p # not a comment"
        );
        assert!(options.get("proxyjump").is_none());
        let options = eval(
            "Host a\n  ProxyJump=j1,j2 # comment\n  ProxyCommand x\n",
            "a",
        );
        assert_eq!(options.get("proxyjump").unwrap().raw, "j1,j2");
        assert!(options.get("proxycommand").is_none());
    }

    #[test]
    fn evaluate_should_deduplicate_identity_files() {
        let text = "Host a\n  IdentityFile ~/x\n  IdentityFile ~/x\n  IdentityFile \"~/y z\"\n";
        let files: Vec<_> = eval(text, "a")
            .list("identityfile")
            .iter()
            .map(|s| s.raw.clone())
            .collect();
        assert_eq!(files, ["~/x", "~/y z"]);
    }
}
