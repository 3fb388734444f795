//! Test harness: starts the real stub binary on its Unix socket with a temp home and token, and talks
//! HTTP/1.1 to it with a small std-only client (so a test can read a stream line by line, or drop
//! the connection half-way).

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use opencode_remote_protocol::{ExecEvent, StubInfo};
use serde_json::Value;

/// The stub under test: this build's binary, or `OPENCODE_REMOTE_STUB_BIN` (e.g. a release binary
/// from `stub/dist/`), run through `OPENCODE_REMOTE_STUB_RUNNER` when set (e.g. `qemu-aarch64`).
pub fn bin() -> PathBuf {
    std::env::var_os("OPENCODE_REMOTE_STUB_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_opencode-remote-stub")))
}

/// A command running the stub under test.
pub fn stub_command() -> Command {
    match std::env::var_os("OPENCODE_REMOTE_STUB_RUNNER") {
        Some(runner) => {
            let mut c = Command::new(runner);
            c.arg(bin());
            c
        }
        None => Command::new(bin()),
    }
}

/// The architecture the stub under test reports (`OPENCODE_REMOTE_STUB_ARCH`, default this one).
pub fn stub_arch() -> String {
    std::env::var("OPENCODE_REMOTE_STUB_ARCH").unwrap_or_else(|_| std::env::consts::ARCH.into())
}
/// Any single test request should answer well within this.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// A temp tree: `home/` (the stub's home), `user/` (its `$HOME`), and room for workspace roots.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub token: String,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let token = format!("tok-{}", random_hex());
        let sandbox = Sandbox { dir, token };
        fs::create_dir_all(sandbox.home().join("run")).unwrap();
        fs::create_dir_all(sandbox.user_home()).unwrap();
        let token_file = sandbox.home().join("run/stub.token");
        fs::write(&token_file, format!("{}\n", sandbox.token)).unwrap();
        fs::set_permissions(&token_file, fs::Permissions::from_mode(0o600)).unwrap();
        sandbox
    }

    /// Canonical path of the temp dir (it may sit behind a symlinked /tmp).
    pub fn path(&self) -> PathBuf {
        fs::canonicalize(self.dir.path()).unwrap()
    }

    pub fn home(&self) -> PathBuf {
        self.path().join("home")
    }

    pub fn user_home(&self) -> PathBuf {
        self.path().join("user")
    }

    pub fn start(&self) -> Stub {
        Stub::start(&self.home(), &self.user_home(), &self.token)
    }
}

fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A running stub; killed when dropped.
pub struct Stub {
    pub child: Child,
    /// The socket it listens on (`run/stub.sock` under its home).
    pub socket: PathBuf,
    pub token: String,
    pub home: PathBuf,
}

impl Stub {
    pub fn start(home: &Path, user_home: &Path, token: &str) -> Stub {
        let mut child = stub_command()
            .args(["serve", "--home"])
            .arg(home)
            .env("HOME", user_home)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The stub prints its StubInfo as one line once it listens.
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let info: StubInfo = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("stub did not start ({e}): {line:?}"));
        assert_eq!(info.pid, child.id());
        let recorded: StubInfo =
            serde_json::from_slice(&fs::read(home.join("run/stub.json")).unwrap()).unwrap();
        assert_eq!(
            recorded, info,
            "run/stub.json matches what the stub printed"
        );
        Stub {
            child,
            socket: PathBuf::from(&info.socket),
            token: token.to_string(),
            home: home.to_path_buf(),
        }
    }

    /// SIGKILL, like a crash: nothing gets saved on the way out.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// From now on, the stub may hold at most `limit` descriptors at once (`RLIMIT_NOFILE`, soft;
    /// the hard limit stays, so a later call can raise it again). Returns the limit it had.
    pub fn limit_open_files(&self, limit: u64) -> u64 {
        let pid = self.pid() as libc::pid_t;
        let mut rlimit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: prlimit reads the new limit (when given) and writes only the old one.
        let got = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut rlimit) };
        assert_eq!(got, 0, "prlimit: {}", std::io::Error::last_os_error());
        let before = rlimit.rlim_cur;
        rlimit.rlim_cur = limit;
        let set = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &rlimit, std::ptr::null_mut()) };
        assert_eq!(set, 0, "prlimit: {}", std::io::Error::last_os_error());
        before
    }

    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        call(&self.socket, Some(&self.token), method, path, body)
    }

    /// POST and expect 200.
    pub fn ok(&self, path: &str, body: Value) -> Value {
        let (status, answer) = self.call("POST", path, Some(&body));
        assert_eq!(status, 200, "{path} {body}: {answer}");
        answer
    }

    /// POST and expect an error status; returns the `error` object.
    pub fn err(&self, path: &str, body: Value, want: u16) -> Value {
        let (status, answer) = self.call("POST", path, Some(&body));
        assert_eq!(status, want, "{path} {body}: {answer}");
        answer["error"].clone()
    }

    pub fn register(&self, id: &str, root: &Path) -> Value {
        self.ok(
            "/v1/workspaces",
            serde_json::json!({ "id": id, "root": root }),
        )
    }

    pub fn exec(&self, ws: &str, body: Value) -> ExecStream {
        ExecStream::open(
            &self.socket,
            &self.token,
            &format!("/v1/workspaces/{ws}/exec"),
            &body,
        )
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(self.home.join("log/stub.log")).unwrap_or_default()
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn connect(socket: &Path) -> UnixStream {
    let stream = UnixStream::connect(socket).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

fn send(
    stream: &mut UnixStream,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&Value>,
) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let json = [("Content-Type", "application/json")];
    let request = request_text(method, path, token, &json, &body);
    stream.write_all(request.as_bytes()).unwrap();
}

/// A whole HTTP/1.1 request (`Connection: close`), to be sent in one write: a route that ignores
/// its body may answer and close before a second write, which would then fail with EPIPE.
pub fn request_text(
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: &str,
) -> String {
    let mut text = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(token) = token {
        text.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(body);
    text
}

/// Reads the status line and headers; returns the status and whether the body is chunked.
fn read_head(reader: &mut impl BufRead) -> (u16, bool, Option<usize>) {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut chunked = false;
    let mut length = None;
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let lower = l.to_ascii_lowercase();
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().ok();
        }
    }
    (status, chunked, length)
}

