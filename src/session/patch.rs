//! Patching the `remote_login` call that is still in flight when the session is exported.
//!
//! The export is taken while our own tool is executing, so its part shows `pending` or `running` (current
//! OpenCode shows `running`; the seed only handled `pending` and so patched nothing). The remote model
//! must see a finished call, or it tries to answer it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;
use serde_json::{json, Value};

use super::{Export, Part};

/// What to write into the in-flight call.
pub struct DispatchCall<'a> {
    /// The provider's tool-call id, when OpenCode gave it to the tool.
    pub call_id: Option<&'a str>,
    pub host: &'a str,
    pub title: String,
    pub output: String,
}

/// Mark the in-flight `remote_login` call completed and close its step. Returns the ids of parts we
/// created, so they can be left out when the session comes back.
pub fn complete_dispatch_call(export: &mut Export, call: &DispatchCall<'_>) -> Vec<String> {
    let now = now_ms();
    let session_id = export.info.id.clone();
    let Some((message_index, part_index)) = find_call(export, call.call_id) else {
        return Vec::new();
    };
    let message = &mut export.messages[message_index];
    let part = &mut message.parts[part_index];
    let input = part
        .rest
        .get("state")
        .and_then(|s| s.get("input"))
        .filter(|i| i.as_object().is_some_and(|o| !o.is_empty()))
        .cloned()
        .unwrap_or_else(|| json!({ "host": call.host }));
    let start = part
        .rest
        .get("state")
        .and_then(|s| s.pointer("/time/start"))
        .and_then(Value::as_u64)
        .unwrap_or(now);
    part.rest.insert(
        "state".into(),
        json!({
            "status": "completed",
            "input": input,
            "output": call.output,
            "title": call.title,
            "metadata": { "truncated": false },
            "time": { "start": start, "end": now },
        }),
    );

    let mut created = Vec::new();
    if !message.parts[part_index + 1..]
        .iter()
        .any(|p| p.kind == "step-finish")
    {
        let id = new_id("prt");
        message.parts.push(Part {
            id: id.clone(),
            session_id,
            message_id: message.info.id.clone(),
            kind: "step-finish".into(),
            rest: json!({
                "reason": "tool-calls",
                "cost": 0,
                "tokens": { "total": 0, "input": 0, "output": 0, "reasoning": 0, "cache": { "read": 0, "write": 0 } },
            })
            .as_object()
            .cloned()
            .unwrap_or_default(),
        });
        created.push(id);
    }
    message
        .info
        .rest
        .insert("finish".into(), json!("tool-calls"));
    let time = message.info.rest.entry("time").or_insert_with(|| json!({}));
    if let Some(time) = time.as_object_mut() {
        time.entry("completed").or_insert(json!(now));
    }
    created
}

/// The `remote_login` part to patch: the one with our call id, else the last unfinished one.
fn find_call(export: &Export, call_id: Option<&str>) -> Option<(usize, usize)> {
    let is_ours = |p: &Part| {
        p.kind == "tool" && p.rest.get("tool").and_then(Value::as_str) == Some("remote_login")
    };
    let status = |p: &Part| {
        p.rest
            .get("state")
            .and_then(|s| s.get("status"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let mut fallback = None;
    for (mi, message) in export.messages.iter().enumerate() {
        for (pi, part) in message.parts.iter().enumerate() {
            if !is_ours(part) {
                continue;
            }
            if call_id.is_some() && part.rest.get("callID").and_then(Value::as_str) == call_id {
                return Some((mi, pi));
            }
            if matches!(status(part).as_deref(), Some("pending" | "running") | None) {
                fallback = Some((mi, pi));
            }
        }
    }
    fallback
}

/// An id in OpenCode's ascending format (`prt_`, 12 hex digits of time·4096+counter cut to 48 bits,
/// then 14 base62; `Identifier.ascending` in OpenCode), so it sorts after everything created before it.
/// Ids made by this process are strictly ascending, even hundreds within one millisecond.
pub fn new_id(prefix: &str) -> String {
    static LAST: AtomicU64 = AtomicU64::new(0);
    const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let now = now_ms() * 0x1000;
    let value = LAST
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(now.max(last + 1))
        })
        .map_or(now, |last| now.max(last + 1));
    let stamp = value & 0xffff_ffff_ffff;
    let mut rng = rand::rng();
    let random: String = (0..14)
        .map(|_| BASE62[rng.random_range(0..BASE62.len())] as char)
        .collect();
    format!("{prefix}_{stamp:012x}{random}")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
