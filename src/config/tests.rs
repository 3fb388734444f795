use std::ffi::OsString;
use std::fs;

use serde_json::json;

use super::*;

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn parse(text: &str) -> Result<Hosts> {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("hosts.jsonc"), text);
    load_hosts(&ConfigSources {
        config_dir: dir.path().to_path_buf(),
        ..Default::default()
    })
}

/// The (field, problem) of a config error, or a panic naming what came back instead. A host entry that
/// does not load is refused alone: then its error is what using that host returns.
fn config_err(result: Result<Hosts>) -> (String, String) {
    let result = result.and_then(|hosts| {
        let Some(refused) = hosts.refused().next().cloned() else {
            return Ok(hosts);
        };
        assert_eq!(
            format!("{:?}", hosts.get(&refused.name).err()),
            format!("{:?}", Some(refused.error())),
            "using a refused host returns its error"
        );
        Err(refused.error())
    });
    match result {
        Err(Error::Config {
            field,
            problem,
            fix,
            ..
        }) => {
            assert!(!fix.is_empty());
            (field, problem)
        }
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn load_hosts_should_merge_sources_later_wins_per_host() {
    let config = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    write(
        &config.path().join("hosts.jsonc"),
        r#"{"hosts": {"a": "a1", "b": "b1"}}"#,
    );
    write(
        &config.path().join("hosts.json"),
        r#"{"hosts": {"b": "b2"}}"#,
    );
    write(
        &project.path().join("hosts.jsonc"),
        r#"{"hosts": {"c": {"host": "c3", "agent": "plan"}, "d": "d3"}}"#,
    );
    write(
        &project.path().join(".opencode/hosts.json"),
        r#"{"hosts": {"d": "d4"}}"#,
    );
    let sources = ConfigSources {
        config_dir: config.path().to_path_buf(),
        project_dir: Some(project.path().to_path_buf()),
        inline: Some(json!({"hosts": {"a": "a9"}, "remote": {"host": "a"}})),
        inline_from_project: None,
    };
    let hosts = load_hosts(&sources).unwrap();
    let addresses: Vec<_> = hosts.iter().map(|e| e.address.as_str()).collect();
    assert_eq!(addresses, ["a9", "b2", "c3", "d4"]);
    assert_eq!(hosts.get("c").unwrap().agent.as_deref(), Some("plan"));
    assert_eq!(hosts.source("a"), Some(Path::new(INLINE_SOURCE)));
    assert_eq!(
        hosts.source("d"),
        Some(project.path().join(".opencode/hosts.json").as_path())
    );
    let project_defined: Vec<_> = hosts.iter().map(|e| e.project).collect();
    assert_eq!(project_defined, [false, false, true, true]);
    assert!(hosts.warnings().is_empty(), "{:?}", hosts.warnings());
}

/// A cloned repository's hosts.json may not send the user's `pi` to its own server.
#[test]
fn load_hosts_should_keep_the_users_host_when_a_project_redefines_it() {
    let config = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    write(
        &config.path().join("hosts.json"),
        r#"{"hosts": {"pi": {"host": "me@pi.lan", "identityFile": "~/.ssh/pi"}},
            "providers": {"lab": {"hosts": [{"name": "gpu", "aliases": ["g"], "ssh": {"host": "gpu.lan"}}]}}}"#,
    );
    write(
        &project.path().join("hosts.json"),
        r#"{"hosts": {"pi": {"host": "evil.example", "port": 2222, "proxyJump": "evil2"}}}"#,
    );
    write(
        &project.path().join(".opencode/hosts.jsonc"),
        r#"{"providers": {
              "lab": {"hosts": [{"name": "evil", "ssh": {"host": "evil.example"}}]},
              "other": {"hosts": [{"name": "box", "aliases": ["g", "pi"], "ssh": {"host": "box.example"}},
                                  {"name": "gpu", "ssh": {"host": "evil.example"}}]}}}"#,
    );
    let sources = ConfigSources {
        config_dir: config.path().to_path_buf(),
        project_dir: Some(project.path().to_path_buf()),
        ..Default::default()
    };
    let hosts = load_hosts(&sources).unwrap();
    let pi = hosts.get("pi").unwrap();
    assert_eq!(
        (pi.address.as_str(), pi.port, pi.project),
        ("me@pi.lan", None, false)
    );
    assert!(pi.proxy_jump.is_none());
    assert_eq!(hosts.get("g").unwrap().address, "gpu.lan");
    assert_eq!(hosts.get("gpu").unwrap().address, "gpu.lan");
    assert_eq!(hosts.providers()["lab"].hosts[0].name, "gpu");
    // What the project may add is kept, marked as the project's.
    assert!(hosts.get("box").unwrap().project);
    assert_eq!(hosts.providers()["other"].hosts.len(), 1);
    let warnings = hosts.warnings().join("\n");
    for (field, name) in [
        ("hosts.pi", "pi"),
        ("providers.lab", "lab"),
        ("providers.other.hosts[0].aliases[0]", "g"),
        ("providers.other.hosts[0].aliases[1]", "pi"),
        ("providers.other.hosts[1].name", "gpu"),
    ] {
        assert!(
            warnings.contains(&format!("{field}: ignored: the ")),
            "{field}: {warnings}"
        );
        assert!(
            warnings.contains(&format!("'{name}'")),
            "{name}: {warnings}"
        );
    }
    assert!(warnings.contains("hosts.json"), "{warnings}");
}

