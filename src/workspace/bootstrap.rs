//! Getting a healthy stub on a host, over one SSH connection: probe (arch, a running stub of our
//! version), else upload the matching static binary (sha256 checked, versioned path, atomic rename),
//! write a fresh token (0600, never on local disk), start it in its own session (it stops an older stub
//! of ours itself), then tunnel and health. The stub listens on a Unix socket in its 0700 run directory,
//! reached through SSH stream-local forwarding, so no other user on the host can reach or impersonate it.
//!
//! Idempotent: a healthy stub of the right version is reused with its token, so a second workspace on
//! the same host costs one probe, not a reinstall. One stub serves every workspace of the remote user;
//! workspaces are kept apart by their own roots and approvals inside it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opencode_remote_protocol::{
    paths, ApiError, RegisterWorkspace, StubInfo, WorkspaceInfo, PROTOCOL_VERSION, STUB_BINARY_NAME,
};
use sha2::{Digest, Sha256};

use super::stub_client::StubClient;
use crate::error::{Error, Result};
use crate::ssh::config::SshTarget;
use crate::ssh::connect::Connection;
use crate::ssh::pool::POOL;
use crate::ssh::quote::quote;
use crate::ssh::tunnel::{OpenFailure, Tunnel};

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
    /// The workspace the probe registered, when one was asked for and the stub was already running.
    pub attached: Option<WorkspaceInfo>,
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
    /// The running stub's answer to registering the workspace (`attach`), when one was asked for.
    pub(crate) attached: Option<std::result::Result<WorkspaceInfo, ApiError>>,
}

/// Where the stub binaries for each arch live locally (inside the npm package: `stub/dist`).
pub fn stub_binary(dir: &Path, arch: &str) -> PathBuf {
    dir.join(format!("{STUB_BINARY_NAME}-{STUB_VERSION}-{arch}-linux"))
}

/// The stub builds there are (stub/build.sh), by the arch in their file names.
const STUB_ARCHES: [&str; 3] = ["x86_64", "aarch64", "armv7"];

/// The stub that runs on a Linux host whose `uname -m` is `machine`. `armv8l` is a 64-bit ARM CPU
/// running a 32-bit kernel or personality: armv7 code runs there. ARMv6 and older (`armv6l`, the first
/// Raspberry Pis) lack instructions the armv7 build uses, so they get no stub, like any other CPU.
pub(crate) fn stub_arch(machine: &str) -> Option<&'static str> {
    match machine {
        "x86_64" => Some("x86_64"),
        "aarch64" => Some("aarch64"),
        "armv7l" | "armv8l" => Some("armv7"),
        _ => None,
    }
}

fn unsupported_arch_detail(machine: &str) -> String {
    // The host's own words, kept to a short plain token.
    let shown: String = machine
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "_.-".contains(*c))
        .take(32)
        .collect();
    let shown = if shown.is_empty() { "(empty)" } else { &shown };
    format!(
        "unsupported architecture {shown} (`uname -m` on the host): opencode-remote has a stub for {} \
         Linux only",
        list_arches(&STUB_ARCHES)
    )
}

/// `a`, `a and b`, `a, b and c`.
fn list_arches<S: AsRef<str>>(arches: &[S]) -> String {
    match arches {
        [] => String::new(),
        [one] => one.as_ref().to_string(),
        [rest @ .., last] => format!(
            "{} and {}",
            rest.iter()
                .map(AsRef::as_ref)
                .collect::<Vec<_>>()
                .join(", "),
            last.as_ref()
        ),
    }
}

/// The checksums of the shipped stubs, next to them (`sha256sum` format).
const SUMS_FILE: &str = "SHA256SUMS";

fn remote_binary() -> String {
    format!(
        "{}/{}/{STUB_VERSION}/{STUB_BINARY_NAME}",
        paths::HOME_DIR,
        paths::BIN_DIR
    )
}

/// Make sure `target` runs a healthy stub of our version and return a client for it. With `attach`,
/// a stub that is already running registers that workspace inside the probe itself: a warm
/// workspace then costs the handshake and one exec, and its tunnel is checked by the first request.
pub async fn ensure_stub(
    target: &SshTarget,
    stub_dir: Option<&Path>,
    progress: &(dyn Fn(Step) + Send + Sync),
    attach: Option<&RegisterWorkspace>,
) -> Result<Stub> {
    if let Some(register) = attach {
        // Warm: the running stub registers the workspace on its attach socket, without an exec. It was
        // found where the record said, so there is nothing new to remember.
        if let Some(attached) = super::attach_socket::attach(target, register).await {
            if attached.is_ok() {
                progress(Step::Reused);
            }
            return attached;
        }
    }
    let connection = POOL.get(target).await?;
    progress(Step::Connected);
    let stub = probe_or_start_stub(&connection, target, stub_dir, progress, attach).await?;
    super::attach_socket::remember(target, &stub.info);
    Ok(stub)
}

