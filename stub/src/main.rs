//! `opencode-remote-stub`: the small static server opencode-remote runs on a remote host, one per
//! remote user, serving every workspace of that user on a Unix socket in its private run directory
//! (`<home>/run/stub.sock`, see [`socket`]). See the protocol crate for the API.
//!
//! ```text
//! opencode-remote-stub serve [--home DIR] [--token-file FILE]
//!                                              replaces a running stub of ours of another version
//! opencode-remote-stub status [--home DIR]     exit 0: running and healthy; 90: not running
//! opencode-remote-stub attach --workspace ID --root DIR [--home DIR]
//!                                              status, then register the workspace (exit 3: refused)
//! opencode-remote-stub version
//! ```

mod error;
mod exec;
mod fsops;
mod listen;
mod local_client;
mod nofollow;
mod oc;
mod owner;
mod paths;
mod pty;
mod search;
mod server;
mod socket;
mod state;
mod util;

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use opencode_remote_protocol::{
    paths as layout, StubInfo, EXIT_ALREADY_RUNNING, MIN_TOKEN_LEN, PROTOCOL_VERSION,
};
use serde_json::json;

use crate::util::{atomic_write, log, now_ms};

/// musl's allocator returns memory to the kernel eagerly, so every request paid for fresh mappings
/// and page faults (a 100 KiB read took 2.5 ms, half of it there); dlmalloc keeps what it has. The
/// same allocator on every target, so the tests' host build runs what ships.
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

/// The version `version` prints and health reports; embedded at build time.
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Threads for blocking work (file operations, glob, grep); the server itself is one thread.
const BLOCKING_THREADS: usize = 8;
/// Idle blocking threads exit after this.
const BLOCKING_KEEP_ALIVE: Duration = Duration::from_secs(10);

const USAGE: &str = "usage:
  opencode-remote-stub serve [--home DIR] [--token-file FILE]
  opencode-remote-stub status [--home DIR]
  opencode-remote-stub attach --workspace ID --root DIR [--home DIR]
  opencode-remote-stub version";

#[derive(Debug, PartialEq)]
enum Command {
    Serve {
        home: PathBuf,
        token_file: PathBuf,
    },
    Status {
        home: PathBuf,
    },
    Attach {
        home: PathBuf,
        workspace: String,
        root: String,
    },
    Version,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match parse_args(&args).and_then(run) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("opencode-remote-stub: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn default_home() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set; pass --home")?;
    Ok(PathBuf::from(home).join(layout::HOME_DIR))
}

fn parse_args(args: &[String]) -> Result<Command> {
    let Some(sub) = args.first() else {
        bail!("{USAGE}");
    };
    let mut home = None;
    let mut token_file = None;
    let mut workspace = None;
    let mut root = None;
    let mut rest = args[1..].iter();
    while let Some(flag) = rest.next() {
        let mut value = || {
            rest.next()
                .cloned()
                .with_context(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--token-file" if sub == "serve" => token_file = Some(PathBuf::from(value()?)),
            "--home" => home = Some(PathBuf::from(value()?)),
            "--workspace" if sub == "attach" => workspace = Some(value()?),
            "--root" if sub == "attach" => root = Some(value()?),
            _ => bail!("unknown argument {flag:?}\n{USAGE}"),
        }
    }
    let home = match home {
        Some(h) => h,
        None if sub == "version" => PathBuf::new(),
        None => default_home()?,
    };
    match sub.as_str() {
        "serve" => Ok(Command::Serve {
            token_file: token_file.unwrap_or_else(|| home.join(layout::TOKEN_FILE)),
            home,
        }),
        "status" => Ok(Command::Status { home }),
        "attach" => Ok(Command::Attach {
            home,
            workspace: workspace.context("attach needs --workspace")?,
            root: root.context("attach needs --root")?,
        }),
        "version" | "--version" => Ok(Command::Version),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            std::process::exit(0);
        }
        other => bail!("unknown command {other:?}\n{USAGE}"),
    }
}

fn run(cmd: Command) -> Result<i32> {
    match cmd {
        Command::Version => {
            println!("{VERSION}");
            Ok(0)
        }
        Command::Status { home } => local_client::status(&home),
        Command::Attach {
            home,
            workspace,
            root,
        } => local_client::attach(&home, &workspace, &root),
        Command::Serve { home, token_file } => serve(&home, &token_file),
    }
}

