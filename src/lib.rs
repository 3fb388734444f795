//! The JS surface of opencode-remote. Only this file carries `#[napi]` items: each function converts its
//! arguments, calls a plain Rust module and maps the error. Everything returns a Promise and runs on
//! napi's tokio runtime, never on the JS thread.

#![deny(clippy::all)]

pub mod cli;
pub mod config;
pub mod doctor;
pub mod error;
pub mod login;
pub mod session;
pub mod ssh;
pub mod workspace;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};

use napi::Either;
use napi_derive::napi;
use tokio_util::sync::CancellationToken;

use crate::config::ConfigSources;
use crate::error::Error;

/// An async call's outcome. napi 3 only rejects Promises with its fixed `Status` codes, so failures are
/// resolved as JS `Error` objects carrying our stable `code`, and the hand-written `api.js` throws them.
type Outcome<T> = Either<T, napi::Error<String>>;

/// The one mapping from core errors to JS: `err.code` is stable, `err.message` is safe to show the model.
fn to_js(error: Error) -> napi::Error<String> {
    log::debug!("{}: {error}", error.code());
    napi::Error::new(error.code().to_string(), error.public_message())
}

fn failed<T>(error: Error) -> Outcome<T> {
    Either::B(to_js(error))
}

#[napi(object)]
pub struct RemoteLoginOptions {
    /// The session to move (`ses_…`).
    pub session_id: String,
    /// A host name from hosts.json or the plugin options.
    pub host: String,
    /// `one-way` (default): the remote takes over. `round-trip`: wait and bring the session back.
    #[napi(ts_type = "'one-way' | 'round-trip'")]
    pub mode: Option<String>,
    /// Working directory on the remote (created if missing). Defaults to the host entry's, else home.
    pub directory: Option<String>,
    /// Instruction for the remote agent; defaults to "continue the task".
    pub message: Option<String>,
    /// The tool call's id, to find it in the session.
    pub call_id: Option<String>,
    /// The assistant message holding the call (`ctx.messageID`): a round trip's `parts` are made for it.
    /// Without it the remote's work comes back inside `output`.
    pub message_id: Option<String>,
    /// An id for `cancelRemoteLogin` and `loginProgress`.
    pub request_id: Option<String>,
    /// The session export as JSON (`{info, messages}`); when absent, `opencode export` is run.
    pub export_json: Option<String>,
    /// The local `opencode` binary. @default "opencode"
    pub opencode_bin: Option<String>,
    /// The project directory (for project-level hosts.json and the export fallback).
    pub project_dir: Option<String>,
    /// The plugin options from opencode.json (may hold `hosts`).
    pub options: Option<serde_json::Value>,
}

#[napi(object)]
pub struct LoginTimings {
    pub dispatch_ms: f64,
    pub total_ms: f64,
    /// Remote run finished → its back-file read and checked here (ms).
    pub finished_to_verified_ms: Option<f64>,
    /// Remote run finished → this call returned (ms).
    pub finished_to_return_ms: Option<f64>,
    pub reconnects: u32,
}

#[napi(object)]
pub struct RemoteLoginResult {
    pub title: String,
    pub output: String,
    #[napi(ts_type = "'one-way' | 'round-trip'")]
    pub mode: String,
    pub job_id: String,
    /// Round trip: the remote's work as text parts, each a JSON `TextPart` object ready for
    /// `PATCH /session/{sessionID}/message/{messageID}/part/{partID}`, in order. Empty for one-way.
    pub parts: Vec<String>,
    /// What the back-file held that was left out, e.g. `1 user message`, `2 file parts`.
    pub dropped: Vec<String>,
    /// An earlier round trip of this session to this host was collected first (its parts come first).
    pub earlier: bool,
    pub timings: LoginTimings,
}

/// Where a running `remoteLogin` is.
#[napi(object)]
pub struct LoginProgress {
    /// The host name as configured.
    pub host: String,
    #[napi(ts_type = "'connecting' | 'dispatching' | 'waiting' | 'collecting' | 'writing'")]
    pub phase: String,
    /// Since the call started.
    pub elapsed_ms: f64,
    /// While waiting: the remote's latest step or tool, e.g. `bash: uname -a` or `writing answer`.
    pub remote_step: Option<String>,
}

/// Progress of running `remoteLogin` calls by `requestId`.
static PROGRESS: LazyLock<Mutex<HashMap<String, login::progress::Progress>>> =
    LazyLock::new(Default::default);

/// Cancellation of running calls by the `requestId` their caller chose (remote_login, remote commands).
static CANCELS: LazyLock<Mutex<HashMap<String, CancellationToken>>> =
    LazyLock::new(Default::default);

