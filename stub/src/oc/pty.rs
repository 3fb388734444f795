//! OpenCode 1.18.33's `/pty` routes (`PtyHttpApi`), answered from the host: the TUI's terminal runs
//! here. Shapes, status codes and the WebSocket protocol are OpenCode's, so the router passes them
//! through untouched:
//!
//! - list/get/update/remove/connect-token see only running sessions; an exited one is 404
//!   `PtyNotFoundError`, as in OpenCode (its exit code reaches clients only through the
//!   `pty.exited` bus event);
//! - `connect` streams output as text frames after a replay from the client's `cursor` (UTF-16
//!   units), then one binary frame `0x00 {"cursor":N}`; input is text (or UTF-8 binary) frames;
//!   exit or removal closes with 1000, a session gone before attaching with 4404;
//! - a connect ticket (`POST …/connect-token` with `x-opencode-ticket: 1`) is single-use, bound to
//!   its session, valid 60 s.
//!
//! Beside them, `routes::PTY_EVENTS` streams the `pty.*` bus events OpenCode would publish, for the
//! router to republish.

use std::collections::HashMap;
use std::path::Path as FsPath;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use opencode_remote_protocol::routes::{self, OPENCODE_PREFIX};
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::ApiErr;
use crate::nofollow::Opener;
use crate::paths::{absolute, resolve};
use crate::pty::session::{AttachError, Info, Output, Spec, Status};
use crate::pty::{shell, Size};
use crate::server::App;

/// How long a connect ticket is good for (OpenCode's `PtyTicket`, 60 s).
const TICKET_TTL: Duration = Duration::from_secs(60);
/// Tickets kept at most; the oldest go first (OpenCode's cache capacity).
const MAX_TICKETS: usize = 10_000;
/// The header a connect-token request must carry (OpenCode's CSRF guard).
const TICKET_HEADER: &str = "x-opencode-ticket";

type AppState = State<Arc<App>>;

pub fn routes() -> Router<Arc<App>> {
    let p = |tail: &str| format!("{OPENCODE_PREFIX}/pty{tail}");
    Router::new()
        .route(&p("/shells"), get(shells))
        .route(&p(""), get(list).post(create))
        .route(&p("/{pty}"), get(get_one).put(update).delete(remove))
        .route(&p("/{pty}/connect-token"), post(connect_token))
        .route(&p("/{pty}/connect"), get(connect))
        .route(routes::PTY_EVENTS, get(events))
}

/// An answer in one of OpenCode's error shapes: its JSON, keys in OpenCode's order.
struct OcErr(StatusCode, String);

impl IntoResponse for OcErr {
    fn into_response(self) -> Response {
        (self.0, [(header::CONTENT_TYPE, "application/json")], self.1).into_response()
    }
}

impl OcErr {
    fn new(status: StatusCode, body: &impl Serialize) -> OcErr {
        OcErr(status, serde_json::to_string(body).unwrap_or_default())
    }
}

impl From<ApiErr> for OcErr {
    /// The stub's own errors (an unknown workspace) keep the stub's shape: the router, not the
    /// TUI, acts on them.
    fn from(e: ApiErr) -> Self {
        let status = StatusCode::from_u16(e.0.kind.status()).unwrap_or(StatusCode::BAD_REQUEST);
        OcErr::new(status, &json!({ "error": *e.0 }))
    }
}

/// `PtyNotFoundError` (and `PtyForbiddenError`, without `ptyID`).
#[derive(Serialize)]
struct Tagged<'a> {
    _tag: &'static str,
    #[serde(rename = "ptyID", skip_serializing_if = "Option::is_none")]
    pty_id: Option<&'a str>,
    message: String,
}

/// `{name, data}` errors: Effect's `BadRequest`, OpenCode's `UnknownError`.
#[derive(Serialize)]
struct Named {
    name: &'static str,
    data: NamedData,
}

