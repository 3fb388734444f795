//! A session export or round-trip back-file, as `opencode export` or a remote host may hand it over.
//! Whatever parses must also survive everything `remote_login` does with it, and a back-file yields only
//! bounded text.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use opencode_remote::session::back::{read_back_file, Window, MAX_TEXT_BYTES, MAX_TOOL_OUTPUT_BYTES};
use opencode_remote::session::{complete_dispatch_call, DispatchCall, Export};

fuzz_target!(|data: &[u8]| {
    let known = HashSet::new();
    let window = Window {
        session_id: "ses_1",
        known: &known,
        started_ms: 0,
        finished_ms: None,
        prompt: Some("go"),
    };
    if let Ok(returned) = read_back_file(data, "pi", &window) {
        for item in &returned.items {
            assert!(item.len() <= MAX_TEXT_BYTES.max(MAX_TOOL_OUTPUT_BYTES + 400) + 64);
            assert!(!item.contains('\u{1b}'));
        }
    }
    let Ok(mut export) = Export::parse(data) else {
        return;
    };
    Export::parse(&export.to_json()).expect("our own output parses");
    complete_dispatch_call(
        &mut export,
        &DispatchCall {
            call_id: Some("call_1"),
            host: "pi",
            title: "t".into(),
            output: "o".into(),
        },
    );
    export.clear_agent_model();
    Export::parse(&export.to_json()).expect("a patched export still parses");
});
