use crate::config::parse_hosts_text;
use serde_json::json;

use super::*;

fn file_with(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[test]
fn set_host_should_keep_comments_and_formatting() {
    let text = "// my hosts\n{\n  /* lab */\n  \"hosts\": {\n    \"pi\": \"pi\", // the raspberry\n  },\n}\n";
    let (_dir, path) = file_with("hosts.jsonc", text);
    let outcome = set_host(
        &path,
        Section::HostsFile,
        "gpu",
        &json!({"host": "gpu-box", "agent": "build"}),
    )
    .unwrap();
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(
        written.starts_with("// my hosts\n{\n  /* lab */\n"),
        "{written}"
    );
    assert!(
        written.contains("\"pi\": \"pi\", // the raspberry"),
        "{written}"
    );
    assert!(written.contains("\"gpu\""), "{written}");
    let backup = outcome.backup.expect("a backup of the old file");
    assert_eq!(std::fs::read_to_string(backup).unwrap(), text);
    let hosts = parse_hosts_text(&path, &written).unwrap();
    assert_eq!(hosts.hosts.len(), 2);
}

#[test]
fn set_host_should_create_a_missing_file_without_a_backup() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/hosts.json");
    let outcome = set_host(&path, Section::HostsFile, "pi", &json!("me@10.0.0.2")).unwrap();
    assert_eq!(outcome.backup, None);
    let value: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(value, json!({"hosts": {"pi": "me@10.0.0.2"}}));
}

#[test]
fn set_host_should_refuse_to_write_an_invalid_entry() {
    let (_dir, path) = file_with("hosts.json", "{\"hosts\": {}}\n");
    let error = set_host(
        &path,
        Section::HostsFile,
        "pi",
        &json!({"host": "x", "port": 0}),
    )
    .unwrap_err();
    assert_eq!(error.code(), "CONFIG_INVALID");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"hosts\": {}}\n");
}

#[test]
fn remove_host_should_report_a_missing_host_as_unchanged() {
    let (_dir, path) = file_with(
        "hosts.json",
        "{\"hosts\": {\"pi\": \"pi\", \"dev\": \"dev\"}}\n",
    );
    assert!(
        !remove_host(&path, Section::HostsFile, "nope")
            .unwrap()
            .changed
    );
    assert!(
        remove_host(&path, Section::HostsFile, "pi")
            .unwrap()
            .changed
    );
    let value: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(value, json!({"hosts": {"dev": "dev"}}));
}

#[test]
fn set_host_should_turn_a_plain_plugin_entry_into_a_tuple_with_options() {
    let text = "{\n  // plugins\n  \"plugin\": [\"other\", \"opencode-remote@0.1.0\"],\n  \"model\": \"a/b\"\n}\n";
    let (_dir, path) = file_with("opencode.jsonc", text);
    let section = Section::PluginOptions {
        package: "opencode-remote",
    };
    set_host(&path, section, "pi", &json!("pi")).unwrap();
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(written.contains("// plugins"), "{written}");
    let value: Value = jsonc_parser::parse_to_serde_value(&written, &Default::default()).unwrap();
    assert_eq!(
        value["plugin"],
        json!(["other", ["opencode-remote@0.1.0", {"hosts": {"pi": "pi"}}]])
    );
    assert_eq!(value["model"], "a/b");
}

#[test]
fn set_host_should_extend_existing_plugin_options() {
    let text = r#"{"plugin": [["file:///x/node_modules/opencode-remote", {"hosts": {"a": "a"}, "other": 1}]]}"#;
    let (_dir, path) = file_with("opencode.json", text);
    set_host(
        &path,
        Section::PluginOptions {
            package: "opencode-remote",
        },
        "b",
        &json!("b"),
    )
    .unwrap();
    let value: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        value["plugin"][0][1],
        json!({"hosts": {"a": "a", "b": "b"}, "other": 1})
    );
}

#[test]
fn set_host_should_add_the_plugin_when_it_is_not_listed() {
    let (_dir, path) = file_with("opencode.json", "{}");
    set_host(
        &path,
        Section::PluginOptions {
            package: "opencode-remote",
        },
        "pi",
        &json!("pi"),
    )
    .unwrap();
    let value: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        value["plugin"],
        json!([["opencode-remote", {"hosts": {"pi": "pi"}}]])
    );
}

