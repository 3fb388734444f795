//! Streaming HTTP/1 proxying: a request goes to its upstream with the router's own credentials,
//! and the answer comes back as it arrives (server-sent events stay unbuffered). WebSocket
//! upgrades are passed through: both sides upgrade, then bytes are copied both ways.

use std::time::Duration;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio_util::sync::CancellationToken;

/// Request and response bodies, streamed or built here.
pub type Body = BoxBody<Bytes, hyper::Error>;

pub type HttpClient = Client<HttpConnector, Body>;

/// Idle pooled connections are dropped before the stub's own idle deadline (10 s) closes them.
const POOL_IDLE: Duration = Duration::from_secs(5);

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE)
        .build_http()
}

/// A body built in memory.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// Headers that belong to one connection, not to the request (RFC 9110 §7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether the request asks to switch protocols (a WebSocket).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

/// Send the request (`parts` with `body`) to `url` with `authorization` instead of the caller's,
/// and return the upstream's answer, streamed. An upgrade the upstream accepts (101) is joined to
/// the caller's, until either side closes or `shutdown`.
pub async fn send(
    client: &HttpClient,
    shutdown: &CancellationToken,
    mut parts: Parts,
    body: Body,
    url: &str,
    authorization: &str,
) -> Result<Response<Body>, String> {
    let upgrade = is_upgrade(&parts.headers);
    let caller = upgrade
        .then(|| parts.extensions.remove::<OnUpgrade>())
        .flatten();
    parts.uri = url.parse().map_err(|e| format!("bad upstream URL: {e}"))?;
    parts.version = hyper::Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers, upgrade);
    parts.headers.remove(header::HOST);
    let authorization =
        HeaderValue::from_str(authorization).map_err(|e| format!("bad credentials: {e}"))?;
    parts.headers.insert(header::AUTHORIZATION, authorization);
    let mut response = client
        .request(Request::from_parts(parts, body))
        .await
        .map_err(|e| format!("{e}{}", source_of(&e)))?;
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(caller) = caller {
            let upstream = hyper::upgrade::on(&mut response);
            tokio::spawn(join_upgrades(caller, upstream, shutdown.clone()));
        }
    } else {
        strip_hop_by_hop(response.headers_mut(), false);
    }
    Ok(response.map(BodyExt::boxed))
}

/// The cause of a client error, which hyper keeps out of its own message.
fn source_of(error: &hyper_util::client::legacy::Error) -> String {
    std::error::Error::source(error)
        .map(|cause| format!(": {cause}"))
        .unwrap_or_default()
}

/// Copy bytes both ways between the two upgraded connections.
async fn join_upgrades(caller: OnUpgrade, upstream: OnUpgrade, shutdown: CancellationToken) {
    let (Ok(caller), Ok(upstream)) = tokio::join!(caller, upstream) else {
        return;
    };
    let (mut caller, mut upstream) = (TokioIo::new(caller), TokioIo::new(upstream));
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut caller, &mut upstream) => {}
        _ = shutdown.cancelled() => {}
    }
}

/// Remove the headers of this connection (and those `Connection` names); an upgrade keeps its
/// `Connection: upgrade` and `Upgrade`.
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let protocol = headers.get(header::UPGRADE).cloned();
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
    if let (true, Some(protocol)) = (upgrade, protocol) {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol);
    }
}

/// A copy of a request's head without its extensions (which hold the connection's upgrade), to
/// send the same request again.
pub fn copy_head(parts: &Parts) -> Parts {
    let mut copy = Request::new(()).into_parts().0;
    copy.method = parts.method.clone();
    copy.uri = parts.uri.clone();
    copy.version = parts.version;
    copy.headers = parts.headers.clone();
    copy
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_should_go() {
        let mut map = headers(&[
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("x-private", "1"),
            ("transfer-encoding", "chunked"),
            ("x-opencode-sync", "{\"ses_1\":2}"),
            ("content-type", "text/event-stream"),
        ]);
        strip_hop_by_hop(&mut map, false);
        let names: Vec<&str> = map.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-opencode-sync", "content-type"]);
    }

    #[test]
    fn an_upgrade_should_keep_connection_upgrade_and_its_protocol() {
        let mut map = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "k"),
        ]);
        assert!(is_upgrade(&map));
        strip_hop_by_hop(&mut map, true);
        assert_eq!(map["connection"], "upgrade");
        assert_eq!(map["upgrade"], "websocket");
        assert_eq!(map["sec-websocket-key"], "k");
        assert!(!is_upgrade(&headers(&[("upgrade", "websocket")])));
    }
}