/// Plugin options from a project's opencode.json are the project's, not the user's.
#[test]
fn load_hosts_should_treat_plugin_options_from_a_project_as_the_projects() {
    let config = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    write(
        &config.path().join("hosts.json"),
        r#"{"hosts": {"pi": "me@pi.lan"}}"#,
    );
    let opencode_json = project.path().join("opencode.json");
    let sources = ConfigSources {
        config_dir: config.path().to_path_buf(),
        project_dir: Some(project.path().to_path_buf()),
        inline: Some(json!({"hosts": {"pi": "evil.example", "new": "new.example"}})),
        inline_from_project: Some(opencode_json.clone()),
    };
    let hosts = load_hosts(&sources).unwrap();
    assert_eq!(hosts.get("pi").unwrap().address, "me@pi.lan");
    assert!(hosts.get("new").unwrap().project);
    assert!(hosts.warnings()[0].contains("opencode.json (plugin options): hosts.pi: ignored"));
    let weakened = ConfigSources {
        inline: Some(json!({"hosts": {"x": {"host": "x", "hostKeyPolicy": "accept-new"}}})),
        ..sources
    };
    let (field, _) = config_err(load_hosts(&weakened));
    assert_eq!(field, "hosts.x.hostKeyPolicy");
}

#[test]
fn load_hosts_should_refuse_a_fifo_or_device_as_hosts_file_without_blocking() {
    let config = tempfile::tempdir().unwrap();
    let fifo = config.path().join("hosts.json");
    let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let sources = ConfigSources {
        config_dir: config.path().to_path_buf(),
        ..Default::default()
    };
    let (field, problem) = config_err(load_hosts(&sources));
    assert_eq!(
        (field.as_str(), problem.as_str()),
        ("(file)", "it is not a regular file")
    );
    fs::remove_file(&fifo).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &fifo).unwrap();
    let (_, problem) = config_err(load_hosts(&sources));
    assert_eq!(problem, "it is not a regular file");
}

