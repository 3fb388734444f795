//! Which form of `add` / `remove` was meant. Two CLIs meet here, told apart by the number of
//! positional arguments, so neither needs a flag the other lacks:
//!
//! - this CLI's `add <name> <address>` (2) writes a hosts-map entry (a provider host with
//!   `--provider`); opencode-remote-ssh's `add <provider> <host> <user> [port] [identity-file]` (3 to 5)
//!   writes a provider host, `<host>` being both its name and its SSH address, as that CLI did;
//! - `remove <name>` (1) removes a host wherever it is defined; `remove <provider> <host>` (2) removes it
//!   from that provider.

use std::path::PathBuf;

use serde_json::{json, Map, Value};

use super::{AddArgs, PolicyArg, ProviderHostOptions};
use crate::config::address::parse_port;
use crate::error::Error;

#[derive(Debug, Clone, PartialEq)]
pub enum HostPlan {
    /// `"hosts": {name: value}`.
    Map { name: String, value: Value },
    /// `"providers": {provider: {"hosts": [value]}}`; `value.name` is the host's name.
    Provider {
        provider: String,
        name: String,
        value: Value,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemovePlan {
    Name(String),
    InProvider { provider: String, host: String },
}

fn usage(field: &str, problem: impl Into<String>) -> Error {
    Error::InvalidArgument {
        field: field.into(),
        problem: problem.into(),
    }
}

pub fn plan_add(args: &AddArgs) -> Result<HostPlan, Error> {
    match args.args.as_slice() {
        [name, address] => match &args.provider {
            Some(provider) => {
                for (flag, set) in [
                    ("--agent", args.agent.is_some()),
                    ("--model", args.model.is_some()),
                    ("--directory", args.directory.is_some()),
                    ("--host-key-policy", args.host_key_policy.is_some()),
                ] {
                    if set {
                        return Err(usage(
                            flag,
                            "applies to hosts-map hosts only, not to a provider's host",
                        ));
                    }
                }
                let more = ProviderHostOptions {
                    address: Some(address.clone()),
                    ..args.more.clone()
                };
                Ok(HostPlan::Provider {
                    provider: provider.clone(),
                    name: name.clone(),
                    value: provider_host(
                        name,
                        args.user.as_deref(),
                        args.port,
                        args.identity_file.clone(),
                        &more,
                    ),
                })
            }
            None => map_host(name, address, args),
        },
        [provider, host, user, rest @ ..] => {
            if args.provider.is_some() {
                return Err(usage(
                    "--provider",
                    "the provider is already the first argument of `add <provider> <host> <user>`",
                ));
            }
            let port = match rest.first() {
                Some(text) => Some(parse_port(text).map_err(|p| usage("port", p))?),
                None => None,
            };
            for (flag, positional, set) in [
                ("--user", true, args.user.is_some()),
                ("--port", port.is_some(), args.port.is_some()),
                (
                    "--identity-file",
                    rest.len() > 1,
                    args.identity_file.is_some(),
                ),
            ] {
                if positional && set {
                    return Err(usage(flag, "given twice: as an argument and as an option"));
                }
            }
            let identity = rest
                .get(1)
                .map(PathBuf::from)
                .or(args.identity_file.clone());
            Ok(HostPlan::Provider {
                provider: provider.clone(),
                name: host.clone(),
                value: provider_host(host, Some(user), port.or(args.port), identity, &args.more),
            })
        }
        _ => Err(usage("arguments", "expected 2 to 5")),
    }
}

fn map_host(name: &str, address: &str, args: &AddArgs) -> Result<HostPlan, Error> {
    for (flag, set) in [
        ("--label", !args.more.labels.is_empty()),
        ("--alias", !args.more.aliases.is_empty()),
        ("--address", args.more.address.is_some()),
    ] {
        if set {
            return Err(usage(
                flag,
                "applies to a provider's host only: add --provider <name>",
            ));
        }
    }
    let mut entry = Map::new();
    entry.insert("host".into(), json!(address));
    let optional = [
        ("port", args.port.map(|p| json!(p))),
        ("user", args.user.as_ref().map(|u| json!(u))),
        (
            "identityFile",
            args.identity_file.as_ref().map(|p| json!(p)),
        ),
        ("proxyJump", args.more.proxy_jump.as_ref().map(|p| json!(p))),
        ("agent", args.agent.as_ref().map(|a| json!(a))),
        ("model", args.model.as_ref().map(|m| json!(m))),
        ("directory", args.directory.as_ref().map(|d| json!(d))),
        (
            "hostKeyPolicy",
            args.host_key_policy.map(|p| {
                json!(if matches!(p, PolicyArg::AcceptNew) {
                    "accept-new"
                } else {
                    "strict"
                })
            }),
        ),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            entry.insert(key.into(), value);
        }
    }
    // The seed's short form when nothing but the address is given.
    let value = if entry.len() == 1 {
        json!(address)
    } else {
        Value::Object(entry)
    };
    Ok(HostPlan::Map {
        name: name.to_string(),
        value,
    })
}

/// A provider host as opencode-remote-ssh wrote it: `{"name", "aliases", "ssh": {…}, "labels"}`.
pub fn provider_host(
    name: &str,
    user: Option<&str>,
    port: Option<u16>,
    identity_file: Option<PathBuf>,
    more: &ProviderHostOptions,
) -> Value {
    let mut ssh = Map::new();
    ssh.insert(
        "host".into(),
        json!(more.address.as_deref().unwrap_or(name)),
    );
    if let Some(user) = user {
        ssh.insert("user".into(), json!(user));
    }
    if let Some(port) = port {
        ssh.insert("port".into(), json!(port));
    }
    if let Some(identity) = identity_file {
        ssh.insert("identityFile".into(), json!(identity));
    }
    if let Some(jump) = &more.proxy_jump {
        ssh.insert("proxyJump".into(), json!(jump));
    }
    let mut host = Map::new();
    host.insert("name".into(), json!(name));
    if !more.aliases.is_empty() {
        host.insert("aliases".into(), json!(more.aliases));
    }
    host.insert("ssh".into(), Value::Object(ssh));
    if !more.labels.is_empty() {
        host.insert("labels".into(), json!(more.labels));
    }
    Value::Object(host)
}

pub fn plan_remove(args: &[String]) -> RemovePlan {
    match args {
        [provider, host] => RemovePlan::InProvider {
            provider: provider.clone(),
            host: host.clone(),
        },
        [name, ..] => RemovePlan::Name(name.clone()),
        [] => RemovePlan::Name(String::new()),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command, HostsCommand};

    fn add(line: &str) -> Result<HostPlan, Error> {
        let cli = Cli::try_parse_from(line.split(' ')).expect("parses");
        match cli.command {
            Command::Add(args) | Command::Hosts(HostsCommand::Add(args)) => plan_add(&args),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn two_arguments_are_a_hosts_map_entry() {
        assert_eq!(
            add("opencode-remote add pi me@pi.lan").unwrap(),
            HostPlan::Map {
                name: "pi".into(),
                value: json!("me@pi.lan")
            }
        );
        assert_eq!(
            add("opencode-remote hosts add gpu gpu-box --model a/b --port 2222").unwrap(),
            HostPlan::Map {
                name: "gpu".into(),
                value: json!({"host": "gpu-box", "port": 2222, "model": "a/b"})
            }
        );
    }

    #[test]
    fn seed_b_form_is_a_provider_host_named_by_its_address() {
        assert_eq!(
            add("opencode-remote add default prod-web-1 ops 22 ~/.ssh/id_ed25519").unwrap(),
            HostPlan::Provider {
                provider: "default".into(),
                name: "prod-web-1".into(),
                value: json!({"name": "prod-web-1", "ssh": {"host": "prod-web-1", "user": "ops",
                    "port": 22, "identityFile": "~/.ssh/id_ed25519"}})
            }
        );
        assert_eq!(
            add("opencode-remote hosts add lab 10.0.0.7 root").unwrap(),
            HostPlan::Provider {
                provider: "lab".into(),
                name: "10.0.0.7".into(),
                value: json!({"name": "10.0.0.7", "ssh": {"host": "10.0.0.7", "user": "root"}})
            }
        );
    }

    #[test]
    fn provider_option_labels_and_aliases() {
        assert_eq!(
            add("opencode-remote add web 203.0.113.10 --provider default --user ops --label linux --alias w")
                .unwrap(),
            HostPlan::Provider {
                provider: "default".into(),
                name: "web".into(),
                value: json!({"name": "web", "aliases": ["w"], "ssh": {"host": "203.0.113.10", "user": "ops"},
                    "labels": ["linux"]})
            }
        );
    }

    #[test]
    fn mixed_forms_are_usage_errors() {
        for line in [
            "opencode-remote add default h ops notaport",
            "opencode-remote add default h ops 22 --port 23",
            "opencode-remote add default h ops --user x",
            "opencode-remote add default h ops --provider p",
            "opencode-remote add pi me@pi --label x",
            "opencode-remote add pi me@pi --provider p --model a/b",
        ] {
            let error = add(line).unwrap_err();
            assert_eq!(error.code(), "INVALID_ARGUMENT", "{line}");
        }
        assert!(Cli::try_parse_from("opencode-remote add only-one".split(' ')).is_err());
        assert!(Cli::try_parse_from("opencode-remote add a b c d e f".split(' ')).is_err());
    }

    #[test]
    fn remove_forms() {
        assert_eq!(plan_remove(&["pi".into()]), RemovePlan::Name("pi".into()));
        assert_eq!(
            plan_remove(&["default".into(), "web".into()]),
            RemovePlan::InProvider {
                provider: "default".into(),
                host: "web".into()
            }
        );
    }

    #[test]
    fn seed_b_setup_form_parses() {
        let cli =
            Cli::try_parse_from("opencode-remote setup 203.0.113.10 ops 22 /k".split(' ')).unwrap();
        let Command::Setup(args) = cli.command else {
            panic!()
        };
        assert_eq!(
            (args.user.as_deref(), args.port, args.provider.as_str()),
            (Some("ops"), Some(22), "default")
        );
        let plain = Cli::try_parse_from("opencode-remote setup pi".split(' ')).unwrap();
        assert!(matches!(
            plain.command,
            Command::Setup(SetupArgs { user: None, .. })
        ));
    }

    use crate::cli::SetupArgs;
}
