//! What a round trip brings back: the remote's back-file read as untrusted data and turned into plain
//! text, never imported.
//!
//! A hostile or broken remote controls every byte of the back-file. Nothing of it is written into the
//! local session as a message: only the text of the remote's new assistant messages and a summary of
//! its tool calls come back, as text items the plugin writes into its own assistant message through
//! OpenCode's part API. A user message, a subtask, a `file://` part, a patch or a system prompt can
//! therefore never reach the local agent as anything but counted, dropped data.
//!
//! The file is read with bounded memory: a size cap before parsing, then typed, lenient serde structs
//! (unknown fields skipped, a wrong type becomes "absent") and one message at a time, never a
//! `serde_json::Value` tree of the whole file.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::{bounded, is_id, surrogates};
use crate::error::{Error, Result};

/// Largest back-file we read; a bigger one is refused before parsing.
pub const MAX_BACK_FILE_BYTES: usize = 32 * 1024 * 1024;
/// Longest text one remote text part may bring back.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// Longest tool output shown in a tool summary.
pub const MAX_TOOL_OUTPUT_BYTES: usize = 8 * 1024;
/// Longest tool title or input summary.
const MAX_TITLE_CHARS: usize = 120;

/// What the back-file must match to be this round trip's answer.
pub struct Window<'a> {
    pub session_id: &'a str,
    /// Messages the remote received from us (the local session): never brought back.
    pub known: &'a HashSet<String>,
    /// When the remote run started and finished (remote clock, ms since the epoch): the run's own
    /// messages were created in between.
    pub started_ms: u64,
    pub finished_ms: Option<u64>,
    /// The prompt we sent: the run's first user message, expected and skipped silently.
    pub prompt: Option<&'a str>,
}

/// The remote's work, as text items in the order it happened.
#[derive(Debug, Default)]
pub struct Returned {
    pub items: Vec<String>,
    /// Remote assistant messages the items came from.
    pub messages: usize,
    pub dropped: Drops,
    /// Messages older than the run (left in the remote's copy by earlier jobs): expected, not counted.
    pub older: usize,
}

/// Counts of what was left out, by kind.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Drops(BTreeMap<Dropped, usize>);

/// Kinds of dropped content, each with its singular and plural wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dropped {
    UserMessage,
    ForeignMessage,
    DuplicateMessage,
    LateMessage,
    OtherRole,
    MalformedMessage,
    SystemField,
    ForeignPart,
    MalformedPart,
    Part(&'static str),
    UnknownPart,
}

impl Dropped {
    fn words(self) -> (&'static str, &'static str) {
        match self {
            Dropped::UserMessage => ("user message", "user messages"),
            Dropped::ForeignMessage => {
                ("message of another session", "messages of another session")
            }
            Dropped::DuplicateMessage => ("duplicate message", "duplicate messages"),
            Dropped::LateMessage => (
                "message dated outside the run",
                "messages dated outside the run",
            ),
            Dropped::OtherRole => ("message of an unknown role", "messages of an unknown role"),
            Dropped::MalformedMessage => ("malformed message", "malformed messages"),
            Dropped::SystemField => ("system field", "system fields"),
            Dropped::ForeignPart => ("part of another message", "parts of other messages"),
            Dropped::MalformedPart => ("malformed part", "malformed parts"),
            Dropped::Part("file") => ("file part", "file parts"),
            Dropped::Part("patch") => ("patch part", "patch parts"),
            Dropped::Part("subtask") => ("subtask part", "subtask parts"),
            Dropped::Part("agent") => ("agent part", "agent parts"),
            Dropped::Part("snapshot") => ("snapshot part", "snapshot parts"),
            Dropped::Part("compaction") => ("compaction part", "compaction parts"),
            Dropped::Part("retry") => ("retry part", "retry parts"),
            Dropped::Part(_) | Dropped::UnknownPart => {
                ("part of an unknown type", "parts of unknown types")
            }
        }
    }
}

impl Drops {
    pub fn add(&mut self, kind: Dropped) {
        *self.0.entry(kind).or_default() += 1;
    }

    pub fn count(&self, kind: Dropped) -> usize {
        self.0.get(&kind).copied().unwrap_or(0)
    }

