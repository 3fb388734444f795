//! The checked, normalized host entry, and the checks that turn file shapes into it.
//!
//! Every string here may later reach an SSH client or a remote command line, so the rules are strict at
//! load time: a bad value is a config error naming the file, the field and the fix, never a surprise later.

use std::path::{Path, PathBuf};

use super::address::{check_token, parse_address};
use super::model::{HostKeyPolicy, HostObject, HostSpec, Os, ProviderHost};
use crate::error::{Error, Result};

/// One host, whichever file format it came from. The string form `"pi": "user@host"` becomes an entry
/// with only `address` set; unset fields fall back to ~/.ssh/config (see `crate::ssh::config`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostEntry {
    /// The configured name: the only identifier ever shown to the model.
    pub name: String,
    /// `[user@]host[:port]`, where host may be a ~/.ssh/config alias. Checked by `parse_address`.
    pub address: String,
    pub port: Option<u16>,
    pub user: Option<String>,
    /// As written; `~` is expanded when the SSH target is resolved.
    pub identity_file: Option<PathBuf>,
    /// Comma-separated jump hosts, or "none" to cancel a ProxyJump from ~/.ssh/config.
    pub proxy_jump: Option<String>,
    pub agent: Option<String>,
    /// `provider/model-id`.
    pub model: Option<String>,
    /// Remote working directory; `~` is the remote home.
    pub directory: Option<String>,
    pub os: Os,
    pub host_key_policy: HostKeyPolicy,
    /// Path of `opencode` on the remote host; `None` means look it up on the remote PATH.
    pub opencode: Option<String>,
    /// Round-trip wait timeout.
    pub timeout_secs: Option<u64>,
    /// Defined by a project's hosts file (or plugin options from a project's opencode.json), which
    /// came with a repository rather than from the user: such a host is only connected to when its
    /// key is already in known_hosts, whatever ~/.ssh/config says (see `crate::ssh::config`).
    pub project: bool,
    /// Defined as a provider's host: it serves SSH workspaces through the stub and needs no `opencode`
    /// of its own (remote_login to it still does).
    pub workspace_only: bool,
}

/// Longest round-trip timeout (7 days): larger values would overflow the clock (`Instant + Duration`
/// panics) and no round trip is meant to wait longer. The schema says the same (`model.rs`).
pub const MAX_TIMEOUT_SECS: u64 = 7 * 24 * 60 * 60;

const NAME_FIX: &str = "Use 1 to 64 letters, digits, '.', '_' or '-', not starting with '-'.";
const ADDRESS_FIX: &str =
    "Write it as user@host:port, user@host, host, [ipv6]:port, or an alias from ~/.ssh/config.";

pub(crate) fn config_error(
    file: &Path,
    field: &str,
    problem: impl Into<String>,
    fix: &str,
) -> Error {
    Error::Config {
        file: file.to_path_buf(),
        // An empty key (`{"": …}`, found by fuzzing) has no path of its own.
        field: if field.is_empty() {
            "(top level)".to_string()
        } else {
            field.to_string()
        },
        problem: problem.into(),
        fix: fix.to_string(),
    }
}

/// Host names reach tool descriptions and error texts, so they are kept to a small, printable alphabet.
pub(crate) fn check_name(file: &Path, field: &str, name: &str) -> Result<()> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if name.is_empty() || name.len() > 64 || !ok_chars || name.starts_with('-') {
        return Err(config_error(
            file,
            field,
            format!("host name {name:?} is not allowed"),
            NAME_FIX,
        ));
    }
    Ok(())
}

pub(crate) fn from_spec(file: &Path, name: &str, spec: &HostSpec) -> Result<HostEntry> {
    let field = format!("hosts.{name}");
    check_name(file, &field, name)?;
    match spec {
        HostSpec::Address(address) => {
            check_address(file, &field, address)?;
            Ok(HostEntry {
                name: name.to_string(),
                address: address.clone(),
                ..HostEntry::default()
            })
        }
        HostSpec::Full(object) => from_object(file, &field, name, object),
    }
}

fn from_object(file: &Path, field: &str, name: &str, object: &HostObject) -> Result<HostEntry> {
    let at = |key: &str| format!("{field}.{key}");
    check_address(file, &at("host"), &object.host)?;
    check_port(file, &at("port"), object.port)?;
    check_user(file, &at("user"), object.user.as_deref())?;
    check_identity_file(file, &at("identityFile"), object.identity_file.as_deref())?;
    check_proxy_jump(file, &at("proxyJump"), object.proxy_jump.as_deref())?;
    if let Some(agent) = &object.agent {
        check_word(
            file,
            &at("agent"),
            agent,
            "agent name",
            "Use the name of an agent from your OpenCode config.",
        )?;
    }
    if let Some(model) = &object.model {
        check_model(file, &at("model"), model)?;
    }
    if let Some(directory) = &object.directory {
        let fix = "Use a plain path on the remote host, such as ~/work/app.";
        check_printable(file, &at("directory"), directory, "directory", fix)?;
    }
    if let Some(opencode) = &object.opencode {
        let fix = "Use the absolute path of opencode on the remote host, or leave it out to use the remote PATH.";
        check_word(file, &at("opencode"), opencode, "opencode path", fix)?;
    }
    if let Some(secs) = object
        .timeout_secs
        .filter(|s| *s == 0 || *s > MAX_TIMEOUT_SECS)
    {
        let fix = format!("Use a number of seconds from 1 to {MAX_TIMEOUT_SECS}, or leave it out.");
        return Err(config_error(
            file,
            &at("timeoutSecs"),
            format!("the timeout {secs} is out of range"),
            &fix,
        ));
    }
    Ok(HostEntry {
        name: name.to_string(),
        address: object.host.clone(),
        port: object.port,
        user: object.user.clone(),
        identity_file: object.identity_file.clone(),
        proxy_jump: object.proxy_jump.clone(),
        agent: object.agent.clone(),
        model: object.model.clone(),
        directory: object.directory.clone(),
        os: object.os.unwrap_or_default(),
        host_key_policy: object.host_key_policy.unwrap_or_default(),
        opencode: object.opencode.clone(),
        timeout_secs: object.timeout_secs,
        project: false,
        workspace_only: false,
    })
}