/// Reads the token file: it must not be readable by group or others, and is trimmed. Errors never
/// contain the token.
pub(crate) fn read_token(path: &Path) -> Result<Vec<u8>> {
    let meta = fs::metadata(path).with_context(|| format!("token file {}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        bail!(
            "token file {} is accessible by group or others; chmod 600 it",
            path.display()
        );
    }
    let raw = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let token = raw.trim_ascii().to_vec();
    if token.len() < MIN_TOKEN_LEN || !token.iter().all(|b| b.is_ascii_graphic()) {
        bail!(
            "token file {} must hold one token of at least {MIN_TOKEN_LEN} printable characters",
            path.display()
        );
    }
    Ok(token)
}

fn make_dirs(home: &Path) -> Result<()> {
    let mut builder = DirBuilder::new();
    builder.recursive(true).mode(0o700);
    for dir in std::iter::once("").chain(layout::ALL_DIRS) {
        let path = home.join(dir);
        builder
            .create(&path)
            .with_context(|| format!("creating {}", path.display()))?;
    }
    Ok(())
}

/// Takes the home's lock (held until the process exits): a second stub on the same home would
/// race the first over the state files. `None` when another stub holds it.
fn lock_home(home: &Path) -> Result<Option<fs::File>> {
    let path = home.join(layout::LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: flock on a descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Ok(None);
    }
    Ok(Some(file))
}

/// How long an older stub we replace gets to stop (its commands' kill grace, plus slack).
const REPLACE_DEADLINE: Duration = Duration::from_secs(10);

/// When the home's lock is held by a stub of ours of another version or protocol (an upgrade), stops
/// it with SIGTERM and takes the lock once it is gone. Only a process of our uid running a stub binary
/// from our home (checked through `/proc`) is signalled. `None` when the holder is a stub like this
/// one, is not ours, or does not stop in time.
fn replace_older(home: &Path) -> Result<Option<fs::File>> {
    let Ok(info) = fs::read(home.join(layout::INFO_FILE))
        .map_err(anyhow::Error::from)
        .and_then(|b| Ok(serde_json::from_slice::<StubInfo>(&b)?))
    else {
        return Ok(None);
    };
    if info.version == VERSION && info.protocol == PROTOCOL_VERSION {
        return Ok(None);
    }
    if let Err(why) = owner::check_process(home, info.pid) {
        eprintln!("opencode-remote-stub: not replacing the recorded stub: {why}");
        return Ok(None);
    }
    eprintln!(
        "opencode-remote-stub: stopping stub {} (protocol {}, pid {}) to replace it",
        info.version, info.protocol, info.pid
    );
    // SAFETY: kill(2) with a pid just checked to be one of our stubs; no memory is involved.
    unsafe { libc::kill(info.pid as libc::pid_t, libc::SIGTERM) };
    let deadline = std::time::Instant::now() + REPLACE_DEADLINE;
    while std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        if let Some(lock) = lock_home(home)? {
            return Ok(Some(lock));
        }
    }
    Ok(None)
}

