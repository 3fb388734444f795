use super::*;
use crate::config::{load_hosts, ConfigSources};

fn migrate_text(text: &str) -> (String, Option<Migration>) {
    match super::migrate_text(text, Path::new("opencode.jsonc")).unwrap() {
        Some((migrated, migration)) => (migrated, Some(migration)),
        None => (text.to_string(), None),
    }
}

fn parse(text: &str) -> Value {
    jsonc_parser::parse_to_serde_value::<Value>(text, &ParseOptions::default()).unwrap()
}

/// The plugin options OpenCode would now hand this package, loaded the way the plugin loads them.
fn hosts_of(text: &str) -> crate::config::Hosts {
    let value = parse(text);
    let entry = value["plugin"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e.as_str() == Some(PACKAGE) || e[0].as_str() == Some(PACKAGE))
        .expect("our entry")
        .clone();
    let dir = tempfile::tempdir().unwrap();
    let sources = ConfigSources {
        config_dir: dir.path().to_path_buf(),
        inline: entry.get(1).cloned(),
        ..ConfigSources::default()
    };
    load_hosts(&sources).unwrap()
}

#[test]
fn specs_of_both_seeds_are_recognised_and_ours_is_not() {
    for (spec, seed) in [
        ("opencode-remote-login", Some(Seed::Login)),
        ("opencode-remote-login@0.2.1", Some(Seed::Login)),
        ("npm:opencode-remote-login@latest", Some(Seed::Login)),
        (
            "file:///home/me/src/opencode-remote-login",
            Some(Seed::Login),
        ),
        (
            "/home/me/opencode-remote-login/src/index.ts",
            Some(Seed::Login),
        ),
        ("opencode-remote-provider", Some(Seed::Provider)),
        ("opencode-remote-provider@1.1.0", Some(Seed::Provider)),
        (
            "/absolute/path/to/opencode-remote/plugin",
            Some(Seed::Provider),
        ),
        ("/home/me/opencode-remote-ssh/plugin", Some(Seed::Provider)),
        ("opencode-remote", None),
        ("opencode-remote@0.1.0", None),
        ("/home/me/node_modules/opencode-remote", None),
        ("opencode-remote-loginx", None),
        ("@scope/opencode-remote-login-helper", None),
    ] {
        assert_eq!(seed_of(spec), seed, "{spec}");
    }
}

/// Seed A's README: `"plugin": ["opencode-remote-login"]` (what `opencode plug` writes), hosts in
/// hosts.json, which this package reads as it is.
#[test]
fn seed_a_string_entry_becomes_ours() {
    let text = "{\n  \"plugin\": [\"opencode-remote-login\"]\n}\n";
    let (out, migration) = migrate_text(text);
    assert_eq!(out, "{\n  \"plugin\": [\"opencode-remote\"]\n}\n");
    assert_eq!(
        migration.unwrap().replaced,
        vec!["opencode-remote-login".to_string()]
    );
}

/// Seed A's README, "Alternative: inline config", exactly as shown there.
#[test]
fn seed_a_inline_hosts_become_our_hosts_with_comments_kept() {
    let text = r#"// opencode.jsonc
{
  "plugin": [
    ["opencode-remote-login", {
      "hosts": {
        "pi": { "host": "wenjun@192.168.100.100" }
      }
    }]
  ]
}
"#;
    let (out, migration) = migrate_text(text);
    assert_eq!(
        out,
        text.replace("opencode-remote-login", "opencode-remote")
    );
    assert!(migration.unwrap().notes.is_empty());
    let hosts = hosts_of(&out);
    assert_eq!(hosts.get("pi").unwrap().address, "wenjun@192.168.100.100");
}

/// Seed A 0.2: host objects with port, os, agent and model. A Windows host is kept and named; it is
/// refused alone when loading, the others work.
#[test]
fn seed_a_windows_host_is_kept_and_named() {
    let text = r#"{
  "plugin": [["opencode-remote-login", {
    "hosts": {
      "pi": {"host": "wenjun@192.168.100.100", "port": 2222, "agent": "build", "model": "opencode/big-pickle"},
      "win": {"host": "me@10.0.0.9", "os": "windows"} // the office PC
    }
  }]]
}"#;
    let (out, migration) = migrate_text(text);
    let notes = migration.unwrap().notes;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].contains("host win") && notes[0].contains("Windows"));
    assert!(out.contains("// the office PC"));
    let hosts = hosts_of(&out);
    let pi = hosts.get("pi").unwrap();
    assert_eq!(
        (pi.port, pi.agent.as_deref(), pi.model.as_deref()),
        (Some(2222), Some("build"), Some("opencode/big-pickle"))
    );
    let refused: Vec<_> = hosts.refused().map(|r| r.name.clone()).collect();
    assert_eq!(refused, vec!["win".to_string()]);
}