/// A cancellation token for `request_id`, listed in [`CANCELS`] until the guard drops.
struct Cancellable {
    id: Option<String>,
    token: CancellationToken,
}

impl Cancellable {
    fn new(id: Option<String>) -> Cancellable {
        let token = CancellationToken::new();
        if let Some(id) = &id {
            CANCELS
                .lock()
                .expect("cancel registry")
                .insert(id.clone(), token.clone());
        }
        Cancellable { id, token }
    }
}

impl Drop for Cancellable {
    fn drop(&mut self) {
        if let Some(id) = &self.id {
            CANCELS.lock().expect("cancel registry").remove(id);
        }
    }
}

fn cancel_request(request_id: &str) -> bool {
    match CANCELS.lock().expect("cancel registry").remove(request_id) {
        Some(token) => {
            token.cancel();
            true
        }
        None => false,
    }
}

/// Dispatch a session to a host. A failure resolves to an `Error` whose `code` is one of UNKNOWN_HOST,
/// CONFIG_INVALID, HOST_UNREACHABLE, AUTH_FAILED, KEY_ENCRYPTED, HOST_KEY_CHANGED, HOST_KEY_UNKNOWN,
/// REMOTE_NO_OPENCODE, REMOTE_MODEL_MISSING, REMOTE_RUN_FAILED, SESSION_INVALID, TIMEOUT, CANCELLED, SSH_FAILED,
/// INVALID_ARGUMENT, IO (`api.js` throws it).
#[napi(ts_return_type = "Promise<RemoteLoginResult | Error>")]
pub async fn remote_login(options: RemoteLoginOptions) -> Outcome<RemoteLoginResult> {
    let mode = match options.mode.as_deref() {
        None | Some("one-way") => login::Mode::OneWay,
        Some("round-trip") => login::Mode::RoundTrip,
        Some(_) => {
            return Either::B(napi::Error::new(
                "INVALID_ARGUMENT".to_string(),
                "mode must be 'one-way' or 'round-trip'".to_string(),
            ))
        }
    };
    let project_dir = options.project_dir.map(PathBuf::from);
    let progress = login::progress::Progress::new(&options.host);
    if let Some(id) = &options.request_id {
        PROGRESS
            .lock()
            .expect("progress registry")
            .insert(id.clone(), progress.clone());
    }
    let request = login::LoginRequest {
        session_id: options.session_id,
        host: options.host,
        mode,
        directory: options.directory.filter(|d| !d.is_empty()),
        message: options.message.filter(|m| !m.trim().is_empty()),
        call_id: options.call_id,
        message_id: options.message_id,
        export_json: options.export_json.map(String::into_bytes),
        opencode_bin: options.opencode_bin.unwrap_or_else(|| "opencode".into()),
        sources: ConfigSources::from_env(project_dir, options.options),
        progress,
    };
    let cancel = Cancellable::new(options.request_id.clone());
    let result = login::remote_login(request, cancel.token.clone()).await;
    drop(cancel);
    if let Some(id) = &options.request_id {
        PROGRESS.lock().expect("progress registry").remove(id);
    }
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(error) => return failed(error),
    };
    Either::A(RemoteLoginResult {
        title: outcome.title,
        output: outcome.output,
        mode: mode.as_str().to_string(),
        job_id: outcome.job_id,
        parts: outcome.parts,
        dropped: outcome.dropped,
        earlier: outcome.earlier,
        timings: LoginTimings {
            dispatch_ms: outcome.timings.dispatch_ms,
            total_ms: outcome.timings.total_ms,
            finished_to_verified_ms: outcome.timings.finished_to_verified_ms,
            finished_to_return_ms: outcome.timings.finished_to_return_ms,
            reconnects: outcome.timings.reconnects,
        },
    })
}

/// Start connecting to `host` ahead of a `remoteLogin` (which then shares the handshake). Resolves to
/// whether the connection is up; failures are reported by the `remoteLogin` that follows.
#[napi]
pub async fn warm_host(
    host: String,
    project_dir: Option<String>,
    options: Option<serde_json::Value>,
) -> bool {
    let sources = ConfigSources::from_env(project_dir.map(PathBuf::from), options);
    login::warm(&host, &sources).await.is_ok()
}

/// Cancel a running `remoteLogin` by its `requestId`. Returns whether one was running.
#[napi]
pub fn cancel_remote_login(request_id: String) -> bool {
    cancel_request(&request_id)
}

