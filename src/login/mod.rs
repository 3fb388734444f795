//! `remote_login`: move the current session to a configured host, one-way or there and back.

pub mod job;
pub mod local;
pub mod prompt;
pub mod wait;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use crate::config::{self, ConfigSources, HostEntry};
use crate::error::{Error, Result};
use crate::session::{complete_dispatch_call, AgentModel, DispatchCall, Export};
use crate::ssh::config::{resolve, SshTarget};
use crate::ssh::pool::POOL;
pub use job::Mode;
use local::PendingJob;

/// Round trips wait this long unless the host entry says otherwise.
pub const DEFAULT_ROUND_TRIP_TIMEOUT: Duration = Duration::from_secs(3600);

pub struct LoginRequest {
    pub session_id: String,
    pub host: String,
    pub mode: Mode,
    pub directory: Option<String>,
    pub message: Option<String>,
    /// The provider's id of this tool call, to find it in the export.
    pub call_id: Option<String>,
    /// The session as the plugin read it in-process; `None` means run `opencode export`.
    pub export_json: Option<Vec<u8>>,
    /// The local `opencode` binary (the running one, when called from the plugin).
    pub opencode_bin: String,
    pub sources: ConfigSources,
}

#[derive(Debug)]
pub struct LoginOutcome {
    pub title: String,
    pub output: String,
    pub job_id: String,
    /// Round trip only: the agent and model the local session should continue with.
    pub restore: Option<AgentModel>,
    /// Round trip only: the prompt that wakes the local agent.
    pub continuation: Option<String>,
    pub timings: Timings,
}