#[derive(Serialize)]
struct NamedData {
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    reference: Option<String>,
}

/// `POST …/connect-token`'s answer.
#[derive(Serialize)]
struct ConnectToken {
    ticket: String,
    expires_in: u64,
}

fn not_found(id: &str) -> OcErr {
    OcErr::new(
        StatusCode::NOT_FOUND,
        &Tagged {
            _tag: "PtyNotFoundError",
            pty_id: Some(id),
            message: format!("PTY session not found: {id}"),
        },
    )
}

/// Effect's `HttpApiError.BadRequest` as OpenCode answers it; `kind` is `Payload` or `Params`.
fn bad_request(message: String, kind: &'static str) -> OcErr {
    OcErr::new(
        StatusCode::BAD_REQUEST,
        &Named {
            name: "BadRequest",
            data: NamedData {
                message,
                kind: Some(kind),
                reference: None,
            },
        },
    )
}

/// OpenCode's answer to an unexpected failure (a body that is not JSON, a command that cannot
/// start), with what went wrong in place of "check server logs".
fn unknown(message: String) -> OcErr {
    crate::util::log("warn", "pty request failed", json!({ "error": message }));
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).expect("no OS randomness");
    let reference: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    OcErr::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        &Named {
            name: "UnknownError",
            data: NamedData {
                message,
                kind: None,
                reference: Some(format!("err_{reference}")),
            },
        },
    )
}

fn forbidden() -> OcErr {
    OcErr::new(
        StatusCode::FORBIDDEN,
        &Tagged {
            _tag: "PtyForbiddenError",
            pty_id: None,
            message: "Invalid PTY connect token request".into(),
        },
    )
}

/// A JSON request body as OpenCode decodes it: none is a 400 (`undefined` is no object), one that
/// is not JSON a 500.
fn payload(body: &[u8]) -> Result<Value, OcErr> {
    if body.is_empty() {
        return Err(bad_request(
            "Expected object, got undefined".into(),
            "Payload",
        ));
    }
    serde_json::from_slice(body).map_err(|e| unknown(format!("the request body is not JSON: {e}")))
}

/// The `ptyID` path parameter must start with `pty`, as OpenCode's schema says.
fn check_id(id: &str) -> Result<(), OcErr> {
    if id.starts_with("pty") {
        return Ok(());
    }
    Err(bad_request(
        format!(
            "Expected a string starting with \"pty\", got {}\n  at [\"ptyID\"]",
            Value::from(id)
        ),
        "Params",
    ))
}

/// The session, when it exists in this workspace and runs (OpenCode's `PtyHttpApi.get`).
fn running(app: &App, ws: &str, id: &str) -> Result<Info, OcErr> {
    check_id(id)?;
    app.state.root(ws)?;
    app.ptys
        .get(ws, id)
        .filter(|i| i.status == Status::Running)
        .ok_or_else(|| not_found(id))
}

async fn shells() -> Json<Vec<shell::ShellEntry>> {
    Json(
        tokio::task::spawn_blocking(shell::list)
            .await
            .unwrap_or_default(),
    )
}

async fn list(State(app): AppState, Path(ws): Path<String>) -> Result<Json<Vec<Info>>, OcErr> {
    app.state.root(&ws)?;
    let mut all = app.ptys.list(&ws);
    all.retain(|i| i.status == Status::Running);
    Ok(Json(all))
}

async fn get_one(
    State(app): AppState,
    Path((ws, id)): Path<(String, String)>,
) -> Result<Json<Info>, OcErr> {
    running(&app, &ws, &id).map(Json)
}