#[test]
fn load_hosts_should_refuse_a_timeout_the_clock_cannot_hold() {
    let (field, _) = config_err(parse(
        r#"{"hosts": {"a": {"host": "a", "timeoutSecs": 18446744073709551615}}}"#,
    ));
    assert_eq!(field, "hosts.a.timeoutSecs");
    let ok = parse(r#"{"hosts": {"a": {"host": "a", "timeoutSecs": 604800}}}"#).unwrap();
    assert_eq!(ok.get("a").unwrap().timeout_secs, Some(604_800));
}

#[test]
fn load_hosts_should_accept_missing_and_empty_files() {
    let dir = tempfile::tempdir().unwrap();
    let sources = ConfigSources {
        config_dir: dir.path().join("nope"),
        ..Default::default()
    };
    assert!(load_hosts(&sources).unwrap().is_empty());
    assert!(parse("  // nothing yet\n").unwrap().is_empty());
}

#[test]
fn load_hosts_should_read_jsonc_comments_and_trailing_commas() {
    let hosts = parse("{\n // my pi\n \"$schema\": \"./hosts.schema.json\",\n \"hosts\": {\"pi\": \"me@pi\",},\n}").unwrap();
    let pi = hosts.get("pi").unwrap();
    assert_eq!(
        pi,
        &HostEntry {
            name: "pi".into(),
            address: "me@pi".into(),
            ..Default::default()
        }
    );
}

#[test]
fn load_hosts_should_normalize_the_object_form() {
    let text = r#"{"hosts": {"gpu": {"host": "user@10.0.0.5:2222", "port": 2200, "user": "bob",
        "identityFile": "~/.ssh/id_x", "proxyJump": "jump1,jump2", "agent": "build", "model": "p/m-1",
        "directory": "~/work/app", "os": "macos", "hostKeyPolicy": "accept-new", "opencode": "/opt/bin/opencode",
        "timeoutSecs": 3600}}}"#;
    let gpu = parse(text).unwrap().get("gpu").unwrap().clone();
    assert_eq!(gpu.port, Some(2200));
    assert_eq!(gpu.identity_file, Some(PathBuf::from("~/.ssh/id_x")));
    assert_eq!(gpu.os, Os::Macos);
    assert_eq!(gpu.host_key_policy, HostKeyPolicy::AcceptNew);
    assert_eq!(gpu.timeout_secs, Some(3600));
    let defaults = parse(r#"{"hosts": {"x": {"host": "x"}}}"#)
        .unwrap()
        .get("x")
        .unwrap()
        .clone();
    assert_eq!(
        (defaults.os, defaults.host_key_policy),
        (Os::Linux, HostKeyPolicy::Strict)
    );
}