    pub fn merge(&mut self, other: &Drops) {
        for (kind, n) in &other.0 {
            *self.0.entry(*kind).or_default() += n;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Human-readable items: `1 user message`, `2 file parts`.
    pub fn summary(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|(kind, n)| {
                let (one, many) = kind.words();
                format!("{n} {}", if *n == 1 { one } else { many })
            })
            .collect()
    }
}

/// Read `bytes` (a remote `opencode export`) and keep only the run's assistant work as text.
pub fn read_back_file(bytes: &[u8], host: &str, window: &Window<'_>) -> Result<Returned> {
    if bytes.len() > MAX_BACK_FILE_BYTES {
        return Err(Error::Session(format!(
            "the session came back from '{host}' as {} MiB, over the {} MiB limit; nothing of it was written",
            bytes.len() / (1024 * 1024),
            MAX_BACK_FILE_BYTES / (1024 * 1024)
        )));
    }
    let bytes = surrogates::replace_lone_surrogates(bytes);
    let mut sink = Sink {
        window,
        host,
        seen: HashSet::new(),
        prompt_seen: false,
        out: Returned::default(),
    };
    let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
    let session_id = TopLevel { sink: &mut sink }
        .deserialize(&mut deserializer)
        .and_then(|id| deserializer.end().map(|()| id))
        .map_err(|e| {
            Error::Session(format!("not a session export: {}", bounded(&e.to_string())))
        })?;
    match session_id {
        Some(id) if id == window.session_id => Ok(sink.out),
        Some(_) => Err(Error::Session(
            "the returned session has a different id".into(),
        )),
        None => Err(Error::Session("the returned session has no id".into())),
    }
}

/// The top-level object: `info.id` and, one at a time, `messages`.
struct TopLevel<'s, 'w> {
    sink: &'s mut Sink<'w>,
}

impl<'de> DeserializeSeed<'de> for TopLevel<'_, '_> {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopLevel<'_, '_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a session export object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut id = None;
        let mut messages = false;
        while let Some(key) = map.next_key::<Str>()? {
            match key.0.as_deref() {
                Some("info") => {
                    let info: Obj<InfoFields> = map.next_value()?;
                    id = info.0.and_then(|i| i.id.0);
                }
                Some("messages") if !messages => {
                    messages = true;
                    map.next_value_seed(Messages {
                        sink: &mut *self.sink,
                    })?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !messages {
            return Err(de::Error::missing_field("messages"));
        }
        Ok(id)
    }
}

struct Messages<'s, 'w> {
    sink: &'s mut Sink<'w>,
}

impl<'de> DeserializeSeed<'de> for Messages<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Messages<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of messages")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(message) = seq.next_element::<Obj<MessageFields>>()? {
            self.sink.message(message.0);
        }
        Ok(())
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct InfoFields {
    id: Str,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct MessageFields {
    info: Obj<MessageInfo>,
    parts: List<PartFields>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct MessageInfo {
    id: Str,
    #[serde(rename = "sessionID")]
    session_id: Str,
    role: Str,
    time: Obj<Time>,
    /// Only its presence matters: a system prompt never comes back.
    system: Present,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Time {
    created: Num,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PartFields {
    #[serde(rename = "messageID")]
    message_id: Str,
    #[serde(rename = "sessionID")]
    session_id: Str,
    #[serde(rename = "type")]
    kind: Str,
    text: Str,
    tool: Str,
    state: Obj<ToolState>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ToolState {
    status: Str,
    title: Str,
    output: Str,
    error: Str,
    input: Obj<BTreeMap<String, Scalar>>,
}

/// Turns messages into text items as they are read.
struct Sink<'w> {
    window: &'w Window<'w>,
    host: &'w str,
    seen: HashSet<String>,
    prompt_seen: bool,
    out: Returned,
}

impl Sink<'_> {
    fn message(&mut self, message: Option<MessageFields>) {
        let Some(MessageFields {
            info: Obj(Some(info)),
            parts,
        }) = message
        else {
            self.out.dropped.add(Dropped::MalformedMessage);
            return;
        };
        let Some(id) = info.id.0.filter(|id| is_id(id, "msg_")) else {
            self.out.dropped.add(Dropped::MalformedMessage);
            return;
        };
        // Ours: what the remote received from us, carried along in its copy.
        if self.window.known.contains(&id) {
            return;
        }
        if info.session_id.0.as_deref() != Some(self.window.session_id) {
            self.out.dropped.add(Dropped::ForeignMessage);
            return;
        }
        if !self.seen.insert(id.clone()) {
            self.out.dropped.add(Dropped::DuplicateMessage);
            return;
        }
        let created = info.time.0.and_then(|t| t.created.0);
        match self.place(&id, created) {
            Place::Before => {
                self.out.older += 1;
                return;
            }
            Place::After => {
                self.out.dropped.add(Dropped::LateMessage);
                return;
            }
            Place::Undated => {
                self.out.dropped.add(Dropped::MalformedMessage);
                return;
            }
            Place::Inside => {}
        }
        let parts = parts.0.unwrap_or_default();
        match info.role.0.as_deref() {
            Some("assistant") => {}
            Some("user") => {
                if !self.prompt_seen && self.is_prompt(&id, &parts) {
                    self.prompt_seen = true;
                } else {
                    self.out.dropped.add(Dropped::UserMessage);
                }
                return;
            }
            _ => {
                self.out.dropped.add(Dropped::OtherRole);
                return;
            }
        }
        if info.system.0 {
            self.out.dropped.add(Dropped::SystemField);
        }
        self.out.messages += 1;
        for part in parts {
            self.part(&id, part);
        }
    }

    /// Where a message falls relative to the run: its id's time stamp and its `time.created` both
    /// have to be inside, so neither a forged id nor a forged time can sort it after later messages.
    fn place(&self, id: &str, created: Option<f64>) -> Place {
        let (Some(stamp), Some(created)) = (
            id_stamp(id),
            created
                .filter(|c| c.is_finite() && *c >= 0.0)
                .map(|c| c as u64),
        ) else {
            return Place::Undated;
        };
        let started = self.window.started_ms;
        // Older on both counts: left in the remote's copy by an earlier job. Older on one count only: forged.
        match (stamp_diff(stamp, stamp_of(started)) < 0, created < started) {
            (true, true) => return Place::Before,
            (true, false) | (false, true) => return Place::After,
            (false, false) => {}
        }
        match self.window.finished_ms {
            Some(finished)
                if stamp_diff(stamp, stamp_of(finished + 1)) >= 0 || created > finished =>
            {
                Place::After
            }
            _ => Place::Inside,
        }
    }

    fn is_prompt(&self, _id: &str, parts: &[Option<PartFields>]) -> bool {
        let Some(prompt) = self.window.prompt else {
            return false;
        };
        let text: String = parts
            .iter()
            .flatten()
            .filter(|p| p.kind.0.as_deref() == Some("text"))
            .filter_map(|p| p.text.0.as_deref())
            .collect();
        text.trim() == prompt.trim()
    }

    fn part(&mut self, message_id: &str, part: Option<PartFields>) {
        let drops = &mut self.out.dropped;
        let Some(part) = part else {
            drops.add(Dropped::MalformedPart);
            return;
        };
        if part.message_id.0.as_deref() != Some(message_id)
            || part.session_id.0.as_deref() != Some(self.window.session_id)
        {
            drops.add(Dropped::ForeignPart);
            return;
        }
        match part.kind.0.as_deref() {
            Some("text") => match part.text.0 {
                Some(text) => {
                    let text = clean_text(&text, MAX_TEXT_BYTES);
                    if !text.trim().is_empty() {
                        self.out.items.push(text);
                    }
                }
                None => drops.add(Dropped::MalformedPart),
            },
            Some("tool") => match tool_summary(self.host, &part) {
                Some(summary) => self.out.items.push(summary),
                None => drops.add(Dropped::MalformedPart),
            },
            Some("step-start" | "step-finish" | "reasoning") => {}
            Some(
                kind @ ("file" | "patch" | "subtask" | "agent" | "snapshot" | "compaction"
                | "retry"),
            ) => {
                let kind: &'static str = match kind {
                    "file" => "file",
                    "patch" => "patch",
                    "subtask" => "subtask",
                    "agent" => "agent",
                    "snapshot" => "snapshot",
                    "compaction" => "compaction",
                    _ => "retry",
                };
                drops.add(Dropped::Part(kind));
            }
            Some(_) => drops.add(Dropped::UnknownPart),
            None => drops.add(Dropped::MalformedPart),
        }
    }
}

enum Place {
    Before,
    Inside,
    After,
    Undated,
}

/// OpenCode ids carry `(ms · 4096 + counter)` in their first 12 hex digits, cut to 48 bits.
const STAMP_MASK: u64 = 0xffff_ffff_ffff;

fn id_stamp(id: &str) -> Option<u64> {
    let (_, rest) = id.split_once('_')?;
    let hex = rest.get(..12)?;
    u64::from_str_radix(hex, 16).ok()
}

fn stamp_of(ms: u64) -> u64 {
    ms.wrapping_mul(4096) & STAMP_MASK
}

/// `a - b` for 48-bit stamps, read as a signed number: the stamps wrap every ~2.2 years.
fn stamp_diff(a: u64, b: u64) -> i64 {
    let diff = a.wrapping_sub(b) & STAMP_MASK;
    if diff >= 1 << 47 {
        diff as i64 - (1 << 48)
    } else {
        diff as i64
    }
}

/// "**pi** · `bash` · uname -a" and the output (or error) in a fence.
fn tool_summary(host: &str, part: &PartFields) -> Option<String> {
    let tool: String = part
        .tool
        .0
        .as_deref()?
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
        .take(64)
        .collect();
    let state = part.state.0.as_ref();
    let title = state
        .and_then(|s| s.title.0.as_deref())
        .filter(|t| !t.trim().is_empty())
        .map(str::to_string)
        .or_else(|| {
            state
                .and_then(|s| s.input.0.as_ref())
                .and_then(input_summary)
        })
        .map(|t| one_line(&t, MAX_TITLE_CHARS))
        .unwrap_or_default();
    let mut text = format!("**{host}** · `{tool}`");
    if !title.is_empty() {
        text.push_str(" · ");
        text.push_str(&title);
    }
    let (label, body) = match state.and_then(|s| s.status.0.as_deref()) {
        Some("completed") => ("", state.and_then(|s| s.output.0.as_deref()).unwrap_or("")),
        Some("error") => (
            "error: ",
            state.and_then(|s| s.error.0.as_deref()).unwrap_or(""),
        ),
        _ => ("", "(did not finish)"),
    };
    let body = clean_text(&format!("{label}{body}"), MAX_TOOL_OUTPUT_BYTES);
    let fence = "`".repeat(longest_backtick_run(&body).max(2) + 1);
    text.push_str(&format!("\n{fence}\n{}\n{fence}", body.trim_end()));
    Some(text)
}

/// The input field a reader recognises a call by (`command`, a path, a pattern…), else the first string.
fn input_summary(input: &BTreeMap<String, Scalar>) -> Option<String> {
    const KEYS: [&str; 8] = [
        "command",
        "filePath",
        "path",
        "pattern",
        "url",
        "query",
        "description",
        "prompt",
    ];
    KEYS.iter()
        .find_map(|k| input.get(*k).and_then(|v| v.0.clone()))
        .or_else(|| input.values().find_map(|v| v.0.clone()))
}

fn one_line(text: &str, max_chars: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c == '\n' || c == '\t' { ' ' } else { c })
        .filter(|c| *c != '`')
        .collect();
    let clean = clean_text(&flat, usize::MAX);
    let clean = clean.trim();
    if clean.chars().count() <= max_chars {
        clean.to_string()
    } else {
        let cut: String = clean.chars().take(max_chars - 1).collect();
        format!("{cut}…")
    }
}

fn longest_backtick_run(text: &str) -> usize {
    let (mut best, mut run) = (0, 0);
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        best = best.max(run);
    }
    best
}

/// `text` without terminal escapes and control characters (newlines and tabs stay), cut to `max_bytes`
/// on a character boundary with a note saying how much was left out.
pub fn clean_text(text: &str, max_bytes: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_bytes));
    let mut chars = text.chars().peekable();
    let mut cut = 0usize;
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            match chars.peek() {
                // CSI: ESC [ parameters final byte
                Some('[') => {
                    chars.next();
                    while chars.next().is_some_and(|c| !('@'..='~').contains(&c)) {}
                }
                // OSC: ESC ] … BEL or ESC \
                Some(']') => {
                    chars.next();
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' || (c == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                            break;
                        }
                    }
                }
                Some(_) => {
                    chars.next();
                }
                None => {}
            }
            continue;
        }
        if c.is_control() && c != '\n' && c != '\t' {
            continue;
        }
        // Bidirectional overrides reorder what a reader sees.
        if matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
            continue;
        }
        if cut > 0 || out.len() + c.len_utf8() > max_bytes {
            cut += c.len_utf8();
            continue;
        }
        out.push(c);
    }
    if cut > 0 {
        out.push_str(&format!("\n… ({cut} more bytes cut)"));
    }
    out
}

