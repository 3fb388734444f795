//! Getting a healthy stub on a host, over one SSH connection: probe (arch, a running stub of our
//! version), else upload the matching static binary (sha256 checked, versioned path, atomic rename),
//! write a fresh token (0600, never on local disk), start it in its own session, then tunnel and health.
//!
//! Idempotent: a healthy stub of the right version is reused with its token, so a second workspace on
//! the same host costs one probe, not a reinstall. One stub serves every workspace of the remote user;
//! workspaces are kept apart by their own roots and approvals inside it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opencode_remote_protocol::{paths, StubInfo, STUB_BINARY_NAME};
use sha2::{Digest, Sha256};

use super::stub_client::StubClient;
use crate::error::{Error, Result};
use crate::ssh::config::SshTarget;
use crate::ssh::connect::Connection;
use crate::ssh::pool::POOL;
use crate::ssh::quote::quote;
use crate::ssh::tunnel::Tunnel;

/// The stub version we ship and expect; the same crate version as the stub.
pub const STUB_VERSION: &str = env!("CARGO_PKG_VERSION");
/// How long a freshly started stub gets to write `run/stub.json` and answer health.
const START_DEADLINE: Duration = Duration::from_secs(10);
/// A stub that `status` just found healthy must answer through the tunnel at once.
pub(crate) const REUSE_DEADLINE: Duration = Duration::from_secs(2);

/// A step of the bootstrap, for progress displays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Connected,
    Probed {
        os: String,
        arch: String,
    },
    Reused,
    /// Upload under way: `done` of `total` bytes.
    Uploading {
        done: u64,
        total: u64,
    },
    Uploaded,
    Started,
    Healthy,
}

/// A healthy stub and the tunnel to it.
pub struct Stub {
    pub client: StubClient,
    pub tunnel: Arc<Tunnel>,
    pub info: StubInfo,
    pub reused: bool,
}

/// What the probe script found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Probe {
    pub(crate) os: String,
    pub(crate) arch: String,
    pub(crate) running: Option<StubInfo>,
    pub(crate) token: Option<String>,
    pub(crate) installed: bool,
    pub(crate) has_sha256sum: bool,
}

/// Where the stub binaries for each arch live locally (inside the npm package: `stub/dist`).
pub fn stub_binary(dir: &Path, arch: &str) -> PathBuf {
    dir.join(format!("{STUB_BINARY_NAME}-{STUB_VERSION}-{arch}-linux"))
}

fn remote_binary() -> String {
    format!(
        "{}/{}/{STUB_VERSION}/{STUB_BINARY_NAME}",
        paths::HOME_DIR,
        paths::BIN_DIR
    )
}

/// Make sure `target` runs a healthy stub of our version and return a client for it.
pub async fn ensure_stub(
    target: &SshTarget,
    stub_dir: &Path,
    progress: &(dyn Fn(Step) + Send + Sync),
) -> Result<Stub> {
    let connection = POOL.get(target).await?;
    progress(Step::Connected);
    let probe = probe(&connection).await?;
    progress(Step::Probed {
        os: probe.os.clone(),
        arch: probe.arch.clone(),
    });
    if probe.os != "Linux" {
        return Err(unsupported(
            target,
            &format!("{} is not supported by the stub (Linux only)", probe.os),
        ));
    }

    if let (Some(info), Some(token)) = (probe.running.clone(), probe.token.clone()) {
        if info.version == STUB_VERSION {
            if let Ok(stub) = connect_stub(target, info, &token, true, REUSE_DEADLINE).await {
                progress(Step::Reused);
                return Ok(stub);
            }
        }
    }

    if !probe.installed {
        upload(&connection, target, stub_dir, &probe, progress).await?;
    }
    let token = hex::encode(rand::random::<[u8; 32]>());
    let info = start(&connection, target, &token, probe.running.as_ref()).await?;
    progress(Step::Started);
    let stub = connect_stub(target, info, &token, false, START_DEADLINE).await?;
    progress(Step::Healthy);
    Ok(stub)
}

