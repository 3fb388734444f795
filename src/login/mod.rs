//! `remote_login`: move the current session to a configured host, one-way or there and back.
//!
//! A round trip never imports what comes back: the remote's back-file is read as untrusted data
//! ([`crate::session::back`]) and its assistant work becomes text parts the plugin writes into the
//! local assistant message that made the call. Nothing of the local session is rewritten, so the
//! local agent simply continues after the tool result.

pub mod job;
pub mod local;
pub mod parts;
pub mod progress;
pub mod prompt;
pub mod wait;

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use crate::config::{self, ConfigSources, HostEntry};
use crate::error::{Error, Result};
use crate::session::back::{read_back_file, Returned, Window};
use crate::session::{complete_dispatch_call, DispatchCall, Export};
use crate::ssh::config::{resolve, SshTarget};
use crate::ssh::pool::POOL;
use crate::ssh::quote::quote;
pub use job::Mode;
use local::PendingJob;
use parts::Section;
use progress::{Phase, Progress};

/// Round trips wait this long unless the host entry says otherwise.
pub const DEFAULT_ROUND_TRIP_TIMEOUT: Duration = Duration::from_secs(3600);
/// How long a cancel may spend stopping the remote run before leaving it for the next round trip.
const STOP_TIMEOUT: Duration = Duration::from_secs(6);
/// How long removing a collected job may take before we leave it to the retention rule.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest remote work put into the tool output when there is no message to write parts into.
const MAX_INLINE_OUTPUT_BYTES: usize = 64 * 1024;

pub struct LoginRequest {
    pub session_id: String,
    pub host: String,
    pub mode: Mode,
    pub directory: Option<String>,
    pub message: Option<String>,
    /// The provider's id of this tool call, to find it in the export.
    pub call_id: Option<String>,
    /// The assistant message holding the call: the remote's work is written into it as text parts.
    pub message_id: Option<String>,
    /// The session as the plugin read it in-process; `None` means run `opencode export`.
    pub export_json: Option<Vec<u8>>,
    /// The local `opencode` binary (the running one, when called from the plugin).
    pub opencode_bin: String,
    pub sources: ConfigSources,
    pub progress: Progress,
}

#[derive(Debug)]
pub struct LoginOutcome {
    pub title: String,
    pub output: String,
    pub job_id: String,
    /// Round trip: text parts (JSON `TextPart` objects) for the calling assistant message.
    pub parts: Vec<String>,
    /// What the back-file held that was left out, as `1 user message`, `2 file parts`.
    pub dropped: Vec<String>,
    /// An earlier round trip of this session to this host was collected first.
    pub earlier: bool,
    pub timings: Timings,
}

/// Where the time went, for the benchmark and the logs.
#[derive(Debug, Default, Clone)]
pub struct Timings {
    /// Start of the call until the remote run was launched.
    pub dispatch_ms: f64,
    /// Start of the call until it returned.
    pub total_ms: f64,
    /// Remote runner finished → back-file read and checked here (same-clock hosts only).
    pub finished_to_verified_ms: Option<f64>,
    /// Remote runner finished → this call returning.
    pub finished_to_return_ms: Option<f64>,
    pub reconnects: u32,
}

/// Open (or reuse) the pooled connection to `host`, so a `remote_login` that follows finds it ready.
/// The plugin calls this before reading the session, which overlaps the two.
pub async fn warm(host: &str, sources: &ConfigSources) -> Result<()> {
    let hosts = config::load_hosts(sources)?;
    let target = resolve(hosts.get(host)?)?;
    POOL.get(&target).await.map(|_| ())
}

/// Run a `remote_login`. `cancel` stops it; once a run was dispatched, cancelling also stops that run
/// on the host (or, when the host cannot be reached, leaves it for the next round trip to collect).
pub async fn remote_login(
    request: LoginRequest,
    cancel: CancellationToken,
) -> Result<LoginOutcome> {
    run(&request, &cancel).await
}

/// `future`, or `Cancelled` as soon as `cancel` fires.
async fn cancellable<T>(
    cancel: &CancellationToken,
    future: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    tokio::select! {
        _ = cancel.cancelled() => Err(Error::Cancelled),
        result = future => result,
    }
}

