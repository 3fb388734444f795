//! A workspace's router: the URL the control plane forwards the workspace's requests to. It sends
//! each one where it belongs (see [`table`]): files, search, version control, terminals and paths
//! to the stub on the host, undo and `!` shell commands back with an error that says why, and the
//! rest to the workspace's local `opencode serve`. It asks for the same `authorization` as that
//! server, so the control plane's `target.headers` are unchanged.

mod proxy;
mod pty_events;
mod shared_server;
pub mod table;
mod tickets;

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::remote::{self, Place};
use super::server::Authorization;
use crate::config::ConfigSources;
use crate::error::{Error, Result};
use proxy::{full, Body, HttpClient};
use table::{Refusal, Route};
use tickets::{Tickets, TICKET_LIFETIME};

/// Where a workspace's requests go.
pub struct Upstreams {
    /// The workspace's `opencode serve` (`http://127.0.0.1:<port>`).
    pub server_url: String,
    /// What callers must send, and what the server gets.
    pub authorization: Authorization,
    /// The workspace on its host, for the stub.
    pub place: Place,
    pub sources: ConfigSources,
    /// The directory the workspace's server runs in, which OpenCode names in its events.
    pub directory: String,
    /// The server is the project's shared one: requests name the workspace, and what comes back
    /// for the control plane's sync is this workspace's part only (see [`shared_server`]).
    pub shared: bool,
}

struct Shared {
    upstreams: Upstreams,
    client: HttpClient,
    tickets: Tickets,
    /// Refusals waiting to be shown, in the order they happened.
    toasts: mpsc::Sender<String>,
    /// Ends the accept loop, every connection and every joined upgrade.
    shutdown: CancellationToken,
}

/// A running router; dropping it stops it.
pub struct Router {
    pub url: String,
    shutdown: CancellationToken,
}

impl Router {
    /// Listen on a free loopback port and serve until stopped.
    pub async fn start(upstreams: Upstreams) -> Result<Router> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| Error::io("starting the workspace router on 127.0.0.1", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| Error::io("starting the workspace router on 127.0.0.1", e))?
            .port();
        let shutdown = CancellationToken::new();
        let (toasts, pending_toasts) = mpsc::channel(PENDING_TOASTS);
        let shared = Arc::new(Shared {
            upstreams,
            client: proxy::client(),
            tickets: Tickets::default(),
            toasts,
            shutdown: shutdown.clone(),
        });
        tokio::spawn(show_toasts(shared.clone(), pending_toasts));
        tokio::spawn(accept(listener, shared));
        Ok(Router {
            url: format!("http://127.0.0.1:{port}"),
            shutdown,
        })
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    log::warn!("workspace router: accept failed: {error}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shared.shutdown.cancelled() => return,
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = {
                let shared = shared.clone();
                service_fn(move |request| handle(shared.clone(), request))
            };
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::select! {
                _ = connection => {}
                _ = shared.shutdown.cancelled() => {}
            }
        });
    }
}

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> std::result::Result<Response<Body>, Infallible> {
    if !authorized(&request, &shared.upstreams.authorization) && !ticketed(&shared, &request) {
        return Ok(unauthorized());
    }
    let answer = match table::route(request.method(), request.uri().path()) {
        Route::Server if is_event_stream(&request) => {
            let mut request = request;
            if shared.upstreams.shared {
                // The events are read here to be filtered, so they must come uncompressed.
                request.headers_mut().remove(header::ACCEPT_ENCODING);
            }
            let answer = to_server(&shared, request).await;
            answer.map(|response| {
                response.map(|upstream| {
                    let upstream = if shared.upstreams.shared {
                        let workspace = shared.upstreams.place.workspace.clone();
                        shared_server::events_of(workspace, upstream)
                    } else {
                        upstream
                    };
                    pty_events::merge_into_stream(shared.clone(), upstream)
                })
            })
        }
        Route::Server if shared.upstreams.shared && is_history(&request) => {
            let url = server_url(&shared, &request);
            shared_server::history(&shared, request, &url).await
        }
        Route::Server => to_server(&shared, request).await,
        Route::Host => to_host(&shared, request).await,
        Route::Refused(refusal) => Ok(refuse(&shared, refusal)),
        Route::ConnectToken => Ok(connect_token(&shared, &request)),
    };
    Ok(answer.unwrap_or_else(|message| {
        let host = &shared.upstreams.place.host;
        log::warn!("workspace router ({host}): {message}");
        named_error(StatusCode::BAD_GATEWAY, "UnknownError", &message)
    }))
}