/// Where the running `remoteLogin` with this `requestId` is; null when none is running.
#[napi]
pub fn login_progress(request_id: String) -> Option<LoginProgress> {
    let progress = PROGRESS
        .lock()
        .expect("progress registry")
        .get(&request_id)?
        .snapshot();
    Some(LoginProgress {
        host: progress.host,
        phase: progress.phase.as_str().to_string(),
        elapsed_ms: progress.elapsed_ms,
        remote_step: progress.remote_step,
    })
}

/// Stop a running `remoteExec` by its `requestId`: the command's whole process group on the host.
/// Returns whether one was running.
#[napi]
pub fn cancel_remote_exec(request_id: String) -> bool {
    cancel_request(&request_id)
}

/// The configured host names (never addresses), sorted; a failure resolves to an `Error` with a `code`.
#[napi(ts_return_type = "Promise<Array<string> | Error>")]
pub async fn list_hosts(
    project_dir: Option<String>,
    options: Option<serde_json::Value>,
) -> Outcome<Vec<String>> {
    let sources = ConfigSources::from_env(project_dir.map(PathBuf::from), options);
    match config::load_hosts(&sources) {
        Ok(hosts) => Either::A(hosts.names()),
        Err(error) => failed(error),
    }
}

/// Run the `opencode-remote` command line (`args` without the program name); resolves to the exit code.
/// `stubDir` is this package's stub binaries (api.js passes it); `setup --stub-dir` overrides it.
#[napi]
pub async fn run_cli(args: Vec<String>, stub_dir: Option<String>) -> i32 {
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    let code = cli::run(args, stub_dir.map(PathBuf::from), &mut out, &mut err).await;
    let _ = std::io::Write::flush(&mut out);
    code
}

/// Where a remote tool runs: a host, and a workspace (with its root directory) on it.
#[napi(object)]
pub struct RemotePlace {
    /// Host name from the config.
    pub host: String,
    /// Workspace id (`[A-Za-z0-9._-]`).
    pub workspace: String,
    /// Root directory of the workspace on the host (absolute or `~/…`).
    pub root: String,
    pub project_dir: Option<String>,
    /// The plugin options (may hold `hosts`).
    pub options: Option<serde_json::Value>,
    /// This package's stub binaries (`<package>/stub/dist`); api.js fills it in.
    pub stub_dir: Option<String>,
}

impl RemotePlace {
    fn split(self) -> (workspace::remote::Place, ConfigSources) {
        let sources = ConfigSources::from_env(self.project_dir.map(PathBuf::from), self.options);
        (
            workspace::remote::Place {
                host: self.host,
                workspace: self.workspace,
                root: self.root,
                stub_dir: self.stub_dir.map(PathBuf::from),
            },
            sources,
        )
    }
}

/// `{result}` when the stub answered, `{permission}` when it first needs the user's approval.
fn remote_outcome<T: serde::Serialize>(
    outcome: error::Result<workspace::remote::Outcome<T>>,
) -> Outcome<serde_json::Value> {
    match outcome {
        Ok(workspace::remote::Outcome::Done(value)) => {
            Either::A(serde_json::json!({ "result": value }))
        }
        Ok(workspace::remote::Outcome::NeedsPermission(request)) => {
            Either::A(serde_json::json!({ "permission": request }))
        }
        Err(error) => failed(error),
    }
}

/// A file or search operation on the host through the stub: `fs/read`, `fs/write`, `fs/stat`,
/// `fs/list`, `fs/remove`, `fs/rename`, `glob`, `grep`. `body` is the protocol's request type.
///
/// Resolves with JSON text, `{"result": …}` or `{"permission": …}`, for `JSON.parse` in JS: a read's
/// thousands of lines become objects several times faster that way than through napi value by value.
#[napi(ts_return_type = "Promise<string | Error>")]
pub async fn remote_call(
    place: RemotePlace,
    operation: String,
    body: serde_json::Value,
) -> Outcome<String> {
    let (place, sources) = place.split();
    let host = place.host.clone();
    match workspace::remote::call(&place, &sources, &operation, &body).await {
        Ok(workspace::remote::Outcome::Done(raw)) => match json_text(&raw) {
            Some(text) => Either::A(format!("{{\"result\":{text}}}")),
            None => failed(Error::Ssh {
                host,
                detail: "unexpected stub answer: not JSON".into(),
            }),
        },
        Ok(workspace::remote::Outcome::NeedsPermission(request)) => {
            Either::A(serde_json::json!({ "permission": request }).to_string())
        }
        Err(error) => failed(error),
    }
}