async fn run(request: &LoginRequest, cancel: &CancellationToken) -> Result<LoginOutcome> {
    let started = Instant::now();
    let progress = &request.progress;
    progress.set_phase(Phase::Connecting);
    if !crate::session::is_id(&request.session_id, "ses_") {
        return Err(Error::Session("the session id is malformed".into()));
    }
    if let Some(message_id) = &request.message_id {
        if !crate::session::is_id(message_id, "msg_") {
            return Err(Error::InvalidArgument {
                field: "messageId".into(),
                problem: "it is not an OpenCode message id (msg_…)".into(),
            });
        }
    }
    if let Some(directory) = &request.directory {
        check_directory(directory)?;
    }
    let hosts = config::load_hosts(&request.sources)?;
    let entry = hosts.get(&request.host)?.clone();
    let target = resolve(&entry)?;
    let timeout = entry
        .timeout_secs
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_ROUND_TRIP_TIMEOUT);

    // The handshake and reading the session overlap: both take a while, neither needs the other.
    let (connection, export_bytes) = cancellable(cancel, async {
        let (connection, bytes) = tokio::join!(POOL.get(&target), read_export(request));
        Ok((connection, bytes))
    })
    .await?;
    let connection = connection?;
    let mut export = Export::parse(&export_bytes?)?;
    let known: HashSet<String> = export
        .message_ids()
        .into_iter()
        .map(str::to_string)
        .collect();

    // An earlier round trip of this session to this host that never came back (timed out, cancelled
    // while the host was unreachable, the call died): its work comes first, then this call's own.
    let mut sections = Vec::new();
    let mut notes = Vec::new();
    let mut dropped = crate::session::back::Drops::default();
    let mut earlier = false;
    if request.mode == Mode::RoundTrip {
        if let Some(pending) = PendingJob::load(&request.session_id, &entry.name) {
            earlier = true;
            let when = clock_time(pending.started_at_ms);
            progress.set_phase(Phase::Waiting);
            match collect(&target, &pending, &known, timeout, cancel, progress).await {
                Ok((returned, _)) => {
                    notes.push(format!(
                        "An earlier round trip to {} (started {when}) was still pending; it was collected first \
                         and its work is shown first.",
                        entry.name
                    ));
                    merge_drops(&mut dropped, &returned);
                    sections.push(Section {
                        header: format!(
                            "── earlier round trip on {} (started {when}) ──",
                            entry.name
                        ),
                        items: returned.items,
                    });
                    pending.remove();
                    remove_job(&target, &pending.job_id).await;
                }
                Err(Error::Cancelled) => {
                    return Err(Error::LoginCancelled {
                        host: entry.name.clone(),
                        stopped: false,
                        pending: true,
                    })
                }
                // Still running after the whole timeout: it stays pending, nothing new is started.
                Err(error @ Error::Timeout { .. }) => return Err(error),
                Err(
                    error @ (Error::Unreachable { .. }
                    | Error::Ssh { .. }
                    | Error::AuthFailed { .. }),
                ) => return Err(error),
                Err(error) => {
                    // Failed or unreadable: it will never come back; say so and go on.
                    pending.remove();
                    notes.push(format!(
                        "An earlier round trip to {} (started {when}) could not be collected: {}",
                        entry.name,
                        error.public_message()
                    ));
                }
            }
        }
    }

    let job_id = job::new_job_id();
    let title = match request.mode {
        Mode::OneWay => format!("Session handed off to {}", entry.name),
        Mode::RoundTrip => format!("Session dispatched to {} (round trip)", entry.name),
    };
    complete_dispatch_call(
        &mut export,
        &DispatchCall {
            call_id: request.call_id.as_deref(),
            host: &entry.name,
            title: title.clone(),
            output: format!("Logged in to {}. Continue the task here.", entry.name),
        },
    );
    // The remote runs with the host entry's agent and model, else its own defaults: never the local
    // session's record, which `opencode run --session` would otherwise pick up.
    export.clear_agent_model();

    let directory = request
        .directory
        .clone()
        .or_else(|| entry.directory.clone());
    let message = prompt::remote_continuation(
        &entry.name,
        directory.as_deref(),
        request.mode,
        request.message.as_deref(),
    );
    let session_json = export.to_json();
    let bundle = job::bundle(&job::JobSpec {
        session_id: &request.session_id,
        session_json: &session_json,
        message: &message,
        mode: request.mode,
        directory: directory.as_deref(),
        agent: entry.agent.as_deref(),
        model: entry.model.as_deref(),
        opencode: entry.opencode.as_deref(),
    })
    .map_err(|e| Error::io("packing the job", e))?;

    let pending = PendingJob {
        job_id: job_id.clone(),
        host: entry.name.clone(),
        session_id: request.session_id.clone(),
        started_at_ms: now_ms(),
        prompt: message.clone(),
    };
    // Saved before the dispatch goes out: a call that is cancelled or dies from here on leaves a job
    // the next round trip can find.
    if request.mode == Mode::RoundTrip {
        pending.save()?;
    }
    progress.set_phase(Phase::Dispatching);
    let command = job::dispatch_command(&job_id);
    let dispatch = match cancellable(cancel, connection.exec(&command, Some(&bundle))).await {
        Ok(output) => output,
        Err(Error::Cancelled) => return Err(stop(&target, &pending, request.mode).await),
        Err(error) => return Err(error),
    };
    if let Err(error) = check_dispatch(&entry, &dispatch) {
        pending.remove();
        return Err(error);
    }
    let dispatch_ms = started.elapsed().as_secs_f64() * 1000.0;

    if request.mode == Mode::OneWay {
        let hint = follow_hint(&entry, &target, &request.session_id, directory.as_deref());
        // A mark that stays in the transcript (the toast goes after a few seconds): where the session
        // went and how to follow it.
        let parts = request
            .message_id
            .as_ref()
            .map_or_else(Vec::new, |message_id| {
                let section = Section {
                    header: format!("── handed over to {} ──", entry.name),
                    items: vec![format!(
                        "This session now continues on {}; this copy stops here. {hint}",
                        entry.name
                    )],
                };
                parts::build(&request.session_id, message_id, &[section]).parts
            });
        return Ok(LoginOutcome {
            output: format!(
                "Session {} now continues on {} (remote log: ~/{}/{job_id}/run.log). {hint} This conversation \
                 ends here: do not reply or continue the task locally.",
                request.session_id,
                entry.name,
                job::JOBS_DIR,
            ),
            title,
            job_id,
            parts,
            dropped: Vec::new(),
            earlier: false,
            timings: Timings {
                dispatch_ms,
                total_ms: dispatch_ms,
                ..Timings::default()
            },
        });
    }

    progress.set_phase(Phase::Waiting);
    let (returned, timings) =
        match collect(&target, &pending, &known, timeout, cancel, progress).await {
            Ok(done) => done,
            Err(Error::Cancelled) => return Err(stop(&target, &pending, request.mode).await),
            // The job is done and its back-file will not change: collecting it again would fail the same
            // way. Its files stay on the host for a look.
            Err(error @ (Error::RemoteRunFailed { .. } | Error::Session(_))) => {
                pending.remove();
                return Err(error);
            }
            Err(error) => return Err(error),
        };
    pending.remove();
    merge_drops(&mut dropped, &returned);
    let messages = returned.messages;
    sections.push(Section {
        header: format!(
            "── work done on {} ({messages} message{}) ──",
            entry.name,
            if messages == 1 { "" } else { "s" }
        ),
        items: returned.items,
    });

    progress.set_phase(Phase::Writing);
    let (parts, inline) = match &request.message_id {
        Some(message_id) => (
            parts::build(&request.session_id, message_id, &sections).parts,
            None,
        ),
        None => (Vec::new(), Some(inline_text(&sections))),
    };
    remove_job(&target, &pending.job_id).await;

    let dropped_items = dropped.summary();
    let mut output = format!(
        "The round trip to {host} is finished: the remote's work ({messages} message{s}) is shown {where_} as \
         text. You are on the local machine again: files and paths on {host} are not reachable from here (use \
         remote_login again for that). Review what was done there, do not repeat it, and continue the task.",
        host = entry.name,
        s = if messages == 1 { "" } else { "s" },
        where_ = if inline.is_some() { "below" } else { "after this call" },
    );
    for note in &notes {
        output.push_str("\n\n");
        output.push_str(note);
    }
    if !dropped_items.is_empty() {
        output.push_str(&format!(
            "\n\nLeft out of what came back (only the remote's text and tool results are shown): dropped {}.",
            dropped_items.join(", ")
        ));
    }
    if let Some(inline) = inline {
        output.push_str("\n\n");
        output.push_str(&inline);
    }
    let mut timings = timings;
    timings.dispatch_ms = dispatch_ms;
    timings.total_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(LoginOutcome {
        title: format!("Round trip via {} completed", entry.name),
        output,
        job_id,
        parts,
        dropped: dropped_items,
        earlier,
        timings,
    })
}

