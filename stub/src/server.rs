//! The HTTP API: routes, Bearer auth, request logging. Handlers are thin: they parse, run the
//! blocking work of [`crate::fsops`], [`crate::search`] and [`crate::state`] on tokio's blocking
//! pool, and answer JSON.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Path, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use opencode_remote_protocol::{
    is_valid_workspace_id, limits, routes, CancelResponse, ErrorKind, ExecRequest, GlobRequest,
    GrepRequest, Health, ListRequest, Operation, PermissionReply, PermissionReplyResponse,
    PermissionsInfo, ReadRequest, RegisterWorkspace, RemoveRequest, RenameRequest, StatRequest,
    WorkspaceInfo, WriteRequest, PROTOCOL_VERSION,
};
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use crate::error::ApiErr;
use crate::exec::Execs;
use crate::nofollow::Opener;
use crate::state::{State as Workspaces, Target, Use};
use crate::util::log;
use crate::{fsops, search};

/// Everything a request handler needs.
pub struct App {
    /// The Bearer token (trimmed file content). Never logged, never echoed.
    pub token: Vec<u8>,
    pub state: Workspaces,
    pub execs: Arc<Execs>,
    /// Terminals (OpenCode's `/pty` routes), by workspace.
    pub ptys: Arc<crate::pty::session::Ptys>,
    /// Single-use tickets for opening a terminal's WebSocket.
    pub tickets: crate::oc::pty::Tickets,
    pub started_at: u64,
}

type AppState = State<Arc<App>>;

/// Largest request body: a write of the largest file, base64-encoded, plus JSON framing.
const MAX_BODY_BYTES: usize = (limits::MAX_FILE_BYTES as usize / 3 + 1) * 4 + 64 * 1024;

/// Time a client has to send a request body once its headers arrived; the largest body at a slow
/// link's pace fits well within it, and a client that stalls can't hold a connection slot.
const BODY_TIMEOUT: Duration = Duration::from_secs(120);

/// The attach socket's one route ([`routes::ATTACH`]); no token: only the remote user can reach
/// that socket (see [`opencode_remote_protocol::paths::ATTACH_SOCKET_FILE`]).
pub fn attach_router(app: Arc<App>, info: opencode_remote_protocol::StubInfo) -> Router {
    let info = Arc::new(info);
    Router::new()
        .route(
            routes::ATTACH,
            post(move |state, body| attach(state, body, info.clone())),
        )
        .fallback(no_route)
        .layer(DefaultBodyLimit::max(64 * 1024))
        .with_state(app)
}

/// Register the workspace and answer with the stub and its token (what `attach` prints).
async fn attach(
    State(app): AppState,
    JsonBody(req): JsonBody<RegisterWorkspace>,
    info: Arc<opencode_remote_protocol::StubInfo>,
) -> Result<Json<opencode_remote_protocol::Attached>, ApiErr> {
    let registered = {
        let app = app.clone();
        blocking(move || app.state.register(&req.id, &req.root)).await?
    };
    log(
        "info",
        "attached",
        serde_json::json!({ "workspace": registered.id }),
    );
    Ok(Json(opencode_remote_protocol::Attached {
        system: crate::local_client::system_and_machine(),
        info: (*info).clone(),
        token: String::from_utf8_lossy(&app.token).into_owned(),
        workspace: registered,
    }))
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(routes::HEALTH, get(health))
        .route(routes::WORKSPACES, get(list_workspaces).post(register))
        .route(
            "/v1/workspaces/{ws}",
            get(workspace_info).delete(remove_workspace),
        )
        .route(&Operation::Read.route_template(), post(fs_read))
        .route(&Operation::Write.route_template(), post(fs_write))
        .route(&Operation::Stat.route_template(), post(fs_stat))
        .route(&Operation::List.route_template(), post(fs_list))
        .route(&Operation::Remove.route_template(), post(fs_remove))
        .route(&Operation::Rename.route_template(), post(fs_rename))
        .route(&Operation::Glob.route_template(), post(glob))
        .route(&Operation::Grep.route_template(), post(grep))
        .route(&Operation::Exec.route_template(), post(exec))
        .route("/v1/workspaces/{ws}/exec/{exec_id}/cancel", post(cancel))
        .route("/v1/workspaces/{ws}/permissions", get(permissions))
        .route("/v1/workspaces/{ws}/permissions/reply", post(reply))
        .merge(crate::oc::routes())
        .fallback(no_route)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(from_fn_with_state(app.clone(), require_token))
        .layer(from_fn(log_request))
        .with_state(app)
}

/// 401 unless `Authorization: Bearer <token>` matches, compared in constant time. The answer is
/// the same for a missing and a wrong token and never contains either.
async fn require_token(State(app): AppState, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(AUTHORIZATION)
        .map(|v| v.as_bytes())
        .filter(|v| v.len() > 7 && v[..7].eq_ignore_ascii_case(b"bearer "))
        .map(|v| &v[7..]);
    let ok = given.is_some_and(|t| bool::from(t.ct_eq(&app.token)));
    if !ok {
        return ApiErr::new(ErrorKind::Unauthorized, "missing or invalid bearer token")
            .into_response();
    }
    next.run(req).await
}

/// One log line per request: method, route template, status, duration, workspace. Not the URI's
/// other parts, headers, or bodies.
async fn log_request(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let workspace = req
        .uri()
        .path()
        .strip_prefix("/v1/workspaces/")
        .and_then(|rest| rest.split('/').next())
        .filter(|ws| is_valid_workspace_id(ws))
        .map(str::to_string);
    let response = next.run(req).await;
    log(
        "info",
        "request",
        serde_json::json!({
            "method": method,
            "route": route,
            "status": response.status().as_u16(),
            "durationMs": started.elapsed().as_millis() as u64,
            "workspace": workspace,
        }),
    );
    response
}

