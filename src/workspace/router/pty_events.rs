//! The host's terminal events in the workspace's event stream. OpenCode's apps learn that a
//! terminal exited (and close its tab) from `pty.exited` on the bus, but a workspace's terminals
//! run in the stub, which cannot reach that bus. The control plane republishes whatever the
//! workspace's `/global/event` stream carries, so the router merges the stub's `pty.*` events
//! (`GET /v1/workspaces/{ws}/pty-events`) into that stream, in OpenCode's own event shape.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::{Bytes, Frame};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::proxy::Body;
use super::Shared;
use crate::workspace::remote;

/// Events waiting for the upstream stream to reach the end of an event; more are dropped (an app
/// that misses one is where OpenCode's own slow SSE clients are).
const HELD_EVENTS: usize = 64;

/// The longest wait between attempts to follow the stub's events.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// `upstream` (the workspace server's SSE answer) with the stub's terminal events added between
/// its events, for as long as the caller reads it.
pub fn merge_into_stream(shared: Arc<Shared>, upstream: Body) -> Body {
    let (events_tx, events) = mpsc::channel(HELD_EVENTS);
    let follower = tokio::spawn(follow_stub(shared.clone(), events_tx));
    let (frames_tx, frames) = mpsc::channel(16);
    tokio::spawn(async move {
        interleave(upstream, events, frames_tx).await;
        follower.abort();
    });
    ChannelBody(frames).boxed()
}

/// Copy `upstream` to `out`, putting each event of `events` in where no upstream event is cut in
/// two (after a frame that ends with the blank line that ends an SSE event).
async fn interleave(
    mut upstream: Body,
    mut events: mpsc::Receiver<Bytes>,
    out: mpsc::Sender<Result<Frame<Bytes>, hyper::Error>>,
) {
    let mut at_event_end = true;
    let mut held: Vec<Bytes> = Vec::new();
    loop {
        tokio::select! {
            frame = upstream.frame() => {
                let frame = match frame {
                    Some(Ok(frame)) => frame,
                    Some(Err(error)) => {
                        let _ = out.send(Err(error)).await;
                        return;
                    }
                    None => return,
                };
                if let Some(data) = frame.data_ref() {
                    at_event_end = data.ends_with(b"\n\n");
                }
                if out.send(Ok(frame)).await.is_err() {
                    return;
                }
                if at_event_end {
                    for event in held.drain(..) {
                        if out.send(Ok(Frame::data(event))).await.is_err() {
                            return;
                        }
                    }
                }
            }
            Some(event) = events.recv() => {
                if at_event_end {
                    if out.send(Ok(Frame::data(event))).await.is_err() {
                        return;
                    }
                } else if held.len() < HELD_EVENTS {
                    held.push(event);
                }
            }
            _ = out.closed() => return,
        }
    }
}