/// Wait for a dispatched round trip and read what it brought back.
async fn collect(
    target: &SshTarget,
    pending: &PendingJob,
    known: &HashSet<String>,
    timeout: Duration,
    cancel: &CancellationToken,
    progress: &Progress,
) -> Result<(Returned, Timings)> {
    let finished = wait::wait_for_job(target, &pending.job_id, timeout, cancel, progress).await?;
    progress.set_phase(Phase::Collecting);
    let started_ms = finished
        .started_at_ns
        .map(|ns| (ns / 1_000_000) as u64)
        .ok_or_else(|| Error::Session("the remote run did not record when it started".into()))?;
    let window = Window {
        session_id: &pending.session_id,
        known,
        started_ms,
        finished_ms: finished.finished_at_ns.map(|ns| (ns / 1_000_000) as u64),
        prompt: Some(pending.prompt.as_str()).filter(|p| !p.is_empty()),
    };
    let returned = read_back_file(&finished.back, &target.name, &window)?;
    if returned.older > 0 {
        log::debug!(
            "{}: left out {} message(s) an earlier job left in the remote copy",
            target.name,
            returned.older
        );
    }
    let verified_at = SystemTime::now();
    let since_finish = |at: SystemTime| {
        let finished = finished.finished_at_ns?;
        let at = at.duration_since(UNIX_EPOCH).ok()?.as_nanos();
        Some((at.checked_sub(finished)? as f64) / 1e6)
    };
    let timings = Timings {
        finished_to_verified_ms: since_finish(verified_at),
        finished_to_return_ms: since_finish(SystemTime::now()),
        reconnects: finished.reconnects,
        ..Timings::default()
    };
    Ok((returned, timings))
}

