//! `doctor`: walk the path from config to a working remote opencode, one check at a time, and say for
//! every failure the command that fixes it. The CLI prints these; nothing here reaches the model, so
//! addresses and paths are shown in full.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::config::{self, ConfigSources, HostEntry};
use crate::error::{display_path, Error};
use crate::login::job::FIND_OPENCODE_SCRIPT;
use crate::ssh::config::{resolve_explained, Options, Setting, SshTarget};
use crate::ssh::connect::{handshake, Connection};
use crate::ssh::quote::quote;
use crate::workspace::bootstrap::{connect_stub, probe, REUSE_DEADLINE, STUB_VERSION};

/// How long the TCP probe waits.
const TCP_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
    Skip,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    /// The command or edit that fixes a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    pub host: String,
    pub checks: Vec<Check>,
}

impl HostReport {
    pub fn healthy(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }
}

/// Check `host` (or every configured host). A config that does not load is reported as host `(config)`.
pub async fn doctor(
    sources: &ConfigSources,
    host: Option<&str>,
    local_opencode: &str,
) -> Vec<HostReport> {
    let hosts = match config::load_hosts(sources) {
        Ok(hosts) => hosts,
        Err(error) => {
            let check = Check::fail("config", error.to_string(), config_fix(&error));
            return vec![HostReport {
                host: "(config)".into(),
                checks: vec![check],
            }];
        }
    };
    let names = match host {
        Some(name) => vec![name.to_string()],
        // Refused entries too: each is reported with its own error, beside the hosts that work.
        None => {
            let mut names = hosts.names();
            names.extend(hosts.refused().map(|r| r.name.clone()));
            names.sort();
            names
        }
    };
    let local_version = local_opencode_version(local_opencode).await;
    let mut reports = Vec::new();
    for name in names {
        let mut checks = Vec::new();
        match hosts.get(&name) {
            Ok(entry) => {
                let source = hosts
                    .source(&entry.name)
                    .map(display_path)
                    .unwrap_or_default();
                let detail = if entry.project {
                    format!("defined in {source} (a project's: its host key must already be known)")
                } else {
                    format!("defined in {source}")
                };
                checks.push(Check::ok("config", detail));
                // A project that tried to take this name over: the user's entry is used, but say so.
                for warning in hosts.warnings() {
                    if warning.contains(&format!(" '{}' ", entry.name)) {
                        let fix = "Rename or remove that entry in the project's file.";
                        checks.push(Check::warn("config", warning.clone(), fix));
                    }
                }
                check_host(entry, local_version.as_deref(), &mut checks).await;
            }
            Err(error @ Error::Config { .. }) => {
                let fix = config_fix(&error);
                checks.push(Check::fail("config", error.to_string(), fix))
            }
            Err(error) => checks.push(Check::fail(
                "config",
                error.to_string(),
                format!(
                    "opencode-remote hosts add {name} <user@host[:port] or ~/.ssh/config alias>"
                ),
            )),
        }
        reports.push(HostReport { host: name, checks });
    }
    // Plugin entries of the tools this package replaces, still in OpenCode's config: `migrate`.
    let old = config::migrate::doctor_findings(sources);
    if !old.is_empty() {
        let checks = old.into_iter().map(|(d, f)| Check::warn("plugin", d, f));
        reports.push(HostReport {
            host: "(plugins)".into(),
            checks: checks.collect(),
        });
    }
    reports
}