/// Decodes an HTTP/1.1 chunked body.
pub struct Chunked<R> {
    inner: R,
    left: usize,
    done: bool,
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        if self.left == 0 {
            let mut size = String::new();
            self.inner.read_line(&mut size)?;
            if size.is_empty() {
                self.done = true;
                return Ok(0);
            }
            let size = size.trim();
            let size = size.split(';').next().unwrap_or("");
            self.left = usize::from_str_radix(size, 16).map_err(std::io::Error::other)?;
            if self.left == 0 {
                self.done = true;
                return Ok(0);
            }
        }
        let want = buf.len().min(self.left);
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n;
        if self.left == 0 {
            let mut crlf = [0u8; 2];
            self.inner.read_exact(&mut crlf)?;
        }
        Ok(n)
    }
}

pub fn call(
    socket: &Path,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let (status, raw) = call_raw(socket, token, method, path, body);
    let value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    (status, value)
}

pub fn call_raw(
    socket: &Path,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Vec<u8>) {
    let mut stream = connect(socket);
    send(&mut stream, token, method, path, body);
    let mut reader = BufReader::new(stream);
    let (status, chunked, length) = read_head(&mut reader);
    let mut raw = Vec::new();
    if chunked {
        Chunked {
            inner: reader,
            left: 0,
            done: false,
        }
        .read_to_end(&mut raw)
        .unwrap();
    } else if let Some(n) = length {
        raw.resize(n, 0);
        reader.read_exact(&mut raw).unwrap();
    } else {
        reader.read_to_end(&mut raw).unwrap();
    }
    (status, raw)
}

/// An exec answer read event by event.
pub struct ExecStream {
    pub status: u16,
    lines: Option<BufReader<Chunked<BufReader<UnixStream>>>>,
    pub error: Option<Value>,
}

impl ExecStream {
    pub fn open(socket: &Path, token: &str, path: &str, body: &Value) -> ExecStream {
        let mut stream = connect(socket);
        send(&mut stream, Some(token), "POST", path, Some(body));
        let mut reader = BufReader::new(stream);
        let (status, chunked, length) = read_head(&mut reader);
        if status != 200 {
            let mut raw = vec![0u8; length.unwrap_or(0)];
            reader.read_exact(&mut raw).unwrap();
            let v: Value = serde_json::from_slice(&raw).unwrap();
            return ExecStream {
                status,
                lines: None,
                error: Some(v["error"].clone()),
            };
        }
        assert!(chunked, "exec answers a chunked stream");
        ExecStream {
            status,
            lines: Some(BufReader::new(Chunked {
                inner: reader,
                left: 0,
                done: false,
            })),
            error: None,
        }
    }

    /// The next event, or `None` at the end of the stream.
    pub fn next(&mut self) -> Option<ExecEvent> {
        let mut line = String::new();
        let n = self.lines.as_mut()?.read_line(&mut line).unwrap();
        if n == 0 {
            return None;
        }
        Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad exec event {line:?}: {e}")))
    }

    /// All remaining events.
    pub fn rest(&mut self) -> Vec<ExecEvent> {
        std::iter::from_fn(|| self.next()).collect()
    }
}

/// Whether a process is gone: no `/proc/<pid>`, or only a zombie waiting for its reaper.
pub fn process_gone(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rfind(')')
            .map(|i| stat[i + 1..].trim_start().starts_with('Z'))
            .unwrap_or(false),
    }
}

/// Polls `cond` every 20 ms until it holds or `within` passes.
pub fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > within {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `VmRSS` of a process in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