fn merge_drops(into: &mut crate::session::back::Drops, returned: &Returned) {
    into.merge(&returned.dropped);
}

/// Stop a cancelled job's run on the host, within [`STOP_TIMEOUT`], and say what became of it.
async fn stop(target: &SshTarget, pending: &PendingJob, mode: Mode) -> Error {
    let stopped = tokio::time::timeout(STOP_TIMEOUT, async {
        let connection = POOL.get(target).await?;
        connection
            .exec(&job::stop_command(&pending.job_id), None)
            .await
    })
    .await;
    let stopped = matches!(&stopped, Ok(Ok(output)) if output.success());
    if stopped {
        pending.remove();
    } else {
        log::debug!("{}: could not stop job {}", target.name, pending.job_id);
    }
    Error::LoginCancelled {
        host: target.name.clone(),
        stopped,
        pending: !stopped && mode == Mode::RoundTrip,
    }
}

/// Remove a collected job from the host (it holds the whole conversation); best effort, the dispatch
/// script's retention rule catches what this misses.
async fn remove_job(target: &SshTarget, job_id: &str) {
    let removed = tokio::time::timeout(REMOVE_TIMEOUT, async {
        let connection = POOL.get(target).await?;
        connection.exec(&job::remove_command(job_id), None).await
    })
    .await;
    if !matches!(removed, Ok(Ok(_))) {
        log::debug!("{}: could not remove job {job_id}", target.name);
    }
}

/// How the user follows a one-way session on the host, naming the host only as configured: `ssh pi`
/// when the entry's name is itself an ssh alias, else in words.
fn follow_hint(
    entry: &HostEntry,
    target: &SshTarget,
    session_id: &str,
    directory: Option<&str>,
) -> String {
    let place = directory.unwrap_or("~");
    let is_alias = entry.address == entry.name && target.hostname != entry.name;
    if is_alias {
        let inner = match directory {
            Some(dir) => format!("cd {} && opencode --session {session_id}", quote(dir)),
            None => format!("opencode --session {session_id}"),
        };
        format!("To follow it: `ssh -t {} {}`.", entry.name, quote(&inner))
    } else {
        format!(
            "To follow it: on {}, run `opencode --session {session_id}` in {}.",
            entry.name,
            if directory.is_some() {
                place
            } else {
                "the home directory"
            }
        )
    }
}

