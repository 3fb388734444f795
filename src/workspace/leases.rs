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

/// The host for a new workspace: the one asked for (by name or alias; several workspaces may share a
/// host), else the provider's strategy — `first_available`: the first host, in config order, that has
/// every required label and no lease.
pub fn select_host(
    hosts: &Hosts,
    provider: &str,
    requested: Option<&str>,
    labels: &[String],
) -> Result<String> {
    if let Some(name) = requested.filter(|n| !n.is_empty()) {
        return Ok(hosts.get(name)?.name.clone());
    }
    let Some(spec) = hosts.providers().get(provider) else {
        let known: Vec<String> = hosts.providers().keys().cloned().collect();
        return Err(Error::Config {
            file: PathBuf::from("workspace extra"),
            field: "provider".into(),
            problem: format!(
                "no provider '{provider}' (configured: {})",
                known.join(", ")
            ),
            fix: "Name a configured provider, or give a host.".into(),
        });
    };
    let leased: Vec<String> = load().into_values().map(|l| l.host).collect();
    let wanted: Vec<&String> = spec.labels.iter().chain(labels).collect();
    spec.hosts
        .iter()
        .find(|h| wanted.iter().all(|l| h.labels.contains(l)) && !leased.contains(&h.name))
        .map(|h| h.name.clone())
        .ok_or_else(|| Error::RemoteRunFailed {
            host: provider.to_string(),
            detail: format!(
                "no available host in provider '{provider}' with labels [{}]",
                labels.join(", ")
            ),
            log_tail: String::new(),
        })
}
