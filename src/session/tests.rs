use serde_json::{json, Value};

use super::*;

/// An export shaped like OpenCode 1.18.33's, taken while `remote_login` is running.
fn running_export() -> Value {
    json!({
      "info": { "id": "ses_1", "slug": "brave-panda", "directory": "/work/p", "title": "t", "agent": "build",
                "model": { "id": "local-m", "providerID": "fake", "variant": "default" }, "version": "1.18.33" },
      "messages": [
        { "info": { "id": "msg_1", "sessionID": "ses_1", "role": "user", "agent": "build",
                    "model": { "providerID": "fake", "modelID": "local-m" }, "time": { "created": 1 } },
          "parts": [ { "id": "prt_1", "sessionID": "ses_1", "messageID": "msg_1", "type": "text", "text": "go" } ] },
        { "info": { "id": "msg_2", "sessionID": "ses_1", "role": "assistant", "parentID": "msg_1", "time": { "created": 2 } },
          "parts": [
            { "id": "prt_2", "sessionID": "ses_1", "messageID": "msg_2", "type": "step-start" },
            { "id": "prt_3", "sessionID": "ses_1", "messageID": "msg_2", "type": "tool", "tool": "remote_login",
              "callID": "call_9", "state": { "status": "running", "input": { "host": "pi", "mode": "round-trip" },
              "time": { "start": 5 } } } ] }
      ]
    })
}

fn parse(value: &Value) -> Export {
    Export::parse(&serde_json::to_vec(value).unwrap()).unwrap()
}

fn call(call_id: Option<&str>) -> DispatchCall<'_> {
    DispatchCall {
        call_id,
        host: "pi",
        title: "Dispatched to pi".into(),
        output: "ok".into(),
    }
}

#[test]
fn parse_should_keep_unknown_fields() {
    let export = parse(&running_export());
    let round = serde_json::to_value(&export).unwrap();
    assert_eq!(round["info"]["slug"], "brave-panda");
    assert_eq!(round["messages"][0]["parts"][0]["text"], "go");
}

#[test]
fn parse_should_reject_a_part_of_another_session() {
    let mut value = running_export();
    value["messages"][0]["parts"][0]["sessionID"] = json!("ses_other");
    let error = Export::parse(&serde_json::to_vec(&value).unwrap()).unwrap_err();
    assert_eq!(error.code(), "SESSION_INVALID");
}

#[test]
fn parse_should_reject_truncated_json() {
    let bytes = serde_json::to_vec(&running_export()).unwrap();
    let error = Export::parse(&bytes[..bytes.len() / 2]).unwrap_err();
    assert_eq!(error.code(), "SESSION_INVALID");
}

#[test]
fn parse_should_reject_duplicate_ids() {
    let mut value = running_export();
    value["messages"][1]["parts"][0]["id"] = json!("prt_1");
    value["messages"][1]["parts"][0]["messageID"] = json!("msg_2");
    assert!(Export::parse(&serde_json::to_vec(&value).unwrap()).is_err());
}

#[test]
fn complete_dispatch_call_should_finish_a_running_call() {
    let mut export = parse(&running_export());
    let created = complete_dispatch_call(&mut export, &call(Some("call_9")));
    let part = &export.messages[1].parts[1];
    assert_eq!(part.rest["state"]["status"], "completed");
    assert_eq!(part.rest["state"]["input"]["mode"], "round-trip");
    assert_eq!(part.rest["state"]["time"]["start"], 5);
    assert_eq!(created.len(), 1);
    let finish = export.messages[1].parts.last().unwrap();
    assert_eq!(finish.kind, "step-finish");
    assert_eq!(finish.id, created[0]);
    assert_eq!(export.messages[1].info.rest["finish"], "tool-calls");
}

#[test]
fn complete_dispatch_call_should_finish_a_pending_call_without_call_id() {
    let mut value = running_export();
    value["messages"][1]["parts"][1]["state"] =
        json!({ "status": "pending", "input": {}, "raw": "" });
    let mut export = parse(&value);
    complete_dispatch_call(&mut export, &call(None));
    let state = &export.messages[1].parts[1].rest["state"];
    assert_eq!(state["status"], "completed");
    assert_eq!(state["input"]["host"], "pi");
}

