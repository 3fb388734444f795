//! The OpenCode session export (`opencode export` / `GET /session/:id` + `/message`), typed just enough
//! to validate and patch it. Unknown fields are kept verbatim, so a newer OpenCode's data survives the
//! round trip untouched.

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

/// The agent and model a session was using locally, to be put back after a round trip.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentModel {
    pub agent: Option<String>,
    /// `(providerID, modelID)`
    pub model: Option<(String, String)>,
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

    /// The agent and model of the last user turn (what OpenCode would use next), falling back to the
    /// session's own record.
    pub fn agent_model(&self) -> AgentModel {
        let last_user = self.messages.iter().rev().find(|m| m.info.role == "user");
        let agent = last_user
            .and_then(|m| m.info.rest.get("agent"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| self.info.agent.clone());
        let model = last_user
            .and_then(|m| m.info.rest.get("model"))
            .and_then(model_pair)
            .or_else(|| {
                let model = self.info.model.as_ref()?;
                let provider = model.get("providerID")?.as_str()?;
                let id = model.get("id").or_else(|| model.get("modelID"))?.as_str()?;
                Some((provider.to_string(), id.to_string()))
            });
        AgentModel { agent, model }
    }

    /// Record `agent_model` as the session's agent and model (what a fresh import shows).
    pub fn set_agent_model(&mut self, agent_model: &AgentModel) {
        if let Some(agent) = &agent_model.agent {
            self.info.agent = Some(agent.clone());
        }
        if let Some((provider, id)) = &agent_model.model {
            let mut model = match self.info.model.take() {
                Some(Value::Object(map)) => map,
                _ => Map::new(),
            };
            model.insert("providerID".into(), Value::String(provider.clone()));
            model.insert("id".into(), Value::String(id.clone()));
            self.info.model = Some(Value::Object(model));
        }
    }

    /// Check that `returned` is this session carried forward: same id, and every message we sent is
    /// still there. A remote that returns something else must not be merged into the local session.
    pub fn check_continuation(&self, returned: &Export) -> Result<()> {
        if returned.info.id != self.info.id {
            return Err(Error::Session(
                "the returned session has a different id".into(),
            ));
        }
        let returned_ids: HashSet<&str> = returned
            .messages
            .iter()
            .map(|m| m.info.id.as_str())
            .collect();
        if let Some(missing) = self
            .messages
            .iter()
            .find(|m| !returned_ids.contains(m.info.id.as_str()))
        {
            return Err(Error::Session(format!(
                "the returned session lacks message {}",
                short(&missing.info.id)
            )));
        }
        Ok(())
    }

    /// Remove parts by id (our synthetic ones, which the live local session already has in its own form).
    pub fn remove_parts(&mut self, ids: &[String]) {
        for message in &mut self.messages {
            message.parts.retain(|p| !ids.contains(&p.id));
        }
    }

    /// Drop the messages that are neither in `known` nor created at or after `since_ms` (the remote's clock
    /// when this job started), and return how many went. The remote keeps its copy of a session between
    /// jobs, and `opencode import` only adds to it, so a returned session also carries what an earlier job
    /// left there: the half-done turn of a run that was killed or failed, or the work of a one-way hand-off
    /// that diverged from this session. Those were never part of this conversation; bringing them in now
    /// would interleave a stale history with the local one.
    pub fn drop_stale(&mut self, known: &HashSet<&str>, since_ms: u64) -> usize {
        let before = self.messages.len();
        self.messages.retain(|m| {
            known.contains(m.info.id.as_str())
                || m.info
                    .rest
                    .get("time")
                    .and_then(|t| t.get("created"))
                    .and_then(Value::as_u64)
                    .is_none_or(|created| created >= since_ms)
        });
        before - self.messages.len()
    }

    /// The ids of all messages.
    pub fn message_ids(&self) -> HashSet<&str> {
        self.messages.iter().map(|m| m.info.id.as_str()).collect()
    }

    /// Drop the messages `earlier` already has (with all their parts), keeping only the new ones.
    pub fn keep_new_messages_since(&mut self, earlier: &Export) {
        let known = earlier.message_ids();
        self.messages
            .retain(|m| !known.contains(m.info.id.as_str()));
    }
}

fn model_pair(value: &Value) -> Option<(String, String)> {
    let provider = value.get("providerID")?.as_str()?;
    let id = value.get("modelID")?.as_str()?;
    Some((provider.to_string(), id.to_string()))
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
