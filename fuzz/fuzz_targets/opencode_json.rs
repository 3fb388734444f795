//! opencode.json(c): finding our plugin entry's options, then loading them as inline hosts; and
//! `migrate` of the old tools' entries (which may move their text), whose result must parse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opencode_remote::config::edit::read_plugin_options;
use opencode_remote::config::migrate::migrate_text;
use opencode_remote::config::{load_hosts, ConfigSources};

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("opencode.jsonc");
    std::fs::write(&file, data).expect("write");
    if let Ok(text) = std::str::from_utf8(data) {
        // Any error is fine (a migrated text that does not parse is one); a panic is not.
        let _ = migrate_text(text, &file);
    }
    let Ok(Some(options)) = read_plugin_options(&file, "opencode-remote") else {
        return;
    };
    let sources = ConfigSources {
        config_dir: dir.path().join("none"),
        project_dir: None,
        inline: Some(options),
        inline_from_project: None,
    };
    if let Err(error) = load_hosts(&sources) {
        assert_eq!(error.code(), "CONFIG_INVALID", "{error}");
    }
});