/// Read the stub's terminal events and pass them on as SSE events, reconnecting (with a growing
/// pause) when the stub or its tunnel goes away, until the stream's reader is gone.
async fn follow_stub(shared: Arc<Shared>, events: mpsc::Sender<Bytes>) {
    let mut pause = Duration::from_secs(1);
    let mut fresh = false;
    let mut envelope = None;
    loop {
        match read_events(&shared, fresh, &events, &mut envelope).await {
            Ok(()) => return,
            Err(problem) => {
                let host = &shared.upstreams.place.host;
                log::info!("workspace router ({host}): terminal events: {problem}");
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_RETRY);
        fresh = true;
    }
}

/// One connection to the stub's event stream. `Ok` when the reader is gone.
async fn read_events(
    shared: &Shared,
    fresh: bool,
    events: &mpsc::Sender<Bytes>,
    envelope: &mut Option<Envelope>,
) -> Result<(), String> {
    let upstreams = &shared.upstreams;
    let stub = remote::stub(&upstreams.place, &upstreams.sources, fresh)
        .await
        .map_err(|e| e.to_string())?;
    let path = opencode_remote_protocol::routes::pty_events(&upstreams.place.workspace);
    let mut stream = stub
        .client
        .get_stream(&path)
        .await
        .map_err(|e| crate::error::Error::from(e).to_string())?;
    loop {
        let event: Value = tokio::select! {
            next = stream.next() => match next.map_err(|e| e.to_string())? {
                Some(event) => event,
                None => return Err("the stub ended the stream".into()),
            },
            _ = events.closed() => return Ok(()),
        };
        if envelope.is_none() {
            *envelope = Some(Envelope::of(shared).await);
        }
        let Some(line) = envelope.as_ref().and_then(|e| e.sse(event)) else {
            continue;
        };
        if events.send(line).await.is_err() {
            return Ok(());
        }
    }
}

/// What OpenCode puts around a bus event in `/global/event`: the instance's directory and project.
pub(super) struct Envelope {
    directory: String,
    project: Option<String>,
    workspace: String,
}

impl Envelope {
    async fn of(shared: &Shared) -> Envelope {
        let upstreams = &shared.upstreams;
        Envelope {
            directory: upstreams.directory.clone(),
            project: project_id(shared).await,
            workspace: upstreams.place.workspace.clone(),
        }
    }

    /// One stub event (`{"type":"pty.…","properties":{…}}`) as an SSE event; `None` for anything
    /// that is not a terminal event.
    pub(super) fn sse(&self, event: Value) -> Option<Bytes> {
        let kind = event.get("type")?.as_str()?;
        if !kind.starts_with("pty.") {
            return None;
        }
        let mut wrapped = json!({
            "directory": self.directory,
            "workspace": self.workspace,
            "payload": {
                "id": event_id(),
                "type": kind,
                "properties": event.get("properties").cloned().unwrap_or_else(|| json!({})),
            },
        });
        if let Some(project) = &self.project {
            wrapped["project"] = json!(project);
        }
        Some(Bytes::from(format!("data: {wrapped}\n\n")))
    }
}

/// The project of the workspace's server (`GET /project/current`), which OpenCode names in each
/// event; `None` when it does not say.
async fn project_id(shared: &Shared) -> Option<String> {
    let project = super::server_json(shared, "/project/current").await?;
    project.get("id")?.as_str().map(str::to_string)
}

/// An id shaped like OpenCode's ascending event ids (`evt_` + time + random).
fn event_id() -> String {
    use rand::Rng;
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let alphabet = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    let random: String = (0..14)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect();
    format!("evt_{:012x}{random}", (millis << 12) & 0xffff_ffff_ffff)
}

/// A response body fed by a channel, one frame per message, ending when the sender goes.
pub(super) struct ChannelBody(pub(super) mpsc::Receiver<Result<Frame<Bytes>, hyper::Error>>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.0.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream body that sends `chunks` one frame at a time, each after the caller asks.
    fn upstream(chunks: Vec<&'static str>) -> (Body, mpsc::Sender<()>) {
        let (step_tx, mut step) = mpsc::channel::<()>(16);
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            for chunk in chunks {
                if step.recv().await.is_none() {
                    return;
                }
                let _ = tx.send(Ok(Frame::data(Bytes::from(chunk)))).await;
            }
        });
        (ChannelBody(rx).boxed(), step_tx)
    }

    async fn read_all(mut body: Body) -> String {
        let mut text = String::new();
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                text.push_str(std::str::from_utf8(data).unwrap());
            }
        }
        text
    }

    /// The merged stream when a terminal event arrives after the upstream's first chunk.
    async fn merged_with_an_event_after_the_first_chunk(chunks: Vec<&'static str>) -> String {
        let rest = chunks.len() - 1;
        let (body, step) = upstream(chunks);
        let (events_tx, events) = mpsc::channel(4);
        let (out_tx, out) = mpsc::channel(16);
        let merged = tokio::spawn(read_all(ChannelBody(out).boxed()));
        let copy = tokio::spawn(interleave(body, events, out_tx));
        step.send(()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        events_tx
            .send(Bytes::from("data: {\"pty\":1}\n\n"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        for _ in 0..rest {
            step.send(()).await.unwrap();
        }
        drop(step);
        copy.await.unwrap();
        merged.await.unwrap()
    }

    #[tokio::test]
    async fn a_terminal_event_should_wait_for_the_end_of_a_split_upstream_event() {
        // The event arrives while the upstream is in the middle of an event.
        let merged = merged_with_an_event_after_the_first_chunk(vec![
            "data: {\"a\":",
            "1}\n\n",
            "data: {\"b\":2}\n\n",
        ])
        .await;
        assert_eq!(
            merged,
            "data: {\"a\":1}\n\ndata: {\"pty\":1}\n\ndata: {\"b\":2}\n\n"
        );
    }

    #[tokio::test]
    async fn a_terminal_event_should_go_at_once_between_upstream_events() {
        let merged = merged_with_an_event_after_the_first_chunk(vec![
            "data: {\"a\":1}\n\n",
            "data: {\"b\":2}\n\n",
        ])
        .await;
        assert_eq!(
            merged,
            "data: {\"a\":1}\n\ndata: {\"pty\":1}\n\ndata: {\"b\":2}\n\n"
        );
    }

    #[test]
    fn a_stub_event_should_be_wrapped_as_opencode_wraps_bus_events() {
        let envelope = Envelope {
            directory: "/home/me/project".into(),
            project: Some("p1".into()),
            workspace: "wrk_1".into(),
        };
        let event = json!({"type": "pty.exited", "properties": {"id": "pty_1", "exitCode": 3}});
        let line = envelope.sse(event).unwrap();
        let text = std::str::from_utf8(&line).unwrap();
        assert!(
            text.starts_with("data: ") && text.ends_with("\n\n"),
            "{text}"
        );
        let value: Value = serde_json::from_str(&text[6..]).unwrap();
        assert_eq!(value["directory"], "/home/me/project");
        assert_eq!(value["project"], "p1");
        assert_eq!(value["workspace"], "wrk_1");
        assert_eq!(value["payload"]["type"], "pty.exited");
        assert_eq!(
            value["payload"]["properties"],
            json!({"id": "pty_1", "exitCode": 3})
        );
        assert!(value["payload"]["id"].as_str().unwrap().starts_with("evt_"));
        assert!(envelope
            .sse(json!({"type": "session.deleted", "properties": {}}))
            .is_none());
    }
}
