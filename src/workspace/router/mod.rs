//! A workspace's router: the URL the control plane forwards the workspace's requests to. It sends
//! each one where it belongs (see [`table`]): files, search, version control, terminals and paths
//! to the stub on the host, undo and `!` shell commands back with an error that says why, and the
//! rest to the workspace's local `opencode serve`. It asks for the same `authorization` as that
//! server, so the control plane's `target.headers` are unchanged.

mod proxy;
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
}

struct Shared {
    upstreams: Upstreams,
    client: HttpClient,
    tickets: Tickets,
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
        let shared = Arc::new(Shared {
            upstreams,
            client: proxy::client(),
            tickets: Tickets::default(),
            shutdown: shutdown.clone(),
        });
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
    let url = format!(
        "{}{}",
        upstreams.server_url,
        request.uri().path_and_query().map_or("/", |p| p.as_str())
    );
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
    tokio::spawn(toast(shared.clone(), message.clone()));
    named_error(StatusCode::BAD_REQUEST, refusal.name(), &message)
}

/// `POST /tui/show-toast` on the workspace's server: its event reaches the TUI through the
/// control plane's sync, tagged with this workspace.
async fn toast(shared: Arc<Shared>, message: String) {
    let upstreams = &shared.upstreams;
    let body = json!({
        "title": "Not available in an SSH workspace",
        "message": message,
        "variant": "error",
    });
    let request = Request::post(format!("{}/tui/show-toast", upstreams.server_url))
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
    use super::*;

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