/// The stream the control plane follows and republishes (`GET /global/event`): the host's
/// terminal events join it.
fn is_event_stream(request: &Request<Incoming>) -> bool {
    request.method() == Method::GET && request.uri().path() == "/global/event"
}

/// The control plane's catch-up on the workspace's sessions (`POST /sync/history`).
fn is_history(request: &Request<Incoming>) -> bool {
    request.method() == Method::POST && request.uri().path() == "/sync/history"
}

/// The caller sent exactly the server's `authorization` (compared in constant time).
fn authorized(request: &Request<Incoming>, expected: &Authorization) -> bool {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    let expected = expected.expose().as_bytes();
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// A terminal WebSocket (`GET /pty/{id}/connect?ticket=…`, upgrading) with a ticket this router
/// issued for that terminal; the ticket is used up.
fn ticketed(shared: &Shared, request: &Request<Incoming>) -> bool {
    let pty = table::pty_action(request.uri().path(), "connect");
    let ticket = request.uri().query().and_then(|q| query_value(q, "ticket"));
    match (pty, ticket) {
        (Some(pty), Some(ticket)) if proxy::is_upgrade(request.headers()) => {
            shared.tickets.redeem(ticket, pty)
        }
        _ => false,
    }
}

/// The raw value of `name` in a query string (tickets are hex: nothing to decode).
fn query_value<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

/// `query` without `name` (the stub has no use for the router's tickets).
fn query_without(query: Option<&str>, name: &str) -> Option<String> {
    let kept: Vec<&str> = query?
        .split('&')
        .filter(|pair| pair.split('=').next() != Some(name))
        .collect();
    Some(kept.join("&"))
}

/// OpenCode's `PtyTicketConnectToken`. Like OpenCode's server, only for a request that says it wants
/// one (`x-opencode-ticket: 1`), which a page on another site cannot send without asking first.
fn connect_token(shared: &Shared, request: &Request<Incoming>) -> Response<Body> {
    let asked = request
        .headers()
        .get("x-opencode-ticket")
        .is_some_and(|v| v == "1");
    let pty = table::pty_action(request.uri().path(), "connect-token").unwrap_or_default();
    if !asked {
        let body =
            json!({ "_tag": "PtyForbiddenError", "message": "Invalid PTY connect token request" });
        return json_response(StatusCode::FORBIDDEN, &body);
    }
    let ticket = shared.tickets.issue(pty);
    let body = json!({ "ticket": ticket, "expires_in": TICKET_LIFETIME.as_secs() });
    json_response(StatusCode::OK, &body)
}

/// OpenCode's own answer to missing credentials.
fn unauthorized() -> Response<Body> {
    let mut response = Response::new(full(""));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"Secure Area\""),
    );
    response
}

async fn to_server(
    shared: &Shared,
    request: Request<Incoming>,
) -> std::result::Result<Response<Body>, String> {
    let upstreams = &shared.upstreams;
    let url = server_url(shared, &request);
    let (parts, body) = request.into_parts();
    proxy::send(
        &shared.client,
        &shared.shutdown,
        parts,
        body.boxed(),
        &url,
        upstreams.authorization.expose(),
    )
    .await
    .map_err(|e| format!("the workspace's opencode server did not answer: {e}"))
}

/// Where `request` goes on the workspace's server; a shared server is told which workspace asks.
fn server_url(shared: &Shared, request: &Request<Incoming>) -> String {
    let upstreams = &shared.upstreams;
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    if upstreams.shared {
        let named = shared_server::with_workspace(path, &upstreams.place.workspace);
        format!("{}{named}", upstreams.server_url)
    } else {
        format!("{}{path}", upstreams.server_url)
    }
}