async fn create(
    State(app): AppState,
    Path(ws): Path<String>,
    body: Bytes,
) -> Result<Json<Info>, OcErr> {
    let root = app.state.root(&ws)?;
    let input = CreateInput::parse(&payload(&body)?).map_err(|m| bad_request(m, "Payload"))?;
    let command = input.command.filter(|c| !c.is_empty());
    let cwd_given = input.cwd.filter(|c| !c.is_empty());
    let cwd_shown = cwd_given
        .clone()
        .unwrap_or_else(|| root.to_string_lossy().into_owned());
    // Both look at the file system: on the blocking pool.
    let (command, cwd, dir) = tokio::task::spawn_blocking(move || {
        let (cwd, dir) = open_cwd(&root, cwd_given.as_deref())?;
        Ok::<_, OcErr>((command.unwrap_or_else(shell::preferred), cwd, dir))
    })
    .await
    .map_err(|e| unknown(format!("worker failed: {e}")))??;
    let mut env: HashMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    env.extend(input.env);
    env.insert("TERM".into(), "xterm-256color".into());
    env.insert("OPENCODE_TERMINAL".into(), "1".into());
    let spec = Spec {
        command: command.clone(),
        args: input.args,
        cwd_shown,
        cwd,
        dir,
        title: input.title,
        env,
    };
    app.ptys
        .create(&ws, spec)
        .map(Json)
        .map_err(|e| unknown(format!("could not start {command}: {e}")))
}

/// The terminal's directory: the workspace root, or `cwd` (relative to the root) when it resolves
/// inside the root. Opened without following symlinks; the process gets it with `fchdir`.
fn open_cwd(
    root: &FsPath,
    cwd: Option<&str>,
) -> Result<(std::path::PathBuf, std::os::fd::OwnedFd), OcErr> {
    let wanted = absolute(root, None, cwd.unwrap_or(""));
    let outside = || {
        bad_request(
            format!(
                "cwd {} is outside the workspace root {}; terminals start inside the workspace\n  at [\"cwd\"]",
                wanted.display(),
                root.display()
            ),
            "Payload",
        )
    };
    let resolved = resolve(&wanted).map_err(|_| outside())?;
    if !resolved.starts_with(root) {
        return Err(outside());
    }
    let dir = crate::exec::open_cwd(Opener::new(), root, &resolved)
        .map_err(|e| bad_request(format!("{}\n  at [\"cwd\"]", e.0.message), "Payload"))?;
    Ok((resolved, dir))
}

