//! What a router does differently when its workspace lives in the project's shared server (one
//! `opencode serve` for all of a project's SSH workspaces). OpenCode serves a request for workspace
//! X there when it names X (`?workspace=X`) and tags what it does with X. But the control plane's
//! sync of X reads the server's whole `/global/event` stream and `/sync/history`, and would take
//! every other workspace's sessions as X's: the router passes on X's part only.

use std::collections::{HashMap, HashSet};

use http_body_util::BodyExt;
use hyper::body::{Bytes, Frame};
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde_json::Value;
use tokio::sync::mpsc;

use super::proxy::{full, Body};
use super::pty_events::ChannelBody;
use super::Shared;

/// `path_and_query` naming `workspace` as the only `workspace` parameter.
pub fn with_workspace(path_and_query: &str, workspace: &str) -> String {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let mut pairs: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some("workspace"))
        .collect();
    let named = format!("workspace={workspace}");
    pairs.push(&named);
    format!("{path}?{}", pairs.join("&"))
}

/// The longest event the filter holds while waiting for its end (a message part with a large tool
/// output is a few MB).
const MAX_EVENT: usize = 64 << 20;

/// `upstream` (the shared server's `/global/event`) with only what belongs to `workspace`.
pub fn events_of(workspace: String, mut upstream: Body) -> Body {
    let (out, frames) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut pending: Vec<u8> = Vec::new();
        loop {
            let frame = tokio::select! {
                frame = upstream.frame() => frame,
                _ = out.closed() => return,
            };
            let data = match frame {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_) => continue,
                },
                Some(Err(error)) => {
                    let _ = out.send(Err(error)).await;
                    return;
                }
                None => return,
            };
            pending.extend_from_slice(&data);
            let mut kept = Vec::new();
            while let Some(end) = find(&pending, b"\n\n") {
                let event: Vec<u8> = pending.drain(..end + 2).collect();
                if belongs_to(&event, &workspace) {
                    kept.extend_from_slice(&event);
                }
            }
            if pending.len() > MAX_EVENT {
                log::warn!("workspace router: an event over {MAX_EVENT} bytes ended the stream");
                return;
            }
            if !kept.is_empty() && out.send(Ok(Frame::data(Bytes::from(kept)))).await.is_err() {
                return;
            }
        }
    });
    ChannelBody(frames).boxed()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Whether one SSE event (`data: {json}` lines and a blank line) is the workspace's to see: its
/// own events, the stream's own (connected, heartbeat), and what the instance all its workspaces
/// share says without naming one. Sync events always name their workspace; another's never pass,
/// nor does the shared server's own view of its workspaces' status.
pub fn belongs_to(event: &[u8], workspace: &str) -> bool {
    let text = String::from_utf8_lossy(event);
    let data: String = text
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(str::trim_start)
        .collect();
    let Ok(value) = serde_json::from_str::<Value>(&data) else {
        // Comments and anything else that is not an event.
        return true;
    };
    let kind = value["payload"]["type"].as_str().unwrap_or_default();
    match value.get("workspace").and_then(Value::as_str) {
        _ if kind == "workspace.status" => false,
        Some(named) => named == workspace,
        None => kind != "sync",
    }
}

/// The most a history answer may be (it carries every session the control plane does not know yet).
const MAX_HISTORY: usize = 256 << 20;