async fn check_host(entry: &HostEntry, local_version: Option<&str>, checks: &mut Vec<Check>) {
    let resolution = match resolve_explained(entry) {
        Ok(resolution) => resolution,
        Err(error) => {
            return checks.push(Check::fail(
                "resolve",
                error.to_string(),
                config_fix(&error),
            ))
        }
    };
    let target = resolution.target;
    let via = target
        .proxy_jump
        .iter()
        .map(SshTarget::address)
        .collect::<Vec<_>>();
    let route = if via.is_empty() {
        String::new()
    } else {
        format!(" via {}", via.join(" -> "))
    };
    checks.push(Check::ok("resolve", format!("{}{route}", target.address())));
    for (hop, options) in target.proxy_jump.iter().zip(&resolution.hop_options) {
        checks.push(Check::ok(
            "ssh config",
            provenance("jump host", hop, options),
        ));
    }
    checks.push(Check::ok(
        "ssh config",
        provenance("target", &target, &resolution.options),
    ));
    checks.extend(key_file_checks(&target));

    let first_hop = target.proxy_jump.first().unwrap_or(&target);
    if let Some(command) = &first_hop.proxy_command {
        // No TCP of our own to test: the command is the transport, and the handshake below tells.
        checks.push(Check::ok(
            "tcp",
            format!("through ProxyCommand `{command}`"),
        ));
    } else if let Some(check) = tcp_check(first_hop).await {
        return checks.push(check);
    } else {
        checks.push(Check::ok(
            "tcp",
            format!(
                "{}:{} accepts connections",
                first_hop.hostname, first_hop.port
            ),
        ));
    }

    let session = match tokio::time::timeout(target.connect_timeout, handshake(&target)).await {
        Ok(Ok(session)) => session,
        Ok(Err(error)) => return checks.push(host_key_failure(&target, error)),
        Err(_) => {
            return checks.push(Check::fail(
                "host key",
                "no SSH handshake in time",
                "Check that an SSH server listens there.",
            ))
        }
    };
    let files: Vec<String> = target
        .known_hosts_files
        .iter()
        .map(|f| display_path(f))
        .collect();
    checks.push(Check::ok(
        "host key",
        format!("known ({})", files.join(", ")),
    ));

    let connection = match session.authenticate().await {
        Ok(connection) => connection,
        Err(error) => return checks.push(auth_failure(&target, error)),
    };
    checks.push(Check::ok(
        "auth",
        format!("as {} with {}", target.user, connection.auth_method),
    ));
    remote_checks(&connection, entry, local_version, checks).await;
    connection.close().await;
}

