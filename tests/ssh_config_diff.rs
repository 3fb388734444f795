//! Differential test: every case in `tests/ssh_config_corpus/` is resolved by our resolver and by the
//! installed OpenSSH (`ssh -G -F <case> <host>`), and the two must agree on the fields below, except where
//! `tests/ssh_config_corpus/ALLOWLIST` documents a deliberate departure.
//!
//! A case file is an ssh_config whose first line is `# hosts: a b ...` (the hosts to resolve); `@DIR@`
//! anywhere in a corpus file stands for the directory the corpus was copied to, so `Include` can use
//! absolute paths. ProxyJump hops are compared too, each against the `ssh -G -l … -p … [-J …] hop` that
//! OpenSSH runs for it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use opencode_remote::config::{HostEntry, HostKeyPolicy};
use opencode_remote::ssh::config::{
    resolve_with, Options, ResolveEnv, SshTarget, DEFAULT_IDENTITIES,
};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ssh_config_corpus");
/// The fields compared, named as `ssh -G` prints them.
const FIELDS: &[&str] = &[
    "hostname",
    "user",
    "port",
    "identityfile",
    "userknownhostsfile",
    "globalknownhostsfile",
    "stricthostkeychecking",
    "proxyjump",
    "proxycommand",
    "hostkeyalias",
    "certificatefile",
];
const MIN_CASES: usize = 60;

type Fields = BTreeMap<String, String>;

/// `ssh -G` output, multi-line keywords joined with a space in order.
fn ssh_g(config: &Path, args: &[&str]) -> Result<Fields, String> {
    let output = Command::new("ssh")
        .arg("-G")
        .arg("-F")
        .arg(config)
        .args(args)
        .output()
        .map_err(|e| format!("running ssh -G: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "ssh -G {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let mut fields = Fields::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        if FIELDS.contains(&key) {
            fields
                .entry(key.to_string())
                .and_modify(|v| {
                    v.push(' ');
                    v.push_str(value)
                })
                .or_insert_with(|| value.to_string());
        }
    }
    Ok(fields)
}

/// Our resolution in `ssh -G`'s vocabulary. List values that `ssh -G` prints unexpanded
/// (IdentityFile, CertificateFile, ProxyCommand) are compared as written in the config.
fn ours(target: &SshTarget, options: &Options) -> Fields {
    let mut fields = Fields::new();
    let mut put = |key: &str, value: String| {
        if !value.is_empty() {
            fields.insert(key.to_string(), value);
        }
    };
    let paths = |list: &[PathBuf]| {
        if list.is_empty() {
            "none".to_string()
        } else {
            list.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" ")
        }
    };
    put("hostname", target.hostname.clone());
    put("user", target.user.clone());
    put("port", target.port.to_string());
    let identities: Vec<String> = match options.list("identityfile") {
        [] => DEFAULT_IDENTITIES
            .iter()
            .map(|n| format!("~/.ssh/{n}"))
            .collect(),
        list => list.iter().map(|s| s.raw.clone()).collect(),
    };
    put("identityfile", identities.join(" "));
    put("userknownhostsfile", paths(&target.known_hosts_files));
    put(
        "globalknownhostsfile",
        paths(&target.global_known_hosts_files),
    );
    let policy = match target.host_key_policy {
        HostKeyPolicy::Strict => "true",
        HostKeyPolicy::AcceptNew => "accept-new",
    };
    put("stricthostkeychecking", policy.into());
    if let Some(jump) = options
        .get("proxyjump")
        .filter(|j| !j.raw.eq_ignore_ascii_case("none"))
    {
        // `ssh -G` prints each hop re-assembled as user@host:port (an ssh:// URI loses its scheme).
        let hops: Vec<&str> = jump
            .raw
            .split(',')
            .map(|h| h.strip_prefix("ssh://").unwrap_or(h))
            .collect();
        put("proxyjump", hops.join(","));
    }
    if target.proxy_command.is_some() {
        if let Some(command) = options.get("proxycommand") {
            put("proxycommand", command.raw.clone());
        }
    }
    if let Some(alias) = &target.host_key_alias {
        put("hostkeyalias", alias.clone());
    }
    let certificates: Vec<String> = options
        .list("certificatefile")
        .iter()
        .map(|s| s.raw.clone())
        .collect();
    put("certificatefile", certificates.join(" "));
    fields
}

/// `ssh -G` prints `ask` and `false` as such; we print what our policy does with them.
fn normalize_theirs(mut fields: Fields) -> Fields {
    if let Some(value) = fields.get_mut("stricthostkeychecking") {
        if value == "ask" {
            *value = "true".into();
        }
    }
    fields
}

/// `case host field` → reason.
fn allow_list() -> BTreeMap<(String, String, String), String> {
    let text = std::fs::read_to_string(Path::new(CORPUS).join("ALLOWLIST")).expect("ALLOWLIST");
    let mut entries = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, reason) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("ALLOWLIST line without ': reason': {line}"));
        let words: Vec<&str> = key.split_whitespace().collect();
        assert_eq!(
            words.len(),
            3,
            "ALLOWLIST: want `case host field: reason`: {line}"
        );
        assert!(
            !reason.trim().is_empty(),
            "ALLOWLIST entry without a reason: {line}"
        );
        entries.insert(
            (words[0].into(), words[1].into(), words[2].into()),
            reason.trim().to_string(),
        );
    }
    entries
}

