//! Waiting for a round trip on the open connection, reconnecting when it drops.
//!
//! The remote job runs detached, so a lost connection loses nothing: we reconnect with backoff and run
//! the waiter again until the job reports done, the deadline passes or the caller cancels.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::job::{exit, wait_command};
use super::progress::{EventLines, Progress};
use crate::error::{Error, Result};
use crate::session::back::MAX_BACK_FILE_BYTES;
use crate::ssh::config::SshTarget;
use crate::ssh::connect::reconnect_backoff;
use crate::ssh::pool::POOL;

/// What a finished job handed back.
#[derive(Debug)]
pub struct Finished {
    /// The remote `opencode export` of the session.
    pub back: Vec<u8>,
    /// When the remote runner finished, in ns since the epoch (remote clock).
    pub finished_at_ns: Option<u128>,
    /// When the remote run started, in ns since the epoch (remote clock): the messages it made are newer.
    pub started_at_ns: Option<u128>,
    /// How many times the connection had to be re-established.
    pub reconnects: u32,
}

pub async fn wait_for_job(
    target: &SshTarget,
    job_id: &str,
    timeout: Duration,
    cancel: &CancellationToken,
    progress: &Progress,
) -> Result<Finished> {
    let deadline = Instant::now() + timeout;
    let timed_out = || Error::Timeout {
        host: target.name.clone(),
        what: "waiting for the remote run".into(),
        secs: timeout.as_secs(),
    };
    let mut reconnects = 0;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(timed_out());
        }
        let attempt = async {
            let connection = POOL.get(target).await?;
            let mut lines = EventLines::default();
            let mut on_stderr =
                |bytes: &[u8]| lines.feed(bytes, &mut |step| progress.set_step(step));
            // Past the back-file's own limit the waiter's output is refused while it arrives, not after.
            connection
                .exec_observed(
                    &wait_command(job_id, remaining.as_secs().max(1)),
                    None,
                    MAX_BACK_FILE_BYTES + 64 * 1024,
                    &mut on_stderr,
                )
                .await
        };
        let result = tokio::select! {
            _ = cancel.cancelled() => return Err(Error::Cancelled),
            _ = tokio::time::sleep(remaining) => return Err(timed_out()),
            result = attempt => result,
        };
        match result {
            Ok(output) => match output.exit_status {
                Some(0) => return parse_finished(&output.stdout, reconnects, &target.name),
                Some(exit::RUN_FAILED) => {
                    let status = Header::parse(&output.stdout).status;
                    return Err(run_failed(&target.name, status, clean_log(&output.stderr)));
                }
                Some(exit::UNKNOWN_JOB) => {
                    return Err(Error::RemoteRunFailed {
                        host: target.name.clone(),
                        detail: "the remote job directory is gone".into(),
                        log_tail: String::new(),
                    })
                }
                Some(exit::DEADLINE) => return Err(timed_out()),
                // No status: the channel or the waiter died with the connection; go round again.
                _ => {}
            },
            Err(error @ (Error::Unreachable { .. } | Error::Ssh { .. })) => {
                log::debug!("waiting on {}: {error}; reconnecting", target.name);
            }
            Err(error) => return Err(error),
        }
        POOL.evict(target).await;
        reconnects += 1;
        tokio::select! {
            _ = cancel.cancelled() => return Err(Error::Cancelled),
            _ = tokio::time::sleep(reconnect_backoff(reconnects)) => {}
        }
    }
}

/// The waiter's first stdout line: `status=N finished=NS started=NS` (values may be empty).
struct Header {
    status: Option<u32>,
    finished_at_ns: Option<u128>,
    started_at_ns: Option<u128>,
    /// Where the back-file starts in stdout.
    body: usize,
}

impl Header {
    fn parse(stdout: &[u8]) -> Header {
        let newline = stdout
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(stdout.len());
        let line = String::from_utf8_lossy(&stdout[..newline]);
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
                .map(str::to_string)
        };
        Header {
            status: field("status").and_then(|v| v.parse().ok()),
            finished_at_ns: field("finished").and_then(|v| v.parse().ok()),
            started_at_ns: field("started").and_then(|v| v.parse().ok()),
            body: (newline + 1).min(stdout.len()),
        }
    }
}

/// stdout is the header line followed by the back-file.
fn parse_finished(stdout: &[u8], reconnects: u32, host: &str) -> Result<Finished> {
    let header = Header::parse(stdout);
    if header.status != Some(0) {
        return Err(Error::RemoteRunFailed {
            host: host.into(),
            detail: "the waiter reported no status".into(),
            log_tail: String::new(),
        });
    }
    Ok(Finished {
        back: stdout[header.body..].to_vec(),
        finished_at_ns: header.finished_at_ns,
        started_at_ns: header.started_at_ns,
        reconnects,
    })
}

/// Exit statuses run.sh records besides `opencode run`'s own.
const STATUS_EXPORT_FAILED: u32 = 97;
const STATUS_MISSING: u32 = 98;