async fn update(
    State(app): AppState,
    Path((ws, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Info>, OcErr> {
    check_id(&id)?;
    let input = UpdateInput::parse(&payload(&body)?).map_err(|m| bad_request(m, "Payload"))?;
    running(&app, &ws, &id)?;
    app.ptys
        .update(&ws, &id, input.title, input.size)
        .map(Json)
        .ok_or_else(|| not_found(&id))
}

async fn remove(
    State(app): AppState,
    Path((ws, id)): Path<(String, String)>,
) -> Result<Json<bool>, OcErr> {
    running(&app, &ws, &id)?;
    if !app.ptys.remove(&ws, &id) {
        return Err(not_found(&id));
    }
    Ok(Json(true))
}

async fn connect_token(
    State(app): AppState,
    Path((ws, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<ConnectToken>, OcErr> {
    check_id(&id)?;
    let marked = headers.get(TICKET_HEADER).is_some_and(|v| v == "1");
    if !marked || !origin_allowed(&headers) {
        return Err(forbidden());
    }
    running(&app, &ws, &id)?;
    Ok(Json(ConnectToken {
        ticket: app.tickets.issue(&ws, &id),
        expires_in: TICKET_TTL.as_secs(),
    }))
}

/// `GET …/connect`: the WebSocket. Answers without a body, as OpenCode does, when the session does
/// not run (404), the query is malformed (400), the ticket is not good (403) or the request is no
/// upgrade (400).
async fn connect(
    State(app): AppState,
    Path((ws, id)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if let Err(e) = check_id(&id) {
        return e.into_response();
    }
    if let Err(e) = app.state.root(&ws) {
        return e.into_response();
    }
    let empty = |status: StatusCode| status.into_response();
    if !app
        .ptys
        .get(&ws, &id)
        .is_some_and(|i| i.status == Status::Running)
    {
        return empty(StatusCode::NOT_FOUND);
    }
    let Some(query) = ConnectQuery::parse(uri.query().unwrap_or("")) else {
        return empty(StatusCode::BAD_REQUEST);
    };
    if let Some(ticket) = query.ticket.as_deref().filter(|t| !t.is_empty()) {
        if !(origin_allowed(&headers) && app.tickets.consume(ticket, &ws, &id)) {
            return empty(StatusCode::FORBIDDEN);
        }
    }
    let cursor = query.cursor.as_deref().and_then(js_cursor);
    let Ok(upgrade) = upgrade else {
        return empty(StatusCode::BAD_REQUEST);
    };
    upgrade.on_upgrade(move |socket| serve_socket(app, ws, id, cursor, socket))
}

/// `GET /v1/workspaces/{ws}/pty-events`: the workspace's `pty.*` bus events as NDJSON, from now
/// until the client goes away. A reader too slow for [`crate::pty::session`]'s queue misses
/// events (logged), as a slow SSE client of OpenCode's would.
async fn events(State(app): AppState, Path(ws): Path<String>) -> Result<Response, OcErr> {
    app.state.root(&ws)?;
    let mut events = app.ptys.subscribe();
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                // The client went away.
                _ = tx.closed() => return,
                event = events.recv() => event,
            };
            match event {
                Ok((workspace, event)) if workspace == ws => {
                    let mut line = serde_json::to_vec(&event).unwrap_or_default();
                    line.push(b'\n');
                    if tx.send(Bytes::from(line)).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    let fields = json!({ "workspace": ws, "missed": n });
                    crate::util::log("warn", "pty events dropped", fields);
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .header(header::CACHE_CONTROL, "no-store")
        .body(axum::body::Body::from_stream(Lines(rx)))
        .unwrap_or_default())
}

/// NDJSON lines as a response body.
struct Lines(tokio::sync::mpsc::Receiver<Bytes>);

impl futures_core::Stream for Lines {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|o| o.map(Ok))
    }
}

/// One attached client: replay, cursor frame, then output out and input in until either ends.
async fn serve_socket(
    app: Arc<App>,
    ws: String,
    id: String,
    cursor: Option<i64>,
    mut socket: WebSocket,
) {
    let close = |code: u16, reason: &str| {
        Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }))
    };
    let mut attached = match app.ptys.attach(&ws, &id, cursor) {
        Ok(a) => a,
        Err(AttachError::NotFound | AttachError::Exited) => {
            let _ = socket.send(close(4404, "session not found")).await;
            return;
        }
    };
    let mut frames: Vec<Message> = std::mem::take(&mut attached.replay)
        .into_iter()
        .map(|chunk| Message::Text(chunk.into()))
        .collect();
    frames.push(Message::Binary(meta_frame(attached.cursor).into()));
    for frame in frames {
        if socket.send(frame).await.is_err() {
            app.ptys.detach(&id, attached.key);
            return;
        }
    }
    loop {
        tokio::select! {
            out = attached.output.recv() => match out {
                Some(Output::Data(data)) => {
                    if socket.send(Message::Text(data.into())).await.is_err() {
                        break;
                    }
                }
                Some(Output::End) => {
                    let _ = socket.send(close(1000, "")).await;
                    break;
                }
                // Too far behind: any code but 1000 makes the TUI reconnect from its cursor.
                None => {
                    let _ = socket.send(close(1013, "output overflow; reconnect")).await;
                    break;
                }
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    let _ = attached.input.send(text.as_bytes().to_vec());
                }
                // Binary input counts when it is UTF-8, as OpenCode's `decodeInput`.
                Some(Ok(Message::Binary(bytes))) => {
                    if std::str::from_utf8(&bytes).is_ok() {
                        let _ = attached.input.send(bytes.to_vec());
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            },
        }
    }
    app.ptys.detach(&id, attached.key);
}

/// OpenCode's `PtyProtocol.metaFrame`: a zero byte, then `{"cursor":N}`.
fn meta_frame(cursor: u64) -> Vec<u8> {
    let mut frame = vec![0u8];
    frame.extend_from_slice(json!({ "cursor": cursor }).to_string().as_bytes());
    frame
}

/// The cursor as OpenCode reads it: `Number(text)` when that is a safe integer ≥ -1.
fn js_cursor(text: &str) -> Option<i64> {
    let t = text.trim();
    let value = if t.is_empty() {
        0.0
    } else if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        i64::from_str_radix(hex, 16).ok()? as f64
    } else if let Some(oct) = t.strip_prefix("0o").or_else(|| t.strip_prefix("0O")) {
        i64::from_str_radix(oct, 8).ok()? as f64
    } else if let Some(bin) = t.strip_prefix("0b").or_else(|| t.strip_prefix("0B")) {
        i64::from_str_radix(bin, 2).ok()? as f64
    } else if t
        .bytes()
        .any(|b| b.is_ascii_alphabetic() && b != b'e' && b != b'E')
    {
        return None;
    } else {
        t.parse::<f64>().ok()?
    };
    const MAX_SAFE: f64 = 9_007_199_254_740_991.0;
    (value.fract() == 0.0 && value.abs() <= MAX_SAFE && value >= -1.0).then_some(value as i64)
}

/// OpenCode's origin check for tickets: no `Origin`, the same host as the request, or one of its
/// own origins (local apps, the desktop shell, opencode.ai).
fn origin_allowed(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if origin.is_empty() {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest.split('/').next().unwrap_or(""));
    if host.is_some_and(|h| origin_host == Some(h)) {
        return true;
    }
    if origin.starts_with("http://localhost:")
        || origin.starts_with("http://127.0.0.1:")
        || origin.starts_with("oc://renderer")
        || [
            "tauri://localhost",
            "http://tauri.localhost",
            "https://tauri.localhost",
        ]
        .contains(&origin)
    {
        return true;
    }
    let Some(site) = origin.strip_prefix("https://") else {
        return false;
    };
    site == "opencode.ai"
        || site.strip_suffix(".opencode.ai").is_some_and(|sub| {
            sub.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            })
        })
}