#[test]
fn complete_dispatch_call_should_leave_a_session_without_the_call_alone() {
    let mut value = running_export();
    value["messages"][1]["parts"][1]["tool"] = json!("bash");
    let mut export = parse(&value);
    assert!(complete_dispatch_call(&mut export, &call(Some("call_9"))).is_empty());
    assert_eq!(
        export.messages[1].parts[1].rest["state"]["status"],
        "running"
    );
}

#[test]
fn clear_agent_model_should_leave_the_remote_its_own_defaults() {
    let mut export = parse(&running_export());
    export.clear_agent_model();
    let json: Value = serde_json::from_slice(&export.to_json()).unwrap();
    assert!(json["info"].get("model").is_none() && json["info"].get("agent").is_none());
    assert_eq!(json["info"]["slug"], "brave-panda");
}

#[test]
fn new_id_should_sort_after_older_ids() {
    let first = new_id("prt");
    std::thread::sleep(std::time::Duration::from_millis(2));
    let second = new_id("prt");
    assert!(second > first, "{first} {second}");
    assert_eq!(first.len(), "prt_".len() + 26);
    assert!(is_id(&first, "prt_"));
}

/// Hostile and broken exports: every one is refused as SESSION_INVALID (or accepted intact), never a
/// panic, a stack overflow or an unbounded allocation.
mod hostile {
    use super::*;
    use crate::ssh::quote::oracle::cases;
    use proptest::prelude::*;

