//! Connection sharing across processes, as OpenSSH's `ControlMaster`/`ControlPersist`: a small helper
//! process of this user holds the SSH connection to each host and opens channels on it for every
//! local process that asks. A workspace created by a freshly started OpenCode then costs the
//! channels it needs, not a handshake; and the helper keeps the link for a while after the last
//! user, as `ControlPersist` does.
//!
//! Only `direct-streamlocal` channels (the stub's sockets) go through it: that is everything a warm
//! workspace uses. Anything else (bootstrap, login round trips) connects in its own process. When
//! the helper cannot be used — no helper binary beside the addon, a platform without Unix sockets,
//! the helper cannot reach the host — callers connect themselves, and report errors as before.
//!
//! The helper's socket lives in a 0700 directory of our state dir, and both ends check that the other
//! runs as the same user: a neighbour can neither use our connections nor pose as the helper.

mod server;
pub mod wire;

use std::ffi::{CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::BufReader;
use tokio::net::UnixStream;

pub use server::serve;
use wire::{Answer, Request};

use super::config::SshTarget;
use super::tunnel::OpenFailure;
use crate::login::local::state_dir;

/// The helper's directory under our state dir (one per version: a helper left by an older package
/// never gets requests it does not understand), and its files.
const DIR: &str = concat!("mux-", env!("CARGO_PKG_VERSION"));
const SOCKET_FILE: &str = "mux.sock";
const LOCK_FILE: &str = "mux.lock";
/// The binary beside the addon `opencode-remote.<platform>.node` is `opencode-remote-mux.<platform>`.
const ADDON_PREFIX: &str = "opencode-remote.";
const HELPER_PREFIX: &str = "opencode-remote-mux.";
/// `sun_path` holds 108 bytes on Linux (104 on macOS), its NUL included.
const MAX_SOCKET_PATH_BYTES: usize = 103;
/// How long a started helper may take to listen.
const START_WAIT: Duration = Duration::from_secs(2);
/// Beyond the target's connect timeout, how long the helper may take to answer.
const ANSWER_SLACK: Duration = Duration::from_secs(10);

/// What the helper keeps of the starting process's environment: what an SSH client uses (the agent,
/// `~`, a ProxyCommand's shell and PATH), and nothing else, so no API key of the process that
/// happened to start it lives on in it.
const HELPER_ENV: &[&str] = &[
    "HOME",
    "USER",
    "LOGNAME",
    "PATH",
    "SHELL",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TMPDIR",
    "SSH_AUTH_SOCK",
    "XDG_RUNTIME_DIR",
];

static HELPER: OnceLock<Option<PathBuf>> = OnceLock::new();

/// A stream carrying one channel's bytes. Reads go through the buffer that held the helper's answer.
pub type SharedStream = BufReader<UnixStream>;

pub enum Opened {
    Stream(SharedStream),
    /// The host refused the channel: its answer, the same through any connection.
    Refused(OpenFailure),
}

/// Use `helper` as the helper binary, instead of the one beside the addon (tests, benches).
/// Only the first call counts, and only before the first [`open`].
pub fn use_helper(helper: PathBuf) {
    let _ = HELPER.set(Some(helper));
}

/// A channel to the Unix socket `socket` on `target` through this user's shared connection; `None`
/// when sharing cannot be used, and the caller should connect itself.
pub async fn open(target: &SshTarget, socket: &str) -> Option<Opened> {
    let helper = HELPER.get_or_init(helper_beside_addon).as_deref()?;
    let dir = private_dir()?;
    let mut stream = BufReader::new(connect_or_start(helper, &dir).await?);
    let request = Request {
        target: target.clone(),
        socket: socket.to_string(),
    };
    wire::write_line(&mut stream, &request).await.ok()?;
    let answer = tokio::time::timeout(
        target.connect_timeout + ANSWER_SLACK,
        wire::read_line::<Answer>(&mut stream),
    )
    .await
    .ok()?
    .ok()?;
    match answer {
        Answer::Opened => Some(Opened::Stream(stream)),
        Answer::Refused { prohibited } => Some(Opened::Refused(if prohibited {
            OpenFailure::Prohibited
        } else {
            OpenFailure::ConnectFailed
        })),
        Answer::Unavailable { reason } => {
            log::debug!("shared connection to {}: {reason}", target.name);
            None
        }
    }
}

/// The running helper, started first when none listens.
async fn connect_or_start(helper: &Path, dir: &Path) -> Option<UnixStream> {
    let socket = dir.join(SOCKET_FILE);
    if let Some(stream) = connect(&socket).await {
        return Some(stream);
    }
    let mut command = tokio::process::Command::new(helper);
    command.arg("serve").arg(dir).env_clear();
    for (name, value) in
        std::env::vars_os().filter(|(name, _)| HELPER_ENV.iter().any(|n| name == n))
    {
        command.env(name, value);
    }
    let started = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await;
    if !started.as_ref().is_ok_and(|status| status.success()) {
        log::debug!("starting {}: {started:?}", helper.display());
        return None;
    }
    let deadline = tokio::time::Instant::now() + START_WAIT;
    while tokio::time::Instant::now() < deadline {
        if let Some(stream) = connect(&socket).await {
            return Some(stream);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    None
}

/// A connection to the helper's socket, if one of our own listens there.
async fn connect(socket: &Path) -> Option<UnixStream> {
    let stream = UnixStream::connect(socket).await.ok()?;
    same_user(&stream).then_some(stream)
}

/// Whether the other end of `stream` runs as this process's user.
fn same_user(stream: &UnixStream) -> bool {
    stream.peer_cred().is_ok_and(|peer| peer.uid() == my_uid())
}

fn my_uid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// Our helper's directory: created 0700, owned by us; `None` when it cannot be, or when its socket's
/// path would not fit a Unix socket address.
fn private_dir() -> Option<PathBuf> {
    let dir = state_dir().join(DIR);
    if dir.join(SOCKET_FILE).as_os_str().len() > MAX_SOCKET_PATH_BYTES {
        return None;
    }
    let mut builder = std::fs::DirBuilder::new();
    std::os::unix::fs::DirBuilderExt::mode(builder.recursive(true), 0o700);
    builder.create(&dir).ok()?;
    let meta = std::fs::symlink_metadata(&dir).ok()?;
    if !meta.is_dir() || meta.uid() != my_uid() {
        return None;
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).ok()?;
    }
    Some(dir)
}

/// The helper named after the addon this code was loaded from, when it is there.
fn helper_beside_addon() -> Option<PathBuf> {
    helper_for(&own_library()?)
}

fn helper_for(addon: &Path) -> Option<PathBuf> {
    let name = addon.file_name()?.to_str()?;
    let platform = name.strip_prefix(ADDON_PREFIX)?.strip_suffix(".node")?;
    let helper = addon.with_file_name(format!("{HELPER_PREFIX}{platform}"));
    helper.is_file().then_some(helper)
}

/// The file this code was loaded from (the addon, or a test or example binary).
fn own_library() -> Option<PathBuf> {
    // SAFETY: dladdr fills `info` for an address inside a loaded object; its name stays valid while
    // that object is loaded, which it is while this code runs.
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        if libc::dladdr(own_library as *const libc::c_void, &mut info) == 0
            || info.dli_fname.is_null()
        {
            return None;
        }
        let name = CStr::from_ptr(info.dli_fname).to_bytes();
        Some(PathBuf::from(OsStr::from_bytes(name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_helper_should_be_named_after_the_addon() {
        let dir = tempfile::tempdir().unwrap();
        let addon = dir.path().join("opencode-remote.linux-x64-gnu.node");
        assert_eq!(helper_for(&addon), None, "no helper there yet");
        let helper = dir.path().join("opencode-remote-mux.linux-x64-gnu");
        std::fs::write(&helper, b"").unwrap();
        assert_eq!(helper_for(&addon), Some(helper));
        assert_eq!(helper_for(&dir.path().join("libopencode_remote.so")), None);
    }
}
