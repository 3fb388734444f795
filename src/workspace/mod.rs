//! SSH workspaces: a stub on the host (bootstrap), a tunnel to it, and the client the remote tools use.

pub mod bootstrap;
pub mod remote;
pub mod stub_client;

use std::path::Path;

use crate::config::{self, ConfigSources};
use crate::error::Result;
use crate::ssh::config::resolve;
use bootstrap::{ensure_stub, Step};

/// What `setup` reports.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SetupReport {
    pub host: String,
    pub version: String,
    pub reused: bool,
    pub remote_port: u16,
    pub local_port: u16,
}

/// Install (or find) the stub on `host` and check it answers through a tunnel.
pub async fn setup(
    host: &str,
    sources: &ConfigSources,
    stub_dir: &Path,
    progress: &(dyn Fn(Step) + Send + Sync),
) -> Result<SetupReport> {
    let hosts = config::load_hosts(sources)?;
    let target = resolve(hosts.get(host)?)?;
    let stub = ensure_stub(&target, stub_dir, progress).await?;
    Ok(SetupReport {
        host: target.name.clone(),
        version: stub.info.version.clone(),
        reused: stub.reused,
        remote_port: stub.info.port,
        local_port: stub.tunnel.local_port(),
    })
}
