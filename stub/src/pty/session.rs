//! Terminal sessions, kept as OpenCode 1.18.33's `Pty` service keeps them: an id `pty_…`, the
//! info the routes answer with, the output's cursor and replay buffer, and the clients attached
//! to it. Each belongs to one workspace; another workspace never sees it.
//!
//! OpenCode publishes `pty.created`, `pty.updated`, `pty.exited` and `pty.deleted` on its bus; the
//! stub cannot reach the control plane's bus, so it logs them and offers them to the router
//! ([`Ptys::subscribe`], `routes::pty_events`), which republishes them.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use tokio::io::unix::AsyncFd;
use tokio::sync::{broadcast, mpsc};

use super::replay::{Replay, Utf8Stream};
use super::{kill_session, set_size, signal_session, spawn, Size, DEFAULT_SIZE};
use crate::util::log;

/// Exited sessions OpenCode keeps (unreachable through the v1 routes) before forgetting the oldest.
const EXITED_KEPT: usize = 25;
/// Bytes read from the terminal at once.
const READ_CHUNK_BYTES: usize = 16 * 1024;
/// Output messages queued for one attached client. A client that falls this far behind is
/// dropped (its connection closes with a code other than 1000) and reconnects from its cursor, getting
/// the replay; OpenCode's queue has no bound, but the stub's memory should.
const CLIENT_QUEUE: usize = 256;
/// Bus events buffered for a slow event reader before it misses some.
const EVENT_QUEUE: usize = 256;

/// OpenCode's `Pty` schema; `exitCode` only once exited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Info {
    pub id: String,
    pub title: String,
    pub command: String,
    pub args: Vec<String>,
    pub cwd: String,
    pub status: Status,
    pub pid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Running,
    Exited,
}

/// What an attached client receives after its replay. When the stream ends without [`Output::End`]
/// the client fell behind by [`CLIENT_QUEUE`] messages.
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    Data(String),
    /// The session exited or was removed: close the connection normally.
    End,
}

/// Why a client could not attach.
#[derive(Debug, PartialEq, Eq)]
pub enum AttachError {
    NotFound,
    Exited,
}

/// What a new session runs; the caller has checked and opened its directory.
pub struct Spec {
    pub command: String,
    pub args: Vec<String>,
    /// As the answer shows it.
    pub cwd_shown: String,
    pub cwd: PathBuf,
    pub dir: OwnedFd,
    pub title: Option<String>,
    pub env: HashMap<String, String>,
}

/// A client attached to a session: what it missed, the cursor after that, and what follows.
pub struct Attached {
    pub replay: Vec<String>,
    pub cursor: u64,
    pub output: mpsc::Receiver<Output>,
    /// Input for the terminal.
    pub input: mpsc::UnboundedSender<Vec<u8>>,
    /// This attachment, for [`Ptys::detach`].
    pub key: u64,
}

/// The terminal while its process runs.
struct Live {
    master: Arc<AsyncFd<OwnedFd>>,
    input: mpsc::UnboundedSender<Vec<u8>>,
    /// Set once the process has been waited for (its pid may then be reused).
    reaped: Arc<AtomicBool>,
}

struct Session {
    workspace: String,
    info: Info,
    replay: Replay,
    subscribers: HashMap<u64, mpsc::Sender<Output>>,
    live: Option<Live>,
}

impl Session {
    /// Ends every attached client's stream (OpenCode's `onEnd`).
    fn end_subscribers(&mut self) {
        for (_, tx) in self.subscribers.drain() {
            let _ = tx.try_send(Output::End);
        }
    }
}

#[derive(Default)]
struct Sessions {
    by_id: HashMap<String, Session>,
    /// Ids of exited sessions, oldest first.
    exited: VecDeque<String>,
    next_key: u64,
}

/// One of OpenCode's `pty.*` bus events, as its event stream carries it.
#[derive(Debug, Clone, Serialize)]
pub struct BusEvent {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub properties: serde_json::Value,
}

/// Every terminal session of this stub.
pub struct Ptys {
    sessions: Mutex<Sessions>,
    /// (workspace, event)
    events: broadcast::Sender<(String, BusEvent)>,
}

impl Default for Ptys {
    fn default() -> Self {
        Ptys {
            sessions: Mutex::default(),
            events: broadcast::channel(EVENT_QUEUE).0,
        }
    }
}