/// One exec: OS, arch, whether our binary is installed, and — when our stub's `status` finds it
/// answering — the running stub with its token (read by the remote user from their own 0600 file; it
/// travels only inside the SSH channel).
pub(crate) async fn probe(connection: &Connection) -> Result<Probe> {
    let script = format!(
        "cd || exit 1\nuname -s\nuname -m\nif [ -x {binary} ]; then echo installed; else echo missing; fi\n\
         if command -v sha256sum >/dev/null 2>&1; then echo sha256sum; else echo no-sha256sum; fi\n\
         if [ -x {binary} ] && {binary} status >/dev/null 2>&1 && [ -f {token} ]; then cat {info}; echo; cat {token}; echo; fi\n",
        binary = quote(&remote_binary()),
        info = quote(&format!("{}/{}", paths::HOME_DIR, paths::INFO_FILE)),
        token = quote(&format!("{}/{}", paths::HOME_DIR, paths::TOKEN_FILE)),
    );
    let output = connection.exec("sh -s", Some(script.as_bytes())).await?;
    if !output.success() {
        return Err(connection_error(
            connection,
            &format!("probe failed: {}", output.stderr_text().trim()),
        ));
    }
    Ok(parse_probe(&output.stdout_text()))
}

fn parse_probe(stdout: &str) -> Probe {
    let mut lines = stdout.lines();
    let mut probe = Probe {
        os: lines.next().unwrap_or_default().trim().to_string(),
        arch: lines.next().unwrap_or_default().trim().to_string(),
        installed: lines.next() == Some("installed"),
        has_sha256sum: lines.next() == Some("sha256sum"),
        ..Probe::default()
    };
    if let (Some(info), Some(token)) = (lines.next(), lines.next()) {
        probe.running = serde_json::from_str(info).ok();
        probe.token = Some(token.trim().to_string()).filter(|t| !t.is_empty());
    }
    probe
}

async fn upload(
    connection: &Connection,
    target: &SshTarget,
    stub_dir: &Path,
    probe: &Probe,
    progress: &(dyn Fn(Step) + Send + Sync),
) -> Result<()> {
    let local = stub_binary(stub_dir, &probe.arch);
    let bytes = std::fs::read(&local).map_err(|_| {
        unsupported(
            target,
            &format!(
                "no stub binary for {} (looked for {})",
                probe.arch,
                local.display()
            ),
        )
    })?;
    let digest = hex::encode(Sha256::digest(&bytes));
    let total = bytes.len() as u64;
    progress(Step::Uploading { done: 0, total });
    let dir = format!("{}/{}/{STUB_VERSION}", paths::HOME_DIR, paths::BIN_DIR);
    let staged = format!("{dir}/.{STUB_BINARY_NAME}.upload");
    {
        let sftp = connection.sftp().await?;
        sftp.create_dir_all(&dir).await?;
        let report = |done| progress(Step::Uploading { done, total });
        sftp.upload_atomic_with_progress(&staged, &bytes, 0o700, &report)
            .await?;
    }
    // Verify what landed before it gets its real name: a corrupted binary never becomes "installed".
    let check = if probe.has_sha256sum {
        format!("sha256sum {} | cut -d' ' -f1", quote(&staged))
    } else {
        format!("wc -c < {}", quote(&staged))
    };
    let expected = if probe.has_sha256sum {
        digest
    } else {
        bytes.len().to_string()
    };
    let script = format!(
        "cd || exit 1\nactual=$({check})\nif [ \"$(echo $actual)\" != {expected} ]; then rm -f {staged}; echo mismatch >&2; exit 3; fi\n\
         chmod 755 {staged} && mv -f {staged} {binary}\n",
        expected = quote(&expected),
        staged = quote(&staged),
        binary = quote(&remote_binary()),
    );
    let output = connection.exec("sh -s", Some(script.as_bytes())).await?;
    if !output.success() {
        return Err(connection_error(
            connection,
            &format!(
                "stub upload did not verify: {}",
                output.stderr_text().trim()
            ),
        ));
    }
    progress(Step::Uploaded);
    Ok(())
}