/// A JSON request body; errors are answered as [`ApiErr`] JSON, and no `Content-Type` is needed.
struct JsonBody<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiErr;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiErr> {
        let body = tokio::time::timeout(BODY_TIMEOUT, Bytes::from_request(req, state));
        let bytes = body.await.map_err(|_| {
            ApiErr::new(
                ErrorKind::BadRequest,
                format!(
                    "the request body did not arrive within {} s",
                    BODY_TIMEOUT.as_secs()
                ),
            )
        })?;
        let bytes = bytes.map_err(|e| {
            let kind = if e.status().as_u16() == 413 {
                ErrorKind::TooLarge
            } else {
                ErrorKind::BadRequest
            };
            ApiErr::new(kind, e.body_text())
        })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiErr::new(ErrorKind::BadRequest, format!("bad request body: {e}")))
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiErr> + Send + 'static,
) -> Result<T, ApiErr> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiErr::new(ErrorKind::Io, format!("worker failed: {e}")))?
}

async fn no_route() -> ApiErr {
    ApiErr::new(ErrorKind::NoRoute, "no such route")
}

async fn health(State(app): AppState) -> Json<Health> {
    Json(Health {
        healthy: true,
        version: env!("CARGO_PKG_VERSION").to_string(),
        protocol: PROTOCOL_VERSION,
        pid: std::process::id(),
        started_at: app.started_at,
        os: std::env::consts::OS.to_string(),
        arch: std::env::consts::ARCH.to_string(),
        workspaces: app.state.count(),
    })
}

async fn list_workspaces(State(app): AppState) -> Json<Vec<WorkspaceInfo>> {
    Json(app.state.list())
}

async fn register(
    State(app): AppState,
    JsonBody(req): JsonBody<RegisterWorkspace>,
) -> Result<Json<WorkspaceInfo>, ApiErr> {
    blocking(move || app.state.register(&req.id, &req.root))
        .await
        .map(Json)
}

async fn workspace_info(
    State(app): AppState,
    Path(ws): Path<String>,
) -> Result<Json<WorkspaceInfo>, ApiErr> {
    app.state.info(&ws).map(Json)
}

async fn remove_workspace(
    State(app): AppState,
    Path(ws): Path<String>,
) -> Result<Json<WorkspaceInfo>, ApiErr> {
    app.execs.cancel_all(Some(&ws));
    app.ptys.remove_workspace(&ws);
    blocking(move || app.state.remove(&ws)).await.map(Json)
}

/// A POST handler that runs `$f(&state, &ws, request)` on the blocking pool.
macro_rules! blocking_op {
    ($name:ident, $req:ty, $f:path) => {
        async fn $name(
            State(app): AppState,
            Path(ws): Path<String>,
            JsonBody(req): JsonBody<$req>,
        ) -> Result<Response, ApiErr> {
            blocking(move || $f(&app.state, Opener::new(), &ws, req))
                .await
                .map(|r| Json(r).into_response())
        }
    };
}

blocking_op!(fs_read, ReadRequest, fsops::read);
blocking_op!(fs_write, WriteRequest, fsops::write);
blocking_op!(fs_stat, StatRequest, fsops::stat);
blocking_op!(fs_list, ListRequest, fsops::list);
blocking_op!(fs_remove, RemoveRequest, fsops::remove);
blocking_op!(fs_rename, RenameRequest, fsops::rename);
blocking_op!(glob, GlobRequest, search::glob);
blocking_op!(grep, GrepRequest, search::grep);

async fn exec(
    State(app): AppState,
    Path(ws): Path<String>,
    JsonBody(req): JsonBody<ExecRequest>,
) -> Result<Response, ApiErr> {
    let checked = app.clone();
    let (ws, req, cwd, dir) = blocking(move || {
        let mut targets = vec![Target::new(req.cwd.as_deref().unwrap_or(""), Use::Dir)];
        targets.extend(req.paths.iter().map(|p| Target::new(p, Use::Any)));
        let mut paths =
            checked
                .state
                .authorize(&ws, Operation::Exec, &targets, req.grant.as_deref())?;
        let cwd = paths.swap_remove(0);
        let root = checked.state.root(&ws)?;
        let dir = crate::exec::open_cwd(Opener::new(), &root, &cwd)?;
        Ok((ws, req, cwd, dir))
    })
    .await?;
    crate::exec::start(app.execs.clone(), ws, cwd, dir, req)
}

async fn cancel(
    State(app): AppState,
    Path((ws, exec_id)): Path<(String, String)>,
) -> Result<Json<CancelResponse>, ApiErr> {
    app.state.info(&ws)?;
    let cancelled = app.execs.cancel(&ws, &exec_id);
    Ok(Json(CancelResponse { exec_id, cancelled }))
}

async fn permissions(
    State(app): AppState,
    Path(ws): Path<String>,
) -> Result<Json<PermissionsInfo>, ApiErr> {
    app.state.permissions(&ws).map(Json)
}

async fn reply(
    State(app): AppState,
    Path(ws): Path<String>,
    JsonBody(req): JsonBody<PermissionReply>,
) -> Result<Json<PermissionReplyResponse>, ApiErr> {
    blocking(move || {
        let (grant, patterns) = app.state.reply(&ws, &req.request_id, req.reply)?;
        Ok(PermissionReplyResponse {
            request_id: req.request_id,
            reply: req.reply,
            grant,
            patterns,
        })
    })
    .await
    .map(Json)
}