    fn parse_err(bytes: &[u8]) -> String {
        match Export::parse(bytes) {
            Err(error) => {
                assert_eq!(error.code(), "SESSION_INVALID", "{error}");
                error.to_string()
            }
            Ok(_) => panic!(
                "accepted {:?}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            ),
        }
    }

    fn with(mut value: Value, pointer: &str, replacement: Value) -> Vec<u8> {
        *value
            .pointer_mut(pointer)
            .unwrap_or_else(|| panic!("{pointer}")) = replacement;
        serde_json::to_vec(&value).unwrap()
    }

    #[test]
    fn parse_should_refuse_wrong_types() {
        for (pointer, replacement) in [
            ("/info", json!([])),
            ("/info/id", json!(1)),
            ("/messages", json!({})),
            ("/messages/0/parts", Value::Null),
            ("/messages/0/info/sessionID", json!(["ses_1"])),
            ("/messages/1/parts/0/type", json!(true)),
            ("/messages/0", json!("msg_1")),
        ] {
            let error = parse_err(&with(running_export(), pointer, replacement));
            assert!(error.contains("not a session export"), "{pointer}: {error}");
        }
        for bytes in [
            &b""[..],
            b"null",
            b"[]",
            b"{}",
            b"\"ses_1\"",
            b"{\"info\":{\"id\":\"ses_1\"}}",
        ] {
            parse_err(bytes);
        }
    }

    #[test]
    fn parse_should_refuse_ids_with_path_or_shell_characters() {
        for id in [
            "ses_../../x",
            "ses_a/b",
            "ses_a;b",
            "ses_$(id)",
            "ses_`id`",
            "ses_a b",
            "ses_\0",
            "ses_",
            "ses_a\nb",
            "-ses_a",
            "ses_ü",
        ] {
            let error = parse_err(&with(running_export(), "/info/id", json!(id)));
            assert!(error.contains("session id"), "{id:?}: {error}");
        }
        let long = format!("ses_{}", "a".repeat(200));
        parse_err(&with(running_export(), "/info/id", json!(long)));
        for id in ["msg_../x", "msg_a'b"] {
            parse_err(&with(running_export(), "/messages/0/info/id", json!(id)));
        }
    }

    /// serde_json stops at 128 levels; the test thread's 2 MiB stack would not survive 100 000.
    #[test]
    fn parse_should_refuse_deep_nesting_without_overflowing() {
        let depth = 100_000;
        let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let text = serde_json::to_string(&running_export())
            .unwrap()
            .replacen("\"go\"", &deep, 1);
        assert!(parse_err(text.as_bytes()).contains("recursion limit"));
    }

    /// The length is checked before any parsing; zeroed pages cost no memory until touched.
    #[test]
    fn parse_should_refuse_an_export_over_the_size_limit() {
        let huge = vec![0u8; MAX_EXPORT_BYTES + 1];
        assert!(parse_err(&huge).contains("limit"));
    }

    #[test]
    fn parse_should_refuse_truncated_and_invalid_utf8_bytes() {
        let bytes = serde_json::to_vec(&running_export()).unwrap();
        for cut in [1, 10, bytes.len() - 1] {
            parse_err(&bytes[..cut]);
        }
        let text = String::from_utf8(bytes)
            .unwrap()
            .replacen("go", "g\u{fc}", 1);
        let mut raw = text.into_bytes();
        let at = raw.windows(2).position(|w| w == "ü".as_bytes()).unwrap();
        raw[at + 1] = 0xff;
        assert!(parse_err(&raw).contains("not a session export"));
    }

    /// What JSON.stringify writes for a string cut inside a surrogate pair.
    #[test]
    fn parse_should_replace_lone_surrogates_and_keep_pairs() {
        let text = serde_json::to_string(&running_export()).unwrap().replacen(
            "\"go\"",
            r#""cut \ud83d, pair \ud83d\ude00, low \udc00x, text \\ud83d, end \ud83d""#,
            1,
        );
        let export = Export::parse(text.as_bytes()).unwrap();
        assert_eq!(
            export.messages[0].parts[0].rest["text"],
            "cut \u{fffd}, pair \u{1f600}, low \u{fffd}x, text \\ud83d, end \u{fffd}"
        );
        parse_err(br#"{"info":{"id":"ses_1","t":"\ud83d"},"messages":[],"#);
    }

    proptest! {
        #![proptest_config(cases(256))]

        /// Any text at all (NUL, control characters, quotes, any Unicode) survives parse and serialize, in
        /// a part and in a field of its own (`x_…`: a random key could hit a typed field such as `id`).
        #[test]
        fn parse_should_keep_any_message_text_exactly(text in any::<String>(), key in "x_[a-z]{1,8}") {
            let mut value = running_export();
            value["messages"][0]["parts"][0]["text"] = json!(text);
            value["messages"][0]["info"][key.as_str()] = json!(text);
            let export = Export::parse(&serde_json::to_vec(&value).unwrap()).unwrap();
            let again = Export::parse(&export.to_json()).unwrap();
            prop_assert_eq!(&again.messages[0].parts[0].rest["text"], &json!(text));
            prop_assert_eq!(&again.messages[0].info.rest[key.as_str()], &json!(text));
        }

        /// Ids are what we put into file names (`pending/<session>__<host>.json`): whatever `is_id` accepts
        /// is one safe path component.
        #[test]
        fn is_id_should_accept_only_safe_path_components(id in "(ses_)?[ -~\u{0}\u{80}-\u{10ffff}]{0,140}") {
            if is_id(&id, "ses_") {
                prop_assert!(id.len() <= 128 && id.len() > 4);
                prop_assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
                prop_assert!(!id.starts_with('-'));
            }
        }

        /// A valid export cut anywhere or with one byte changed is refused or parsed, never a panic.
        #[test]
        fn parse_should_never_panic_on_a_damaged_export(at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<bool>()) {
            let mut bytes = serde_json::to_vec(&running_export()).unwrap();
            let i = at.index(bytes.len());
            if cut { bytes.truncate(i) } else { bytes[i] = byte }
            if let Err(error) = Export::parse(&bytes) {
                prop_assert_eq!(error.code(), "SESSION_INVALID");
            }
        }
    }
}

#[test]
fn parse_errors_should_stay_short_whatever_the_input() {
    let hostile = format!(r#"{{"info": "{}", "messages": []}}"#, "A".repeat(100_000));
    let Err(Error::Session(problem)) = Export::parse(hostile.as_bytes()) else {
        panic!("accepted")
    };
    assert!(problem.chars().count() < 250, "{problem}");
    assert!(problem.ends_with("line 1 column 100011"), "{problem}");
}