/// To the stub through the host's tunnel, set up on first use. When the stub cannot be reached,
/// it is set up again; a request without a body (GET, HEAD) is then sent once more.
async fn to_host(
    shared: &Shared,
    request: Request<Incoming>,
) -> std::result::Result<Response<Body>, String> {
    let Upstreams { place, sources, .. } = &shared.upstreams;
    let query = query_without(request.uri().query(), "ticket");
    let path = table::host_path(&place.workspace, request.uri().path(), query.as_deref());
    let (parts, body) = request.into_parts();
    let again = (matches!(parts.method, Method::GET | Method::HEAD)
        && !proxy::is_upgrade(&parts.headers))
    .then(|| proxy::copy_head(&parts));
    let unreachable = |e: Error| format!("the stub on {} could not be reached: {e}", place.host);
    let stub = remote::stub(place, sources, false)
        .await
        .map_err(unreachable)?;
    let send = |stub: Arc<super::bootstrap::Stub>, parts, body| {
        let url = format!("{}{path}", stub.client.base_url());
        async move {
            proxy::send(
                &shared.client,
                &shared.shutdown,
                parts,
                body,
                &url,
                stub.client.authorization(),
            )
            .await
        }
    };
    let failed = match send(stub, parts, body.boxed()).await {
        Ok(response) => return Ok(response),
        Err(failed) => failed,
    };
    let stub = remote::stub(place, sources, true)
        .await
        .map_err(unreachable)?;
    match again {
        Some(parts) => send(stub, parts, full("")).await,
        None => Err(failed),
    }
    .map_err(|e| format!("the stub on {} did not answer: {e}", place.host))
}

/// OpenCode's error shape, which its clients show by `data.message`; the TUI ignores these
/// answers, so the message is also shown as a toast through the workspace's server.
fn refuse(shared: &Arc<Shared>, refusal: Refusal) -> Response<Body> {
    let message = refusal.message(&shared.upstreams.place.host);
    // A full queue means refusals faster than a user can read them: that one is not shown twice.
    let _ = shared.toasts.try_send(message.clone());
    named_error(StatusCode::BAD_REQUEST, refusal.name(), &message)
}

/// Refusals not yet shown; more are dropped (the answer itself still carries the message).
const PENDING_TOASTS: usize = 16;

/// Show the refusals one after another, so the TUI's last toast is the last refusal.
async fn show_toasts(shared: Arc<Shared>, mut pending: mpsc::Receiver<String>) {
    loop {
        let message = tokio::select! {
            next = pending.recv() => match next {
                Some(message) => message,
                None => return,
            },
            _ = shared.shutdown.cancelled() => return,
        };
        toast(&shared, message).await;
    }
}

/// `GET path` on the workspace's server with the router's credentials: its JSON answer, or `None`
/// when it does not answer 200 with JSON (of at most 1 MiB) within 10 s.
async fn server_json(shared: &Shared, path: &str) -> Option<serde_json::Value> {
    let upstreams = &shared.upstreams;
    let request = Request::get(format!("{}{path}", upstreams.server_url))
        .header(header::AUTHORIZATION, upstreams.authorization.expose())
        .body(full(""))
        .ok()?;
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        shared.client.request(request),
    )
    .await
    .ok()?
    .ok()?;
    if answer.status() != StatusCode::OK {
        return None;
    }
    let body = http_body_util::Limited::new(answer.into_body(), 1 << 20)
        .collect()
        .await
        .ok()?
        .to_bytes();
    serde_json::from_slice(&body).ok()
}

/// `POST /tui/show-toast` on the workspace's server: its event reaches the TUI through the
/// control plane's sync, tagged with this workspace.
async fn toast(shared: &Shared, message: String) {
    let upstreams = &shared.upstreams;
    let body = json!({
        "title": "Not available in an SSH workspace",
        "message": message,
        "variant": "error",
    });
    let path = if upstreams.shared {
        shared_server::with_workspace("/tui/show-toast", &upstreams.place.workspace)
    } else {
        "/tui/show-toast".to_string()
    };
    let request = Request::post(format!("{}{path}", upstreams.server_url))
        .header(header::AUTHORIZATION, upstreams.authorization.expose())
        .header(header::CONTENT_TYPE, "application/json")
        .body(full(body.to_string()));
    let sent = match request {
        Ok(request) => shared.client.request(request).await.map(drop),
        Err(_) => return,
    };
    if let Err(error) = sent {
        log::warn!("workspace router: showing the refusal as a toast failed: {error}");
    }
}