/// A string, or nothing when the value is of another type.
#[derive(Default)]
struct Str(Option<String>);
/// A number, or nothing when the value is of another type.
#[derive(Default)]
struct Num(Option<f64>);
/// Whether the field is there with a non-null value.
#[derive(Default)]
struct Present(bool);
/// A string or a number as text, or nothing.
#[derive(Default)]
struct Scalar(Option<String>);
/// An object read as `T`, or nothing when the value is not an object.
struct Obj<T>(Option<T>);
/// An array whose elements are read as `Obj<T>`, or nothing when the value is not an array.
struct List<T>(Option<Vec<Option<T>>>);

impl<T> Default for Obj<T> {
    fn default() -> Self {
        Obj(None)
    }
}

impl<T> Default for List<T> {
    fn default() -> Self {
        List(None)
    }
}

/// A visitor that accepts any JSON value, turning the expected kind into `Some` and skipping the rest.
macro_rules! skip_other_kinds {
    ($($kind:ident),*) => {
        $(skip_other_kinds!(@one $kind);)*
    };
    (@one bool) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> { Ok(Default::default()) }
    };
    (@one num) => {
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> { Ok(Default::default()) }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> { Ok(Default::default()) }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> { Ok(Default::default()) }
    };
    (@one str) => {
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> { Ok(Default::default()) }
    };
    (@one unit) => {
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> { Ok(Default::default()) }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> { Ok(Default::default()) }
    };
    (@one seq) => {
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Default::default())
        }
    };
    (@one map) => {
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(Default::default())
        }
    };
}