fn copy_corpus(to: &Path) {
    for entry in std::fs::read_dir(CORPUS).unwrap() {
        let entry = entry.unwrap();
        let from = entry.path();
        let dest = to.join(entry.file_name());
        if from.is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_dir(&from, &dest, to);
        } else {
            copy_file(&from, &dest, to);
        }
    }
}

fn copy_dir(from: &Path, to: &Path, root: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        copy_file(&entry.path(), &to.join(entry.file_name()), root);
    }
}

fn copy_file(from: &Path, to: &Path, root: &Path) {
    let text = std::fs::read_to_string(from).unwrap();
    std::fs::write(to, text.replace("@DIR@", &root.display().to_string())).unwrap();
}

/// The user and home `ssh` itself uses (from the passwd entry, which may differ from `$HOME`).
fn ssh_env(empty: &Path) -> ResolveEnv {
    let defaults = ssh_g(empty, &["probe"]).expect("ssh -G with an empty config");
    let known = defaults["userknownhostsfile"].split(' ').next().unwrap();
    let home = Path::new(known).parent().unwrap().parent().unwrap();
    let process = ResolveEnv::from_process();
    ResolveEnv {
        home: Some(home.to_path_buf()),
        local_user: Some(defaults["user"].clone()),
        local_hostname: process.local_hostname,
    }
}

#[test]
fn ssh_config_resolution_should_match_openssh() {
    if Command::new("ssh").arg("-V").output().is_err() {
        println!(
            "skipped: `ssh` (openssh-client) is not installed, so there is nothing to compare with"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    copy_corpus(dir.path());
    let empty = dir.path().join("empty.config");
    std::fs::write(&empty, "").unwrap();
    let env = ssh_env(&empty);
    let allowed = allow_list();
    let mut used = BTreeSet::new();
    let mut failures = Vec::new();
    let mut cases = 0;
    let mut comparisons = 0;

    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    files.sort();
    for file in &files {
        let case = file.file_stem().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(file).unwrap();
        let hosts = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# hosts:"))
            .unwrap_or_else(|| panic!("{case}: first line must be `# hosts: ...`"));
        cases += 1;
        for host in hosts.split_whitespace() {
            let entry = HostEntry {
                name: "case".into(),
                address: host.into(),
                ..HostEntry::default()
            };
            let resolution = match (resolve_with(&entry, Some(file), &env), ssh_g(file, &[host])) {
                (Ok(resolution), _) => resolution,
                // Both refuse the config: they agree.
                (Err(_), Err(_)) => {
                    comparisons += 1;
                    continue;
                }
                (Err(error), Ok(_)) => {
                    failures.push(format!("{case} {host}: we failed, ssh -G did not: {error}"));
                    continue;
                }
            };
            let mut pairs = vec![(
                host.to_string(),
                ours(&resolution.target, &resolution.options),
                ssh_g(file, &[host]),
            )];
            // Each hop as OpenSSH resolves it: `ssh -l user -p port [-J earlier] hop`.
            let specs: Vec<String> = resolution
                .options
                .get("proxyjump")
                .filter(|j| !j.raw.eq_ignore_ascii_case("none"))
                .map(|j| j.raw.split(',').map(str::to_string).collect())
                .unwrap_or_default();
            if specs.len() == resolution.target.proxy_jump.len() {
                for (i, spec) in specs.iter().enumerate() {
                    let spec = spec.strip_prefix("ssh://").unwrap_or(spec);
                    let (user_host, port) = match spec.rsplit_once(':') {
                        Some((h, p)) if !h.contains(':') => (h, Some(p)),
                        _ => (spec, None),
                    };
                    let (user, hop) = match user_host.rsplit_once('@') {
                        Some((u, h)) => (Some(u), h),
                        None => (None, user_host),
                    };
                    let mut args: Vec<String> = Vec::new();
                    if let Some(user) = user {
                        args.extend(["-l".into(), user.into()]);
                    }
                    if let Some(port) = port {
                        args.extend(["-p".into(), port.into()]);
                    }
                    if i > 0 {
                        args.extend(["-J".into(), specs[..i].join(",")]);
                    }
                    args.push(hop.into());
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    pairs.push((
                        format!("{host}>{hop}"),
                        ours(&resolution.target.proxy_jump[i], &resolution.hop_options[i]),
                        ssh_g(file, &args),
                    ));
                }
            }
            for (label, ours, theirs) in pairs {
                let theirs = match theirs {
                    Ok(theirs) => normalize_theirs(theirs),
                    Err(error) => {
                        failures.push(format!("{case} {label}: we resolved it, but {error}"));
                        continue;
                    }
                };
                for field in FIELDS {
                    comparisons += 1;
                    let (a, b) = (ours.get(*field), theirs.get(*field));
                    if a == b {
                        continue;
                    }
                    let key = (case.clone(), label.clone(), field.to_string());
                    if allowed.contains_key(&key) {
                        used.insert(key);
                        continue;
                    }
                    failures.push(format!("{case} {label} {field}: ours {a:?}, ssh -G {b:?}"));
                }
            }
        }
    }
    for key in allowed.keys().filter(|k| !used.contains(*k)) {
        failures.push(format!(
            "ALLOWLIST entry no longer needed (remove it): {} {} {}",
            key.0, key.1, key.2
        ));
    }
    println!("{cases} cases, {comparisons} field comparisons with ssh -G");
    assert!(
        cases >= MIN_CASES,
        "the corpus has {cases} cases, want at least {MIN_CASES}"
    );
    assert!(
        failures.is_empty(),
        "{} disagreement(s) with OpenSSH:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