fn serve(home: &Path, token_file: &Path) -> Result<i32> {
    make_dirs(home)?;
    let lock = match lock_home(home)? {
        Some(lock) => Some(lock),
        None => replace_older(home)?,
    };
    let Some(_lock) = lock else {
        let info = fs::read_to_string(home.join(layout::INFO_FILE)).unwrap_or_default();
        eprintln!(
            "opencode-remote-stub: another stub already serves {}: {}",
            home.display(),
            info.trim()
        );
        return Ok(EXIT_ALREADY_RUNNING);
    };
    let token = read_token(token_file)?;
    util::init_log(&home.join(layout::LOG_FILE)).context("opening the log file")?;
    cleanup_old_binaries(home);
    let started_at = now_ms();
    let app = Arc::new(server::App {
        token,
        state: state::State::load(home, std::env::var_os("HOME").map(PathBuf::from)),
        execs: Arc::default(),
        ptys: Arc::default(),
        tickets: Default::default(),
        started_at,
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .thread_keep_alive(BLOCKING_KEEP_ALIVE)
        .build()
        .context("starting the runtime")?;
    let (listener, socket_file) = socket::bind(home)?;
    let (attach_listener, attach_file) = socket::bind_attach(home)?;
    runtime.block_on(async move {
        let listener =
            tokio::net::UnixListener::from_std(listener).context("listening on the socket")?;
        let attach_listener = tokio::net::UnixListener::from_std(attach_listener)
            .context("listening on the attach socket")?;
        let shutdown = shutdown_signal();
        let info = StubInfo {
            pid: std::process::id(),
            socket: socket_file.path.to_string_lossy().into_owned(),
            version: VERSION.to_string(),
            protocol: PROTOCOL_VERSION,
            started_at,
        };
        let info_json = serde_json::to_string(&info)?;
        let info_file = home.join(layout::INFO_FILE);
        atomic_write(&info_file, info_json.as_bytes(), Some(0o600))
            .with_context(|| format!("writing {}", info_file.display()))?;
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "{info_json}");
        let _ = stdout.flush();
        log(
            "info",
            "listening",
            json!({ "socket": info.socket, "pid": info.pid, "version": VERSION, "workspaces": app.state.count() }),
        );
        let attach_router = server::attach_router(app.clone(), info.clone());
        tokio::select! {
            () = listen::serve(listener, server::router(app.clone())) => {}
            () = listen::serve(attach_listener, attach_router) => {}
            signal = shutdown => {
                log("info", "stopping", json!({ "signal": signal }));
            }
        }
        let running = app.execs.cancel_all(None);
        let deadline = tokio::time::Instant::now() + exec::KILL_GRACE + Duration::from_secs(1);
        while app.execs.count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Only remove the address file and the socket if they are still ours.
        if fs::read_to_string(&info_file).ok().as_deref() == Some(info_json.as_str()) {
            let _ = fs::remove_file(&info_file);
        }
        socket_file.remove_file();
        attach_file.remove_file();
        log("info", "stopped", json!({ "cancelledCommands": running }));
        anyhow::Ok(())
    })?;
    Ok(0)
}

/// Installs the handlers at once (the caller does so before announcing that it listens: a SIGTERM
/// sent as soon as `run/stub.json` appears must still stop the stub cleanly, removing its socket),
/// and returns the future that ends with the first stopping signal.
fn shutdown_signal() -> impl std::future::Future<Output = &'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    );
    async move {
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) = handlers else {
            return std::future::pending::<&'static str>().await;
        };
        loop {
            tokio::select! {
                _ = term.recv() => return "SIGTERM",
                _ = int.recv() => return "SIGINT",
                // Started from an SSH session, the stub must outlive it.
                _ = hup.recv() => continue,
            }
        }
    }
}

fn parse_version(v: &str) -> Option<Vec<u64>> {
    v.split('.').map(|p| p.parse().ok()).collect()
}

/// Deletes `bin/<version>/` directories of versions older than this one that no running process
/// executes (checked through `/proc/*/exe`, or an emulator's mapped files: [`owner::programs`]). Best
/// effort.
fn cleanup_old_binaries(home: &Path) {
    let Some(ours) = parse_version(VERSION) else {
        return;
    };
    let Ok(dir) = fs::read_dir(home.join(layout::BIN_DIR)) else {
        return;
    };
    let old: Vec<PathBuf> = dir
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| parse_version(&e.file_name().to_string_lossy()).is_some_and(|v| v < ours))
        .map(|e| e.path())
        .collect();
    if old.is_empty() {
        return;
    }
    let running: Vec<PathBuf> = fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter_map(owner::programs)
        .flatten()
        .collect();
    for dir in old {
        if running.iter().any(|exe| exe.starts_with(&dir)) {
            continue;
        }
        let removed = fs::remove_dir_all(&dir).is_ok();
        log(
            "info",
            "removed old stub version",
            json!({ "dir": dir, "ok": removed }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// No address to choose: the stub listens on its socket and nowhere else (no TCP port).
    #[test]
    fn serve_should_take_no_listen_address() {
        let err = parse_args(&args(&["serve", "--listen", "127.0.0.1:0", "--home", "/h"]));
        assert!(format!("{:#}", err.unwrap_err()).contains("unknown argument"));
        let ok = parse_args(&args(&["serve", "--home", "/h"])).unwrap();
        assert_eq!(
            ok,
            Command::Serve {
                home: "/h".into(),
                token_file: "/h/run/stub.token".into(),
            }
        );
    }

    #[test]
    fn parse_args_should_reject_unknown_flags() {
        assert!(parse_args(&args(&["serve", "--bogus"])).is_err());
        assert!(parse_args(&args(&["status", "--listen", "x"])).is_err());
        assert_eq!(parse_args(&args(&["version"])).unwrap(), Command::Version);
    }

    #[test]
    fn versions_should_compare_numerically() {
        assert!(parse_version("0.9.0") < parse_version("0.10.0"));
        assert_eq!(parse_version("1.2.x"), None);
    }
}