/// Seed B's README, "Recommended public configuration", exactly as shown there.
#[test]
fn seed_b_providers_are_kept() {
    let text = r#"{
"plugin": [
[
"opencode-remote-provider",
{
"providers": {
"default": {
"strategy": "first_available",
"hosts": [
{
"name": "prod-web-1",
"ssh": {
"host": "203.0.113.10",
"user": "ops",
"port": 22,
"identityFile": "~/.ssh/id_ed25519"
},
"labels": ["linux", "production"]
}
]
}
}
}
]
]
}"#;
    let (out, migration) = migrate_text(text);
    assert_eq!(
        out,
        text.replace("opencode-remote-provider", "opencode-remote")
    );
    assert!(migration.unwrap().notes.is_empty());
    let hosts = hosts_of(&out);
    let host = hosts.get("prod-web-1").unwrap();
    assert!(host.workspace_only);
    assert_eq!(
        (host.address.as_str(), host.user.as_deref(), host.port),
        ("203.0.113.10", Some("ops"), Some(22))
    );
    assert_eq!(
        hosts.providers()["default"].hosts[0].labels,
        vec!["linux", "production"]
    );
}

/// Seed B's README, path-based local development registration, and the options its CLI's `init` wrote.
#[test]
fn seed_b_path_entry_and_cli_init_entry() {
    let path_form = r#"{
"plugin": [
[
"/absolute/path/to/opencode-remote/plugin",
{
"providers": {
"default": {
"hosts": []
}
}
}
]
]
}"#;
    let (out, _) = migrate_text(path_form);
    assert_eq!(
        out,
        path_form.replace(
            "/absolute/path/to/opencode-remote/plugin",
            "opencode-remote"
        )
    );
    hosts_of(&out);
    let init_form = r#"{"plugin": [["opencode-remote-provider", {"providers": {}}]]}"#;
    let (out, _) = migrate_text(init_form);
    assert_eq!(
        out,
        r#"{"plugin": [["opencode-remote", {"providers": {}}]]}"#
    );
}

/// installRoot, tunnel and defaults have no effect here: removed, each named.
#[test]
fn seed_b_options_without_effect_are_removed_and_named() {
    let text = r#"{
  "plugin": [
    ["opencode-remote-provider", {
      "installRoot": "~/.opencode-remote",
      "tunnel": {"localPortRange": [39000, 39999], "connectTimeoutMs": 15000},
      "defaults": {"leaseMode": "exclusive", "stubPort": 39217},
      // my hosts
      "providers": {"default": {"hosts": [{"name": "a", "ssh": {"host": "10.0.0.1", "user": "ops"}}]}}
    }]
  ]
}"#;
    let (out, migration) = migrate_text(text);
    let notes = migration.unwrap().notes;
    assert_eq!(notes.len(), 3, "{notes:?}");
    for key in ["installRoot", "tunnel", "defaults"] {
        assert!(!out.contains(key), "{key} removed:\n{out}");
        assert!(notes.iter().any(|n| n.contains(key)));
    }
    assert!(out.contains("// my hosts"));
    assert!(hosts_of(&out).warnings().is_empty());
}

/// Both old entries and ours: one entry of ours remains, holding all hosts; clashes are named.
#[test]
fn both_seeds_and_ours_merge_into_one_entry() {
    let text = r#"{
  "plugin": [
    "some-other-plugin",
    "opencode-remote",
    ["opencode-remote-login", {"hosts": {"pi": "me@pi.lan", "dev": "me@dev.lan"}}],
    ["opencode-remote-provider", {"providers": {"default": {"hosts": [{"name": "ws", "ssh": {"host": "10.0.0.2", "user": "ops"}}]}}}]
  ]
}"#;
    let (out, migration) = migrate_text(text);
    assert_eq!(migration.unwrap().replaced.len(), 2);
    let value = parse(&out);
    let plugins = value["plugin"].as_array().unwrap();
    assert_eq!(plugins.len(), 2, "{out}");
    assert_eq!(plugins[0], "some-other-plugin");
    let hosts = hosts_of(&out);
    assert_eq!(hosts.names(), vec!["dev", "pi", "ws"]);

    let clash = r#"{"plugin": [["opencode-remote", {"hosts": {"pi": "new@pi"}}], ["opencode-remote-login", {"hosts": {"pi": "old@pi"}}]]}"#;
    let (out, migration) = migrate_text(clash);
    assert_eq!(hosts_of(&out).get("pi").unwrap().address, "new@pi");
    assert!(migration.unwrap().notes[0].contains("host pi: not moved"));
}

