//! The backend of remote tools mode: each tool call of the plugin becomes one stub request for a
//! workspace on a host. The stub and its tunnel are set up on first use and shared by every workspace
//! on that host in this process; a broken stub connection is set up again once, transparently.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use hyper::body::Bytes;
use opencode_remote_protocol::{
    routes, ErrorKind, ExecEvent, ExecRequest, Operation, PermissionReply, PermissionReplyResponse,
    PermissionRequest, RegisterWorkspace, ToolRequest, WorkspaceInfo,
};
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use super::bootstrap::{ensure_stub, refusal, Stub};
use super::capped::CappedOutput;
use super::stub_client::{NdjsonStream, StubError};
use crate::config::{self, ConfigSources};
use crate::error::{Error, Result};
use crate::ssh::config::resolve;

/// One workspace on one host.
#[derive(Debug, Clone)]
pub struct Place {
    pub host: String,
    pub workspace: String,
    pub root: String,
    /// This package's stub binaries (`<package>/stub/dist`), for a bootstrap. Passed by the caller:
    /// OpenCode runs plugins in Bun, where an environment variable set at run time never reaches us.
    pub stub_dir: Option<PathBuf>,
}

/// A stub answer, or the permission it asks for first.
#[derive(Debug)]
pub enum Outcome<T> {
    Done(T),
    NeedsPermission(PermissionRequest),
}

/// The collected result of a command.
#[derive(Debug, Default, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecResult {
    /// The output; a long one is cut to its head and tail (see `capped`).
    pub stdout: String,
    pub stderr: String,
    /// Whether the output was cut.
    pub truncated: bool,
    /// Where the full output of a cut command was saved (0600), when a directory was given.
    pub output_path: Option<PathBuf>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub cancelled: bool,
}

#[derive(Default)]
struct HostState {
    stub: Option<Arc<Stub>>,
    registered: HashSet<(String, String)>,
}

static HOSTS: LazyLock<std::sync::Mutex<HashMap<String, Arc<Mutex<HostState>>>>> =
    LazyLock::new(Default::default);

/// The stub for `place`, with the workspace registered; `fresh` forces a new bootstrap. `verified`
/// is true when this call itself just talked to the stub (bootstrap, attach or register).
async fn stub_for(
    place: &Place,
    sources: &ConfigSources,
    fresh: bool,
) -> Result<(Arc<Stub>, bool)> {
    let state = HOSTS
        .lock()
        .expect("hosts lock")
        .entry(place.host.clone())
        .or_default()
        .clone();
    if place.root.chars().any(char::is_control) {
        // No shell line could carry it to every login shell (csh runs what follows a newline).
        return Err(Error::Remote {
            host: place.host.clone(),
            kind: ErrorKind::BadRequest,
            message: "the workspace root must not contain control characters".into(),
        });
    }
    let mut state = state.lock().await;
    if fresh {
        state.stub = None;
        state.registered.clear();
    }
    let key = (place.workspace.clone(), place.root.clone());
    let register = RegisterWorkspace {
        id: place.workspace.clone(),
        root: place.root.clone(),
    };
    let mut verified = false;
    let stub = match &state.stub {
        Some(stub) => stub.clone(),
        None => {
            let hosts = config::load_hosts(sources)?;
            let target = resolve(hosts.get(&place.host)?)?;
            let stub = Arc::new(
                ensure_stub(&target, place.stub_dir.as_deref(), &|_| {}, Some(&register)).await?,
            );
            if stub.attached.is_some() {
                state.registered.insert(key.clone());
            }
            state.stub = Some(stub.clone());
            verified = true;
            stub
        }
    };
    if !state.registered.contains(&key) {
        let _: WorkspaceInfo = stub
            .client
            .post(routes::WORKSPACES, &register)
            .await
            .map_err(Error::from)?;
        state.registered.insert(key);
        verified = true;
    }
    Ok((stub, verified))
}

/// The stub serving `place`, set up on first use as for the tools, for the workspace router;
/// `fresh` sets it up again (after its connection failed).
pub async fn stub(place: &Place, sources: &ConfigSources, fresh: bool) -> Result<Arc<Stub>> {
    stub_for(place, sources, fresh).await.map(|(stub, _)| stub)
}