/// `raw` as text when it is one well-formed JSON value (checked without building it).
fn json_text(raw: &[u8]) -> Option<&str> {
    serde_json::from_slice::<serde::de::IgnoredAny>(raw).ok()?;
    std::str::from_utf8(raw).ok()
}

/// Make sure the host's stub serves this workspace (bootstrapping it when needed): the remote half of
/// a workspace create, and a warm-up before the first tool call. Warm, it costs one exec. A host whose
/// sshd refuses stream-local forwarding (needed to reach the stub's socket) fails with FORWARDING_REFUSED.
#[napi(ts_return_type = "Promise<true | Error>")]
pub async fn remote_attach(place: RemotePlace) -> Outcome<bool> {
    let (place, sources) = place.split();
    match workspace::remote::attach(&place, &sources).await {
        Ok(()) => Either::A(true),
        Err(error) => failed(error),
    }
}

/// Run a command on the host through the stub (`request` is the protocol's ExecRequest);
/// `requestId` lets `cancelRemoteExec` stop it. A long output is cut to its head and tail; with
/// `outputDir`, its full text is saved there (0600, the directory 0700) and named by `outputPath`.
#[napi(ts_return_type = "Promise<{ result?: any; permission?: any } | Error>")]
pub async fn remote_exec(
    place: RemotePlace,
    request: serde_json::Value,
    request_id: Option<String>,
    output_dir: Option<String>,
) -> Outcome<serde_json::Value> {
    let (place, sources) = place.split();
    let request = match serde_json::from_value(request) {
        Ok(request) => request,
        Err(error) => {
            return Either::B(napi::Error::new(
                "INVALID_ARGUMENT".to_string(),
                error.to_string(),
            ))
        }
    };
    let cancel = Cancellable::new(request_id);
    let output_dir = output_dir.map(PathBuf::from);
    let exec = workspace::remote::exec(
        &place,
        &sources,
        &request,
        output_dir.as_deref(),
        &cancel.token,
    );
    remote_outcome(exec.await)
}

/// Answer a permission request of the stub: `{requestId, reply: 'once' | 'always' | 'reject'}`.
#[napi(ts_return_type = "Promise<any | Error>")]
pub async fn remote_reply(
    place: RemotePlace,
    reply: serde_json::Value,
) -> Outcome<serde_json::Value> {
    let (place, sources) = place.split();
    let reply = match serde_json::from_value(reply) {
        Ok(reply) => reply,
        Err(error) => {
            return Either::B(napi::Error::new(
                "INVALID_ARGUMENT".to_string(),
                error.to_string(),
            ))
        }
    };
    match workspace::remote::reply(&place, &sources, &reply).await {
        Ok(response) => Either::A(serde_json::to_value(response).expect("serializable")),
        Err(error) => failed(error),
    }
}

#[napi(object)]
pub struct CreateWorkspaceOptions {
    /// The workspace id OpenCode assigned (`wrk_…`).
    pub id: String,
    /// Provider name from the config. With `host`, the host must be one of its hosts; without `host`,
    /// its strategy picks one. @default "default"
    pub provider: Option<String>,
    /// A host name or alias; when absent the provider's strategy picks one.
    pub host: Option<String>,
    /// Labels the picked host must have.
    pub labels: Option<Vec<String>>,
    /// Root directory on the host. @default "~/opencode-workspaces/<id>"
    pub directory: Option<String>,
    /// The environment OpenCode passed to the adaptor's `create`.
    pub env: Option<HashMap<String, String>>,
    /// The local opencode binary. @default "opencode"
    pub opencode_bin: Option<String>,
    /// How the workspace server loads this plugin, e.g. `file:///…/opencode-remote`.
    pub plugin_spec: String,
    pub project_dir: Option<String>,
    /// The plugin options (hosts, providers), passed on to the workspace server.
    pub options: Option<serde_json::Value>,
    /// This package's stub binaries (`<package>/stub/dist`); api.js fills it in.
    pub stub_dir: Option<String>,
}

#[napi(object)]
pub struct WorkspaceTarget {
    pub id: String,
    pub host: String,
    pub root: String,
    /// The workspace server's URL (OpenCode's `target`).
    pub url: String,
    /// Headers to send with every request to `url` (the server's basic-auth credentials).
    pub headers: HashMap<String, String>,
}

impl From<workspace::CreatedWorkspace> for WorkspaceTarget {
    fn from(created: workspace::CreatedWorkspace) -> Self {
        WorkspaceTarget {
            id: created.id,
            host: created.host,
            root: created.root,
            url: created.url,
            headers: HashMap::from([(
                "authorization".to_string(),
                created.authorization.expose().to_string(),
            )]),
        }
    }
}