async fn probe_or_start_stub(
    connection: &Connection,
    target: &SshTarget,
    stub_dir: Option<&Path>,
    progress: &(dyn Fn(Step) + Send + Sync),
    attach: Option<&RegisterWorkspace>,
) -> Result<Stub> {
    let probe = probe(connection, attach).await?;
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
    let Some(arch) = stub_arch(&probe.arch) else {
        return Err(unsupported(target, &unsupported_arch_detail(&probe.arch)));
    };

    if let (Some(info), Some(token)) = (probe.running.clone(), probe.token.clone()) {
        if info.version == STUB_VERSION && info.protocol == PROTOCOL_VERSION {
            match probe.attached {
                Some(Ok(workspace)) => {
                    // `attach` just talked to the stub on the host: only the tunnel is new.
                    let tunnel = Arc::new(Tunnel::open(target.clone(), &info.socket).await?);
                    progress(Step::Reused);
                    return Ok(Stub {
                        client: StubClient::new(&target.name, tunnel.local_port(), &token),
                        tunnel,
                        info,
                        reused: true,
                        attached: Some(workspace),
                    });
                }
                Some(Err(refused)) => {
                    return Err(Error::Remote {
                        host: target.name.clone(),
                        kind: refused.error.kind,
                        message: refused.error.message,
                    })
                }
                None => {
                    if let Ok(stub) = connect_stub(target, info, &token, true, REUSE_DEADLINE).await
                    {
                        progress(Step::Reused);
                        return Ok(stub);
                    }
                }
            }
        }
    }

    let bytes = if probe.installed {
        None
    } else {
        let Some(stub_dir) = stub_dir else {
            return Err(Error::InvalidArgument {
                field: "stubDir".into(),
                problem:
                    "no stub directory was passed (call the addon through the package's api.js)"
                        .into(),
            });
        };
        let local = stub_binary(stub_dir, arch);
        let bytes = std::fs::read(&local).map_err(|_| missing_stub(target, stub_dir, arch))?;
        progress(Step::Uploading {
            done: 0,
            total: bytes.len() as u64,
        });
        Some(bytes)
    };
    let upload = bytes.as_deref().map(|b| (b, &probe));
    let (info, token) = install_and_start(connection, target, upload).await?;
    if let Some(bytes) = &bytes {
        progress(Step::Uploading {
            done: bytes.len() as u64,
            total: bytes.len() as u64,
        });
        progress(Step::Uploaded);
    }
    progress(Step::Started);
    let stub = connect_stub(target, info, &token, false, START_DEADLINE).await?;
    progress(Step::Healthy);
    Ok(stub)
}

/// One exec: OS, arch, whether our binary is installed, and — when our stub's `status` (or, with
/// `attach`, its `attach`) finds it answering — the running stub with its token (read by the remote
/// user from their own 0600 file; it travels only inside the SSH channel) and the registration.
pub(crate) async fn probe(
    connection: &Connection,
    attach: Option<&RegisterWorkspace>,
) -> Result<Probe> {
    // One `;`-joined line, values only as positional parameters: the login shell parses it first.
    // Warm, `attach` alone answers (its `uname -sm`, the stub, token, registration), so the probe
    // starts one process besides the shells; `uname` runs only when it does not.
    let script = [
        "cd || exit 1",
        "r=1; if [ -n \"$1\" ]; then a=$(\"$3\" attach --workspace \"$1\" --root \"$2\" 2>/dev/null); r=$?; fi",
        "if [ $r -eq 0 ] || [ $r -eq 3 ]; then echo attached $r; printf '%s\\n' \"$a\"; exit 0; fi",
        "uname -sm",
        "if [ -x \"$3\" ]; then echo installed; else echo missing; fi",
        "if command -v sha256sum >/dev/null 2>&1; then echo sha256sum; else echo no-sha256sum; fi",
        "if [ -x \"$3\" ] && \"$3\" status >/dev/null 2>&1 && [ -f \"$5\" ]; then \
         cat \"$4\"; echo; cat \"$5\"; echo; fi",
    ]
    .join("; ");
    let (id, root) = attach
        .map(|a| (a.id.as_str(), a.root.as_str()))
        .unwrap_or_default();
    let command = format!(
        "sh -c {} sh {} {} {} {} {}",
        quote(&script),
        quote(id),
        quote(root),
        quote(&remote_binary()),
        quote(&format!("{}/{}", paths::HOME_DIR, paths::INFO_FILE)),
        quote(&format!("{}/{}", paths::HOME_DIR, paths::TOKEN_FILE)),
    );
    let output = connection.exec(&command, None).await?;
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
    let mut first = lines.next().unwrap_or_default();
    let attached = first.strip_prefix("attached ");
    if attached.is_some() {
        // `attach` answered, its `uname -sm` first.
        first = lines.next().unwrap_or_default();
    }
    let (os, arch) = first.trim().split_once(' ').unwrap_or_default();
    let mut probe = Probe {
        os: os.to_string(),
        arch: arch.to_string(),
        ..Probe::default()
    };
    if let Some(code) = attached {
        // Then the stub, its token and the registration (refused with code 3).
        probe.installed = true;
        probe.running = lines.next().and_then(|l| serde_json::from_str(l).ok());
        probe.token = lines
            .next()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        let answer = lines.next().unwrap_or_default();
        probe.attached = match code {
            "0" => serde_json::from_str(answer).ok().map(Ok),
            _ => serde_json::from_str(answer).ok().map(Err),
        };
        return probe;
    }
    probe.installed = lines.next() == Some("installed");
    probe.has_sha256sum = lines.next() == Some("sha256sum");
    if let (Some(info), Some(token)) = (lines.next(), lines.next()) {
        probe.running = serde_json::from_str(info).ok();
        probe.token = Some(token.trim().to_string()).filter(|t| !t.is_empty());
    }
    probe
}