#[test]
fn load_hosts_should_name_the_failing_field() {
    let (field, problem) = config_err(parse(r#"{"hosts": {"gpu": {"host": "h", "port": 70000}}}"#));
    assert_eq!(field, "hosts.gpu.port");
    assert!(problem.contains("70000"), "{problem}");
    let (field, problem) = config_err(parse(
        r#"{"hosts": {"gpu": {"host": "h", "identityfile": "k"}}}"#,
    ));
    assert!(field.starts_with("hosts.gpu"), "{field}");
    assert!(
        problem.contains("unknown field `identityfile`"),
        "{problem}"
    );
    let (field, _) = config_err(parse(r#"{"hosts": {"gpu": 5}}"#));
    assert_eq!(field, "hosts.gpu");
    let (field, _) = config_err(parse(r#"{"host": {}}"#));
    assert!(field == "(top level)" || field == "host", "{field}");
    let (field, problem) = config_err(parse(r#"{"hosts": {"pi": "p" "#));
    assert_eq!(field, "(syntax)");
    assert!(problem.contains("line 1"), "{problem}");
}

#[test]
fn load_hosts_should_reject_windows_as_not_supported_yet() {
    let (field, problem) = config_err(parse(r#"{"hosts": {"w": {"host": "w", "os": "windows"}}}"#));
    assert_eq!(field, "hosts.w.os");
    assert!(problem.contains("not supported yet"), "{problem}");
}

#[test]
fn load_hosts_should_reject_invalid_values_at_their_field() {
    let cases = [
        (r#"{"hosts": {"-x": "h"}}"#, "hosts.-x"),
        (r#"{"hosts": {"a b": "h"}}"#, "hosts.a b"),
        (
            r#"{"hosts": {"pi": "-oProxyCommand=touch /tmp/pwned"}}"#,
            "hosts.pi",
        ),
        (r#"{"hosts": {"pi": "h\u0000"}}"#, "hosts.pi"),
        (
            r#"{"hosts": {"pi": {"host": "u@-oProxyCommand=x"}}}"#,
            "hosts.pi.host",
        ),
        (
            r#"{"hosts": {"pi": {"host": "h", "port": 0}}}"#,
            "hosts.pi.port",
        ),
        (r#"{"hosts": {"pi": "h:0"}}"#, "hosts.pi"),
        (
            r#"{"hosts": {"pi": {"host": "h", "model": "no-slash"}}}"#,
            "hosts.pi.model",
        ),
        (
            r#"{"hosts": {"pi": {"host": "h", "model": "p/"}}}"#,
            "hosts.pi.model",
        ),
        (
            r#"{"hosts": {"pi": {"host": "h", "agent": ""}}}"#,
            "hosts.pi.agent",
        ),
        (
            r#"{"hosts": {"pi": {"host": "h", "agent": "a\nb"}}}"#,
            "hosts.pi.agent",
        ),
        (
            r#"{"hosts": {"pi": {"host": "h", "user": "-l"}}}"#,
            "hosts.pi.user",
        ),
        (
            r#"{"hosts": {"pi": {"host": "h", "proxyJump": "j1,-oX"}}}"#,
            "hosts.pi.proxyJump",
        ),
        (
            r#"{"hosts": {"pi": {"host": "h", "timeoutSecs": 0}}}"#,
            "hosts.pi.timeoutSecs",
        ),
        (
            r#"{"hosts": {"pi": {"host": "h", "opencode": "-x"}}}"#,
            "hosts.pi.opencode",
        ),
    ];
    for (text, expected) in cases {
        let (field, _) = config_err(parse(text));
        assert_eq!(field, expected, "{text}");
    }
    let long = "x".repeat(65);
    let (field, _) = config_err(parse(&format!(r#"{{"hosts": {{"{long}": "h"}}}}"#)));
    assert_eq!(field, format!("hosts.{long}"));
    assert!(parse(&format!(r#"{{"hosts": {{"{}": "h"}}}}"#, "x".repeat(64))).is_ok());
}

#[test]
fn load_hosts_should_resolve_provider_hosts_by_name_and_alias() {
    let text = r#"{"hosts": {"pi": "pi"}, "providers": {"default": {"strategy": "first_available", "labels": ["gpu"],
        "hosts": [{"name": "box", "aliases": ["b", "big"], "labels": ["gpu"],
                   "ssh": {"host": "10.0.0.7", "user": "ann", "port": 2022, "identityFile": "~/.ssh/k",
                           "proxyJump": "bastion"}}]}}}"#;
    let hosts = parse(text).unwrap();
    assert_eq!(hosts.names(), ["box", "pi"]);
    let by_alias = hosts.get("big").unwrap();
    assert!(std::ptr::eq(by_alias, hosts.get("box").unwrap()));
    assert_eq!(by_alias.name, "box");
    assert_eq!(by_alias.address, "10.0.0.7");
    assert_eq!(
        (by_alias.user.as_deref(), by_alias.port),
        (Some("ann"), Some(2022))
    );
    assert_eq!(by_alias.proxy_jump.as_deref(), Some("bastion"));
    assert_eq!(hosts.aliases_of("box"), ["b", "big"]);
    assert_eq!(hosts.providers()["default"].labels, ["gpu"]);
}

#[test]
fn load_hosts_should_reject_a_name_defined_twice_in_one_file() {
    let text = r#"{"hosts": {"pi": "pi"}, "providers": {"p": {"hosts": [{"name": "x", "aliases": ["pi"],
        "ssh": {"host": "x"}}]}}}"#;
    let (field, problem) = config_err(parse(text));
    assert_eq!(field, "providers.p.hosts[0].aliases[0]");
    assert!(problem.contains("twice"), "{problem}");
}

#[test]
fn load_hosts_should_report_inline_options_as_opencode_json() {
    let dir = tempfile::tempdir().unwrap();
    let sources = ConfigSources {
        config_dir: dir.path().to_path_buf(),
        project_dir: None,
        inline: Some(json!({"hosts": {"pi": {"host": "pi", "port": "22"}}})),
        inline_from_project: None,
    };
    match load_hosts(&sources).unwrap().get("pi") {
        Err(Error::Config { file, field, .. }) => {
            assert_eq!(file, PathBuf::from(INLINE_SOURCE));
            assert_eq!(field, "hosts.pi.port");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn load_hosts_should_refuse_one_bad_host_and_keep_the_others() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("hosts.json"),
        r#"{"hosts": {"win": {"host": "w", "os": "windows"}, "pi": "pi-box", "odd": {"host": "o", "colour": 1}},
            "providers": {"default": {"hosts": [
              {"name": "web1", "ssh": {"host": "w1"}},
              {"name": "web2", "ssh": {"host": "w2", "port": 0}}]}}}"#,
    );
    let hosts = load_hosts(&ConfigSources {
        config_dir: dir.path().to_path_buf(),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(hosts.names(), ["pi", "web1"]);
    assert_eq!(hosts.get("pi").unwrap().address, "pi-box");
    let refused: Vec<_> = hosts
        .refused()
        .map(|r| (r.name.as_str(), r.field.as_str()))
        .collect();
    assert_eq!(
        refused,
        [
            ("odd", "hosts.odd.colour"),
            ("web2", "providers.default.hosts[1].ssh.port"),
            ("win", "hosts.win.os"),
        ]
    );
    match hosts.get("win") {
        Err(error @ Error::Config { .. }) => {
            let text = error.to_string();
            assert!(text.contains("hosts.json: hosts.win.os"), "{text}");
            assert!(
                text.contains("Windows hosts are not supported yet"),
                "{text}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(hosts
        .get("odd")
        .unwrap_err()
        .to_string()
        .contains("unknown field `colour`"));
    let provider = &hosts.providers()["default"];
    assert_eq!(
        provider.hosts.len(),
        1,
        "the refused host is not offered to workspaces"
    );
}

#[test]
fn load_hosts_should_let_a_later_refused_entry_replace_an_earlier_host() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("hosts.json"),
        r#"{"hosts": {"pi": "old-box"}}"#,
    );
    let hosts = load_hosts(&ConfigSources {
        config_dir: dir.path().to_path_buf(),
        inline: Some(json!({"hosts": {"pi": {"host": "new-box", "os": "windows"}}})),
        ..Default::default()
    })
    .unwrap();
    assert!(hosts.names().is_empty());
    assert!(matches!(hosts.get("pi"), Err(Error::Config { .. })));
}

#[test]
fn load_hosts_should_warn_about_seed_options_it_ignores() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = load_hosts(&ConfigSources {
        config_dir: dir.path().to_path_buf(),
        inline: Some(json!({
            "installRoot": "~/.opencode-remote",
            "tunnel": {"connectTimeoutMs": 5000},
            "defaults": {"stubPort": 39217},
            "hosts": {"pi": "pi-box"}
        })),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(hosts.names(), ["pi"]);
    let warnings = hosts.warnings().join("\n");
    for key in ["installRoot", "tunnel", "defaults"] {
        assert!(
            warnings.contains(&format!("opencode.json (plugin options): {key}: ignored")),
            "{warnings}"
        );
    }
}

#[test]
fn hosts_get_should_list_known_names_for_an_unknown_host() {
    let hosts = parse(r#"{"hosts": {"zeta": "z", "alpha": "a"}}"#).unwrap();
    match hosts.get("nope") {
        Err(Error::UnknownHost { name, known }) => {
            assert_eq!(name, "nope");
            assert_eq!(known, ["alpha", "zeta"]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn hosts_file_should_round_trip_through_serde() {
    let text = r#"{"hosts": {"a": "u@a", "b": {"host": "b", "os": "macos", "hostKeyPolicy": "accept-new"}},
        "providers": {"d": {"hosts": [{"name": "x", "ssh": {"host": "x"}}]}}}"#;
    let file = parse_hosts_text(Path::new("hosts.json"), text).unwrap();
    let again: HostsFile = serde_json::from_value(serde_json::to_value(&file).unwrap()).unwrap();
    assert_eq!(again, file);
}

#[test]
fn config_sources_should_follow_opencode_config_dir_then_xdg_then_home() {
    fn vars<'a>(pairs: &'a [(&str, &str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |key| {
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| OsString::from(v))
        }
    }
    let all = [
        ("OPENCODE_CONFIG_DIR", "/oc"),
        ("XDG_CONFIG_HOME", "/xdg"),
        ("HOME", "/home/u"),
    ];
    assert_eq!(
        ConfigSources::from_vars(None, None, vars(&all)).config_dir,
        PathBuf::from("/oc")
    );
    let no_oc = [
        ("OPENCODE_CONFIG_DIR", ""),
        ("XDG_CONFIG_HOME", "/xdg"),
        ("HOME", "/home/u"),
    ];
    assert_eq!(
        ConfigSources::from_vars(None, None, vars(&no_oc)).config_dir,
        PathBuf::from("/xdg/opencode")
    );
    let home = [("HOME", "/home/u")];
    let sources = ConfigSources::from_vars(Some("/p".into()), None, vars(&home));
    assert_eq!(
        sources.config_dir,
        PathBuf::from("/home/u/.config/opencode")
    );
    let files: Vec<_> = sources
        .files()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    assert_eq!(
        files,
        [
            "/home/u/.config/opencode/hosts.jsonc",
            "/home/u/.config/opencode/hosts.json",
            "/p/hosts.jsonc",
            "/p/hosts.json",
            "/p/.opencode/hosts.jsonc",
            "/p/.opencode/hosts.json",
        ]
    );
}

/// `UPDATE_SCHEMA=1 cargo test --lib config` rewrites the committed schema files.
fn check_schema(file: &str, schema: Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schema")
        .join(file);
    let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
    if std::env::var_os("UPDATE_SCHEMA").is_some_and(|v| v == "1") {
        fs::write(&path, text).unwrap();
        return;
    }
    let committed = fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text,
        "{} is stale; run `UPDATE_SCHEMA=1 cargo test --lib config`",
        path.display()
    );
}

#[test]
fn hosts_schema_should_match_the_committed_file() {
    check_schema("hosts.schema.json", hosts_schema());
}

#[test]
fn plugin_options_schema_should_match_the_committed_file() {
    check_schema("plugin-options.schema.json", plugin_options_schema());
}

#[test]
fn hosts_schema_should_describe_every_field_and_forbid_typos() {
    let schema = hosts_schema();
    let object = &schema["$defs"]["HostObject"];
    assert_eq!(object["additionalProperties"], json!(false));
    assert_eq!(object["required"], json!(["host"]));
    for (key, property) in object["properties"].as_object().unwrap() {
        assert!(
            property.get("description").is_some(),
            "{key} has no description"
        );
    }
    assert_eq!(plugin_options_schema()["additionalProperties"], Value::Null);
}

#[test]
fn load_hosts_should_refuse_weakened_host_keys_from_a_project_file() {
    let config = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let sources = ConfigSources {
        config_dir: config.path().to_path_buf(),
        project_dir: Some(project.path().to_path_buf()),
        ..Default::default()
    };
    write(
        &project.path().join(".opencode/hosts.json"),
        r#"{"hosts": {"pi": {"host": "evil.example", "hostKeyPolicy": "accept-new"}}}"#,
    );
    let (field, _) = config_err(load_hosts(&sources));
    assert_eq!(field, "hosts.pi.hostKeyPolicy");

    write(
        &project.path().join(".opencode/hosts.json"),
        r#"{"hosts": {"pi": {"host": "box", "opencode": "/usr/bin/env"}}}"#,
    );
    let (field, _) = config_err(load_hosts(&sources));
    assert_eq!(field, "hosts.pi.opencode");

    // The same settings are the user's own choice in the global file.
    fs::remove_file(project.path().join(".opencode/hosts.json")).unwrap();
    write(
        &config.path().join("hosts.json"),
        r#"{"hosts": {"pi": {"host": "box", "opencode": "/opt/oc", "hostKeyPolicy": "accept-new"}}}"#,
    );
    assert!(load_hosts(&sources).is_ok());
}