/// Write the token, stop an old-version stub (by its recorded pid only), start ours detached in its
/// own session, and wait for its `run/stub.json`.
async fn start(
    connection: &Connection,
    target: &SshTarget,
    token: &str,
    old: Option<&StubInfo>,
) -> Result<StubInfo> {
    {
        let sftp = connection.sftp().await?;
        for dir in paths::ALL_DIRS {
            sftp.create_dir_all(&format!("{}/{dir}", paths::HOME_DIR))
                .await?;
        }
        sftp.upload_atomic(
            &format!("{}/{}", paths::HOME_DIR, paths::TOKEN_FILE),
            format!("{token}\n").as_bytes(),
            0o600,
        )
        .await?;
    }
    let stop_old = match old {
        Some(info) => format!("kill {} 2>/dev/null; sleep 0.2\n", info.pid),
        None => String::new(),
    };
    let info_file = quote(&format!("{}/{}", paths::HOME_DIR, paths::INFO_FILE));
    let script = format!(
        "cd || exit 1\n{stop_old}rm -f {info_file}\n\
         if command -v setsid >/dev/null 2>&1; then detach=setsid; else detach=nohup; fi\n\
         $detach {binary} serve --listen 127.0.0.1:0 </dev/null >/dev/null 2>&1 &\n\
         i=0; while [ ! -s {info_file} ] && [ $i -lt {tries} ]; do sleep 0.05 2>/dev/null || sleep 1; i=$((i+1)); done\n\
         cat {info_file}\n",
        binary = quote(&remote_binary()),
        tries = START_DEADLINE.as_millis() / 50,
    );
    let output = connection.exec("sh -s", Some(script.as_bytes())).await?;
    serde_json::from_slice::<StubInfo>(output.stdout.trim_ascii()).map_err(|_| {
        Error::RemoteRunFailed {
            host: target.name.clone(),
            detail: "the stub did not start".into(),
            log_tail: output.stderr_text().trim().to_string(),
        }
    })
}

/// Tunnel to the stub's port and wait until it answers health with our version.
pub(crate) async fn connect_stub(
    target: &SshTarget,
    info: StubInfo,
    token: &str,
    reused: bool,
    deadline: Duration,
) -> Result<Stub> {
    let tunnel = Arc::new(Tunnel::open(target.clone(), info.port).await?);
    let client = StubClient::new(&target.name, tunnel.local_port(), token);
    let started = Instant::now();
    loop {
        match client.health().await {
            Ok(health) if health.version == STUB_VERSION => {
                return Ok(Stub {
                    client,
                    tunnel,
                    info,
                    reused,
                })
            }
            Ok(health) => {
                return Err(unsupported(
                    target,
                    &format!("stub {} answered, expected {STUB_VERSION}", health.version),
                ))
            }
            Err(_) if started.elapsed() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(error) => return Err(error.into()),
        }
    }
}

fn unsupported(target: &SshTarget, detail: &str) -> Error {
    Error::RemoteRunFailed {
        host: target.name.clone(),
        detail: detail.to_string(),
        log_tail: String::new(),
    }
}

fn connection_error(connection: &Connection, detail: &str) -> Error {
    Error::Ssh {
        host: connection.target().name.clone(),
        detail: detail.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_probe_should_read_a_running_stub_and_its_token() {
        let stdout = "Linux\nx86_64\ninstalled\nsha256sum\n{\"pid\":7,\"port\":4100,\"version\":\"0.1.0\",\"protocol\":1,\"startedAt\":1}\nabc123\n";
        let probe = parse_probe(stdout);
        assert_eq!(
            (probe.os.as_str(), probe.arch.as_str()),
            ("Linux", "x86_64")
        );
        assert!(probe.installed && probe.has_sha256sum);
        assert_eq!(probe.running.map(|i| i.port), Some(4100));
        assert_eq!(probe.token.as_deref(), Some("abc123"));
    }

    #[test]
    fn parse_probe_should_handle_a_fresh_host() {
        let probe = parse_probe("Linux\naarch64\nmissing\nno-sha256sum\n");
        assert!(!probe.installed && !probe.has_sha256sum);
        assert_eq!(probe.running, None);
        assert_eq!(probe.token, None);
    }

    #[test]
    fn stub_binary_should_be_versioned_per_arch() {
        let path = stub_binary(Path::new("/pkg/stub/dist"), "aarch64");
        assert_eq!(
            path,
            PathBuf::from(format!(
                "/pkg/stub/dist/opencode-remote-stub-{STUB_VERSION}-aarch64-linux"
            ))
        );
    }
}