impl Ptys {
    /// The bus events of every workspace from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<(String, BusEvent)> {
        self.events.subscribe()
    }

    /// Logs an event and offers it to the event readers.
    fn publish(&self, workspace: &str, kind: &'static str, properties: serde_json::Value) {
        let mut line = serde_json::json!({ "workspace": workspace });
        for key in ["id", "exitCode"] {
            if let Some(v) = properties.get(key) {
                line[key] = v.clone();
            }
        }
        if let Some(info) = properties.get("info") {
            line["id"] = info["id"].clone();
            line["pid"] = info["pid"].clone();
        }
        log("info", kind, line);
        let _ = self
            .events
            .send((workspace.to_string(), BusEvent { kind, properties }));
    }

    fn lock(&self) -> MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a terminal (OpenCode's `Pty.create`). Must run on the runtime.
    pub fn create(self: &Arc<Self>, workspace: &str, spec: Spec) -> io::Result<Info> {
        let id = new_id();
        let mut args = spec.args;
        if super::shell::is_login(&spec.command) {
            args.push("-l".to_string());
        }
        let spawned = spawn(
            &spec.command,
            &args,
            &spec.cwd,
            &spec.dir,
            &spec.env,
            DEFAULT_SIZE,
        )?;
        drop(spec.dir);
        // SAFETY: the AsyncFd owns the OwnedFd, which stays open and the same descriptor for as
        // long as the AsyncFd lives.
        let master = unsafe { AsyncFd::register(spawned.master) }.map_err(io::Error::from)?;
        let master = Arc::new(master);
        let (input, input_rx) = mpsc::unbounded_channel();
        let reaped = Arc::new(AtomicBool::new(false));
        let title = spec
            .title
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| format!("Terminal {}", &id[id.len() - 4..]));
        let info = Info {
            id: id.clone(),
            title,
            command: spec.command,
            args,
            cwd: spec.cwd_shown,
            status: Status::Running,
            pid: spawned.pid,
            exit_code: None,
        };
        self.lock().by_id.insert(
            id.clone(),
            Session {
                workspace: workspace.to_string(),
                info: info.clone(),
                replay: Replay::default(),
                subscribers: HashMap::new(),
                live: Some(Live {
                    master: master.clone(),
                    input,
                    reaped: reaped.clone(),
                }),
            },
        );
        tokio::spawn(write_input(master.clone(), input_rx));
        tokio::spawn(self.clone().drive(id, spawned.child, master, reaped));
        self.publish(
            workspace,
            "pty.created",
            serde_json::json!({ "info": info }),
        );
        Ok(info)
    }

    /// The sessions of a workspace, oldest first, exited ones included.
    pub fn list(&self, workspace: &str) -> Vec<Info> {
        let map = self.lock();
        let mut out: Vec<Info> = map
            .by_id
            .values()
            .filter(|s| s.workspace == workspace)
            .map(|s| s.info.clone())
            .collect();
        // Ids ascend with creation time.
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    pub fn get(&self, workspace: &str, id: &str) -> Option<Info> {
        let map = self.lock();
        map.by_id
            .get(id)
            .filter(|s| s.workspace == workspace)
            .map(|s| s.info.clone())
    }

    /// A new title (when not empty) and size (while running) (OpenCode's `Pty.update`).
    pub fn update(
        &self,
        workspace: &str,
        id: &str,
        title: Option<String>,
        size: Option<Size>,
    ) -> Option<Info> {
        let mut map = self.lock();
        let session = map.by_id.get_mut(id).filter(|s| s.workspace == workspace)?;
        if let Some(title) = title.filter(|t| !t.is_empty()) {
            session.info.title = title;
        }
        if let (Some(size), Some(live)) = (size, &session.live) {
            if let Err(e) = set_size(live.master.get_ref().as_fd(), size) {
                log(
                    "warn",
                    "pty resize failed",
                    serde_json::json!({ "id": id, "error": e.to_string() }),
                );
            }
        }
        let info = session.info.clone();
        drop(map);
        self.publish(
            workspace,
            "pty.updated",
            serde_json::json!({ "info": info }),
        );
        Some(info)
    }

    /// Removes a session, hanging its terminal up and killing what runs in it (OpenCode's
    /// `Pty.remove`). `false` when there is none.
    pub fn remove(&self, workspace: &str, id: &str) -> bool {
        let mut map = self.lock();
        if map.by_id.get(id).is_none_or(|s| s.workspace != workspace) {
            return false;
        }
        let Some(mut session) = map.by_id.remove(id) else {
            return false;
        };
        map.exited.retain(|e| e != id);
        drop(map);
        if let Some(live) = session.live.take() {
            kill_session(session.info.pid, live.reaped);
        }
        session.end_subscribers();
        self.publish(workspace, "pty.deleted", serde_json::json!({ "id": id }));
        true
    }

    /// Removes every session of a workspace (the workspace is being removed). Returns how many.
    pub fn remove_workspace(&self, workspace: &str) -> usize {
        let ids: Vec<String> = self
            .lock()
            .by_id
            .iter()
            .filter(|(_, s)| s.workspace == workspace)
            .map(|(id, _)| id.clone())
            .collect();
        ids.iter().filter(|id| self.remove(workspace, id)).count()
    }

    /// Attaches a client (OpenCode's `Pty.attach`). `cursor`: `-1` for only what comes next, a
    /// count of units already seen, or `None` for everything retained.
    pub fn attach(
        &self,
        workspace: &str,
        id: &str,
        cursor: Option<i64>,
    ) -> Result<Attached, AttachError> {
        let mut map = self.lock();
        map.next_key += 1;
        let key = map.next_key;
        let session = map
            .by_id
            .get_mut(id)
            .filter(|s| s.workspace == workspace)
            .ok_or(AttachError::NotFound)?;
        let Some(live) = &session.live else {
            return Err(AttachError::Exited);
        };
        let input = live.input.clone();
        let now = session.replay.cursor();
        let from = match cursor {
            Some(-1) => now,
            Some(c) => c.max(0) as u64,
            None => 0,
        };
        let replay = session.replay.since(from);
        let (tx, output) = mpsc::channel(CLIENT_QUEUE);
        session.subscribers.insert(key, tx);
        Ok(Attached {
            replay,
            cursor: now,
            output,
            input,
            key,
        })
    }

    /// Forgets an attached client.
    pub fn detach(&self, id: &str, key: u64) {
        if let Some(s) = self.lock().by_id.get_mut(id) {
            s.subscribers.remove(&key);
        }
    }

    /// Output of a session: counted, kept for replay and sent to every attached client.
    fn output(&self, id: &str, data: &str) {
        if data.is_empty() {
            return;
        }
        let mut map = self.lock();
        let Some(session) = map.by_id.get_mut(id) else {
            return;
        };
        session.replay.push(data);
        session
            .subscribers
            .retain(|_, tx| tx.try_send(Output::Data(data.to_string())).is_ok());
    }

    /// The process has exited: status and exit code, clients' streams ended, the oldest exited
    /// sessions beyond [`EXITED_KEPT`] forgotten.
    fn exited(&self, id: &str, code: i32) {
        let mut map = self.lock();
        let Some(session) = map.by_id.get_mut(id) else {
            return;
        };
        if session.info.status == Status::Exited {
            return;
        }
        session.info.status = Status::Exited;
        session.info.exit_code = Some(code);
        session.live = None;
        session.replay.clear();
        session.end_subscribers();
        let workspace = session.workspace.clone();
        map.exited.push_back(id.to_string());
        let mut forget = Vec::new();
        while map.exited.len() > EXITED_KEPT {
            if let Some(old) = map.exited.pop_front() {
                if let Some(s) = map.by_id.remove(&old) {
                    forget.push((s.workspace, old));
                }
            }
        }
        drop(map);
        self.publish(
            &workspace,
            "pty.exited",
            serde_json::json!({ "id": id, "exitCode": code }),
        );
        for (workspace, old) in forget {
            self.publish(&workspace, "pty.deleted", serde_json::json!({ "id": old }));
        }
    }

    /// Reads the terminal until its process exits, then reports the exit.
    async fn drive(
        self: Arc<Self>,
        id: String,
        mut child: tokio::process::Child,
        master: Arc<AsyncFd<OwnedFd>>,
        reaped: Arc<AtomicBool>,
    ) {
        let pid = child.id().unwrap_or(0);
        let mut decoder = Utf8Stream::default();
        let mut buf = vec![0u8; READ_CHUNK_BYTES];
        let mut open = true;
        let wait = child.wait();
        tokio::pin!(wait);
        let status = loop {
            tokio::select! {
                status = &mut wait => {
                    reaped.store(true, Ordering::SeqCst);
                    break status;
                }
                ready = master.readable(), if open => {
                    let Ok(mut guard) = ready else {
                        open = false;
                        continue;
                    };
                    match guard.try_io(|fd| read(fd.get_ref(), &mut buf)) {
                        Ok(Ok(n)) if n > 0 => self.output(&id, &decoder.decode(&buf[..n])),
                        // EOF or EIO: every slave descriptor is closed.
                        Ok(_) => open = false,
                        Err(_would_block) => {}
                    }
                }
            }
        };
        // What the process wrote before exiting is already in the terminal's buffer.
        while open {
            match read(master.get_ref(), &mut buf) {
                Ok(n) if n > 0 => self.output(&id, &decoder.decode(&buf[..n])),
                _ => open = false,
            }
        }
        self.output(&id, &decoder.finish());
        // OpenCode (bun-pty, portable-pty) reports a process killed by a signal as exit code 1.
        let code = match status {
            Ok(s) => s.code().unwrap_or(1),
            Err(_) => 1,
        };
        // Jobs left in the terminal's session get the hangup a closed terminal window sends.
        signal_session(pid, libc::SIGHUP, false);
        signal_session(pid, libc::SIGCONT, false);
        self.exited(&id, code);
    }
}

