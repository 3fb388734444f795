//! Connection sharing (`ssh::mux`) against a real sshd and the real helper binary: channels from
//! any number of callers ride one SSH connection, the host's refusal comes through as such, an
//! unreachable host sends the caller back to its own connection, another local user is not served,
//! and the helper leaves once its links are gone.
#![cfg(unix)]

#[allow(
    dead_code,
    reason = "each test binary uses a different part of the fixture"
)]
mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{echo_server, Sshd};
use opencode_remote::ssh::config::SshTarget;
use opencode_remote::ssh::mux::{self, Opened};
use opencode_remote::ssh::tunnel::OpenFailure;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Mutex, MutexGuard};

/// The helper's directory comes from the environment (our state dir): one test at a time sets it.
static STATE: Mutex<()> = Mutex::const_new(());

/// A fresh state dir for this test (so a fresh helper), held until the guard drops.
async fn own_state_dir() -> (MutexGuard<'static, ()>, tempfile::TempDir) {
    let guard = STATE.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::env::set_var("XDG_STATE_HOME", dir.path());
    std::env::remove_var("SSH_AUTH_SOCK");
    mux::use_helper(PathBuf::from(env!("CARGO_BIN_EXE_opencode-remote-mux")));
    (guard, dir)
}

fn helper_dir(state: &Path) -> PathBuf {
    state.join(concat!("opencode-remote/mux-", env!("CARGO_PKG_VERSION")))
}

async fn echo_through_helper(target: &SshTarget, service: &str, payload: &[u8]) -> Vec<u8> {
    let Some(Opened::Stream(mut stream)) = mux::open(target, service).await else {
        panic!("no channel through the helper");
    };
    stream.write_all(payload).await.expect("write");
    stream.get_mut().shutdown().await.expect("shutdown");
    let mut echoed = Vec::new();
    stream.read_to_end(&mut echoed).await.expect("read");
    echoed
}

fn logins(sshd: &Sshd) -> usize {
    sshd.log_text().matches("Accepted publickey").count()
}

#[tokio::test(flavor = "multi_thread")]
async fn channels_from_every_caller_should_share_one_connection() {
    let (_guard, _state) = own_state_dir().await;
    let sshd = Sshd::spawn();
    let (service, _dir) = echo_server().await;
    let payload: Vec<u8> = (0..2 * 1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    assert_eq!(
        echo_through_helper(&sshd.target(), &service, &payload).await,
        payload
    );
    let mut callers = tokio::task::JoinSet::new();
    for i in 0..8 {
        let (target, service) = (sshd.target(), service.clone());
        callers.spawn(async move {
            let sent = format!("caller {i}");
            (
                echo_through_helper(&target, &service, sent.as_bytes()).await,
                sent,
            )
        });
    }
    while let Some(answer) = callers.join_next().await {
        let (echoed, sent) = answer.expect("caller");
        assert_eq!(echoed, sent.as_bytes());
    }
    assert_eq!(logins(&sshd), 1, "{}", sshd.log_text());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hosts_refusal_should_come_through_and_an_unreachable_host_should_not() {
    let (_guard, _state) = own_state_dir().await;
    let sshd = Sshd::spawn();
    let (service, _dir) = echo_server().await;
    let missing = format!("{service}.missing");
    assert!(matches!(
        mux::open(&sshd.target(), &missing).await,
        Some(Opened::Refused(OpenFailure::ConnectFailed))
    ));
    let mut nowhere = sshd.target();
    nowhere.port = common::free_port();
    nowhere.connect_timeout = Duration::from_secs(2);
    assert!(
        mux::open(&nowhere, &service).await.is_none(),
        "the caller connects itself, which names the problem"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_helper_should_leave_once_its_connections_are_gone() {
    let (_guard, state) = own_state_dir().await;
    let sshd = Sshd::spawn();
    let (service, _dir) = echo_server().await;
    assert_eq!(
        echo_through_helper(&sshd.target(), &service, b"hi").await,
        b"hi"
    );
    let socket = helper_dir(state.path()).join("mux.sock");
    assert!(socket.exists());
    assert!(sshd.kill_connections() > 0);
    let deadline = Instant::now() + Duration::from_secs(15);
    while socket.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!socket.exists(), "the helper still listens");
    // And the next caller starts a new one.
    assert_eq!(
        echo_through_helper(&sshd.target(), &service, b"again").await,
        b"again"
    );
}

/// Even with its directory opened to everyone, the helper serves no other user: a process running as
/// `nobody` gets its connection closed without an answer.
#[tokio::test(flavor = "multi_thread")]
async fn another_user_should_get_nothing_from_the_helper() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: needs root to run a process as another user");
        return;
    }
    let (_guard, state) = own_state_dir().await;
    let sshd = Sshd::spawn();
    let (service, _dir) = echo_server().await;
    assert_eq!(
        echo_through_helper(&sshd.target(), &service, b"mine").await,
        b"mine"
    );
    let dir = helper_dir(state.path());
    use std::os::unix::fs::PermissionsExt;
    for path in [
        state.path().to_path_buf(),
        state.path().join("opencode-remote"),
        dir.clone(),
    ] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let socket = dir.join("mux.sock");
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o777)).unwrap();
    let request = format!(
        "{}\n",
        serde_json::json!({ "target": sshd.target(), "socket": service })
    );
    let answer = as_nobody(&socket, request.as_bytes());
    assert_eq!(answer, Ok(Vec::new()), "connected, and nothing came back");
}

/// Connect to `socket` as uid/gid 65534, send `request`, and return what came back; `Err` when the
/// connection itself failed.
fn as_nobody(socket: &Path, request: &[u8]) -> Result<Vec<u8>, String> {
    let (mut parent, mut child) = std::os::unix::net::UnixStream::pair().unwrap();
    // SAFETY: the child only makes system calls (no allocation, no locks) and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        unsafe {
            let ok = libc::setgroups(0, std::ptr::null()) == 0
                && libc::setgid(65534) == 0
                && libc::setuid(65534) == 0;
            let mut buffer = [0u8; 4096];
            let code = if !ok {
                b'U'
            } else {
                match std::os::unix::net::UnixStream::connect(socket) {
                    Err(_) => b'C',
                    Ok(mut stream) => {
                        let _ = stream.write_all(request);
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                        let read = stream.read(&mut buffer).unwrap_or(0);
                        let _ = child.write_all(&buffer[..read]);
                        b'O'
                    }
                }
            };
            let _ = child.write_all(&[code]);
            libc::_exit(0);
        }
    }
    drop(child);
    let mut out = Vec::new();
    parent.read_to_end(&mut out).unwrap();
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    match out.pop() {
        Some(b'O') => Ok(out),
        other => Err(format!("child ended with {other:?}")),
    }
}
