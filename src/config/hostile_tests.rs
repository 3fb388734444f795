//! Hostile config values and broken files: every one is refused with a config error that names the file,
//! the field and a fix, or accepted only when it is safe to hand to SSH and remote command lines.

use std::path::Path;

use proptest::prelude::*;
use serde_json::{json, Value};

use super::address::parse_address;
use super::*;
use crate::ssh::quote::oracle::{cases, hostile_text};

const FILE: &str = "/cfg/hosts.json";

/// Loads `value` as the text of a hosts file and checks it the way loading does.
fn load(value: &Value) -> Result<()> {
    let file = parse_hosts_text(Path::new(FILE), &value.to_string())?;
    validate_hosts(Path::new(FILE), &file.hosts, &file.providers)
}

/// (field, problem, fix) of a config error about our file.
fn config_err(result: Result<()>) -> (String, String, String) {
    match result {
        Err(Error::Config {
            file,
            field,
            problem,
            fix,
        }) => {
            assert_eq!(file, Path::new(FILE));
            assert!(!fix.is_empty() && !problem.is_empty());
            (field, problem, fix)
        }
        other => panic!("expected a config error, got {other:?}"),
    }
}

/// The name rule the published schema states (`propertyNames.pattern`).
fn schema_allows_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn name_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9._-]{0,70}",
        hostile_text(),
        Just("-oProxyCommand=touch /tmp/pwned".to_string()),
    ]
}

proptest! {
    #![proptest_config(cases(512))]

    /// A host name, provider host name or alias is accepted exactly when the schema's pattern allows it,
    /// and a refusal names the field it was in.
    #[test]
    fn names_should_follow_the_schema_pattern(name in name_text()) {
        let as_key = load(&json!({"hosts": {name.as_str(): "h"}}));
        let as_alias = load(&json!({"providers": {"p": {"hosts": [
            {"name": "ok", "aliases": [name.as_str()], "ssh": {"host": "h"}}]}}}));
        let as_name = load(&json!({"providers": {"p": {"hosts": [{"name": name.as_str(), "ssh": {"host": "h"}}]}}}));
        if schema_allows_name(&name) {
            prop_assert!(as_key.is_ok() && as_alias.is_ok() && as_name.is_ok(), "{:?}", name);
        } else {
            prop_assert_eq!(config_err(as_key).0, format!("hosts.{name}"));
            prop_assert_eq!(config_err(as_alias).0, "providers.p.hosts[0].aliases[0]");
            prop_assert_eq!(config_err(as_name).0, "providers.p.hosts[0].name");
        }
    }

    /// Whatever address is accepted can only ever be one SSH destination: no part starts with '-' (an
    /// option to `ssh`) or holds whitespace or control characters (a second word, a forged log line).
    #[test]
    fn accepted_addresses_should_be_single_safe_words(address in prop_oneof![
        hostile_text(),
        "(-?[a-z@:\\[\\]]{0,6}){1,4}",
        Just("-oProxyCommand=sh -c 'id'".to_string()),
    ]) {
        let safe = |word: &str| {
            !word.is_empty() && !word.starts_with('-') && !word.chars().any(|c| c.is_whitespace() || c.is_control())
        };
        match parse_address(&address) {
            Ok(parsed) => {
                prop_assert!(safe(&parsed.host), "{:?}", parsed);
                prop_assert!(parsed.user.as_deref().is_none_or(safe), "{:?}", parsed);
                prop_assert!(!address.starts_with('-'));
            }
            Err(_) => {
                let (field, ..) = config_err(load(&json!({"hosts": {"pi": {"host": address.as_str()}}})));
                prop_assert_eq!(field, "hosts.pi.host");
            }
        }
    }

    /// A control character (NUL, newline, ESC…) in any string field is refused at that field.
    #[test]
    fn control_characters_should_be_refused_at_their_field(
        field in prop::sample::select(vec!["host", "user", "identityFile", "proxyJump", "agent", "model", "directory", "opencode"]),
        before in "[a-z]{1,5}", control in "[\u{0}-\u{1f}\u{7f}-\u{9f}]", after in "[a-z/]{0,5}",
    ) {
        let mut value = json!({"hosts": {"pi": {"host": "h", "model": "p/m"}}});
        value["hosts"]["pi"][field] = json!(format!("{before}{control}{after}"));
        prop_assert_eq!(config_err(load(&value)).0, format!("hosts.pi.{field}"));
    }
}

