//! Running `git` in a workspace root the way OpenCode 1.18.33's Git service does: argv only (no
//! shell), OpenCode's `-c` options, `--no-optional-locks`, no terminal prompt, bounded output and
//! time. A git that is missing or fails to start reads as exit code 1 with no output, as in
//! OpenCode.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Options OpenCode passes before every git command.
const OPTIONS: [&str; 11] = [
    "--no-optional-locks",
    "-c",
    "core.autocrlf=false",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.longpaths=true",
    "-c",
    "core.symlinks=true",
    "-c",
    "core.quotepath=false",
];

/// A git command is killed after this long.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Output kept when a caller sets no cap; more is an error for the caller to report.
pub const DEFAULT_MAX_OUTPUT: usize = 32 * 1024 * 1024;

pub struct Output {
    pub code: i32,
    pub stdout: Vec<u8>,
    /// More than the cap was written; `stdout` holds the first `cap` bytes.
    pub truncated: bool,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.code == 0
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Trimmed text, as OpenCode's `O(...)`.
    pub fn trimmed(&self) -> String {
        self.text().trim().to_string()
    }

    /// Non-empty trimmed lines.
    pub fn lines(&self) -> Vec<String> {
        self.text()
            .split('\n')
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// The NUL-separated fields of a `-z` output.
    pub fn fields(&self) -> Vec<String> {
        self.stdout
            .split(|&b| b == 0)
            .filter(|f| !f.is_empty())
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect()
    }
}

/// `git <OPTIONS> <args>` in `cwd`, with `stdin` fed when given, keeping at most `max_output`
/// bytes of stdout (stderr is dropped).
pub fn run(cwd: &Path, args: &[&str], stdin: Option<&[u8]>, max_output: usize) -> Output {
    let failed = Output {
        code: 1,
        stdout: Vec::new(),
        truncated: false,
    };
    let child = Command::new("git")
        .args(OPTIONS)
        .args(args)
        .current_dir(cwd)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_OPTIONAL_LOCKS", "0")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return failed;
    };
    let pid = child.id() as libc::pid_t;
    let deadline = Instant::now() + TIMEOUT;
    // While stdout is read, a watchdog kills a child that outlives TIMEOUT. Once `reaping` is set
    // (under the lock) only this thread touches the child, so no signal can reach a reaped pid.
    let reaping = Arc::new(Mutex::new(false));
    let (done, watch) = mpsc::channel::<()>();
    let watchdog = {
        let reaping = reaping.clone();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = watch.recv_timeout(TIMEOUT) {
                let reaping = reaping.lock().unwrap_or_else(|e| e.into_inner());
                if !*reaping {
                    // SAFETY: `pid` is our child and not reaped yet (see `reaping`).
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        })
    };
    let writer = stdin.map(|data| {
        let data = data.to_vec();
        let mut pipe = child.stdin.take().expect("piped stdin");
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        })
    });
    let mut stdout = Vec::new();
    let mut truncated = false;
    if let Some(out) = child.stdout.take() {
        let _ = out.take(max_output as u64 + 1).read_to_end(&mut stdout);
        if stdout.len() > max_output {
            stdout.truncate(max_output);
            truncated = true;
            let _ = child.kill();
        }
    }
    *reaping.lock().unwrap_or_else(|e| e.into_inner()) = true;
    drop(done);
    let _ = watchdog.join();
    let mut pause = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Ok(None) => {
                let _ = child.kill();
                break child.wait().ok();
            }
            Err(_) => break None,
        }
    };
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    let code = status.and_then(|s| s.code()).unwrap_or(1);
    Output {
        code,
        stdout,
        truncated,
    }
}