fn named_error(status: StatusCode, name: &str, message: &str) -> Response<Body> {
    json_response(
        status,
        &json!({ "name": name, "data": { "message": message } }),
    )
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(full(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    //! The router against a fake workspace server on loopback: credentials, streaming, WebSocket
    //! pass-through and terminal tickets. (Host routes need a stub; the JS tests cover them.)

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    const AUTH: &str = "Basic b3BlbmNvZGU6c2VjcmV0";

    /// The toast bodies the fake server took, in the order it finished taking them.
    type Toasts = Arc<std::sync::Mutex<Vec<String>>>;

    /// A fake workspace server: `/ws` upgrades and echoes, `/sse` sends one event and then holds
    /// the stream open, `/tui/show-toast` records its body (the first one slowly), anything else
    /// answers its own method and path.
    async fn fake_server() -> (String, Toasts) {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let toasts = Toasts::default();
        let recorded = toasts.clone();
        let arrived = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let toasts = recorded.clone();
                let arrived = arrived.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |mut request: Request<Incoming>| {
                        let toasts = toasts.clone();
                        let arrived = arrived.clone();
                        async move {
                            if request.uri().path() == "/tui/show-toast" {
                                let body = request.into_body().collect().await.unwrap().to_bytes();
                                if arrived.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                                }
                                toasts
                                    .lock()
                                    .unwrap()
                                    .push(String::from_utf8_lossy(&body).into_owned());
                                return Ok::<_, Infallible>(Response::new(full("true")));
                            }
                            let seen = format!(
                                "{} {} auth={:?}",
                                request.method(),
                                request.uri(),
                                request.headers().get("authorization")
                            );
                            let response = match request.uri().path() {
                                "/ws" => {
                                    let upgrade = hyper::upgrade::on(&mut request);
                                    tokio::spawn(async move {
                                        let mut io = TokioIo::new(upgrade.await.unwrap());
                                        let mut buf = [0u8; 4];
                                        io.read_exact(&mut buf).await.unwrap();
                                        io.write_all(&buf).await.unwrap();
                                    });
                                    Response::builder()
                                        .status(StatusCode::SWITCHING_PROTOCOLS)
                                        .header("connection", "upgrade")
                                        .header("upgrade", "websocket")
                                        .body(full(""))
                                        .unwrap()
                                }
                                "/sse" => {
                                    let (tx, rx) = tokio::sync::mpsc::channel(1);
                                    tokio::spawn(async move {
                                        let first =
                                            hyper::body::Frame::data("data: first\n\n".into());
                                        tx.send(Ok(first)).await.unwrap();
                                        tokio::time::sleep(std::time::Duration::from_secs(30))
                                            .await;
                                    });
                                    Response::builder()
                                        .header("content-type", "text/event-stream")
                                        .header("x-opencode-sync", "{}")
                                        .body(pty_events::ChannelBody(rx).boxed())
                                        .unwrap()
                                }
                                _ => Response::new(full(seen)),
                            };
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        (url, toasts)
    }

    async fn router() -> Router {
        router_and_toasts().await.0
    }

    async fn router_and_toasts() -> (Router, Toasts) {
        let (server_url, toasts) = fake_server().await;
        let router = Router::start(Upstreams {
            server_url,
            authorization: Authorization::for_test(AUTH),
            place: Place {
                host: "nowhere".into(),
                workspace: "w1".into(),
                root: "/r".into(),
                stub_dir: None,
            },
            sources: ConfigSources::default(),
            directory: "/project".into(),
            shared: false,
        })
        .await
        .unwrap();
        (router, toasts)
    }

    /// Send raw request bytes; return the connection and what arrived first.
    async fn raw(router: &Router, request: &str) -> (TcpStream, String) {
        let mut stream = TcpStream::connect(router.url.trim_start_matches("http://"))
            .await
            .unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("an answer in time")
            .unwrap();
        (stream, String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    #[tokio::test]
    async fn refusals_should_be_shown_as_toasts_in_the_order_they_happened() {
        let (router, toasts) = router_and_toasts().await;
        let mut answers = Vec::new();
        for path in [
            "/session/ses_1/revert",
            "/session/ses_1/shell",
            "/session/ses_1/unrevert",
        ] {
            let request = format!(
                "POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: {AUTH}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            let (_stream, answer) = raw(&router, &request).await;
            assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
            answers.push(answer);
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while toasts.lock().unwrap().len() < 3 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let shown: Vec<String> = toasts
            .lock()
            .unwrap()
            .iter()
            .map(|body| {
                let toast: serde_json::Value = serde_json::from_str(body).unwrap();
                toast["message"].as_str().unwrap().to_string()
            })
            .collect();
        let revert = Refusal::Revert.message("nowhere");
        let shell = Refusal::Shell.message("nowhere");
        assert_eq!(shown, [revert.clone(), shell, revert]);
    }

    #[tokio::test]
    async fn requests_without_the_workspace_credentials_should_get_401() {
        let router = router().await;
        for auth in [
            "",
            "authorization: Basic d3Jvbmc=\r\n",
            "authorization: Basic b3BlbmNvZGU6c2VjcmV\r\n",
        ] {
            let (_, answer) = raw(
                &router,
                &format!("GET /session HTTP/1.1\r\nhost: x\r\n{auth}\r\n"),
            )
            .await;
            assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
            assert!(
                answer.contains("www-authenticate: Basic realm=\"Secure Area\""),
                "{answer}"
            );
        }
    }

    #[tokio::test]
    async fn server_requests_should_pass_with_path_query_and_credentials() {
        let router = router().await;
        let request = format!("GET /session/ses_1/message?limit=2 HTTP/1.1\r\nhost: x\r\nauthorization: {AUTH}\r\n\r\n");
        let (_, answer) = raw(&router, &request).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            answer.contains(&format!(
                "GET /session/ses_1/message?limit=2 auth=Some(\"{AUTH}\")"
            )),
            "{answer}"
        );
    }

    #[tokio::test]
    async fn events_should_stream_unbuffered_with_their_sync_header() {
        let router = router().await;
        let request = format!("GET /sse HTTP/1.1\r\nhost: x\r\nauthorization: {AUTH}\r\n\r\n");
        let (mut stream, mut answer) = raw(&router, &request).await;
        while !answer.contains("data: first") {
            let mut buf = vec![0u8; 4096];
            let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf))
                .await
                .expect("the first event while the stream stays open")
                .unwrap();
            answer.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        assert!(answer.contains("x-opencode-sync: {}"), "{answer}");
    }

    #[tokio::test]
    async fn a_websocket_should_be_joined_to_its_upstream() {
        let router = router().await;
        let request = format!("GET /ws HTTP/1.1\r\nhost: x\r\nauthorization: {AUTH}\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n");
        let (mut stream, answer) = raw(&router, &request).await;
        assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
        stream.write_all(b"ping").await.unwrap();
        let mut echo = [0u8; 4];
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            stream.read_exact(&mut echo),
        )
        .await
        .expect("the echo in time")
        .unwrap();
        assert_eq!(&echo, b"ping");
    }

    #[tokio::test]
    async fn a_terminal_ticket_should_stand_in_for_credentials_once() {
        let router = router().await;
        let ask = |extra: &str| {
            format!("POST /pty/pty_1/connect-token HTTP/1.1\r\nhost: x\r\nauthorization: {AUTH}\r\ncontent-length: 0\r\n{extra}\r\n")
        };
        let (_, refused) = raw(&router, &ask("")).await;
        assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
        let (_, answer) = raw(&router, &ask("x-opencode-ticket: 1\r\n")).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let body: serde_json::Value =
            serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["expires_in"], 60);
        let ticket = body["ticket"].as_str().unwrap();
        let connect = |pty: &str, ticket: &str| {
            format!("GET /pty/{pty}/connect?cursor=0&ticket={ticket} HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n")
        };
        let (_, other) = raw(&router, &connect("pty_2", ticket)).await;
        assert!(
            other.starts_with("HTTP/1.1 401"),
            "another terminal: {other}"
        );
        let ticket = {
            let (_, answer) = raw(&router, &ask("x-opencode-ticket: 1\r\n")).await;
            let body: serde_json::Value =
                serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
            body["ticket"].as_str().unwrap().to_string()
        };
        // Past the credentials check: the (absent) stub is what fails here.
        let (_, passed) = raw(&router, &connect("pty_1", &ticket)).await;
        assert!(passed.starts_with("HTTP/1.1 502"), "{passed}");
        let (_, again) = raw(&router, &connect("pty_1", &ticket)).await;
        assert!(again.starts_with("HTTP/1.1 401"), "used up: {again}");
    }

    #[test]
    fn query_helpers_should_find_and_drop_the_ticket() {
        assert_eq!(query_value("cursor=3&ticket=ab12", "ticket"), Some("ab12"));
        assert_eq!(query_value("xticket=1", "ticket"), None);
        assert_eq!(
            query_without(Some("cursor=3&ticket=ab12&x=1"), "ticket").as_deref(),
            Some("cursor=3&x=1")
        );
        assert_eq!(query_without(None, "ticket"), None);
    }
}