/// Single-use connect tickets.
#[derive(Default)]
pub struct Tickets {
    map: Mutex<HashMap<String, Ticket>>,
}

struct Ticket {
    workspace: String,
    pty: String,
    expires: Instant,
}

impl Tickets {
    fn issue(&self, workspace: &str, pty: &str) -> String {
        let ticket = uuid_v4();
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, t| t.expires > now);
        if map.len() >= MAX_TICKETS {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, t)| t.expires)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(
            ticket.clone(),
            Ticket {
                workspace: workspace.to_string(),
                pty: pty.to_string(),
                expires: now + TICKET_TTL,
            },
        );
        ticket
    }

    /// Uses the ticket up when it is good for this session; a ticket for another one stays.
    fn consume(&self, ticket: &str, workspace: &str, pty: &str) -> bool {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let good = map.get(ticket).is_some_and(|t| {
            t.workspace == workspace && t.pty == pty && t.expires > Instant::now()
        });
        if good {
            map.remove(ticket);
        }
        good
    }
}

fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("no OS randomness");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// `POST /pty`'s body (OpenCode's `Pty.CreateInput`); other keys are ignored.
#[derive(Debug, Default, PartialEq)]
struct CreateInput {
    command: Option<String>,
    args: Vec<String>,
    cwd: Option<String>,
    title: Option<String>,
    env: HashMap<String, String>,
}