#[test]
fn nothing_to_migrate_is_no_change() {
    for text in [
        "{}",
        r#"{"plugin": ["opencode-remote"]}"#,
        r#"{"model": "a/b"}"#,
    ] {
        assert_eq!(migrate_text(text).1, None, "{text}");
    }
}

#[test]
fn init_adds_our_entry_once_and_keeps_comments() {
    let file = Path::new("opencode.jsonc");
    let text = "// mine\n{\n  \"model\": \"a/b\", // default\n}\n";
    let root = CstRootNode::parse(text, &ParseOptions::default()).unwrap();
    assert_eq!(init_tree(&root, file).unwrap(), Init::Added);
    let out = root.to_string();
    assert!(out.contains("// mine") && out.contains("// default"));
    assert_eq!(
        parse(&out)["plugin"],
        serde_json::json!(["opencode-remote"])
    );
    let again = CstRootNode::parse(&out, &ParseOptions::default()).unwrap();
    assert_eq!(init_tree(&again, file).unwrap(), Init::AlreadyThere);

    let with_options = r#"{"plugin": [["opencode-remote@0.1.0", {"hosts": {}}]]}"#;
    let root = CstRootNode::parse(with_options, &ParseOptions::default()).unwrap();
    assert_eq!(init_tree(&root, file).unwrap(), Init::AlreadyThere);

    let old = r#"{"plugin": ["opencode-remote-login"]}"#;
    let root = CstRootNode::parse(old, &ParseOptions::default()).unwrap();
    assert_eq!(
        init_tree(&root, file).unwrap(),
        Init::OldEntries(vec!["opencode-remote-login".into()])
    );

    let not_a_list = r#"{"plugin": "x"}"#;
    let root = CstRootNode::parse(not_a_list, &ParseOptions::default()).unwrap();
    assert!(init_tree(&root, file).is_err());
}

#[test]
fn files_are_edited_with_a_backup_and_dry_run_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("opencode.json");
    let original = r#"{"plugin": ["opencode-remote-login"]}"#;
    std::fs::write(&file, original).unwrap();
    let (outcome, migration) = migrate_file(&file, true).unwrap();
    assert!(outcome.changed && migration.is_some() && outcome.backup.is_none());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), original);
    assert_eq!(
        old_entries(&opencode_config_files(dir.path(), None)),
        vec![OldEntry {
            file: file.clone(),
            spec: "opencode-remote-login".into(),
            seed: Seed::Login
        }]
    );

    let (outcome, _) = migrate_file(&file, false).unwrap();
    assert!(outcome.changed);
    assert_eq!(
        std::fs::read_to_string(outcome.backup.unwrap()).unwrap(),
        original
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        r#"{"plugin": ["opencode-remote"]}"#
    );
    assert!(old_entries(&opencode_config_files(dir.path(), None)).is_empty());
    assert!(!migrate_file(&file, false).unwrap().0.changed);

    let fresh = dir
        .path()
        .join("project")
        .join(".opencode")
        .join("opencode.json");
    let (outcome, init) = init_file(&fresh).unwrap();
    assert!(outcome.changed && outcome.backup.is_none() && init == Init::Added);
    assert_eq!(
        parse(&std::fs::read_to_string(&fresh).unwrap())["plugin"][0],
        PACKAGE
    );
}