/// Install (when `binary` is given, on stdin) and start the stub in ONE exec: the upload lands under a
/// temp name and only becomes the versioned binary after its sha256 (or size, without sha256sum)
/// matched; a fresh token is generated on the host (0600, never on local disk or in any argv) and comes
/// back with the stub's `run/stub.json`. A running stub of another version or protocol is stopped by
/// the new one's `serve`, which checks that it is ours (our uid, a binary from our home) first.
async fn install_and_start(
    connection: &Connection,
    target: &SshTarget,
    binary: Option<(&[u8], &Probe)>,
) -> Result<(StubInfo, String)> {
    let home = paths::HOME_DIR;
    let dirs: Vec<String> = paths::ALL_DIRS
        .iter()
        .map(|d| format!("{home}/{d}"))
        .collect();
    let bin_dir = format!("{home}/{}/{STUB_VERSION}", paths::BIN_DIR);
    let (check, expected) = match binary {
        Some((bytes, probe)) if probe.has_sha256sum => (
            "sha256sum \"$2\" | cut -d\" \" -f1",
            hex::encode(Sha256::digest(bytes)),
        ),
        Some((bytes, _)) => ("wc -c < \"$2\" | tr -d \" \"", bytes.len().to_string()),
        None => ("", String::new()),
    };
    // One line (`;`-joined): the remote login shell parses this command line first, whatever it is.
    let script = [
        "cd || exit 1",
        "umask 077",
        "mkdir -p \"$1\" $5 || exit 1",
        "if [ -n \"$3\" ]; then cat > \"$2\" || exit 1",
        &format!("  if [ \"$({check})\" != \"$3\" ]; then rm -f \"$2\"; echo upload-mismatch >&2; exit 3; fi"),
        "  chmod 755 \"$2\" && mv -f \"$2\" \"$4\" || exit 1; fi",
        "t=\"$6\".tmp; od -An -tx1 -N32 /dev/urandom | tr -d \" \\n\" > \"$t\" && mv -f \"$t\" \"$6\" || exit 1",
        // The record of a stub already running (one `serve` replaces when it is older) stays until
        // the new one writes its own: only a changed record counts as started.
        "o=$(cat \"$7\" 2>/dev/null)",
        "if command -v setsid >/dev/null 2>&1; then d=setsid; else d=nohup; fi",
        // `&` ends a command itself: `& ;` would be a syntax error.
        "$d \"$4\" serve </dev/null >/dev/null 2>&1 & i=0",
        &format!(
            "while {{ [ ! -s \"$7\" ] || [ \"$(cat \"$7\" 2>/dev/null)\" = \"$o\" ]; }} && [ $i -lt {} ]; do \
             sleep 0.05 2>/dev/null || sleep 1; i=$((i+1)); done",
            START_DEADLINE.as_millis() / 50
        ),
        "n=$(cat \"$7\" 2>/dev/null); if [ \"$n\" != \"$o\" ]; then printf '%s\\n' \"$n\"; fi; echo; cat \"$6\"",
    ]
    .join("; ");
    let staged = format!("{bin_dir}/.{STUB_BINARY_NAME}.upload");
    let command = format!(
        "sh -c {} sh {} {} {} {} {} {} {}",
        quote(&script),
        quote(&bin_dir),
        quote(&staged),
        quote(&expected),
        quote(&remote_binary()),
        quote(
            &dirs
                .iter()
                .map(|d| d.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ),
        quote(&format!("{home}/{}", paths::TOKEN_FILE)),
        quote(&format!("{home}/{}", paths::INFO_FILE)),
    );
    let output = connection
        .exec(&command, binary.map(|(bytes, _)| bytes))
        .await?;
    let text = output.stdout_text();
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let info = lines
        .next()
        .and_then(|l| serde_json::from_str::<StubInfo>(l).ok());
    let token = lines
        .next()
        .map(|t| t.trim().to_string())
        .filter(|t| t.len() >= 32);
    match (output.success(), info, token) {
        (true, Some(info), Some(token)) => Ok((info, token)),
        _ => Err(Error::RemoteRunFailed {
            host: target.name.clone(),
            detail: if output.stderr_text().contains("upload-mismatch") {
                "the uploaded stub did not match its checksum".into()
            } else {
                "the stub did not start".into()
            },
            log_tail: output.stderr_text().trim().to_string(),
        }),
    }
}

/// Tunnel to the stub's socket and wait until it answers health with our version.
pub(crate) async fn connect_stub(
    target: &SshTarget,
    info: StubInfo,
    token: &str,
    reused: bool,
    deadline: Duration,
) -> Result<Stub> {
    let tunnel = Arc::new(Tunnel::open(target.clone(), &info.socket).await?);
    let client = StubClient::new(&target.name, tunnel.local_port(), token);
    let started = Instant::now();
    let mut explained = false;
    loop {
        match client.health().await {
            Ok(health) if health.version == STUB_VERSION => {
                return Ok(Stub {
                    client,
                    tunnel,
                    info,
                    reused,
                    attached: None,
                })
            }
            Ok(health) => {
                return Err(unsupported(
                    target,
                    &format!("stub {} answered, expected {STUB_VERSION}", health.version),
                ))
            }
            Err(_) if tunnel.open_failure().is_some() && !explained => {
                explained = true;
                if let Some(refusal) = refusal(&tunnel).await {
                    return Err(refusal);
                }
            }
            Err(_) if started.elapsed() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// Why the tunnel's channels are refused, when the server refuses to forward to the stub at all:
/// [`Error::ForwardingRefused`]. OpenSSH answers "connect failed" both when its
/// `AllowStreamLocalForwarding no` (or `DisableForwarding yes`) refuses the channel and when nothing
/// listens on the socket, so the host is asked: if the stub answers its `status` there, the socket is
/// fine and sshd is what refuses. `None` when the stub is simply not running (start it again).
pub(crate) async fn refusal(tunnel: &Tunnel) -> Option<Error> {
    let refused = Error::ForwardingRefused {
        host: tunnel.target().name.clone(),
    };
    match tunnel.open_failure()? {
        OpenFailure::Prohibited => Some(refused),
        OpenFailure::ConnectFailed => {
            let connection = POOL.get(tunnel.target()).await.ok()?;
            let command = format!("cd && {} status >/dev/null 2>&1", quote(&remote_binary()));
            let output = connection.exec(&command, None).await.ok()?;
            output.success().then_some(refused)
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

/// Why there is no stub to upload for `arch`: a host this package has no build for, or a package packed
/// without its stubs. Reinstalling the same package fixes neither, so neither message suggests it.
fn missing_stub(target: &SshTarget, dir: &Path, arch: &str) -> Error {
    unsupported(target, &missing_stub_detail(dir, arch))
}

fn missing_stub_detail(dir: &Path, arch: &str) -> String {
    let sums = std::fs::read_to_string(dir.join(SUMS_FILE)).unwrap_or_default();
    let shipped: Vec<String> = sums
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .filter_map(|name| {
            let rest = name.strip_prefix(&format!("{STUB_BINARY_NAME}-{STUB_VERSION}-"))?;
            Some(rest.strip_suffix("-linux")?.to_string())
        })
        .collect();
    if shipped.is_empty() {
        format!(
            "this opencode-remote package holds no stub binaries ({} has no {SUMS_FILE}): it was packed \
             without `npm run build:dist`. Install a published release, or run `npm run build:dist` in it",
            crate::error::display_path(dir)
        )
    } else {
        format!(
            "its CPU is {arch}, and this opencode-remote package has a stub for {} Linux only",
            list_arches(&shipped)
        )
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

    const INFO: &str = r#"{"pid":7,"socket":"/home/u/.opencode-remote/run/stub.sock","version":"0.1.0","protocol":2,"startedAt":1}"#;
    const SOCKET: &str = "/home/u/.opencode-remote/run/stub.sock";

    #[test]
    fn parse_probe_should_read_a_running_stub_and_its_token() {
        let probe = parse_probe(&format!(
            "Linux x86_64\ninstalled\nsha256sum\n{INFO}\nabc123\n"
        ));
        assert_eq!(
            (probe.os.as_str(), probe.arch.as_str()),
            ("Linux", "x86_64")
        );
        assert!(probe.installed && probe.has_sha256sum);
        assert_eq!(probe.running.map(|i| i.socket).as_deref(), Some(SOCKET));
        assert_eq!(probe.token.as_deref(), Some("abc123"));
        assert!(probe.attached.is_none());
    }

    #[test]
    fn parse_probe_should_read_what_attach_answered() {
        let ok = parse_probe(&format!(
            "attached 0\nLinux x86_64\n{INFO}\ntok\n{{\"id\":\"w\",\"root\":\"/home/u/w\",\"created\":true}}\n"
        ));
        assert!(ok.installed);
        assert_eq!((ok.os.as_str(), ok.arch.as_str()), ("Linux", "x86_64"));
        assert_eq!(ok.running.map(|i| i.socket).as_deref(), Some(SOCKET));
        assert_eq!(ok.token.as_deref(), Some("tok"));
        assert_eq!(ok.attached.unwrap().unwrap().root, "/home/u/w");
        let refused = parse_probe(&format!(
            "attached 3\nLinux x86_64\n{INFO}\ntok\n{{\"error\":{{\"type\":\"not_directory\",\"message\":\"workspace root is not a directory\"}}}}\n"
        ));
        assert_eq!(
            refused.attached.unwrap().unwrap_err().error.kind,
            opencode_remote_protocol::ErrorKind::NotDirectory
        );
    }

    #[test]
    fn parse_probe_should_handle_a_fresh_host() {
        let probe = parse_probe("Linux aarch64\nmissing\nno-sha256sum\n");
        assert_eq!(probe.arch, "aarch64");
        assert!(!probe.installed && !probe.has_sha256sum);
        assert_eq!(probe.running, None);
        assert_eq!(probe.token, None);
    }

    #[test]
    fn missing_stub_should_name_the_cause_without_suggesting_a_reinstall() {
        let dir = tempfile::tempdir().unwrap();
        let empty = missing_stub_detail(dir.path(), "x86_64");
        assert!(
            empty.contains("packed without `npm run build:dist`"),
            "{empty}"
        );
        std::fs::write(
            dir.path().join(SUMS_FILE),
            format!(
                "00  {STUB_BINARY_NAME}-{STUB_VERSION}-x86_64-linux\n00  {STUB_BINARY_NAME}-{STUB_VERSION}-aarch64-linux\n"
            ),
        )
        .unwrap();
        let other = missing_stub_detail(dir.path(), "armv7");
        assert_eq!(
            other,
            "its CPU is armv7, and this opencode-remote package has a stub for x86_64 and aarch64 Linux only"
        );
        for text in [empty, other] {
            assert!(!text.contains("reinstall"), "{text}");
        }
    }

    #[test]
    fn stub_arch_should_map_uname_to_the_shipped_stubs() {
        assert_eq!(stub_arch("x86_64"), Some("x86_64"));
        assert_eq!(stub_arch("aarch64"), Some("aarch64"));
        assert_eq!(stub_arch("armv7l"), Some("armv7"));
        assert_eq!(stub_arch("armv8l"), Some("armv7"));
        for other in [
            "armv6l",
            "armv5tel",
            "aarch64_be",
            "i686",
            "riscv64",
            "ppc64le",
            "s390x",
            "",
        ] {
            assert_eq!(stub_arch(other), None, "{other}");
        }
        for machine in ["x86_64", "aarch64", "armv7l", "armv8l"] {
            assert!(STUB_ARCHES.contains(&stub_arch(machine).unwrap()));
        }
    }

    #[test]
    fn an_unsupported_arch_should_be_named() {
        assert_eq!(
            unsupported_arch_detail("armv6l"),
            "unsupported architecture armv6l (`uname -m` on the host): opencode-remote has a stub for \
             x86_64, aarch64 and armv7 Linux only"
        );
        assert!(unsupported_arch_detail("ri\u{1b}[31msc v64").contains("architecture ri31mscv64 "));
        assert!(unsupported_arch_detail("").contains("architecture (empty) "));
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
