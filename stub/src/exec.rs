//! Commands: `<shell> -c <command>` in a process group of its own, output streamed as NDJSON
//! [`ExecEvent`]s. The timeout, a cancel and a closed connection all kill the whole group.

use std::collections::HashMap;
use std::convert::Infallible;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::Response;
use opencode_remote_protocol::{limits, ErrorKind, ExecEvent, ExecRequest};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Child;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;

use rustix::fs::OFlags;

use crate::error::ApiErr;
use crate::fsops::open_failed;
use crate::nofollow::Opener;
use crate::util::{log, random_id};

/// Between SIGTERM and SIGKILL to a process group.
pub const KILL_GRACE: Duration = Duration::from_secs(2);
/// After the shell has exited (or been killed), how long output is still read. Bounded because a
/// background process (`server &`) may hold the pipes open for as long as it lives.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(250);
/// Check interval while waiting for a signalled group to go away.
const KILL_POLL: Duration = Duration::from_millis(20);
/// Output events buffered before reading the pipes pauses (back-pressure on the command).
const EVENT_QUEUE: usize = 64;
/// Bytes read from a pipe at once (at most one event's data).
const READ_CHUNK_BYTES: usize = 32 * 1024;

/// Running commands, by exec id.
#[derive(Default)]
pub struct Execs {
    running: Mutex<HashMap<String, Running>>,
}

struct Running {
    workspace: String,
    cancel: Arc<Notify>,
}

impl Execs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Cancels a running command of `workspace`. `false` when there is none with that id.
    pub fn cancel(&self, workspace: &str, exec_id: &str) -> bool {
        match self.lock().get(exec_id) {
            Some(r) if r.workspace == workspace => {
                r.cancel.notify_one();
                true
            }
            _ => false,
        }
    }

    /// Cancels every running command (of one workspace, or all) and returns how many.
    pub fn cancel_all(&self, workspace: Option<&str>) -> usize {
        let map = self.lock();
        let mut n = 0;
        for r in map.values() {
            if workspace.is_none_or(|w| w == r.workspace) {
                r.cancel.notify_one();
                n += 1;
            }
        }
        n
    }

    /// Number of running commands.
    pub fn count(&self) -> usize {
        self.lock().len()
    }
}

/// Opens the authorized working directory `cwd` without following symlinks
/// ([`crate::nofollow`]). The command gets it with `fchdir` on this descriptor, never `chdir` by
/// name, so swapping a directory on the path for a symlink after the check cannot move the command
/// outside the root. `O_PATH` (Linux >= 3.5): a search-only directory works, as with `chdir`.
pub fn open_cwd(open: Opener, root: &Path, cwd: &Path) -> Result<OwnedFd, ApiErr> {
    open.open(root, cwd, OFlags::PATH | OFlags::DIRECTORY)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT | libc::ENOTDIR) => ApiErr::new(
                ErrorKind::NotDirectory,
                format!("working directory {} is not a directory", cwd.display()),
            ),
            _ => open_failed(e, cwd, "opening the working directory"),
        })
}

