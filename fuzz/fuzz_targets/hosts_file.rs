//! hosts.json(c) text, and the same JSON handed over as the plugin's inline options: either a config
//! error or hosts that passed every check.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use opencode_remote::config::{load_hosts, parse_hosts_text, validate_hosts, ConfigSources};
use opencode_remote::error::Error;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/fuzz/hosts.jsonc");
    let file = match parse_hosts_text(path, text) {
        Ok(file) => file,
        Err(error) => return expect_config_error(error),
    };
    if let Err(error) = validate_hosts(path, &file.hosts, &file.providers) {
        return expect_config_error(error);
    }
    if let Ok(inline) = serde_json::from_str(text) {
        let sources = ConfigSources {
            config_dir: "/nonexistent/opencode-remote-fuzz".into(),
            project_dir: None,
            inline: Some(inline),
            inline_from_project: None,
        };
        match load_hosts(&sources) {
            Ok(hosts) => {
                for entry in hosts.iter() {
                    assert!(!entry.address.starts_with('-'), "{entry:?}");
                    assert!(!entry.name.is_empty() && entry.name.len() <= 64);
                }
            }
            Err(error) => expect_config_error(error),
        }
    }
});

/// Bad config is a config error naming a field and a fix, never anything else.
fn expect_config_error(error: Error) {
    match error {
        Error::Config { field, fix, .. } => assert!(!field.is_empty() && !fix.is_empty()),
        other => panic!("not a config error: {other:?}"),
    }
}