/// Make sure the stub serves `place` (bootstrapping it when needed), as `create` does before it
/// starts the workspace's server. Warm, this is the handshake and one exec.
pub async fn attach(place: &Place, sources: &ConfigSources) -> Result<()> {
    if let (_, true) = stub_for(place, sources, false).await? {
        return Ok(());
    }
    // Known from earlier in this process: check it still answers (and set it up again if not).
    match with_stub(
        place,
        sources,
        |stub| async move { stub.client.health().await },
    )
    .await?
    {
        Outcome::Done(_) => Ok(()),
        Outcome::NeedsPermission(_) => Err(stub_error(place, "health cannot need a permission")),
    }
}

/// Run `attempt` against the stub; if the stub connection itself failed, bootstrap again and retry once.
async fn with_stub<T, F, Fut>(
    place: &Place,
    sources: &ConfigSources,
    attempt: F,
) -> Result<Outcome<T>>
where
    F: Fn(Arc<Stub>) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, StubError>>,
{
    let mut fresh = false;
    loop {
        let (stub, _) = stub_for(place, sources, fresh).await?;
        match attempt(stub.clone()).await {
            Ok(value) => return Ok(Outcome::Done(value)),
            Err(StubError::Api { error, .. })
                if error.error.kind == ErrorKind::PermissionRequired =>
            {
                let request = error
                    .error
                    .permission
                    .ok_or_else(|| stub_error(place, "a permission error without its request"))?;
                return Ok(Outcome::NeedsPermission(request));
            }
            // The workspace vanished (the stub restarted with other state): register and retry once.
            Err(StubError::Api { error, .. })
                if error.error.kind == ErrorKind::UnknownWorkspace && !fresh =>
            {
                fresh = true
            }
            Err(error @ StubError::Api { .. }) => return Err(error.into()),
            Err(StubError::Transport(error)) => {
                if let Some(refusal) = refusal(&stub.tunnel).await {
                    return Err(refusal);
                }
                if fresh {
                    return Err(error);
                }
                fresh = true
            }
        }
    }
}

fn stub_error(place: &Place, detail: &str) -> Error {
    Error::RemoteRunFailed {
        host: place.host.clone(),
        detail: detail.to_string(),
        log_tail: String::new(),
    }
}

/// Forget the stub connection (and close its tunnel) for `host`; the stub itself keeps running for reuse.
pub fn forget_host(host: &str) {
    HOSTS.lock().expect("hosts lock").remove(host);
}

/// A file or search operation (`fs/read`, `glob`, …) with its request body. The answer is the stub's
/// JSON text, unparsed (bounded by the client's body cap); the caller's JS parses it.
pub async fn call(
    place: &Place,
    sources: &ConfigSources,
    operation: &str,
    body: &Value,
) -> Result<Outcome<Bytes>> {
    let request =
        ToolRequest::parse(operation, body.clone()).map_err(|problem| Error::InvalidArgument {
            field: "body".into(),
            problem,
        })?;
    let path = routes::workspace_op(&place.workspace, request.operation().route());
    let request = &request;
    with_stub(place, sources, |stub| {
        let path = path.clone();
        async move { stub.client.post_raw(&path, request).await }
    })
    .await
}

/// How long a cancelled command gets to report its end (the stub's TERM-then-KILL grace, plus slack).
const CANCEL_WAIT: Duration = Duration::from_secs(5);

/// Run a command and collect its output. `cancel` stops it on the host (its whole process group).
///
/// A failed connection is retried only until the stub answers: from then on the command runs, and
/// running it again could repeat its effects. A link lost mid-command ends it on the host too (the
/// stub kills the group when its client goes away) and is reported, never silently re-run.
pub async fn exec(
    place: &Place,
    sources: &ConfigSources,
    request: &ExecRequest,
    spill_dir: Option<&Path>,
    cancel: &CancellationToken,
) -> Result<Outcome<ExecResult>> {
    let path = routes::workspace_op(&place.workspace, Operation::Exec.route());
    let started = with_stub(place, sources, |stub| {
        let path = path.clone();
        async move {
            let stream = stub.client.post_stream(&path, request).await?;
            Ok((stub, stream))
        }
    });
    tokio::pin!(started);
    let started = tokio::select! {
        started = &mut started => started?,
        // The command may already run on the host while its answer is on the way: let it report its
        // start (briefly), so the cancel stops it through the stub and the result has what it printed.
        _ = cancel.cancelled() => match tokio::time::timeout(CANCEL_WAIT, started).await {
            Ok(Ok(outcome)) => outcome,
            _ => return Err(Error::Cancelled),
        },
    };
    let (stub, mut stream) = match started {
        Outcome::Done(running) => running,
        Outcome::NeedsPermission(request) => return Ok(Outcome::NeedsPermission(request)),
    };
    collect(place, &stub, &mut stream, spill_dir, cancel)
        .await
        .map(Outcome::Done)
}