/// Writes a session's input to its terminal, in order, waiting while the terminal's input queue is
/// full. Ends when the session ends (every sender dropped) or the terminal is gone.
async fn write_input(master: Arc<AsyncFd<OwnedFd>>, mut input: mpsc::UnboundedReceiver<Vec<u8>>) {
    while let Some(data) = input.recv().await {
        let mut rest = &data[..];
        while !rest.is_empty() {
            let Ok(mut guard) = master.writable().await else {
                return;
            };
            match guard.try_io(|fd| write(fd.get_ref(), rest)) {
                Ok(Ok(n)) => rest = &rest[n..],
                Ok(Err(_)) => return,
                Err(_would_block) => {}
            }
        }
    }
}

fn read(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: reads at most buf.len() bytes into buf from a descriptor we hold.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

fn write(fd: &OwnedFd, data: &[u8]) -> io::Result<usize> {
    // SAFETY: writes at most data.len() bytes from data to a descriptor we hold.
    let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// OpenCode's ascending id: `pty_`, 12 hex digits of milliseconds × 4096 plus a counter, and 14
/// random base-62 characters.
fn new_id() -> String {
    static LAST: AtomicU64 = AtomicU64::new(0);
    const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let ms = crate::util::now_ms();
    // Strictly increasing: the same millisecond bumps the counter, as OpenCode's does.
    let value = LAST
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
            Some((ms * 0x1000 + 1).max(last + 1))
        })
        .map(|last| (ms * 0x1000 + 1).max(last + 1))
        .unwrap_or(ms * 0x1000 + 1);
    let mut random = [0u8; 14];
    getrandom::fill(&mut random).expect("no OS randomness");
    let mut id = format!("pty_{:012x}", value & 0xffff_ffff_ffff);
    id.extend(random.iter().map(|b| BASE62[*b as usize % 62] as char));
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_should_look_like_opencodes_and_ascend() {
        let a = new_id();
        let b = new_id();
        assert_eq!(a.len(), 4 + 12 + 14);
        assert!(a.starts_with("pty_"));
        assert!(a[4..16].bytes().all(|c| c.is_ascii_hexdigit()));
        assert!(a[16..].bytes().all(|c| c.is_ascii_alphanumeric()));
        assert!(a[..16] < b[..16]);
    }

    #[test]
    fn info_should_serialize_as_opencodes_pty_schema() {
        let mut info = Info {
            id: "pty_1".into(),
            title: "t".into(),
            command: "/bin/sh".into(),
            args: vec!["-l".into()],
            cwd: "/w".into(),
            status: Status::Running,
            pid: 7,
            exit_code: None,
        };
        assert_eq!(
            serde_json::to_string(&info).unwrap(),
            r#"{"id":"pty_1","title":"t","command":"/bin/sh","args":["-l"],"cwd":"/w","status":"running","pid":7}"#
        );
        info.status = Status::Exited;
        info.exit_code = Some(3);
        assert!(serde_json::to_string(&info)
            .unwrap()
            .ends_with(r#""status":"exited","pid":7,"exitCode":3}"#));
    }
}
