//! The text parts a round trip writes into the local assistant message that called `remote_login`.
//!
//! Each is a complete OpenCode `TextPart` (`{id, sessionID, messageID, type: "text", text, time}`, what
//! `PATCH /session/{id}/message/{messageID}/part/{partID}` accepts), with ids in OpenCode's ascending
//! format so they sort after the tool's own part and in the order given.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::session::new_id;

/// At most this many parts per call, the truncation note included.
pub const MAX_PARTS: usize = 400;
/// At most this much text in all parts of one call.
pub const MAX_TOTAL_TEXT_BYTES: usize = 1024 * 1024;

/// A header line and the text items under it.
pub struct Section {
    pub header: String,
    pub items: Vec<String>,
}

/// The parts, as JSON text, and how many items the limits left out.
#[derive(Debug, Default)]
pub struct Built {
    pub parts: Vec<String>,
    pub left_out: usize,
}

pub fn build(session_id: &str, message_id: &str, sections: &[Section]) -> Built {
    let texts: Vec<&str> = sections
        .iter()
        .flat_map(|s| std::iter::once(s.header.as_str()).chain(s.items.iter().map(String::as_str)))
        .collect();
    let mut kept = Vec::new();
    let mut total = 0;
    for text in &texts {
        if kept.len() + 1 >= MAX_PARTS || total + text.len() > MAX_TOTAL_TEXT_BYTES {
            break;
        }
        total += text.len();
        kept.push(text.to_string());
    }
    let left_out = texts.len() - kept.len();
    if left_out > 0 {
        kept.push(format!(
            "… {left_out} more item(s) of the remote's work were left out (limits: {MAX_PARTS} parts, {} KiB of \
             text).",
            MAX_TOTAL_TEXT_BYTES / 1024
        ));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let parts = kept
        .into_iter()
        .map(|text| {
            json!({
                "id": new_id("prt"),
                "sessionID": session_id,
                "messageID": message_id,
                "type": "text",
                "text": text,
                "time": { "start": now, "end": now },
            })
            .to_string()
        })
        .collect();
    Built { parts, left_out }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn build_should_make_ascending_text_parts_of_the_message() {
        let built = build(
            "ses_1",
            "msg_1",
            &[Section {
                header: "── work done on pi (1 message) ──".into(),
                items: vec!["a".into(), "b".into()],
            }],
        );
        assert_eq!(built.left_out, 0);
        let parts: Vec<Value> = built
            .parts
            .iter()
            .map(|p| serde_json::from_str(p).unwrap())
            .collect();
        assert_eq!(parts.len(), 3);
        for part in &parts {
            let keys: Vec<&str> = part
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(
                keys,
                ["id", "messageID", "sessionID", "text", "time", "type"]
            );
            assert_eq!(part["type"], "text");
            assert_eq!(part["messageID"], "msg_1");
        }
        let ids: Vec<&str> = parts.iter().map(|p| p["id"].as_str().unwrap()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted, "ascending");
        assert_eq!(parts[2]["text"], "b");
    }

    #[test]
    fn build_should_cap_parts_and_text_and_say_so() {
        let many = Section {
            header: "h".into(),
            items: (0..10_000).map(|i| i.to_string()).collect(),
        };
        let built = build("ses_1", "msg_1", &[many]);
        assert_eq!(built.parts.len(), MAX_PARTS);
        assert!(built.parts.last().unwrap().contains("left out"));

        let big = Section {
            header: "h".into(),
            items: vec!["x".repeat(60 * 1024); 40],
        };
        let built = build("ses_1", "msg_1", &[big]);
        let text: usize = built
            .parts
            .iter()
            .map(|p| {
                serde_json::from_str::<Value>(p).unwrap()["text"]
                    .as_str()
                    .unwrap()
                    .len()
            })
            .sum();
        assert!(text <= MAX_TOTAL_TEXT_BYTES + 200, "{text}");
        assert!(built.left_out > 0);
    }
}