/// Options moved into an entry that is already ours keep their text: comments inside them, on the
/// lines above them and after them on their line.
#[test]
fn hosts_moved_into_our_entry_keep_their_comments() {
    let text = r#"{
  "plugin": [
    ["opencode-remote", {
      "hosts": {
        "dev": "me@dev.lan"
      }
    }],
    ["opencode-remote-login", {
      "hosts": {
        // the Raspberry Pi in the hall
        "pi": {
          "host": "wenjun@192.168.100.100", // over wifi
          "port": 2222
        },
        "nas": "admin@nas.lan" // backups
      }
    }]
  ]
}
"#;
    let (out, migration) = migrate_text(text);
    assert_eq!(
        out,
        r#"{
  "plugin": [
    ["opencode-remote", {
      "hosts": {
        "dev": "me@dev.lan",
        // the Raspberry Pi in the hall
        "pi": {
          "host": "wenjun@192.168.100.100", // over wifi
          "port": 2222
        },
        "nas": "admin@nas.lan" // backups
      }
    }]
  ]
}
"#
    );
    assert_eq!(
        migration.unwrap().replaced,
        vec!["opencode-remote-login".to_string()]
    );
    let hosts = hosts_of(&out);
    assert_eq!(hosts.names(), vec!["dev", "nas", "pi"]);
    assert_eq!(hosts.get("pi").unwrap().port, Some(2222));
}

/// A whole key ours lacks, a new provider and a host added to a provider ours already has: each
/// keeps its comments.
#[test]
fn providers_moved_into_our_entry_keep_their_comments() {
    let text = r#"{
  "plugin": [
    "opencode-remote",
    ["opencode-remote-login", {
      "hosts": {
        "pi": "me@pi.lan" // the hall
      }
    }],
    ["opencode-remote-provider", {
      "providers": {
        // build machines
        "builders": {
          "strategy": "first_available",
          "hosts": [
            {"name": "b1", "ssh": {"host": "10.0.0.5"}} // the fast one
          ]
        }
      }
    }],
    ["opencode-remote-provider", {
      "providers": {
        "builders": {
          "hosts": [
            // spare
            {"name": "b2", "ssh": {"host": "10.0.0.6"}}
          ]
        }
      }
    }]
  ]
}
"#;
    let (out, migration) = migrate_text(text);
    assert_eq!(migration.unwrap().replaced.len(), 3);
    // The string entry became a tuple (the syntax tree indents its new options one level deeper).
    assert_eq!(
        out,
        r#"{
  "plugin": [
    ["opencode-remote", {
        "hosts": {
          "pi": "me@pi.lan" // the hall
        },
        "providers": {
          // build machines
          "builders": {
            "strategy": "first_available",
            "hosts": [
              {"name": "b1", "ssh": {"host": "10.0.0.5"}}, // the fast one
              // spare
              {"name": "b2", "ssh": {"host": "10.0.0.6"}}
            ]
          }
        }
      }]
  ]
}
"#
    );
    let value = parse(&out);
    assert_eq!(value["plugin"].as_array().unwrap().len(), 1, "{out}");
    let hosts = hosts_of(&out);
    assert_eq!(hosts.names(), vec!["b1", "b2", "pi"]);
    assert_eq!(
        value["plugin"][0][1]["providers"]["builders"]["strategy"],
        "first_available"
    );
}

/// Into a list written on one line, a moved host's line comments become block comments (a line
/// comment there would swallow the rest of the line); an object written on one line is opened up.
#[test]
fn comments_moved_into_one_line_parts_stay_valid() {
    let text = r#"{"plugin": [
  ["opencode-remote", {"hosts": {"pi": "me@pi"}, "providers": {"b": {"hosts": [{"name": "b0", "ssh": {"host": "h0"}}]}}}],
  ["opencode-remote-provider", {"providers": {"b": {"hosts": [
    // spare
    {"name": "b1", "ssh": {"host": "h1"}}, // fast
    {"name": "b2", "ssh": {"host": "h2"}}
  ]}}}],
  ["opencode-remote-login", {"hosts": {
    "nas": "me@nas" // backups
  }}]
]}
"#;
    let (out, _) = migrate_text(text);
    assert_eq!(
        out,
        r#"{"plugin": [
  ["opencode-remote", {"hosts": {
          "pi": "me@pi",
          "nas": "me@nas" // backups
        }, "providers": {"b": {"hosts": [{"name": "b0", "ssh": {"host": "h0"}}, /* spare */ {"name": "b1", "ssh": {"host": "h1"}} /* fast */, {"name": "b2", "ssh": {"host": "h2"}}]}}}]
]}
"#
    );
    assert_eq!(hosts_of(&out).names(), vec!["b0", "b1", "b2", "nas", "pi"]);
}