/// Which config line decided each value that matters for connecting, like `ssh -G` with the lines.
fn provenance(role: &str, target: &SshTarget, options: &Options) -> String {
    let from = |setting: Option<&Setting>, default: &str| match setting {
        Some(setting) => setting.source.to_string(),
        None => default.to_string(),
    };
    let paths = |files: &[PathBuf]| {
        if files.is_empty() {
            "none".to_string()
        } else {
            files
                .iter()
                .map(|f| display_path(f))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let identities = if options.list("identityfile").is_empty() {
        "OpenSSH's default keys (default)".to_string()
    } else {
        options
            .list("identityfile")
            .iter()
            .zip(&target.identity_files)
            .map(|(setting, path)| format!("{} ({})", display_path(path), setting.source))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let policy = match target.host_key_policy {
        crate::config::HostKeyPolicy::Strict => "strict",
        crate::config::HostKeyPolicy::AcceptNew => "accept-new",
    };
    let mut lines = vec![
        format!("{role} {}", target.address()),
        format!(
            "address {} ({})",
            target.hostname,
            from(options.get("hostname"), "the name itself")
        ),
        format!(
            "user {} ({})",
            target.user,
            from(options.get("user"), "the local user")
        ),
        format!(
            "port {} ({})",
            target.port,
            from(options.get("port"), "default")
        ),
        format!("identity {identities}"),
        format!(
            "host keys {} ({})",
            paths(&target.known_hosts_files),
            from(options.get("userknownhostsfile"), "default")
        ),
        format!(
            "global host keys {} ({})",
            paths(&target.global_known_hosts_files),
            from(options.get("globalknownhostsfile"), "default")
        ),
        format!(
            "host key policy {policy} ({})",
            from(options.get("stricthostkeychecking"), "default")
        ),
    ];
    if let Some(alias) = &target.host_key_alias {
        lines.push(format!(
            "host key alias {alias} ({})",
            from(options.get("hostkeyalias"), "")
        ));
    }
    if let Some(command) = &target.proxy_command {
        lines.push(format!(
            "proxy command {command} ({})",
            from(options.get("proxycommand"), "")
        ));
    }
    if !target.certificate_files.is_empty() {
        let sources: Vec<String> = options
            .list("certificatefile")
            .iter()
            .map(|s| s.source.to_string())
            .collect();
        lines.push(format!(
            "certificates {} ({})",
            paths(&target.certificate_files),
            sources.join(", ")
        ));
    }
    lines.join("\n            ")
}

fn config_fix(error: &Error) -> String {
    match error {
        Error::Config { fix, .. } => fix.clone(),
        _ => "Run `opencode-remote schema` to see the expected format.".into(),
    }
}

/// Private keys readable by others are refused by OpenSSH and are a leak waiting to happen.
fn key_file_checks(target: &SshTarget) -> Vec<Check> {
    let mut files: Vec<PathBuf> = target.identity_files.clone();
    if files.is_empty() {
        let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
        files = crate::ssh::config::DEFAULT_IDENTITIES
            .iter()
            .map(|n| home.join(".ssh").join(n))
            .filter(|p| p.exists())
            .collect();
    }
    let mut checks = Vec::new();
    for file in files {
        match file_mode(&file) {
            None if !target.identity_files.is_empty() => checks.push(Check::warn(
                "key file",
                format!("{} does not exist", display_path(&file)),
                format!("ssh-keygen -t ed25519 -f {}", file.display()),
            )),
            Some(mode) if mode & 0o077 != 0 => checks.push(Check::fail(
                "key file",
                format!(
                    "{} is readable by others (mode {mode:o})",
                    display_path(&file)
                ),
                format!("chmod 600 {}", file.display()),
            )),
            Some(_) => checks.push(Check::ok(
                "key file",
                format!("{} (private)", display_path(&file)),
            )),
            None => {}
        }
    }
    if checks.is_empty() && std::env::var_os("SSH_AUTH_SOCK").is_none() {
        checks.push(Check::warn(
            "key file",
            "no identity file and no ssh-agent",
            "ssh-keygen -t ed25519",
        ));
    }
    checks
}

fn file_mode(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path)
            .ok()
            .map(|m| m.permissions().mode() & 0o777)
    }
    #[cfg(not(unix))]
    {
        std::fs::metadata(path).ok().map(|_| 0o600)
    }
}

async fn tcp_check(hop: &SshTarget) -> Option<Check> {
    let connect = tokio::net::TcpStream::connect((hop.hostname.as_str(), hop.port));
    let problem = match tokio::time::timeout(TCP_PROBE_TIMEOUT, connect).await {
        Ok(Ok(_)) => return None,
        Ok(Err(error)) => error.to_string(),
        Err(_) => format!("no answer within {} s", TCP_PROBE_TIMEOUT.as_secs()),
    };
    Some(Check::fail(
        "tcp",
        format!("{}:{}: {problem}", hop.hostname, hop.port),
        format!(
            "Start sshd on the host, or fix HostName/Port; test with: ssh -p {} {}@{}",
            hop.port, hop.user, hop.hostname
        ),
    ))
}

fn host_key_failure(target: &SshTarget, error: Error) -> Check {
    let pattern = if target.port == 22 {
        target.hostname.clone()
    } else {
        format!("[{}]:{}", target.hostname, target.port)
    };
    match &error {
        Error::HostKeyChanged { file, line, .. } => Check::fail(
            "host key",
            format!("CHANGED: the key offered does not match {}:{line}", display_path(file)),
            format!(
                "If the host was reinstalled, check its new key out of band, then: ssh-keygen -R '{pattern}' -f {} && ssh -p {} {}@{}",
                file.display(),
                target.port,
                target.user,
                target.hostname
            ),
        ),
        Error::HostKeyUnknown { file, fingerprint, .. } => Check::fail(
            "host key",
            format!("unknown: {fingerprint} is not in {}", display_path(file)),
            format!(
                "Verify the fingerprint, then accept it once: ssh -p {} {}@{} (or set \"hostKeyPolicy\": \"accept-new\")",
                target.port, target.user, target.hostname
            ),
        ),
        _ => Check::fail("host key", error.to_string(), "Check that the server speaks SSH on that port."),
    }
}

fn auth_failure(target: &SshTarget, error: Error) -> Check {
    match &error {
        Error::KeyEncrypted { key, .. } => Check::fail(
            "auth",
            error.to_string(),
            format!("ssh-add {}", key.display()),
        ),
        _ => {
            let key = target
                .identity_files
                .first()
                .map(|k| k.display().to_string())
                .unwrap_or_else(|| "~/.ssh/id_ed25519".into());
            Check::fail(
                "auth",
                error.to_string(),
                format!(
                    "ssh-copy-id -i {key}.pub -p {} {}@{} (or ssh-add {key})",
                    target.port, target.user, target.hostname
                ),
            )
        }
    }
}

/// One exec on the open connection: OS, arch and the remote opencode, found the way `remote_login` does.
async fn remote_checks(
    connection: &Connection,
    entry: &HostEntry,
    local_version: Option<&str>,
    checks: &mut Vec<Check>,
) {
    // The script arrives on stdin (`sh -s`); the one configured value in it goes through `quote`.
    let configured = quote(entry.opencode.as_deref().unwrap_or(""));
    let script = format!(
        "{FIND_OPENCODE_SCRIPT}\nuname -sm\nfind_opencode {configured}\n\
         if [ -n \"$oc\" ] && [ -x \"$oc\" ]; then echo \"$oc\"; \"$oc\" --version 2>/dev/null | head -n 1; fi\n"
    );
    let output = connection.exec("sh -s", Some(script.as_bytes())).await;
    let output = match output {
        Ok(output) if output.success() => output.stdout_text(),
        Ok(output) => {
            return checks.push(Check::fail(
                "remote",
                output.stderr_text().trim().to_string(),
                "Check the remote shell (sh) works.",
            ))
        }
        Err(error) => {
            return checks.push(Check::fail(
                "remote",
                error.to_string(),
                "Retry; if it persists, check sshd's logs.",
            ))
        }
    };
    let mut lines = output.lines();
    let os = lines.next().unwrap_or_default().trim().to_string();
    let supported = os.starts_with("Linux") || os.starts_with("Darwin");
    if supported {
        checks.push(Check::ok("remote os", os));
    } else {
        checks.push(Check::warn(
            "remote os",
            format!("{os} is not supported yet"),
            "Use a Linux or macOS host.",
        ));
    }
    match (lines.next(), lines.next()) {
        (Some(path), version) => {
            let version = version.unwrap_or("unknown").trim();
            let detail = format!("{version} at {path}");
            match local_version {
                Some(local) if local != version => checks.push(Check::warn(
                    "opencode",
                    format!("{detail}; local is {local}"),
                    format!("npm i -g opencode-ai@{local} on the host (sessions move best between equal versions)"),
                )),
                _ => checks.push(Check::ok("opencode", detail)),
            }
        }
        (None, _) if entry.workspace_only => checks.push(Check::ok(
            "opencode",
            "not installed, and not needed: this provider host serves SSH workspaces through the stub \
             (only remote_login runs opencode there)",
        )),
        (None, _) => checks.push(Check::fail(
            "opencode",
            "not found on the host (PATH, ~/.opencode/bin, ~/.local/bin)",
            format!(
                "ssh {} 'npm i -g opencode-ai' (or set \"opencode\" to its path in the host entry)",
                entry.name
            ),
        )),
    }
    stub_checks(connection, entry, checks).await;
}

/// The stub of SSH workspaces: installed, running our version, answering through a tunnel.
async fn stub_checks(connection: &Connection, entry: &HostEntry, checks: &mut Vec<Check>) {
    let setup = format!("opencode-remote setup {}", entry.name);
    let probe = match probe(connection, None).await {
        Ok(probe) => probe,
        Err(error) => return checks.push(Check::fail("stub", error.to_string(), setup)),
    };
    let (info, token) = match (probe.running, probe.token, probe.installed) {
        (Some(info), Some(token), _) => (info, token),
        (_, _, true) => {
            return checks.push(Check::warn(
                "stub",
                format!("{STUB_VERSION} installed, not running"),
                setup,
            ));
        }
        _ => {
            let detail = "not installed (only SSH workspaces need it)";
            return checks.push(Check {
                name: "stub",
                status: Status::Skip,
                detail: detail.into(),
                fix: Some(setup),
            });
        }
    };
    if info.version != STUB_VERSION {
        let detail = format!("{} running, this plugin needs {STUB_VERSION}", info.version);
        return checks.push(Check::warn("stub", detail, setup));
    }
    checks.push(Check::ok(
        "stub",
        format!(
            "{} running (pid {}, socket {})",
            info.version, info.pid, info.socket
        ),
    ));
    checks.push(token_file_check(connection).await);
    match connect_stub(connection.target(), info, &token, true, REUSE_DEADLINE).await {
        Ok(stub) => checks.push(Check::ok(
            "tunnel",
            format!("healthy through local port {}", stub.tunnel.local_port()),
        )),
        Err(error) => checks.push(Check::fail("tunnel", error.to_string(), setup)),
    }
}

/// The stub's token must be private to the remote user (the stub refuses a token others can read).
async fn token_file_check(connection: &Connection) -> Check {
    let file = format!(
        "{}/{}",
        opencode_remote_protocol::paths::HOME_DIR,
        opencode_remote_protocol::paths::TOKEN_FILE
    );
    let script = format!("cd && stat -c %a {}\n", quote(&file));
    let mode = match connection.exec("sh -s", Some(script.as_bytes())).await {
        Ok(output) if output.success() => output.stdout_text().trim().to_string(),
        _ => {
            return Check::warn(
                "token",
                "could not read the token file's mode",
                "chmod 600 ~/".to_string() + &file,
            )
        }
    };
    if mode == "600" || mode == "400" {
        Check::ok("token", format!("~/{file} is private ({mode})"))
    } else {
        Check::fail(
            "token",
            format!("~/{file} has mode {mode}"),
            format!("ssh into the host and run: chmod 600 ~/{file}"),
        )
    }
}

async fn local_opencode_version(binary: &str) -> Option<String> {
    let output = tokio::process::Command::new(binary)
        .arg("--version")
        .output()
        .await
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    output
        .status
        .success()
        .then(|| text.lines().next().unwrap_or_default().trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssh::config::{resolve_with, ResolveEnv};

    #[test]
    fn provenance_should_name_the_line_behind_each_value() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::write(
            &config,
            "Host pi\n  HostName 10.9.9.9\n  ProxyJump bastion\nHost *\n  User dev\n  IdentityFile ~/k\n",
        )
        .unwrap();
        let env = ResolveEnv {
            home: Some(dir.path().to_path_buf()),
            local_user: Some("me".into()),
            local_hostname: "laptop".into(),
        };
        let entry = HostEntry {
            name: "pi".into(),
            address: "pi:2222".into(),
            ..HostEntry::default()
        };
        let resolution = resolve_with(&entry, Some(&config), &env).unwrap();
        let text = provenance("target", &resolution.target, &resolution.options);
        let file = display_path(&config);
        assert!(
            text.contains(&format!("address 10.9.9.9 ({file}:2)")),
            "{text}"
        );
        assert!(text.contains(&format!("user dev ({file}:5)")), "{text}");
        assert!(text.contains("port 2222 (the host entry)"), "{text}");
        assert!(text.contains(&format!("k ({file}:6)")), "{text}");
        assert!(text.contains("host key policy strict (default)"), "{text}");
        let hop = &resolution.target.proxy_jump[0];
        let text = provenance("jump host", hop, &resolution.hop_options[0]);
        assert!(text.contains("address bastion (the name itself)"), "{text}");
        assert!(text.contains("port 22 (default)"), "{text}");
    }
}