/// Each field given a value of the wrong JSON type: the error names the field and the fix says what
/// is expected there.
#[test]
fn wrong_types_should_name_the_field_and_what_is_expected() {
    let string_fields = [
        "host",
        "user",
        "identityFile",
        "proxyJump",
        "agent",
        "model",
        "directory",
        "opencode",
    ];
    let wrong = [json!(1), json!(true), json!(["x"]), json!({"a": 1})];
    for field in string_fields {
        for value in &wrong {
            let text = json!({"hosts": {"pi": {"host": "h", field: value}}});
            let (at, problem, fix) = config_err(load(&text));
            assert_eq!(at, format!("hosts.pi.{field}"), "{text}");
            assert!(problem.contains("invalid type"), "{text}: {problem}");
            assert!(
                fix.contains("Use a string") || fix.contains("Use path string"),
                "{text}: {fix}"
            );
        }
    }
    for (field, value, expected) in [
        ("port", json!("22"), "a number from 1 to 65535"),
        ("port", json!(-1), "a number from 1 to 65535"),
        ("port", json!(1.5), "a number from 1 to 65535"),
        ("timeoutSecs", json!("60"), "a whole number"),
        ("timeoutSecs", json!(1e30), "a whole number"),
        ("os", json!(1), "Use"),
        ("hostKeyPolicy", json!("off"), "Use"),
    ] {
        let text = json!({"hosts": {"pi": {"host": "h", field: value}}});
        let (at, problem, fix) = config_err(load(&text));
        assert_eq!(at, format!("hosts.pi.{field}"), "{text}");
        assert!(fix.contains(expected), "{text}: {problem} / {fix}");
    }
    for (text, at) in [
        (json!([]), "(top level)"),
        (json!([null, {"pi": "h"}]), "(top level)"),
        (json!("hosts"), "(top level)"),
        (json!({"hosts": []}), "hosts"),
        (json!({"hosts": {"pi": null}}), "hosts.pi"),
        (
            json!({"providers": {"p": {"hosts": {}}}}),
            "providers.p.hosts",
        ),
        (
            json!({"providers": {"p": {"hosts": [{"name": "a", "ssh": "h"}]}}}),
            "providers.p.hosts[0].ssh",
        ),
        (
            json!({"providers": {"p": {"hosts": [{"name": "a", "aliases": "b", "ssh": {"host": "h"}}]}}}),
            "providers.p.hosts[0].aliases",
        ),
        (
            json!({"providers": {"p": {"strategy": "random"}}}),
            "providers.p.strategy",
        ),
    ] {
        assert_eq!(config_err(load(&text)).0, at, "{text}");
    }
}

/// jsonc-parser stops at its own nesting limit; nothing recurses 100 000 levels deep.
#[test]
fn deep_nesting_should_be_a_syntax_error_not_a_stack_overflow() {
    let depth = 100_000;
    let text = format!(
        r#"{{"hosts": {{"pi": {}{}}}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let result = parse_hosts_text(Path::new(FILE), &text).map(drop);
    let (field, problem, fix) = config_err(result);
    assert_eq!(field, "(syntax)");
    assert!(problem.contains("nesting"), "{problem}");
    assert!(fix.contains("line 1"), "{fix}");
}

#[test]
fn a_huge_or_binary_hosts_file_should_be_refused_with_a_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hosts.json");
    let mut huge = String::from(r#"{"hosts": {"pi": "h"}, "$schema": ""#);
    huge.push_str(&"x".repeat(MAX_HOSTS_FILE_BYTES as usize));
    huge.push_str("\"}");
    std::fs::write(&path, &huge).unwrap();
    match read_hosts_file(&path) {
        Err(Error::Config { field, problem, .. }) => {
            assert_eq!(field, "(file)");
            assert!(problem.contains("larger than"), "{problem}");
        }
        other => panic!("{other:?}"),
    }
    std::fs::write(&path, b"{\"hosts\": {\"pi\": \"h\xff\"}}").unwrap();
    match read_hosts_file(&path) {
        Err(Error::Config {
            field,
            problem,
            fix,
            ..
        }) => {
            assert_eq!(field, "(file)");
            assert!(problem.contains("byte 19 is not UTF-8"), "{problem}");
            assert!(fix.contains("UTF-8"));
        }
        other => panic!("{other:?}"),
    }
    std::fs::write(&path, &huge[..MAX_HOSTS_FILE_BYTES as usize - 10]).unwrap();
    assert!(
        matches!(read_hosts_file(&path), Err(Error::Config { .. })),
        "truncated: syntax error"
    );
}

/// Plugin options come from opencode.json as already-parsed JSON; wrong types there name the field too.
#[test]
fn inline_options_with_wrong_types_should_name_opencode_json() {
    for (inline, at) in [
        (json!({"hosts": {"pi": {"host": 5}}}), "hosts.pi.host"),
        (json!({"hosts": "pi"}), "hosts"),
        (json!({"providers": [1]}), "providers"),
    ] {
        let sources = ConfigSources {
            config_dir: "/nonexistent-config".into(),
            inline: Some(inline.clone()),
            ..Default::default()
        };
        let loaded = load_hosts(&sources).and_then(|hosts| {
            hosts
                .refused()
                .next()
                .map_or(Ok(hosts.clone()), |r| Err(r.error()))
        });
        match loaded {
            Err(Error::Config { file, field, .. }) => {
                assert_eq!(file, Path::new(INLINE_SOURCE));
                assert_eq!(field, at, "{inline}");
            }
            other => panic!("{inline}: {other:?}"),
        }
    }
}