#[cfg(unix)]
#[test]
fn set_host_should_keep_the_file_mode() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, path) = file_with("hosts.json", "{}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    set_host(&path, Section::HostsFile, "pi", &json!("pi")).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn provider_hosts_are_added_replaced_and_removed_with_comments_kept() {
    let text = "{\n  // workspaces\n  \"providers\": {\n    \"default\": {\n      \"hosts\": [\n        {\"name\": \"a\", \"ssh\": {\"host\": \"10.0.0.1\"}} // first\n      ]\n    }\n  }\n}\n";
    let (_dir, path) = file_with("hosts.jsonc", text);
    let b = json!({"name": "b", "ssh": {"host": "10.0.0.2", "user": "ops", "port": 2222}});
    set_provider_host(&path, Section::HostsFile, "default", &b).unwrap();
    let a = json!({"name": "a", "ssh": {"host": "10.0.0.9", "user": "me"}});
    set_provider_host(&path, Section::HostsFile, "default", &a).unwrap();
    // The same name in a second provider of the file is refused, as loading would refuse it.
    assert!(set_provider_host(&path, Section::HostsFile, "lab", &b).is_err());
    let c = json!({"name": "c", "ssh": {"host": "10.0.0.3"}});
    set_provider_host(&path, Section::HostsFile, "lab", &c).unwrap();
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(written.contains("// workspaces"), "{written}");
    let parsed = parse_hosts_text(&path, &written).unwrap();
    let default = &parsed.providers["default"];
    assert_eq!(
        default
            .hosts
            .iter()
            .map(|h| (h.name.as_str(), h.ssh.host.as_str()))
            .collect::<Vec<_>>(),
        vec![("a", "10.0.0.9"), ("b", "10.0.0.2")]
    );
    assert_eq!(
        parsed.providers["lab"].strategy,
        super::super::model::Strategy::FirstAvailable
    );
    assert!(parsed.hosts.is_empty(), "no hosts map was added");

    let removed = remove_provider_host(&path, Section::HostsFile, Some("default"), "b").unwrap();
    assert!(removed.changed);
    let none = remove_provider_host(&path, Section::HostsFile, Some("default"), "b").unwrap();
    assert!(!none.changed);
    assert!(
        remove_provider_host(&path, Section::HostsFile, None, "c")
            .unwrap()
            .changed
    );
    let parsed = parse_hosts_text(&path, &std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(parsed.providers["default"].hosts.len(), 1);
    assert!(parsed.providers["lab"].hosts.is_empty());
}

#[test]
fn identity_file_is_recorded_where_the_host_is_defined() {
    let key = Path::new("/home/me/.ssh/opencode-remote_x");
    // A hosts map entry.
    let (_dir, path) = file_with("hosts.json", r#"{"hosts": {"x": "me@x"}}"#);
    assert!(
        set_identity_file(&path, Section::HostsFile, "x", key)
            .unwrap()
            .changed
    );
    let parsed = parse_hosts_text(&path, &std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        serde_json::to_value(&parsed.hosts["x"]).unwrap(),
        json!({"host": "me@x", "identityFile": key})
    );
    // A provider host.
    let (_dir, path) = file_with(
        "hosts.json",
        r#"{"providers": {"p": {"hosts": [{"name": "x", "ssh": {"host": "h", "identityFile": "~/old"}}]}}}"#,
    );
    assert!(
        set_identity_file(&path, Section::HostsFile, "x", key)
            .unwrap()
            .changed
    );
    let parsed = parse_hosts_text(&path, &std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        parsed.providers["p"].hosts[0].ssh.identity_file.as_deref(),
        Some(key)
    );
    // Inline plugin options, provider form.
    let section = Section::PluginOptions {
        package: "opencode-remote",
    };
    let (_dir, path) = file_with(
        "opencode.jsonc",
        "{\"plugin\": [[\"opencode-remote\", {\"providers\": {\"p\": {\"hosts\": [{\"name\": \"x\", \"ssh\": {\"host\": \"h\"}}]}}}]]} // c\n",
    );
    assert!(set_identity_file(&path, section, "x", key).unwrap().changed);
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(
        written.contains("\"identityFile\": \"/home/me/.ssh/opencode-remote_x\"")
            && written.ends_with("// c\n"),
        "{written}"
    );
    // Not defined here: unchanged.
    assert!(
        !set_identity_file(&path, section, "nope", key)
            .unwrap()
            .changed
    );
}

#[test]
fn an_entry_already_refused_does_not_block_editing_another() {
    let (_dir, path) = file_with(
        "hosts.jsonc",
        r#"{"hosts": {"win": {"host": "me@w", "os": "windows"}, "pi": "me@pi"}}"#,
    );
    set_host(&path, Section::HostsFile, "dev", &json!("me@dev")).unwrap();
    assert!(
        remove_host(&path, Section::HostsFile, "pi")
            .unwrap()
            .changed
    );
    // A new problem is still refused.
    let error = set_host(
        &path,
        Section::HostsFile,
        "bad",
        &json!({"host": "h", "os": "windows"}),
    )
    .unwrap_err();
    assert!(error.to_string().contains("hosts.bad.os"), "{error}");
}