impl CreateInput {
    fn parse(v: &Value) -> Result<CreateInput, String> {
        let obj = v.as_object().ok_or_else(|| expected("object", v, ""))?;
        let string = |key: &str| -> Result<Option<String>, String> {
            match obj.get(key) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(expected("string", other, &format!("[\"{key}\"]"))),
            }
        };
        let args = match obj.get("args") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    item.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| expected("string", item, &format!("[\"args\"][{i}]")))
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(expected("array", other, "[\"args\"]")),
        };
        let env = match obj.get("env") {
            None => HashMap::new(),
            Some(Value::Object(vars)) => vars
                .iter()
                .map(|(k, val)| {
                    val.as_str()
                        .map(|s| (k.clone(), s.to_string()))
                        .ok_or_else(|| {
                            expected(
                                "string",
                                val,
                                &format!("[\"env\"][{}]", Value::from(k.as_str())),
                            )
                        })
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(expected("object", other, "[\"env\"]")),
        };
        Ok(CreateInput {
            command: string("command")?,
            args,
            cwd: string("cwd")?,
            title: string("title")?,
            env,
        })
    }
}

/// `PUT /pty/{id}`'s body (OpenCode's `Pty.UpdateInput`).
#[derive(Debug, Default, PartialEq)]
struct UpdateInput {
    title: Option<String>,
    size: Option<Size>,
}

impl UpdateInput {
    fn parse(v: &Value) -> Result<UpdateInput, String> {
        let obj = v.as_object().ok_or_else(|| expected("object", v, ""))?;
        let title = match obj.get("title") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => return Err(expected("string", other, "[\"title\"]")),
        };
        let size = match obj.get("size") {
            None => None,
            Some(Value::Object(size)) => {
                let dim = |key: &str| -> Result<u16, String> {
                    let at = format!("[\"size\"][\"{key}\"]");
                    let v = size
                        .get(key)
                        .ok_or_else(|| format!("Missing key\n  at {at}"))?;
                    let n = v.as_f64().ok_or_else(|| expected("number", v, &at))?;
                    if n.fract() != 0.0 {
                        return Err(format!("Expected an integer, got {v}\n  at {at}"));
                    }
                    if n <= 0.0 {
                        return Err(format!(
                            "Expected a value greater than 0, got {v}\n  at {at}"
                        ));
                    }
                    Ok(n.min(f64::from(u16::MAX)) as u16)
                };
                Some(Size {
                    rows: dim("rows")?,
                    cols: dim("cols")?,
                })
            }
            Some(other) => return Err(expected("object", other, "[\"size\"]")),
        };
        Ok(UpdateInput { title, size })
    }
}

/// Effect Schema's message for a value of the wrong type, with its path.
fn expected(what: &str, got: &Value, at: &str) -> String {
    if at.is_empty() {
        format!("Expected {what}, got {got}")
    } else {
        format!("Expected {what}, got {got}\n  at {at}")
    }
}

/// The query of `…/connect`; each key at most once, as OpenCode's schema for it allows.
#[derive(Debug, Default, PartialEq)]
struct ConnectQuery {
    cursor: Option<String>,
    ticket: Option<String>,
}