/// The remote's work as one text, for a caller that gave no message to write parts into.
fn inline_text(sections: &[Section]) -> String {
    let mut text = String::new();
    for section in sections {
        for line in std::iter::once(&section.header).chain(&section.items) {
            if text.len() + line.len() > MAX_INLINE_OUTPUT_BYTES {
                text.push_str("\n… (the rest was left out)");
                return text;
            }
            text.push_str(line);
            text.push_str("\n\n");
        }
    }
    text.trim_end().to_string()
}

/// `HH:MM` of a local-clock ms timestamp, for "started 14:05".
fn clock_time(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .map(|t| t.with_timezone(&chrono::Local).format("%H:%M").to_string())
        .unwrap_or_else(|| "earlier".into())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

async fn read_export(request: &LoginRequest) -> Result<Vec<u8>> {
    match &request.export_json {
        Some(bytes) => Ok(bytes.clone()),
        None => {
            local::export_session(
                &request.opencode_bin,
                &request.session_id,
                request.sources.project_dir.as_deref(),
            )
            .await
        }
    }
}

/// Longest path and path component Linux accepts (PATH_MAX including the NUL, NAME_MAX).
const MAX_PATH_BYTES: usize = 4095;
const MAX_NAME_BYTES: usize = 255;

/// Refuse a directory no remote can hold before anything is sent: the remote shell would silently
/// drop a NUL and use another directory, and a too-long path fails only after the dispatch, with an
/// error that spells out the remote home.
fn check_directory(directory: &str) -> Result<()> {
    let problem = if directory.contains('\0') {
        "it contains a NUL character".to_string()
    } else if directory.len() > MAX_PATH_BYTES {
        format!(
            "it is {} bytes long, over {MAX_PATH_BYTES}",
            directory.len()
        )
    } else if directory.split('/').any(|name| name.len() > MAX_NAME_BYTES) {
        format!("a part of it is over {MAX_NAME_BYTES} bytes long")
    } else {
        return Ok(());
    };
    Err(Error::InvalidArgument {
        field: "directory".into(),
        problem,
    })
}

fn check_dispatch(entry: &HostEntry, output: &crate::ssh::exec::ExecOutput) -> Result<()> {
    let host = entry.name.clone();
    let log_tail = wait::clean_log(&output.stderr);
    if output.exit_status != Some(0) && wait::disk_full(&log_tail) {
        return Err(Error::RemoteRunFailed {
            host,
            detail: format!(
                "the remote disk is full: the job could not be written to ~/{}; free some space there and retry",
                job::JOBS_DIR
            ),
            log_tail,
        });
    }
    match output.exit_status {
        Some(0) => Ok(()),
        Some(job::exit::UNPACK_FAILED) => Err(Error::RemoteRunFailed {
            host,
            detail: format!("the job could not be written to ~/{}", job::JOBS_DIR),
            log_tail,
        }),
        Some(job::exit::NO_OPENCODE) => Err(Error::RemoteNoOpencode { host }),
        Some(job::exit::MODEL_MISSING) => Err(Error::RemoteModelMissing {
            host,
            model: entry.model.clone().unwrap_or_default(),
        }),
        Some(job::exit::CANCELLED) => Err(Error::Cancelled),
        Some(job::exit::BAD_DIRECTORY) => Err(Error::RemoteRunFailed {
            host,
            detail: "the working directory could not be created".into(),
            log_tail,
        }),
        Some(job::exit::IMPORT_FAILED) => Err(Error::RemoteRunFailed {
            host,
            detail:
                "`opencode import` failed on the remote (an opencode much older than this one cannot read the \
                 session; a database busy for 20 s also ends here)"
                    .into(),
            log_tail,
        }),
        other => Err(Error::RemoteRunFailed {
            host,
            detail: format!(
                "the dispatch script exited with {}",
                other.map_or("a signal".to_string(), |c| c.to_string())
            ),
            log_tail,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_directory_should_refuse_only_paths_no_remote_can_hold() {
        for ok in [
            "~/w",
            "it's \"q\" $(x) `y`; z\nw",
            "-oProxyCommand=x",
            &"a/".repeat(2000),
        ] {
            assert!(check_directory(ok).is_ok(), "{ok:?}");
        }
        for bad in ["a\0b", &"a".repeat(256), &"ab/".repeat(1400)] {
            let error = check_directory(bad).unwrap_err();
            assert_eq!(error.code(), "INVALID_ARGUMENT");
            assert!(error.public_message().starts_with("Invalid `directory`: "));
        }
    }
}
