//! Which workspace uses which host: host selection by provider strategy, and leases persisted on disk so
//! they survive an OpenCode restart (the seed kept them in memory only and forgot every binding).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::Hosts;
use crate::error::{Error, Result};
use crate::login::local::{state_dir, write_private};

/// A workspace's claim on a host, with what is needed to bring its server back after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    pub workspace: String,
    pub provider: String,
    pub host: String,
    pub root: String,
    pub since_ms: u64,
}

const LEASES_FILE: &str = "leases.json";

fn path() -> PathBuf {
    state_dir().join(LEASES_FILE)
}

pub fn load() -> BTreeMap<String, Lease> {
    std::fs::read(path())
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

fn save(leases: &BTreeMap<String, Lease>) -> Result<()> {
    write_private(
        LEASES_FILE,
        &serde_json::to_vec_pretty(leases).expect("serializable"),
    )
    .map(|_| ())
}

pub fn record(lease: Lease) -> Result<()> {
    let mut leases = load();
    leases.insert(lease.workspace.clone(), lease);
    save(&leases)
}

pub fn release(workspace: &str) -> Result<Option<Lease>> {
    let mut leases = load();
    let removed = leases.remove(workspace);
    save(&leases)?;
    Ok(removed)
}

pub fn get(workspace: &str) -> Option<Lease> {
    load().remove(workspace)
}

/// The host a new workspace may use: the one asked for, or the provider's candidates in order of
/// preference (the caller keeps the first that answers).
#[derive(Debug, PartialEq, Eq)]
pub enum Selection {
    Named(String),
    Candidates(Vec<String>),
}

/// Pick the host for a new workspace. A host asked for by name or alias is used as it is (several
/// workspaces may share a host); with a provider named too, the name must be one of that provider's
/// hosts, as the original ssh-provider did. Else the provider's strategy, `first_available`: every host,
/// in config order, that has every required label and no lease.
pub fn select_host(
    hosts: &Hosts,
    provider: Option<&str>,
    requested: Option<&str>,
    labels: &[String],
) -> Result<Selection> {
    let leased: Vec<String> = load().into_values().map(|l| l.host).collect();
    select_from(hosts, provider, requested, labels, &leased)
}

fn select_from(
    hosts: &Hosts,
    provider: Option<&str>,
    requested: Option<&str>,
    labels: &[String],
    leased: &[String],
) -> Result<Selection> {
    let requested = requested.filter(|n| !n.is_empty());
    let provider_name = provider.unwrap_or("default");
    if let (Some(name), None) = (requested, provider) {
        return Ok(Selection::Named(hosts.get(name)?.name.clone()));
    }
    let Some(spec) = hosts.providers().get(provider_name) else {
        let known: Vec<String> = hosts.providers().keys().cloned().collect();
        return Err(Error::Config {
            file: PathBuf::from("workspace extra"),
            field: "provider".into(),
            problem: format!(
                "no provider '{provider_name}' (configured: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ),
            fix: "Name a configured provider, or give a host.".into(),
        });
    };
    if let Some(name) = requested {
        let found = spec
            .hosts
            .iter()
            .find(|h| h.name == name || h.aliases.iter().any(|a| a == name));
        return match found {
            // Through `get`, so a host refused by the config reports its own error.
            Some(host) => Ok(Selection::Named(hosts.get(&host.name)?.name.clone())),
            None => {
                let names: Vec<&str> = spec.hosts.iter().map(|h| h.name.as_str()).collect();
                Err(Error::Config {
                    file: PathBuf::from("workspace extra"),
                    field: "host".into(),
                    problem: format!("no host '{name}' in provider '{provider_name}'"),
                    // The fix is what the model and the TUI see: host names only.
                    fix: format!(
                        "Name one of the hosts of provider '{provider_name}' ({}) or their aliases, or \
                         leave out `provider`.",
                        names.join(", ")
                    ),
                })
            }
        };
    }
    let wanted: Vec<&String> = spec.labels.iter().chain(labels).collect();
    let candidates: Vec<String> = spec
        .hosts
        .iter()
        .filter(|h| wanted.iter().all(|l| h.labels.contains(l)) && !leased.contains(&h.name))
        .map(|h| h.name.clone())
        .collect();
    if candidates.is_empty() {
        return Err(Error::RemoteRunFailed {
            host: provider_name.to_string(),
            detail: format!(
                "no available host in provider '{provider_name}' with labels [{}]",
                labels.join(", ")
            ),
            log_tail: String::new(),
        });
    }
    Ok(Selection::Candidates(candidates))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigSources;
    use serde_json::json;

    fn hosts() -> Hosts {
        let sources = ConfigSources {
            config_dir: "/nonexistent-config".into(),
            inline: Some(json!({
                "hosts": {"pi": "pi-box"},
                "providers": {
                    "default": {"hosts": [
                        {"name": "web1", "aliases": ["w1"], "ssh": {"host": "a"}, "labels": ["linux"]},
                        {"name": "web2", "ssh": {"host": "b"}, "labels": ["linux", "gpu"]}]},
                    "lab": {"hosts": [{"name": "lab1", "aliases": ["l"], "ssh": {"host": "c"}}]}
                }
            })),
            ..Default::default()
        };
        crate::config::load_hosts(&sources).unwrap()
    }

    fn named(name: &str) -> Selection {
        Selection::Named(name.to_string())
    }

    #[test]
    fn select_should_take_a_named_host_anywhere_without_a_provider() {
        let hosts = hosts();
        assert_eq!(
            select_from(&hosts, None, Some("pi"), &[], &[]).unwrap(),
            named("pi")
        );
        assert_eq!(
            select_from(&hosts, None, Some("l"), &[], &[]).unwrap(),
            named("lab1")
        );
    }

    #[test]
    fn select_should_look_a_host_up_within_the_provider_given() {
        let hosts = hosts();
        assert_eq!(
            select_from(&hosts, Some("lab"), Some("l"), &[], &[]).unwrap(),
            named("lab1")
        );
        let error = select_from(&hosts, Some("lab"), Some("w1"), &[], &[]).unwrap_err();
        assert!(
            error.to_string().contains(
                "no host 'w1' in provider 'lab'. Name one of the hosts of provider 'lab' (lab1)"
            ),
            "{error}"
        );
    }

    #[test]
    fn select_should_list_unleased_labelled_hosts_in_config_order() {
        let hosts = hosts();
        let all = select_from(&hosts, None, None, &[], &[]).unwrap();
        assert_eq!(
            all,
            Selection::Candidates(vec!["web1".into(), "web2".into()])
        );
        let gpu = select_from(&hosts, None, None, &["gpu".into()], &[]).unwrap();
        assert_eq!(gpu, Selection::Candidates(vec!["web2".into()]));
        let free = select_from(&hosts, Some("default"), None, &[], &["web1".into()]).unwrap();
        assert_eq!(free, Selection::Candidates(vec!["web2".into()]));
        assert!(select_from(&hosts, Some("nope"), None, &[], &[]).is_err());
    }
}