impl ConnectQuery {
    fn parse(query: &str) -> Option<ConnectQuery> {
        let mut out = ConnectQuery::default();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (k, v) = (form_decode(k), form_decode(v));
            *seen.entry(k.clone()).or_default() += 1;
            match k.as_str() {
                "cursor" => out.cursor = Some(v),
                // The first, as `URLSearchParams.get` gives.
                "ticket" if out.ticket.is_none() => out.ticket = Some(v),
                _ => {}
            }
        }
        let repeated = ["directory", "workspace", "cursor"]
            .iter()
            .any(|k| seen.get(*k).is_some_and(|n| *n > 1));
        (!repeated).then_some(out)
    }
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte.
fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_should_be_read_like_javascripts_number() {
        assert_eq!(js_cursor("-1"), Some(-1));
        assert_eq!(js_cursor("0"), Some(0));
        assert_eq!(js_cursor(" 42 "), Some(42));
        assert_eq!(js_cursor(""), Some(0));
        assert_eq!(js_cursor("1e3"), Some(1000));
        assert_eq!(js_cursor("0x10"), Some(16));
        assert_eq!(js_cursor("-2"), None);
        assert_eq!(js_cursor("1.5"), None);
        assert_eq!(js_cursor("abc"), None);
        assert_eq!(js_cursor("inf"), None);
        assert_eq!(js_cursor("9007199254740992"), None);
    }

    #[test]
    fn meta_frame_should_be_a_zero_byte_and_the_cursor_json() {
        assert_eq!(meta_frame(35), b"\0{\"cursor\":35}".to_vec());
    }

    #[test]
    fn origin_should_pass_like_opencodes_check() {
        let headers = |origin: Option<&str>, host: &str| {
            let mut h = HeaderMap::new();
            if let Some(o) = origin {
                h.insert(header::ORIGIN, o.parse().unwrap());
            }
            h.insert(header::HOST, host.parse().unwrap());
            h
        };
        assert!(origin_allowed(&headers(None, "x")));
        assert!(origin_allowed(&headers(Some("http://localhost:4096"), "x")));
        assert!(origin_allowed(&headers(
            Some("http://myhost:4096"),
            "myhost:4096"
        )));
        assert!(origin_allowed(&headers(
            Some("https://app.opencode.ai"),
            "x"
        )));
        assert!(!origin_allowed(&headers(Some("https://evil.example"), "x")));
        assert!(!origin_allowed(&headers(
            Some("https://opencode.ai.evil"),
            "x"
        )));
        assert!(!origin_allowed(&headers(
            Some("http://myhost:4096"),
            "other:1"
        )));
    }

    #[test]
    fn tickets_should_be_single_use_and_bound_to_their_session() {
        let t = Tickets::default();
        let a = t.issue("w1", "pty_a");
        assert_eq!(a.len(), 36);
        assert!(!t.consume(&a, "w1", "pty_b"));
        assert!(!t.consume(&a, "w2", "pty_a"));
        assert!(t.consume(&a, "w1", "pty_a"));
        assert!(!t.consume(&a, "w1", "pty_a"));
    }

    #[test]
    fn create_input_should_validate_like_opencode() {
        let ok = CreateInput::parse(
            &json!({"command": "sh", "args": ["-c", "x"], "env": {"A": "b"}, "bogus": 1}),
        )
        .unwrap();
        assert_eq!(ok.args, vec!["-c", "x"]);
        assert_eq!(ok.env["A"], "b");
        assert_eq!(
            CreateInput::parse(&json!({"args": "x"})).unwrap_err(),
            "Expected array, got \"x\"\n  at [\"args\"]"
        );
        assert!(CreateInput::parse(&json!({"env": {"A": 1}})).is_err());
    }

    #[test]
    fn update_input_should_validate_like_opencode() {
        assert_eq!(
            UpdateInput::parse(&json!({"size": {"rows": 0, "cols": 20}})).unwrap_err(),
            "Expected a value greater than 0, got 0\n  at [\"size\"][\"rows\"]"
        );
        assert_eq!(
            UpdateInput::parse(&json!({"size": {"rows": 1.5, "cols": 20}})).unwrap_err(),
            "Expected an integer, got 1.5\n  at [\"size\"][\"rows\"]"
        );
        assert_eq!(
            UpdateInput::parse(&json!({"title": "t", "size": {"rows": 10, "cols": 20}})).unwrap(),
            UpdateInput {
                title: Some("t".into()),
                size: Some(Size { rows: 10, cols: 20 })
            }
        );
    }

    #[test]
    fn connect_query_should_refuse_repeated_keys() {
        assert_eq!(
            ConnectQuery::parse("cursor=5&ticket=a%2Db").unwrap(),
            ConnectQuery {
                cursor: Some("5".into()),
                ticket: Some("a-b".into())
            }
        );
        assert!(ConnectQuery::parse("cursor=1&cursor=2").is_none());
    }
}