/// Why the remote run failed, in words: how it ended (a signal, an exit status, a failed export) and, when
/// the log shows it, that the remote disk is full — the one cause the user must fix on the host.
fn run_failed(host: &str, status: Option<u32>, log_tail: String) -> Error {
    let ended = match status {
        Some(STATUS_EXPORT_FAILED) => "the run ended, but exporting its session failed".to_string(),
        Some(STATUS_MISSING) | None => "the run ended without recording its status".to_string(),
        Some(s) if s > 128 => format!("`opencode run` was killed (signal {})", s - 128),
        Some(s) => format!("`opencode run` exited with status {s}"),
    };
    let detail = if disk_full(&log_tail) {
        format!("the remote disk is full ({ended})")
    } else if let Some(cause) = real_cause(&log_tail) {
        format!("{ended}: {cause}")
    } else {
        ended
    };
    Error::RemoteRunFailed {
        host: host.into(),
        detail,
        log_tail,
    }
}

/// The cause OpenCode's error log names (`error="ProviderModelNotFoundError: Model not found: x/y."`):
/// `opencode run` itself only says "Unexpected server error".
fn real_cause(log: &str) -> Option<String> {
    let line = log.lines().rev().find(|l| l.contains(" error=\""))?;
    let start = line.find(" error=\"")? + " error=\"".len();
    let rest = &line[start..];
    let end = rest
        .find("\" ")
        .or_else(|| rest.rfind('"'))
        .unwrap_or(rest.len());
    let cause: String = rest[..end].chars().take(300).collect();
    Some(cause.trim_end_matches('.').to_string()).filter(|c| !c.is_empty())
}

/// Whether remote output says the disk (or OpenCode's database on it) is full.
pub(super) fn disk_full(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    [
        "no space left on device",
        "database or disk is full",
        "enospc",
        "disk quota exceeded",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

/// The waiter's stderr holds heartbeat dots before the log tail; terminal colour codes and other control
/// characters are dropped, since the text goes to the model.
pub(super) fn clean_log(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    // Progress lines (`@<event>`) are for the progress display only.
    // Heartbeat dots precede whatever the waiter prints next, on the same line.
    let text: String = text
        .split_inclusive('\n')
        .filter(|line| !line.starts_with('@'))
        .map(|line| line.trim_start_matches('.'))
        .collect();
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI sequence: ESC [ parameters final-byte
            if chars.next_if_eq(&'[').is_some() {
                while chars.next().is_some_and(|c| !c.is_ascii_alphabetic()) {}
            }
        } else if c == '\n' || c == '\t' || !c.is_control() {
            out.push(c);
        }
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_finished_should_split_header_and_back_file() {
        let finished = parse_finished(
            b"status=0 finished=1700000000123456789\n{\"a\":1}\n",
            2,
            "pi",
        )
        .unwrap();
        assert_eq!(finished.back, b"{\"a\":1}\n");
        assert_eq!(finished.finished_at_ns, Some(1_700_000_000_123_456_789));
        assert_eq!(finished.started_at_ns, None);
        assert_eq!(finished.reconnects, 2);
    }

    #[test]
    fn parse_finished_should_read_the_start_time() {
        let finished = parse_finished(b"status=0 finished=20 started=10\n{}", 0, "pi").unwrap();
        assert_eq!(finished.started_at_ns, Some(10));
        assert_eq!(finished.back, b"{}");
    }

    #[test]
    fn run_failed_should_say_how_the_run_ended() {
        let detail = |status, log: &str| match run_failed("pi", status, log.into()) {
            Error::RemoteRunFailed { detail, .. } => detail,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            detail(Some(137), ""),
            "`opencode run` was killed (signal 9)"
        );
        assert_eq!(
            detail(Some(1), "boom"),
            "`opencode run` exited with status 1"
        );
        assert_eq!(
            detail(Some(97), "export: No space left on device"),
            "the remote disk is full (the run ended, but exporting its session failed)"
        );
        assert_eq!(
            detail(None, ""),
            "the run ended without recording its status"
        );
    }

    #[test]
    fn clean_log_should_drop_heartbeats_and_progress() {
        assert_eq!(clean_log(b"...\nerror: boom\n"), "error: boom");
        assert_eq!(
            clean_log(b"\n@{\"type\":\"text\"}\n...\nerror: boom\n"),
            "error: boom"
        );
    }

    #[test]
    fn run_failed_should_name_the_cause_from_the_server_log() {
        let log = "timestamp=2026 level=ERROR run=1 message=failed ref=err_1 error=\"ProviderModelNotFoundError: \
                   Model not found: fake/nope.\" cause=\"ProviderModelNotFoundError: x\"";
        match run_failed("pi", Some(1), log.into()) {
            Error::RemoteRunFailed { detail, .. } => assert_eq!(
                detail,
                "`opencode run` exited with status 1: ProviderModelNotFoundError: Model not found: fake/nope"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn clean_log_should_drop_terminal_escapes() {
        assert_eq!(
            clean_log(b"\x1b[91m\x1b[1mError: \x1b[0m{\n  \"a\": 1\x07}"),
            "Error: {\n  \"a\": 1}"
        );
    }
}
