//! The OpenCode session export (`opencode export` / `GET /session/:id` + `/message`), typed just enough
//! to validate and patch it. Unknown fields are kept verbatim, so a newer OpenCode's data survives the
//! round trip untouched.

pub mod back;
mod patch;
mod surrogates;

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

pub use patch::{complete_dispatch_call, new_id, DispatchCall};

/// Largest export we accept; a session this big is a bug or an attack, not a conversation.
pub const MAX_EXPORT_BYTES: usize = 256 * 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Export {
    pub info: SessionInfo,
    pub messages: Vec<Message>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionInfo {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<Value>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    pub info: MessageInfo,
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageInfo {
    pub id: String,
    #[serde(rename = "sessionID")]
    pub session_id: String,
    pub role: String,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Part {
    pub id: String,
    #[serde(rename = "sessionID")]
    pub session_id: String,
    #[serde(rename = "messageID")]
    pub message_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl Export {
    /// Parse and check the invariants OpenCode itself relies on: ids of the right kind, every message and
    /// part belonging to this session, no duplicate ids.
    pub fn parse(bytes: &[u8]) -> Result<Export> {
        if bytes.len() > MAX_EXPORT_BYTES {
            return Err(Error::Session(format!(
                "export is {} bytes, over the {MAX_EXPORT_BYTES} limit",
                bytes.len()
            )));
        }
        let export: Export = serde_json::from_slice(&surrogates::replace_lone_surrogates(bytes))
            .map_err(|e| {
                Error::Session(format!("not a session export: {}", bounded(&e.to_string())))
            })?;
        export.validate()?;
        Ok(export)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an Export always serializes")
    }

    fn validate(&self) -> Result<()> {
        if !is_id(&self.info.id, "ses_") {
            return Err(Error::Session("session id is missing or malformed".into()));
        }
        let mut seen = HashSet::new();
        for message in &self.messages {
            if !is_id(&message.info.id, "msg_") || message.info.session_id != self.info.id {
                return Err(Error::Session(format!(
                    "message {} does not belong to the session",
                    short(&message.info.id)
                )));
            }
            if !seen.insert(message.info.id.as_str()) {
                return Err(Error::Session(format!(
                    "message {} appears twice",
                    short(&message.info.id)
                )));
            }
            for part in &message.parts {
                if !is_id(&part.id, "prt_")
                    || part.session_id != self.info.id
                    || part.message_id != message.info.id
                {
                    return Err(Error::Session(format!(
                        "part {} does not belong to its message",
                        short(&part.id)
                    )));
                }
                if !seen.insert(part.id.as_str()) {
                    return Err(Error::Session(format!(
                        "part {} appears twice",
                        short(&part.id)
                    )));
                }
            }
        }
        Ok(())
    }

    /// Forget the session's recorded agent and model, so the remote's `opencode run` picks its own
    /// defaults instead of the local session's (`SessionPrompt` prefers the session's record).
    pub fn clear_agent_model(&mut self) {
        self.info.agent = None;
        self.info.model = None;
    }

    /// The ids of all messages.
    pub fn message_ids(&self) -> HashSet<&str> {
        self.messages.iter().map(|m| m.info.id.as_str()).collect()
    }
}

/// OpenCode ids: a prefix, then URL-safe characters only.
pub fn is_id(id: &str, prefix: &str) -> bool {
    id.len() <= 128
        && id.strip_prefix(prefix).is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

/// serde_json quotes a mistyped string value whole ("invalid type: string \"…\""): keep its start
/// and its end (where the line and column are) so a hostile file cannot flood the model's context.
fn bounded(text: &str) -> String {
    const HEAD_CHARS: usize = 120;
    const TAIL_CHARS: usize = 60;
    let count = text.chars().count();
    if count <= HEAD_CHARS + TAIL_CHARS {
        return text.to_string();
    }
    let head: String = text.chars().take(HEAD_CHARS).collect();
    let tail: String = text.chars().skip(count - TAIL_CHARS).collect();
    format!("{head}…{tail}")
}

fn short(id: &str) -> String {
    id.chars().take(40).collect()
}

#[cfg(test)]
mod tests;