/// Create an SSH workspace: pick and lease a host, bootstrap its stub, start the workspace's server. A host
/// whose sshd refuses stream-local forwarding (needed to reach the stub's socket) fails with FORWARDING_REFUSED.
#[napi(ts_return_type = "Promise<WorkspaceTarget | Error>")]
pub async fn create_workspace(options: CreateWorkspaceOptions) -> Outcome<WorkspaceTarget> {
    let sources = ConfigSources::from_env(
        options.project_dir.map(PathBuf::from),
        options.options.clone(),
    );
    let spec = workspace::CreateSpec {
        id: options.id,
        provider: options.provider,
        host: options.host,
        labels: options.labels.unwrap_or_default(),
        directory: options.directory,
        stub_dir: options.stub_dir.map(PathBuf::from),
        launch: workspace::ServerLaunch {
            env: options.env.unwrap_or_default().into_iter().collect(),
            opencode_bin: options.opencode_bin.unwrap_or_else(|| "opencode".into()),
            plugin_spec: options.plugin_spec,
            plugin_options: options.options.unwrap_or(serde_json::Value::Null),
            sources,
        },
    };
    match workspace::create(spec).await {
        Ok(created) => Either::A(created.into()),
        Err(error) => failed(error),
    }
}

/// How a workspace server is started again after an OpenCode restart (what the plugin knows).
#[napi(object)]
pub struct ReviveOptions {
    /// The local opencode binary. @default "opencode"
    pub opencode_bin: Option<String>,
    /// How the workspace server loads this plugin, e.g. `file:///…/opencode-remote`.
    pub plugin_spec: String,
    pub project_dir: Option<String>,
    /// The plugin options (hosts, providers).
    pub options: Option<serde_json::Value>,
}

/// The workspace's running server. With `revive`, a workspace whose lease survived an OpenCode
/// restart gets its server started again. Resolves to null when there is no such workspace.
#[napi(ts_return_type = "Promise<WorkspaceTarget | null | Error>")]
pub async fn workspace_target(
    id: String,
    revive: Option<ReviveOptions>,
) -> Outcome<Option<WorkspaceTarget>> {
    let launch = revive.map(|r| workspace::ServerLaunch {
        env: Vec::new(),
        opencode_bin: r.opencode_bin.unwrap_or_else(|| "opencode".into()),
        plugin_spec: r.plugin_spec,
        sources: ConfigSources::from_env(r.project_dir.map(PathBuf::from), r.options.clone()),
        plugin_options: r.options.unwrap_or(serde_json::Value::Null),
    });
    match workspace::target(&id, launch.as_ref()).await {
        Ok(target) => Either::A(target.map(Into::into)),
        Err(error) => failed(error),
    }
}

/// Where a workspace lives: its lease's host and root. The shared workspace server asks this for
/// each workspace its sessions belong to. Null when the workspace has no lease.
#[napi(object)]
pub struct WorkspacePlace {
    pub host: String,
    pub root: String,
    pub workspace: String,
}

#[napi]
pub fn workspace_place(id: String) -> Option<WorkspacePlace> {
    workspace::leases::get(&id).map(|lease| WorkspacePlace {
        host: lease.host,
        root: lease.root,
        workspace: lease.workspace,
    })
}

/// Stop a workspace's server and release its host. The stub stays for reuse.
#[napi(ts_return_type = "Promise<boolean | Error>")]
pub async fn remove_workspace(id: String) -> Outcome<bool> {
    match workspace::remove(&id).await {
        Ok(lease) => Either::A(lease.is_some()),
        Err(error) => failed(error),
    }
}

/// The JSON Schema of a config file: `hosts` (hosts.json) or `plugin-options`.
#[napi]
pub fn config_schema(
    #[napi(ts_arg_type = "'hosts' | 'plugin-options'")] kind: Option<String>,
) -> serde_json::Value {
    match kind.as_deref() {
        Some("plugin-options") => config::plugin_options_schema(),
        _ => config::hosts_schema(),
    }
}

#[cfg(test)]
mod tests {
    use super::json_text;

    #[test]
    fn only_one_well_formed_json_value_passes_to_js() {
        assert_eq!(
            json_text(br#"{"lines":["a","\u00e9"]}"#),
            Some(r#"{"lines":["a","\u00e9"]}"#)
        );
        for bad in [&b""[..], b"{", b"{} {}", b"{}x", b"<html>", b"\"\xff\""] {
            assert_eq!(json_text(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
