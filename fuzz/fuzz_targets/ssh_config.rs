//! ~/.ssh/config as our resolver reads it (our parser, Match evaluation, ProxyJump chains).
#![no_main]

use libfuzzer_sys::fuzz_target;
use opencode_remote::config::HostEntry;
use opencode_remote::ssh::config::{resolve_with, ResolveEnv};

fuzz_target!(|data: &[u8]| {
    // `Include` reads other files; the fuzzer would find /dev/zero. The file is the user's own, so
    // that is not an attack, just a way to hang the run. `Match exec` would run what the fuzzer wrote.
    let text: Vec<u8> = data
        .split(|&b| b == b'\n')
        .filter(|line| {
            let line = String::from_utf8_lossy(line).to_ascii_lowercase();
            !line.contains("include") && !line.contains("exec")
        })
        .flat_map(|line| line.iter().copied().chain([b'\n']))
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("config");
    std::fs::write(&file, &text).expect("write");
    let env = ResolveEnv {
        home: Some(dir.path().to_path_buf()),
        local_user: Some("me".into()),
        local_hostname: "fuzz".into(),
    };
    for address in ["pi", "u@pi:2222", "jump"] {
        let entry = HostEntry {
            name: "pi".into(),
            address: address.into(),
            ..HostEntry::default()
        };
        if let Ok(resolution) = resolve_with(&entry, Some(&file), &env) {
            let target = resolution.target;
            assert!(target.port > 0);
            assert!(target.proxy_jump.len() < 64, "{}", target.proxy_jump.len());
        }
    }
});