impl<'de> Deserialize<'de> for Str {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Str, E> {
                Ok(Str(Some(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Str, E> {
                Ok(Str(Some(v)))
            }
            skip_other_kinds!(bool, num, unit, seq, map);
        }
        deserializer.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Num, E> {
                Ok(Num(Some(v as f64)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Num, E> {
                Ok(Num(Some(v as f64)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Num, E> {
                Ok(Num(Some(v)))
            }
            skip_other_kinds!(bool, str, unit, seq, map);
        }
        deserializer.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Present;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Present, E> {
                Ok(Present(false))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Present, E> {
                Ok(Present(true))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Present, E> {
                Ok(Present(true))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Present, E> {
                Ok(Present(true))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Present, E> {
                Ok(Present(true))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Present, E> {
                Ok(Present(true))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Present, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Present(true))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Present, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Present(true))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                // Only the start is ever shown.
                Ok(Scalar(Some(v.chars().take(4 * MAX_TITLE_CHARS).collect())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.to_string())))
            }
            skip_other_kinds!(bool, unit, seq, map);
        }
        deserializer.deserialize_any(V)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Obj<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(|t| Obj(Some(t)))
            }
            skip_other_kinds!(bool, num, str, unit, seq);
        }
        deserializer.deserialize_any(V(PhantomData))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = List<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<List<T>, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Obj<T>>()? {
                    items.push(item.0);
                }
                Ok(List(Some(items)))
            }
            skip_other_kinds!(bool, num, str, unit, map);
        }
        deserializer.deserialize_any(V(PhantomData))
    }
}

#[cfg(test)]
mod tests;