/// `POST /sync/history`: the shared server answers with the events of every session the caller
/// did not list, whichever workspace it belongs to; only this workspace's sessions are passed on.
pub async fn history(
    shared: &Shared,
    request: Request<hyper::body::Incoming>,
    url: &str,
) -> Result<Response<Body>, String> {
    let (mut parts, body) = request.into_parts();
    // The answer is read here, so it must come uncompressed.
    parts.headers.remove(header::ACCEPT_ENCODING);
    let body = http_body_util::Limited::new(body, 16 << 20)
        .collect()
        .await
        .map_err(|e| format!("reading the history request: {e}"))?
        .to_bytes();
    let known: HashMap<String, Value> = serde_json::from_slice(&body).unwrap_or_default();
    let answer = super::proxy::send(
        &shared.client,
        &shared.shutdown,
        parts,
        full(body),
        url,
        shared.upstreams.authorization.expose(),
    )
    .await?;
    if answer.status() != StatusCode::OK {
        return Ok(answer);
    }
    let (mut head, body) = answer.into_parts();
    let body = http_body_util::Limited::new(body, MAX_HISTORY)
        .collect()
        .await
        .map_err(|e| format!("reading the history: {e}"))?
        .to_bytes();
    let events: Vec<Value> =
        serde_json::from_slice(&body).map_err(|e| format!("the history is not a list: {e}"))?;
    let workspace = &shared.upstreams.place.workspace;
    let mut ours: HashSet<String> = known.into_keys().collect();
    let mut others = HashSet::new();
    let mut kept = Vec::with_capacity(events.len());
    for event in events {
        let Some(session) = event["aggregate_id"].as_str().map(str::to_string) else {
            continue;
        };
        if !ours.contains(&session) && !others.contains(&session) {
            if session_workspace(shared, &session).await.as_deref() == Some(workspace.as_str()) {
                ours.insert(session.clone());
            } else {
                others.insert(session.clone());
            }
        }
        if ours.contains(&session) {
            kept.push(event);
        }
    }
    let text = Value::Array(kept).to_string();
    head.headers.remove(header::CONTENT_LENGTH);
    head.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(Response::from_parts(head, full(text)))
}

/// The workspace a session of the shared server belongs to (`GET /session/{id}`), if it says.
async fn session_workspace(shared: &Shared, session: &str) -> Option<String> {
    let info = super::server_json(shared, &format!("/session/{session}")).await?;
    info["workspaceID"].as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: &str) -> Vec<u8> {
        format!("data: {json}\n\n").into_bytes()
    }

    #[test]
    fn the_workspace_parameter_should_be_ours_alone() {
        assert_eq!(
            with_workspace("/session", "wrk_a"),
            "/session?workspace=wrk_a"
        );
        assert_eq!(
            with_workspace("/session/x?directory=%2Fp&workspace=wrk_b&limit=3", "wrk_a"),
            "/session/x?directory=%2Fp&limit=3&workspace=wrk_a"
        );
        assert_eq!(with_workspace("/p?", "wrk_a"), "/p?workspace=wrk_a");
    }

    #[test]
    fn only_this_workspace_and_what_names_none_should_pass() {
        let ours = r#"{"workspace":"wrk_a","payload":{"type":"session.created"}}"#;
        let theirs = r#"{"workspace":"wrk_b","payload":{"type":"session.created"}}"#;
        let our_sync = r#"{"workspace":"wrk_a","payload":{"type":"sync","syncEvent":{}}}"#;
        let their_sync = r#"{"workspace":"wrk_b","payload":{"type":"sync","syncEvent":{}}}"#;
        let unnamed_sync = r#"{"payload":{"type":"sync","syncEvent":{}}}"#;
        let instance = r#"{"directory":"/p","payload":{"type":"server.instance.disposed"}}"#;
        let heartbeat = r#"{"payload":{"type":"server.heartbeat","properties":{}}}"#;
        let status =
            r#"{"directory":"global","workspace":"wrk_a","payload":{"type":"workspace.status"}}"#;
        for (json, passes) in [
            (ours, true),
            (theirs, false),
            (our_sync, true),
            (their_sync, false),
            (unnamed_sync, false),
            (instance, true),
            (heartbeat, true),
            (status, false),
        ] {
            assert_eq!(belongs_to(&event(json), "wrk_a"), passes, "{json}");
        }
        assert!(belongs_to(b": keep-alive\n\n", "wrk_a"));
    }

    #[tokio::test]
    async fn events_split_across_frames_should_be_filtered_whole() {
        let ours = event(r#"{"workspace":"wrk_a","payload":{"type":"message.updated"}}"#);
        let theirs = event(r#"{"workspace":"wrk_b","payload":{"type":"message.updated"}}"#);
        let stream: Vec<u8> = [theirs.clone(), ours.clone(), theirs, ours.clone()].concat();
        // Cut the stream into 7-byte frames, so that events start and end inside frames.
        let (tx, rx) = mpsc::channel(1024);
        for chunk in stream.chunks(7) {
            tx.send(Ok(Frame::data(Bytes::copy_from_slice(chunk))))
                .await
                .unwrap();
        }
        drop(tx);
        let filtered = events_of("wrk_a".into(), ChannelBody(rx).boxed())
            .collect()
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(filtered.as_ref(), [ours.clone(), ours].concat().as_slice());
    }
}
