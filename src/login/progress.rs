//! Live progress of a `remote_login`, for the plugin to show while the call runs.
//!
//! The remote step comes from the run's JSON events: the waiter's one open channel forwards the latest
//! event line now and then (`@<event>` on stderr, see wait.sh), so progress costs no extra connection.

use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Longest remote step shown.
const MAX_STEP_CHARS: usize = 120;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Connecting,
    Dispatching,
    Waiting,
    Collecting,
    Writing,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Connecting => "connecting",
            Phase::Dispatching => "dispatching",
            Phase::Waiting => "waiting",
            Phase::Collecting => "collecting",
            Phase::Writing => "writing",
        }
    }
}

/// What [`Progress::snapshot`] reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub host: String,
    pub phase: Phase,
    pub elapsed_ms: f64,
    pub remote_step: Option<String>,
}

#[derive(Debug)]
struct State {
    host: String,
    phase: Phase,
    started: Instant,
    remote_step: Option<String>,
}

/// Shared between the running call (which updates it) and `loginProgress` (which reads it).
#[derive(Debug, Clone)]
pub struct Progress(Arc<Mutex<State>>);

impl Progress {
    pub fn new(host: &str) -> Progress {
        Progress(Arc::new(Mutex::new(State {
            host: host.chars().filter(|c| !c.is_control()).take(64).collect(),
            phase: Phase::Connecting,
            started: Instant::now(),
            remote_step: None,
        })))
    }

    pub fn set_phase(&self, phase: Phase) {
        let mut state = self.0.lock().expect("progress lock");
        if state.phase != phase {
            state.phase = phase;
            // A step belongs to the wait it was seen in.
            if phase != Phase::Waiting {
                state.remote_step = None;
            }
        }
    }

    pub fn set_step(&self, step: String) {
        self.0.lock().expect("progress lock").remote_step = Some(step);
    }

    pub fn snapshot(&self) -> Snapshot {
        let state = self.0.lock().expect("progress lock");
        Snapshot {
            host: state.host.clone(),
            phase: state.phase,
            elapsed_ms: state.started.elapsed().as_secs_f64() * 1000.0,
            remote_step: state.remote_step.clone(),
        }
    }
}

/// Splits the waiter's stderr into lines and hands each `@<event>` line's step to `on_step`.
#[derive(Default)]
pub struct EventLines {
    line: Vec<u8>,
}

impl EventLines {
    /// Longest line kept (wait.sh cuts events to 2000 bytes; the rest is log text).
    const MAX_LINE_BYTES: usize = 4096;

    pub fn feed(&mut self, bytes: &[u8], on_step: &mut dyn FnMut(String)) {
        for &byte in bytes {
            if byte == b'\n' {
                if let Some(event) = self.line.strip_prefix(b"@") {
                    if let Some(step) = step_of_event(&String::from_utf8_lossy(event)) {
                        on_step(step);
                    }
                }
                self.line.clear();
            } else if self.line.len() < Self::MAX_LINE_BYTES {
                self.line.push(byte);
            }
        }
    }
}

/// The step an `opencode run --format json` event line stands for: `bash: uname -a` for a tool,
/// `writing answer` for text. The line may be cut anywhere, so it is scanned, not parsed.
pub fn step_of_event(line: &str) -> Option<String> {
    let kind = string_after(line, "type")?;
    let step = match kind.as_str() {
        "tool_use" => {
            let tool = string_after(line, "tool")?;
            let detail = [
                "title",
                "command",
                "filePath",
                "pattern",
                "url",
                "description",
            ]
            .iter()
            .find_map(|key| string_after(line, key).filter(|v| !v.trim().is_empty()));
            match detail {
                Some(detail) => format!("{tool}: {detail}"),
                None => tool,
            }
        }
        "text" => "writing answer".to_string(),
        "reasoning" | "step_start" | "step_finish" => "thinking".to_string(),
        "error" => "failed".to_string(),
        _ => return None,
    };
    Some(clean_step(&step))
}

/// The JSON string value of the first `"key":"…"` in `line`, decoded; cut short when the line is.
fn string_after(line: &str, key: &str) -> Option<String> {
    let needle = format!("\"{key}\":\"");
    let start = line.find(&needle)? + needle.len() - 1;
    let rest = &line[start..];
    let mut escaped = false;
    let mut end = None;
    for (i, c) in rest.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => {
                end = Some(i);
                break;
            }
            _ => {}
        }
    }
    match end {
        Some(end) => serde_json::from_str(&rest[..=end]).ok(),
        // Cut inside the value: what there is, without a dangling escape.
        None => Some(rest[1..].trim_end_matches('\\').replace("\\n", " ")),
    }
}

fn clean_step(step: &str) -> String {
    let flat: String = step
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .collect();
    let clean = super::super::session::back::clean_text(&flat, usize::MAX);
    let clean = clean.trim();
    if clean.chars().count() <= MAX_STEP_CHARS {
        clean.to_string()
    } else {
        let cut: String = clean.chars().take(MAX_STEP_CHARS - 1).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_of_event_should_name_the_tool_and_its_title_or_input() {
        let line = r#"{"type":"tool_use","timestamp":1,"sessionID":"ses_1","part":{"id":"prt_1","type":"tool","tool":"bash","state":{"status":"completed","input":{"command":"uname -a"},"output":"Linux","title":"uname -a"}}}"#;
        assert_eq!(step_of_event(line).unwrap(), "bash: uname -a");
        let cut = &line[..line.find("\"output\"").unwrap()];
        assert_eq!(step_of_event(cut).unwrap(), "bash: uname -a");
        let text = r#"{"type":"text","timestamp":1,"part":{"type":"text","text":"done"}}"#;
        assert_eq!(step_of_event(text).unwrap(), "writing answer");
        assert_eq!(step_of_event("garbage"), None);
    }

    #[test]
    fn step_of_event_should_be_short_and_free_of_escapes() {
        let long = format!(
            r#"{{"type":"tool_use","part":{{"tool":"bash","state":{{"input":{{"command":"echo \u001b[31m{}"#,
            "x".repeat(500)
        );
        let step = step_of_event(&long).unwrap();
        assert!(step.chars().count() <= MAX_STEP_CHARS, "{step}");
        assert!(!step.contains('\u{1b}'), "{step}");
        assert!(step.starts_with("bash: echo "), "{step}");
    }

    #[test]
    fn event_lines_should_report_only_event_lines() {
        let mut lines = EventLines::default();
        let mut steps = Vec::new();
        lines.feed(b"...\n@{\"type\":\"te", &mut |s| steps.push(s));
        lines.feed(b"xt\"}\nError: boom\n", &mut |s| steps.push(s));
        assert_eq!(steps, ["writing answer"]);
    }
}