/// `field` is the provider host's path, e.g. `providers.default.hosts[0]`.
pub(crate) fn from_provider_host(
    file: &Path,
    field: &str,
    host: &ProviderHost,
) -> Result<HostEntry> {
    let at = |key: &str| format!("{field}.{key}");
    check_name(file, &at("name"), &host.name)?;
    for (i, alias) in host.aliases.iter().enumerate() {
        check_name(file, &at(&format!("aliases[{i}]")), alias)?;
    }
    for (i, label) in host.labels.iter().enumerate() {
        check_word(
            file,
            &at(&format!("labels[{i}]")),
            label,
            "label",
            "Use a short printable word.",
        )?;
    }
    let ssh = &host.ssh;
    check_address(file, &at("ssh.host"), &ssh.host)?;
    check_port(file, &at("ssh.port"), ssh.port)?;
    check_user(file, &at("ssh.user"), ssh.user.as_deref())?;
    check_identity_file(file, &at("ssh.identityFile"), ssh.identity_file.as_deref())?;
    check_proxy_jump(file, &at("ssh.proxyJump"), ssh.proxy_jump.as_deref())?;
    Ok(HostEntry {
        name: host.name.clone(),
        address: ssh.host.clone(),
        port: ssh.port,
        user: ssh.user.clone(),
        identity_file: ssh.identity_file.clone(),
        proxy_jump: ssh.proxy_jump.clone(),
        workspace_only: true,
        ..HostEntry::default()
    })
}

fn check_address(file: &Path, field: &str, address: &str) -> Result<()> {
    parse_address(address)
        .map(drop)
        .map_err(|problem| config_error(file, field, problem, ADDRESS_FIX))
}

fn check_port(file: &Path, field: &str, port: Option<u16>) -> Result<()> {
    match port {
        Some(0) => Err(config_error(
            file,
            field,
            "port 0 is not a valid port",
            "Use a port from 1 to 65535.",
        )),
        _ => Ok(()),
    }
}

fn check_user(file: &Path, field: &str, user: Option<&str>) -> Result<()> {
    let fix = "Use the plain remote user name, without spaces and not starting with '-'.";
    user.map_or(Ok(()), |u| {
        check_token(u, "user").map_err(|p| config_error(file, field, p, fix))
    })
}

fn check_identity_file(file: &Path, field: &str, path: Option<&Path>) -> Result<()> {
    let Some(path) = path else { return Ok(()) };
    let fix = "Use the path of a private key file, such as ~/.ssh/id_ed25519.";
    check_printable(file, field, &path.to_string_lossy(), "identity file", fix)
}

pub(crate) fn check_proxy_jump(file: &Path, field: &str, jumps: Option<&str>) -> Result<()> {
    let Some(jumps) = jumps else { return Ok(()) };
    if jumps == "none" {
        return Ok(());
    }
    let fix = "List jump hosts separated by commas, each as user@host:port, host or a ~/.ssh/config alias.";
    for jump in jumps.split(',') {
        parse_address(jump)
            .map_err(|problem| config_error(file, field, format!("jump host: {problem}"), fix))?;
    }
    Ok(())
}

fn check_model(file: &Path, field: &str, model: &str) -> Result<()> {
    let fix = "Write it as provider/model-id, for example \"anthropic/claude-sonnet-4-5\".";
    let valid = model.split_once('/').is_some_and(|(provider, id)| {
        check_token(provider, "p").is_ok() && check_token(id, "m").is_ok()
    });
    if !valid {
        return Err(config_error(
            file,
            field,
            format!("model {model:?} is not provider/model-id"),
            fix,
        ));
    }
    Ok(())
}

/// A value that ends up as one argument of a remote command: printable, and not an option.
fn check_word(file: &Path, field: &str, value: &str, what: &str, fix: &str) -> Result<()> {
    check_printable(file, field, value, what, fix)?;
    if value.starts_with('-') {
        return Err(config_error(
            file,
            field,
            format!("{what} {value:?} starts with '-'"),
            fix,
        ));
    }
    Ok(())
}

fn check_printable(file: &Path, field: &str, value: &str, what: &str, fix: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(config_error(file, field, format!("{what} is empty"), fix));
    }
    if value.chars().any(char::is_control) {
        return Err(config_error(
            file,
            field,
            format!("{what} {value:?} contains control characters"),
            fix,
        ));
    }
    Ok(())
}