/// `<shell> -c <command>` in its own process group, in the directory `dir` (opened by
/// [`open_cwd`]; it must stay open until the command is spawned).
pub fn command(shell: &str, req: &ExecRequest, cwd: &Path, dir: &OwnedFd) -> std::process::Command {
    let mut cmd = std::process::Command::new(shell);
    cmd.arg("-c")
        .arg(&req.command)
        .envs(&req.env)
        .env("PWD", cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A new process group whose id is the shell's pid: one kill(-pgid) reaches every
        // process the command starts, unless one moves itself to another group or session.
        .process_group(0);
    let fd = dir.as_raw_fd();
    // SAFETY: fchdir(2) is async-signal-safe and touches no memory; the closure runs in the forked
    // child before exec, where `fd` (inherited, close-on-exec) is still open.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fchdir(fd) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    cmd
}

/// Starts the command and returns the streaming response. `cwd` is already authorized and opened
/// as `dir` ([`open_cwd`]).
pub fn start(
    execs: Arc<Execs>,
    workspace: String,
    cwd: PathBuf,
    dir: OwnedFd,
    req: ExecRequest,
) -> Result<Response, ApiErr> {
    let timeout = Duration::from_millis(
        req.timeout_ms
            .unwrap_or(limits::EXEC_DEFAULT_TIMEOUT_MS)
            .min(limits::EXEC_MAX_TIMEOUT_MS),
    );
    let shell = req.shell.as_deref().unwrap_or("/bin/sh");
    let mut cmd = tokio::process::Command::from(command(shell, &req, &cwd, &dir));
    cmd.kill_on_drop(false);
    let mut child = cmd.spawn().map_err(|e| {
        ApiErr::new(
            ErrorKind::BadRequest,
            format!("could not start {shell}: {e}"),
        )
    })?;
    drop(dir);
    let pid = child.id().unwrap_or(0);
    let exec_id = random_id("exe");
    let cancel = Arc::new(Notify::new());
    execs.lock().insert(
        exec_id.clone(),
        Running {
            workspace: workspace.clone(),
            cancel: cancel.clone(),
        },
    );
    log(
        "info",
        "exec_start",
        serde_json::json!({ "workspace": workspace, "execId": exec_id, "pid": pid }),
    );
    let (tx, rx) = mpsc::channel(EVENT_QUEUE);
    let _ = tx.try_send(encode(&ExecEvent::Start {
        exec_id: exec_id.clone(),
        pid,
    }));
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    tokio::spawn(async move {
        let end = supervise(child, pid as i32, stdout, stderr, tx, cancel, timeout).await;
        execs.lock().remove(&exec_id);
        log(
            "info",
            "exec_end",
            serde_json::json!({ "workspace": workspace, "execId": exec_id, "end": end }),
        );
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from_stream(EventStream(rx)))
        .unwrap_or_default())
}

fn encode(event: &ExecEvent) -> Bytes {
    let mut line = serde_json::to_vec(event).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// The response body: events as they come; dropping it (the client went away) closes the channel,
/// which [`supervise`] takes as a cancel.
struct EventStream(mpsc::Receiver<Bytes>);

impl futures_core::Stream for EventStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|o| o.map(Ok))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pipe {
    Stdout,
    Stderr,
}

async fn supervise(
    mut child: Child,
    pgid: i32,
    stdout: Option<tokio::process::ChildStdout>,
    stderr: Option<tokio::process::ChildStderr>,
    tx: mpsc::Sender<Bytes>,
    cancel: Arc<Notify>,
    timeout: Duration,
) -> serde_json::Value {
    let started = Instant::now();
    let (drain_tx, drain_rx) = watch::channel(None);
    let mut pumps = Vec::new();
    if let Some(out) = stdout {
        pumps.push(tokio::spawn(pump(
            out,
            Pipe::Stdout,
            tx.clone(),
            drain_rx.clone(),
        )));
    }
    if let Some(err) = stderr {
        pumps.push(tokio::spawn(pump(err, Pipe::Stderr, tx.clone(), drain_rx)));
    }
    let mut timed_out = false;
    let mut cancelled = false;
    let mut reason = "exit";
    let waited = tokio::select! {
        status = child.wait() => Some(status),
        _ = tokio::time::sleep(timeout) => { timed_out = true; reason = "timeout"; None }
        _ = cancel.notified() => { cancelled = true; reason = "cancel"; None }
        _ = tx.closed() => { cancelled = true; reason = "disconnect"; None }
    };
    let stopping_ms = started.elapsed().as_millis() as u64;
    let status = match waited {
        Some(status) => status,
        None => kill_group(pgid, &mut child).await,
    };
    let _ = drain_tx.send(Some(Instant::now() + DRAIN_AFTER_EXIT));
    for p in pumps {
        let _ = p.await;
    }
    let event = match status {
        Ok(status) => exit_event(status, timed_out, cancelled, started.elapsed()),
        Err(e) => ExecEvent::Error {
            message: format!("waiting for the command failed: {e}"),
        },
    };
    let _ = tx.send(encode(&event)).await;
    serde_json::json!({
        "reason": reason,
        "stoppingMs": stopping_ms,
        "durationMs": started.elapsed().as_millis() as u64,
    })
}

fn exit_event(status: ExitStatus, timed_out: bool, cancelled: bool, took: Duration) -> ExecEvent {
    ExecEvent::Exit {
        code: status.code(),
        signal: status.signal(),
        timed_out,
        cancelled,
        duration_ms: took.as_millis() as u64,
    }
}

fn signal_group(pgid: i32, signal: i32) -> bool {
    if pgid <= 1 {
        return false; // never kill(-1) or kill(0): those reach far more than this command
    }
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
    unsafe { libc::kill(-pgid, signal) == 0 }
}

/// Whether any process of group `pgid` is still running. A zombie does not count: a killed
/// grandchild is reparented to init, and an init that reaps slowly (as in some containers) would
/// otherwise keep the group "alive" for the whole grace period.
fn group_has_live_members(pgid: i32) -> bool {
    if !signal_group(pgid, 0) {
        return false;
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return true;
    };
    procs.flatten().any(|entry| {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // "pid (comm) state ppid pgrp ...": comm may contain spaces and parentheses.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            return false;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let pgrp = fields.nth(1).and_then(|f| f.parse::<i32>().ok());
        pgrp == Some(pgid) && state != Some("Z")
    })
}

/// SIGTERM to the group; once the shell has exited and the group is empty, done; after
/// [`KILL_GRACE`], SIGKILL to whatever is left.
async fn kill_group(pgid: i32, child: &mut Child) -> std::io::Result<ExitStatus> {
    signal_group(pgid, libc::SIGTERM);
    let deadline = Instant::now() + KILL_GRACE;
    let mut status = None;
    loop {
        if status.is_none() {
            status = child.try_wait()?;
        }
        if status.is_some() && !group_has_live_members(pgid) {
            break;
        }
        if Instant::now() >= deadline {
            signal_group(pgid, libc::SIGKILL);
            break;
        }
        tokio::time::sleep(KILL_POLL).await;
    }
    match status {
        Some(s) => Ok(s),
        None => child.wait().await,
    }
}

async fn pump(
    mut pipe: impl AsyncRead + Unpin,
    which: Pipe,
    tx: mpsc::Sender<Bytes>,
    mut drain: watch::Receiver<Option<Instant>>,
) {
    let mut buf = vec![0u8; READ_CHUNK_BYTES];
    let mut carry = Vec::new();
    loop {
        let n = tokio::select! {
            r = pipe.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            _ = drain_deadline(&mut drain) => break,
        };
        carry.extend_from_slice(&buf[..n]);
        let text = take_utf8(&mut carry, false);
        if !text.is_empty() && tx.send(encode(&output(which, text))).await.is_err() {
            return;
        }
    }
    let text = take_utf8(&mut carry, true);
    if !text.is_empty() {
        let _ = tx.send(encode(&output(which, text))).await;
    }
}

fn output(which: Pipe, data: String) -> ExecEvent {
    match which {
        Pipe::Stdout => ExecEvent::Stdout { data },
        Pipe::Stderr => ExecEvent::Stderr { data },
    }
}

async fn drain_deadline(rx: &mut watch::Receiver<Option<Instant>>) {
    loop {
        let deadline = *rx.borrow_and_update();
        match deadline {
            Some(at) => return tokio::time::sleep_until(at).await,
            None => {
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

/// Takes the longest prefix of `buf` that is whole UTF-8 (invalid bytes replaced by U+FFFD) and
/// leaves an incomplete trailing character in `buf` for the next read, unless `last`.
fn take_utf8(buf: &mut Vec<u8>, last: bool) -> String {
    let mut out = String::new();
    let mut start = 0;
    loop {
        match std::str::from_utf8(&buf[start..]) {
            Ok(s) => {
                out.push_str(s);
                start = buf.len();
                break;
            }
            Err(e) => {
                let valid = start + e.valid_up_to();
                out.push_str(std::str::from_utf8(&buf[start..valid]).unwrap_or_default());
                match e.error_len() {
                    Some(bad) => {
                        out.push('\u{FFFD}');
                        start = valid + bad;
                    }
                    None if last => {
                        out.push('\u{FFFD}');
                        start = buf.len();
                        break;
                    }
                    None => {
                        start = valid;
                        break;
                    }
                }
            }
        }
    }
    buf.drain(..start);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_utf8_should_keep_split_characters_for_the_next_chunk() {
        let mut buf = "h\u{e9}".as_bytes().to_vec();
        let tail = buf.pop().unwrap();
        assert_eq!(take_utf8(&mut buf, false), "h");
        assert_eq!(buf.len(), 1);
        buf.push(tail);
        assert_eq!(take_utf8(&mut buf, false), "\u{e9}");
        assert!(buf.is_empty());
    }

    #[test]
    fn take_utf8_should_replace_invalid_bytes() {
        let mut buf = b"a\xffb".to_vec();
        assert_eq!(take_utf8(&mut buf, false), "a\u{FFFD}b");
        let mut buf = b"a\xc3".to_vec();
        assert_eq!(take_utf8(&mut buf, true), "a\u{FFFD}");
    }
}