/// Read the command's events to its end; on `cancel`, ask the stub to stop it and keep reading
/// (briefly) for the exit it reports.
async fn collect(
    place: &Place,
    stub: &Stub,
    stream: &mut NdjsonStream,
    spill_dir: Option<&Path>,
    cancel: &CancellationToken,
) -> Result<ExecResult> {
    let mut result = ExecResult::default();
    let mut output = CappedOutput::new(spill_dir.map(Path::to_path_buf));
    let done = |mut result: ExecResult, output: CappedOutput| {
        let (stdout, stderr, truncated, output_path) = output.finish();
        result.stdout = stdout;
        result.stderr = stderr;
        result.truncated = truncated;
        result.output_path = output_path;
        result
    };
    let mut exec_id: Option<String> = None;
    let mut give_up: Option<Instant> = None;
    // Cancelled before the command reported its start: the stub is asked to stop it once it has.
    let mut cancel_at_start = false;
    loop {
        let event = tokio::select! {
            event = stream.next::<ExecEvent>() => event.map_err(|error| lost_mid_command(place, error))?,
            _ = cancel.cancelled(), if give_up.is_none() => {
                give_up = Some(Instant::now() + CANCEL_WAIT);
                result.cancelled = true;
                match &exec_id {
                    Some(id) => {
                        let route = routes::exec_cancel(&place.workspace, id);
                        let _ = stub.client.post::<(), Value>(&route, &()).await;
                        continue;
                    }
                    // Not reported yet: ask once it is (closing the stream at the deadline stops it too:
                    // the stub kills on disconnect).
                    None => {
                        cancel_at_start = true;
                        continue;
                    }
                }
            }
            _ = tokio::time::sleep_until(give_up.unwrap_or_else(Instant::now)), if give_up.is_some() => {
                return Ok(done(result, output));
            }
        };
        match event {
            None => {
                return Err(lost_mid_command(
                    place,
                    stub_error(place, "the command's output ended without its exit"),
                ))
            }
            Some(ExecEvent::Start { exec_id: id, .. }) => {
                if cancel_at_start {
                    let route = routes::exec_cancel(&place.workspace, &id);
                    let _ = stub.client.post::<(), Value>(&route, &()).await;
                }
                exec_id = Some(id)
            }
            Some(ExecEvent::Stdout { data }) => output.stdout(&data),
            Some(ExecEvent::Stderr { data }) => output.stderr(&data),
            Some(ExecEvent::Exit {
                code,
                signal,
                timed_out,
                cancelled,
                ..
            }) => {
                result.exit_code = code;
                result.signal = signal;
                result.timed_out = timed_out;
                result.cancelled |= cancelled;
                return Ok(done(result, output));
            }
            Some(ExecEvent::Error { message }) => return Err(stub_error(place, &message)),
        }
    }
}

fn lost_mid_command(place: &Place, error: Error) -> Error {
    Error::Ssh {
        host: place.host.clone(),
        detail: format!("the link was lost while the command ran, and the command was stopped on the host: {error}"),
    }
}

/// Answer a permission request the stub made.
pub async fn reply(
    place: &Place,
    sources: &ConfigSources,
    reply: &PermissionReply,
) -> Result<PermissionReplyResponse> {
    let path = routes::workspace_op(&place.workspace, "permissions/reply");
    match with_stub(place, sources, |stub| {
        let path = path.clone();
        async move { stub.client.post(&path, reply).await }
    })
    .await?
    {
        Outcome::Done(response) => Ok(response),
        Outcome::NeedsPermission(_) => Err(stub_error(place, "a reply cannot need a permission")),
    }
}
