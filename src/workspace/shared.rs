//! One local `opencode serve` for all of a project's SSH workspaces. Each workspace server is a
//! whole OpenCode (~350 MB); a second one on the same project would cost that again. OpenCode
//! itself can serve several workspaces from one server: a request naming workspace X
//! (`?workspace=X`) that X's record there resolves to a *local* target is served in the project's
//! instance, and what it creates is tagged with X. So the shared server holds a record of each
//! workspace (type `ssh-member`, registered by the plugin in that server), each workspace keeps its
//! own router (which names it in every request), and the plugin runs each tool call on the host of
//! its session's workspace.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

use super::server::{Authorization, ServeSpec, WorkspaceServer};
use super::ServerLaunch;
use crate::error::{Error, Result};
use crate::login::local::state_dir;

/// The adaptor type of the shared server's records (see `plugin/workspace-adaptor.mjs`).
const MEMBER_TYPE: &str = "ssh-member";

/// A running shared server, used by the routers of its workspaces.
pub type Handle = Arc<tokio::sync::Mutex<WorkspaceServer>>;

/// The shared servers, by project directory. Its lock is held while one starts, so two workspaces
/// created at once share one server.
static SERVERS: LazyLock<tokio::sync::Mutex<HashMap<PathBuf, Handle>>> =
    LazyLock::new(Default::default);

/// The project's shared server, started when it is not running.
pub async fn server_for(project: &Path, launch: &ServerLaunch) -> Result<Handle> {
    let mut servers = SERVERS.lock().await;
    if let Some(handle) = servers.get(project) {
        if handle.lock().await.is_running() {
            return Ok(handle.clone());
        }
        servers.remove(project);
    }
    let server = start(project, launch).await?;
    let handle = Arc::new(tokio::sync::Mutex::new(server));
    servers.insert(project.to_path_buf(), handle.clone());
    Ok(handle)
}

/// Stop the project's shared server (when its last workspace is gone).
pub async fn stop(project: &Path) {
    let Some(handle) = SERVERS.lock().await.remove(project) else {
        return;
    };
    handle.lock().await.stop().await;
}

/// Where a project's shared server keeps its sessions database and log: one directory per project
/// directory, named by a hash of its path (plus its last component, for whoever looks).
fn state_of(project: &Path) -> PathBuf {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(project.as_os_str().as_encoded_bytes());
    let name = project
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        })
        .unwrap_or_default();
    state_dir()
        .join("projects")
        .join(format!("{name}-{}", &hex::encode(digest)[..16]))
}

async fn start(project: &Path, launch: &ServerLaunch) -> Result<WorkspaceServer> {
    let dir = state_of(project);
    let mut options = match launch.plugin_options.clone() {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    options.insert("remote".into(), json!({ "workspaces": true }));
    let config = json!({
        "plugin": [[launch.plugin_spec, Value::Object(options)]],
        // The server runs in the local project directory, but the workspaces' files are on their
        // hosts: snapshots (undo), language servers and formatters would act on the local tree.
        "snapshot": false,
        "lsp": false,
        "formatter": false,
    });
    // The server is no one workspace: OpenCode's `OPENCODE_WORKSPACE_ID` would tag every session
    // with the first one.
    let mut env: Vec<(String, String)> = launch
        .env
        .iter()
        .filter(|(key, _)| {
            key != "OPENCODE_WORKSPACE_ID" && key != "OPENCODE_EXPERIMENTAL_WORKSPACES"
        })
        .cloned()
        .collect();
    env.extend([
        ("OPENCODE_EXPERIMENTAL_WORKSPACES".into(), "true".into()),
        ("OPENCODE_CONFIG_CONTENT".into(), config.to_string()),
        // Nor does it watch the local tree for changes.
        (
            "OPENCODE_EXPERIMENTAL_DISABLE_FILEWATCHER".into(),
            "true".into(),
        ),
        // Its own sessions DB; config and credentials stay the user's.
        (
            "OPENCODE_DB".into(),
            dir.join("opencode.db").display().to_string(),
        ),
    ]);
    WorkspaceServer::start(ServeSpec {
        opencode_bin: &launch.opencode_bin,
        cwd: project,
        log_file: &dir.join("serve.log"),
        env,
    })
    .await
}

/// Make sure the shared server has its record of workspace `id` (it keeps it across restarts, in
/// its database).
pub async fn add_member(handle: &Handle, id: &str) -> Result<()> {
    let (url, authorization) = {
        let server = handle.lock().await;
        (server.url.clone(), server.authorization())
    };
    let listed = call(&url, &authorization, "GET", "/experimental/workspace", None).await?;
    let known = listed
        .as_array()
        .is_some_and(|records| records.iter().any(|r| r["id"] == id));
    if known {
        return Ok(());
    }
    let record = json!({ "id": id, "type": MEMBER_TYPE, "branch": null });
    call(
        &url,
        &authorization,
        "POST",
        "/experimental/workspace",
        Some(record),
    )
    .await
    .map(drop)
}

/// Remove the shared server's record of workspace `id`, and with it the sessions it holds for it
/// (as OpenCode removes them from the control plane's database).
pub async fn remove_member(handle: &Handle, id: &str) -> Result<()> {
    let (url, authorization) = {
        let server = handle.lock().await;
        (server.url.clone(), server.authorization())
    };
    let path = format!("/experimental/workspace/{id}");
    call(&url, &authorization, "DELETE", &path, None)
        .await
        .map(drop)
}

/// One request to the shared server; its JSON answer, or an error with what it said.
async fn call(
    url: &str,
    authorization: &Authorization,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<Value> {
    let failed = |problem: String| Error::RemoteRunFailed {
        host: "localhost".into(),
        detail: format!("the shared workspace server: {method} {path}: {problem}"),
        log_tail: String::new(),
    };
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = hyper::Request::builder()
        .method(method)
        .uri(format!("{url}{path}"))
        .header(hyper::header::AUTHORIZATION, authorization.expose())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        )))
        .map_err(|e| failed(e.to_string()))?;
    let answer = tokio::time::timeout(std::time::Duration::from_secs(60), client.request(request))
        .await
        .map_err(|_| failed("no answer within 60 s".into()))?
        .map_err(|e| failed(e.to_string()))?;
    let status = answer.status();
    let body = http_body_util::Limited::new(answer.into_body(), 16 << 20)
        .collect()
        .await
        .map_err(|e| failed(e.to_string()))?
        .to_bytes();
    if !status.is_success() {
        let said = String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned();
        return Err(failed(format!("HTTP {status}: {said}")));
    }
    Ok(serde_json::from_slice(&body).unwrap_or(Value::Null))
}