/// Where the time went, for the benchmark and the logs.
#[derive(Debug, Default, Clone)]
pub struct Timings {
    /// Start of the call until the remote run was launched.
    pub dispatch_ms: f64,
    /// Start of the call until it returned.
    pub total_ms: f64,
    /// Remote runner finished → back-file verified on local disk (same-clock hosts only).
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

/// Run a `remote_login`; `cancel` stops it at any await point (the remote job, once started, keeps
/// running and stays collectable).
pub async fn remote_login(
    request: LoginRequest,
    cancel: CancellationToken,
) -> Result<LoginOutcome> {
    tokio::select! {
        _ = cancel.cancelled() => Err(Error::Cancelled),
        result = run(&request, &cancel) => result,
    }
}

async fn run(request: &LoginRequest, cancel: &CancellationToken) -> Result<LoginOutcome> {
    let started = Instant::now();
    if !crate::session::is_id(&request.session_id, "ses_") {
        return Err(Error::Session("the session id is malformed".into()));
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

    if request.mode == Mode::RoundTrip {
        if let Some(pending) = PendingJob::load(&request.session_id, &entry.name) {
            return collect(request, &target, pending, None, timeout, started, cancel).await;
        }
    }

    // The handshake and reading the session overlap: both take a while, neither needs the other.
    let (connection, export_bytes) = tokio::join!(POOL.get(&target), read_export(request));
    let connection = connection?;
    let mut export = Export::parse(&export_bytes?)?;
    let restore = export.agent_model();
    let job_id = job::new_job_id();

    let title = match request.mode {
        Mode::OneWay => format!("Session handed off to {}", entry.name),
        Mode::RoundTrip => format!("Session dispatched to {} (round trip)", entry.name),
    };
    let synthetic_parts = complete_dispatch_call(
        &mut export,
        &DispatchCall {
            call_id: request.call_id.as_deref(),
            host: &entry.name,
            title: title.clone(),
            output: format!("Logged in to {}. Continue the task here.", entry.name),
        },
    );
    let remote_agent_model = remote_agent_model(&entry);
    export.set_agent_model(&remote_agent_model);

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

    let command = job::dispatch_command(&job_id);
    let dispatch = tokio::select! {
        _ = cancel.cancelled() => return Err(Error::Cancelled),
        output = connection.exec(&command, Some(&bundle)) => output?,
    };
    check_dispatch(&entry, &dispatch)?;
    let dispatch_ms = started.elapsed().as_secs_f64() * 1000.0;

    if request.mode == Mode::OneWay {
        return Ok(LoginOutcome {
            output: format!(
                "Session {} now continues on {} (remote log: ~/{}/{job_id}/run.log). This conversation ends here: do \
                 not reply or continue the task locally.",
                request.session_id,
                entry.name,
                job::JOBS_DIR
            ),
            title,
            job_id,
            restore: None,
            continuation: None,
            timings: Timings { dispatch_ms, total_ms: dispatch_ms, ..Timings::default() },
        });
    }

    let pending = PendingJob {
        job_id,
        host: entry.name.clone(),
        session_id: request.session_id.clone(),
        synthetic_parts,
    };
    pending.save()?;
    let mut outcome = collect(
        request,
        &target,
        pending,
        Some(export),
        timeout,
        started,
        cancel,
    )
    .await?;
    outcome.restore = Some(restore);
    outcome.timings.dispatch_ms = dispatch_ms;
    outcome.timings.total_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(outcome)
}

/// Wait for a dispatched round trip, verify what comes back and import it locally.
async fn collect(
    request: &LoginRequest,
    target: &SshTarget,
    pending: PendingJob,
    sent: Option<Export>,
    timeout: Duration,
    started: Instant,
    cancel: &CancellationToken,
) -> Result<LoginOutcome> {
    let finished = match wait::wait_for_job(target, &pending.job_id, timeout, cancel).await {
        Err(error @ Error::RemoteRunFailed { .. }) => {
            pending.remove();
            return Err(error);
        }
        other => other?,
    };
    let local_now = Export::parse(&read_export(request).await?)?;
    let mut returned = match verified_return(&finished.back, sent.as_ref(), &local_now) {
        Ok(returned) => returned,
        Err(error) => {
            // The job is done and its back-file will not change: collecting it again would fail the
            // same way and block every later round trip of this session to this host. Its files stay
            // on the host for a look.
            pending.remove();
            return Err(error);
        }
    };
    if let Some(started_ns) = finished.started_at_ns {
        let mut known = local_now.message_ids();
        if let Some(sent) = &sent {
            known.extend(sent.message_ids());
        }
        let stale = returned.drop_stale(&known, (started_ns / 1_000_000) as u64);
        if stale > 0 {
            log::debug!(
                "{}: left out {stale} message(s) an earlier job left in the remote copy",
                target.name
            );
        }
    }
    returned.remove_parts(&pending.synthetic_parts);
    let restore = local_now.agent_model();
    returned.set_agent_model(&restore);
    // `opencode import` never overwrites a message or part it has, but it does add new parts to old
    // messages: only the new messages go in, so a remote can add to the session, never rewrite it.
    returned.keep_new_messages_since(&local_now);
    let new_messages = returned.messages.len();

    let file = local::write_private(
        &format!("returns/{}-{}.json", pending.session_id, pending.job_id),
        &returned.to_json(),
    )?;
    let verified_at = SystemTime::now();
    let cwd = local_now.info.directory.as_ref().map(PathBuf::from);
    local::import_session(&request.opencode_bin, &file, cwd.as_deref()).await?;
    let _ = std::fs::remove_file(&file);
    pending.remove();

    let since_finish = |at: SystemTime| {
        let finished = finished.finished_at_ns?;
        let at = at.duration_since(UNIX_EPOCH).ok()?.as_nanos();
        Some((at.checked_sub(finished)? as f64) / 1e6)
    };
    Ok(LoginOutcome {
        title: format!("Round trip via {} completed", target.name),
        output: format!(
            "The session came back from {} with {new_messages} new message(s), now in this session's history. \
             The local agent continues next.",
            target.name
        ),
        job_id: pending.job_id.clone(),
        restore: Some(restore),
        continuation: Some(prompt::local_return(&target.name)),
        timings: Timings {
            dispatch_ms: 0.0,
            total_ms: started.elapsed().as_secs_f64() * 1000.0,
            finished_to_verified_ms: since_finish(verified_at),
            finished_to_return_ms: since_finish(SystemTime::now()),
            reconnects: finished.reconnects,
        },
    })
}

/// The back-file, parsed and checked to be this session carried forward.
fn verified_return(back: &[u8], sent: Option<&Export>, local_now: &Export) -> Result<Export> {
    let returned = Export::parse(back)?;
    match sent {
        Some(sent) => sent.check_continuation(&returned)?,
        // Resuming: the local session has moved on since the dispatch; the ids must still agree.
        None if returned.info.id != local_now.info.id => {
            return Err(Error::Session(
                "the returned session has a different id".into(),
            ))
        }
        None => {}
    }
    Ok(returned)
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

/// The agent/model the host entry asks for (`provider/model` split at the first slash).
fn remote_agent_model(entry: &HostEntry) -> AgentModel {
    AgentModel {
        agent: entry.agent.clone(),
        model: entry
            .model
            .as_deref()
            .and_then(|m| m.split_once('/'))
            .map(|(p, m)| (p.to_string(), m.to_string())),
    }
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
        Some(job::exit::BAD_DIRECTORY) => Err(Error::RemoteRunFailed {
            host,
            detail: "the working directory could not be created".into(),
            log_tail,
        }),
        Some(job::exit::IMPORT_FAILED) => Err(Error::RemoteRunFailed {
            host,
            detail:
                "`opencode import` failed on the remote (is its opencode much older than this one?)"
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
