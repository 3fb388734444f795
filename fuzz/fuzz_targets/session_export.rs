//! A session export or round-trip back-file, as `opencode export` or a remote host may hand it over.
//! Whatever parses must also survive everything `remote_login` does with it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opencode_remote::session::{complete_dispatch_call, DispatchCall, Export};

fuzz_target!(|data: &[u8]| {
    let Ok(mut export) = Export::parse(data) else {
        return;
    };
    let again = Export::parse(&export.to_json()).expect("our own output parses");
    export
        .check_continuation(&again)
        .expect("a session continues itself");
    let agent_model = export.agent_model();
    let created = complete_dispatch_call(
        &mut export,
        &DispatchCall {
            call_id: Some("call_1"),
            host: "pi",
            title: "t".into(),
            output: "o".into(),
        },
    );
    export.set_agent_model(&agent_model);
    export.remove_parts(&created);
    Export::parse(&export.to_json()).expect("a patched export still parses");
    export.keep_new_messages_since(&again);
});
