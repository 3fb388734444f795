//! The one error type of the core, with stable codes.
//!
//! Every error has two renderings: `Display` carries the full detail for the CLI and the local log, and
//! [`Error::public_message`] is what the LLM (and so the tool output) may see: host *names* only, never an
//! address, user, port, key path or token.

use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A config file (hosts.json, plugin options, ~/.ssh/config) is unusable.
    #[error("{}: {field}: {problem}. {fix}", display_path(file))]
    Config {
        file: PathBuf,
        field: String,
        problem: String,
        fix: String,
    },

    #[error("unknown host '{name}'; configured hosts: {}", list_or_none(known))]
    UnknownHost { name: String, known: Vec<String> },

    #[error("host '{host}' ({address}) is unreachable: {detail}")]
    Unreachable {
        host: String,
        address: String,
        detail: String,
    },

    #[error(
        "authentication to '{host}' as {user} failed: tried {}; the server accepts {}",
        list_or_none(tried),
        list_or_none(accepted)
    )]
    AuthFailed {
        host: String,
        user: String,
        tried: Vec<String>,
        accepted: Vec<String>,
    },

    #[error("the key {} for '{host}' is passphrase-protected and no ssh-agent holds it", key.display())]
    KeyEncrypted { host: String, key: PathBuf },

    #[error(
        "host key of '{host}' ({address}) does not match {}:{line}",
        display_path(file)
    )]
    HostKeyChanged {
        host: String,
        address: String,
        file: PathBuf,
        line: usize,
    },

    #[error(
        "host key of '{host}' ({address}) is not in {}; its {fingerprint} key was offered",
        display_path(file)
    )]
    HostKeyUnknown {
        host: String,
        address: String,
        file: PathBuf,
        fingerprint: String,
    },

    #[error(
        "host key of '{host}' ({address}) is revoked in {}:{line}",
        display_path(file)
    )]
    HostKeyRevoked {
        host: String,
        address: String,
        file: PathBuf,
        line: usize,
    },

    /// The `ProxyCommand` carrying the connection failed or ended before the SSH handshake did.
    #[error("the ProxyCommand of '{host}' (`{command}`) failed: {detail}")]
    ProxyCommandFailed {
        host: String,
        command: String,
        detail: String,
    },

    #[error("host '{host}' has no `opencode` on its PATH")]
    RemoteNoOpencode { host: String },

    #[error("the remote run on '{host}' failed: {detail}")]
    RemoteRunFailed {
        host: String,
        detail: String,
        log_tail: String,
    },

    /// The workspace stub on the host refused an operation; `kind` says why (missing file, a directory
    /// where a file is needed, too large, …) so callers branch on a code, not on text.
    #[error("the stub on '{host}' refused: {message}")]
    Remote {
        host: String,
        kind: opencode_remote_protocol::ErrorKind,
        message: String,
    },

    /// The session export (local or from the remote) is not what OpenCode writes.
    #[error("session data is invalid: {0}")]
    Session(String),

    /// The host entry names a model the remote's OpenCode does not offer.
    #[error("host '{host}' has no model '{model}'")]
    RemoteModelMissing { host: String, model: String },

    #[error("timed out after {secs} s while {what} on '{host}'")]
    Timeout {
        host: String,
        what: String,
        secs: u64,
    },

    #[error("cancelled")]
    Cancelled,

    /// A `remote_login` was cancelled after its remote run was dispatched; `stopped` says whether the
    /// run was stopped or is left for the next round trip to collect.
    #[error("cancelled; the remote run on '{host}' was {}", if *stopped { "stopped" } else { "left running" })]
    LoginCancelled {
        host: String,
        stopped: bool,
        pending: bool,
    },

    /// sshd refuses stream-local forwarding (`AllowStreamLocalForwarding no`, `DisableForwarding yes`,
    /// or `AllowTcpForwarding no`, which OpenSSH applies to stream-local channels too), which the
    /// workspace tunnel to the stub's Unix socket needs.
    #[error(
        "sshd on '{host}' refuses stream-local forwarding; set `AllowStreamLocalForwarding yes` (OpenSSH ≥ 6.7) \
         in its sshd_config, with `AllowTcpForwarding` yes or local (OpenSSH applies it to stream-local \
         forwarding too) and no `DisableForwarding yes`"
    )]
    ForwardingRefused { host: String },

    /// A call's argument can never work (e.g. a directory no file system can hold); says which one.
    #[error("invalid {field}: {problem}")]
    InvalidArgument { field: String, problem: String },

    /// Any other SSH-level failure (channel refused, connection lost mid-call).
    #[error("ssh to '{host}' failed: {detail}")]
    Ssh { host: String, detail: String },

    /// An operation the user asked for (creating a workspace, setting up a host) ended with `source`;
    /// the message names the operation, so a failed create never reads like a failed remote run.
    #[error("{}: {}", op.failed(host.as_deref()), cause_detail(source))]
    Failed {
        op: Operation,
        /// The host it ran on, once one was picked.
        host: Option<String>,
        source: Box<Error>,
    },

    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

/// An operation named in [`Error::Failed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    CreateWorkspace,
    /// Bringing a workspace's server back after an OpenCode restart.
    StartWorkspace,
    Setup,
}

impl Operation {
    /// "Creating workspace on 'lab-box' failed", or without a host when none was picked yet.
    fn failed(self, host: Option<&str>) -> String {
        let what = match self {
            Operation::CreateWorkspace => "Creating workspace",
            Operation::StartWorkspace => "Starting workspace",
            Operation::Setup => "Setting up the stub",
        };
        match host {
            Some(host) => format!("{what} on '{host}' failed"),
            None => format!("{what} failed"),
        }
    }

    /// Wrap `error` (once) so its message names this operation; its code stays the cause's.
    pub fn wrap(self, host: Option<&str>, error: Error) -> Error {
        match error {
            already @ Error::Failed { .. } | already @ Error::Cancelled => already,
            error => Error::Failed {
                op: self,
                host: host.map(str::to_string),
                source: Box::new(error),
            },
        }
    }
}

impl Error {
    /// The error that ended the operation, under any [`Error::Failed`] naming it.
    pub fn cause(&self) -> &Error {
        match self {
            Error::Failed { source, .. } => source.cause(),
            other => other,
        }
    }

    /// A stable code for scripts and the JS `err.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Config { .. } => "CONFIG_INVALID",
            Error::UnknownHost { .. } => "UNKNOWN_HOST",
            Error::Unreachable { .. } => "HOST_UNREACHABLE",
            Error::AuthFailed { .. } => "AUTH_FAILED",
            Error::KeyEncrypted { .. } => "KEY_ENCRYPTED",
            Error::HostKeyChanged { .. } => "HOST_KEY_CHANGED",
            Error::HostKeyUnknown { .. } => "HOST_KEY_UNKNOWN",
            Error::HostKeyRevoked { .. } => "HOST_KEY_REVOKED",
            Error::ProxyCommandFailed { .. } => "PROXY_COMMAND_FAILED",
            Error::RemoteNoOpencode { .. } => "REMOTE_NO_OPENCODE",
            Error::RemoteRunFailed { .. } => "REMOTE_RUN_FAILED",
            Error::Remote { kind, .. } => remote_code(*kind),
            Error::Session(_) => "SESSION_INVALID",
            Error::RemoteModelMissing { .. } => "REMOTE_MODEL_MISSING",
            Error::Timeout { .. } => "TIMEOUT",
            Error::Cancelled | Error::LoginCancelled { .. } => "CANCELLED",
            Error::ForwardingRefused { .. } => "FORWARDING_REFUSED",
            Error::InvalidArgument { .. } => "INVALID_ARGUMENT",
            Error::Ssh { .. } => "SSH_FAILED",
            Error::Failed { source, .. } => source.code(),
            Error::Io { .. } => "IO",
        }
    }

    /// The text the model may see: short, actionable, and free of addresses, users, ports, key paths and
    /// tokens. Host names come from the user's own config and are the only identifiers used.
    pub fn public_message(&self) -> String {
        match self {
            Error::Config { file, field, fix, .. } => {
                format!("Config error in {} at `{field}`. {fix}", display_path(file))
            }
            Error::UnknownHost { name, known } => format!(
                "Unknown host '{}'. Configured hosts: {}.",
                sanitize_name(name),
                list_or_none(known)
            ),
            Error::Unreachable { host, .. } => format!(
                "Host '{host}' is unreachable. Check that it is up and that `ssh {host}` works, then retry."
            ),
            Error::AuthFailed { host, .. } => format!(
                "SSH authentication to '{host}' was refused. Load the right key into ssh-agent or set identityFile \
                 for this host; `opencode-remote doctor {host}` shows what was tried."
            ),
            Error::KeyEncrypted { host, .. } => format!(
                "The SSH key for '{host}' is passphrase-protected and no ssh-agent holds it. Run `ssh-add` with \
                 that key, then retry."
            ),
            Error::HostKeyChanged { host, file, line, .. } => format!(
                "The host key of '{host}' has CHANGED (known_hosts {} line {line}); refusing to connect. If the host \
                 was reinstalled, verify the new key and remove the old line; otherwise this may be an attack.",
                display_path(file)
            ),
            Error::HostKeyUnknown { host, fingerprint, .. } => format!(
                "The host key of '{host}' is not known (offered {fingerprint}). Connect once with `ssh` to \
                 verify and record it, or define the host in your own hosts file (~/.config/opencode/hosts.json, \
                 not a project's) and set \"hostKeyPolicy\": \"accept-new\" there."
            ),
            Error::HostKeyRevoked { host, file, line, .. } => format!(
                "The host key of '{host}' is REVOKED (known_hosts {} line {line}); refusing to connect. Ask the \
                 host's administrator for its current key.",
                display_path(file)
            ),
            // The command line and its output may name addresses and users: they stay in the log.
            Error::ProxyCommandFailed { host, .. } => format!(
                "The ProxyCommand that reaches '{host}' failed. Run `opencode-remote doctor {host}` or `ssh {host}` \
                 to see its error, fix the command in ~/.ssh/config, then retry."
            ),
            Error::RemoteNoOpencode { host } => format!(
                "Host '{host}' has no `opencode` command. Install it there (`npm i -g opencode-ai` or \
                 `curl -fsSL https://opencode.ai/install | bash`), or set \"opencode\" to its path in the host entry."
            ),
            Error::RemoteRunFailed { host, detail, log_tail } => {
                let mut text = format!("The remote run on '{host}' failed: {detail}.");
                if !log_tail.is_empty() {
                    text.push_str("\nLast log lines:\n");
                    text.push_str(log_tail);
                }
                text
            }
            // The stub's own words: about paths inside the workspace, which the model named itself.
            Error::Remote { message, .. } => message.clone(),
            Error::Session(problem) => format!("The session data is invalid: {problem}."),
            Error::RemoteModelMissing { host, model } => format!(
                "Host '{host}' has no model '{model}' (its `opencode models` does not list it). Edit `model` for \
                 '{host}' in hosts.json (or remove it to use the host's default model), or configure that provider \
                 on the host."
            ),
            Error::Timeout { host, what, secs } => format!(
                "Timed out after {secs} s while {what} on '{host}'. The remote job keeps running; call remote_login \
                 with the same host and mode=round-trip to collect it."
            ),
            Error::Cancelled => "Cancelled.".to_string(),
            Error::LoginCancelled { host, stopped: true, .. } => {
                format!("Cancelled. The remote run on '{host}' was stopped.")
            }
            Error::LoginCancelled { host, pending: true, .. } => format!(
                "Cancelled. The remote run on '{host}' could not be stopped and was left running; the next round \
                 trip to {host} collects it."
            ),
            Error::LoginCancelled { host, .. } => {
                format!("Cancelled. The remote run on '{host}' could not be stopped and was left running.")
            }
            Error::ForwardingRefused { host } => format!(
                "sshd on '{host}' refuses stream-local forwarding, which workspaces need to reach their stub's \
                 socket; set `AllowStreamLocalForwarding yes` (OpenSSH ≥ 6.7) in its sshd_config, with \
                 `AllowTcpForwarding` yes or local (OpenSSH applies it to stream-local forwarding too) and no \
                 `DisableForwarding yes`, or ask its admin to."
            ),
            Error::InvalidArgument { field, problem } => format!("Invalid `{field}`: {problem}."),
            Error::Ssh { host, .. } => format!("The SSH connection to '{host}' failed. Retry; if it persists run `opencode-remote doctor {host}`."),
            Error::Failed { op, host, source } => {
                // A remote command's failure is told by its detail: "the remote run" is not what failed.
                let cause = match source.as_ref() {
                    Error::RemoteRunFailed { detail, log_tail, .. } => {
                        let mut text = format!("{detail}.");
                        if !log_tail.is_empty() {
                            text.push_str("\nLast log lines:\n");
                            text.push_str(log_tail);
                        }
                        text
                    }
                    other => other.public_message(),
                };
                format!("{}: {cause}", op.failed(host.as_deref()))
            }
            Error::Io { context, .. } => format!("Local I/O failed while {context}."),
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// The code of a stub refusal, one per [`opencode_remote_protocol::ErrorKind`].
fn remote_code(kind: opencode_remote_protocol::ErrorKind) -> &'static str {
    use opencode_remote_protocol::ErrorKind as Kind;
    match kind {
        Kind::Unauthorized => "REMOTE_UNAUTHORIZED",
        Kind::PermissionRequired => "REMOTE_PERMISSION_REQUIRED",
        Kind::BadRequest => "REMOTE_BAD_REQUEST",
        Kind::UnknownWorkspace => "REMOTE_UNKNOWN_WORKSPACE",
        Kind::UnknownRequest => "REMOTE_UNKNOWN_REQUEST",
        Kind::NotFound => "REMOTE_NOT_FOUND",
        Kind::IsDirectory => "REMOTE_IS_DIRECTORY",
        Kind::NotDirectory => "REMOTE_NOT_DIRECTORY",
        Kind::TooLarge => "REMOTE_TOO_LARGE",
        Kind::NoRoute => "REMOTE_NO_ROUTE",
        Kind::Io => "REMOTE_IO",
    }
}

/// Paths under `$HOME` are shown as `~/…`: readable, and they never reveal the local user name.
pub fn display_path(path: &Path) -> String {
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        if let Ok(rest) = path.strip_prefix(Path::new(&home)) {
            return format!("~/{}", rest.display());
        }
    }
    path.display().to_string()
}

/// How a cause reads after "… failed: ": a remote command's own detail, not "the remote run failed".
fn cause_detail(source: &Error) -> String {
    match source {
        Error::RemoteRunFailed { detail, .. } => detail.clone(),
        other => other.to_string(),
    }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_string()
    } else {
        items.join(", ")
    }
}

/// A name the model typed may be anything; show a bounded, printable version of it.
fn sanitize_name(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn failed_create_should_name_the_operation_and_keep_the_code() {
        let stub = Operation::CreateWorkspace.wrap(
            Some("lab-box"),
            Error::RemoteRunFailed {
                host: "lab-box".into(),
                detail: "the stub did not start".into(),
                log_tail: String::new(),
            },
        );
        assert_eq!(stub.code(), "REMOTE_RUN_FAILED");
        assert_eq!(
            stub.public_message(),
            "Creating workspace on 'lab-box' failed: the stub did not start."
        );
        assert_eq!(
            stub.to_string(),
            "Creating workspace on 'lab-box' failed: the stub did not start"
        );
        let down = Operation::CreateWorkspace.wrap(
            Some("lab-box"),
            Error::Unreachable {
                host: "lab-box".into(),
                address: "10.0.0.9:22".into(),
                detail: "connection refused".into(),
            },
        );
        assert_eq!(down.code(), "HOST_UNREACHABLE");
        assert!(matches!(down.cause(), Error::Unreachable { .. }));
        let text = down.public_message();
        assert!(text
            .starts_with("Creating workspace on 'lab-box' failed: Host 'lab-box' is unreachable."));
        assert!(!text.contains("10.0.0.9"), "{text}");
        // Wrapping twice names the operation once.
        let twice = Operation::StartWorkspace.wrap(Some("lab-box"), down);
        assert!(twice.public_message().starts_with("Creating workspace on"));
    }

    proptest! {
        #![proptest_config(crate::ssh::quote::oracle::cases(256))]

        /// Paths under `$HOME` never show it (it carries the local user name); others show as they are.
        #[test]
        fn display_path_should_hide_the_home_directory(rest in "([a-z.~ -][a-z./ ~-]{0,29})?", outside in "/[a-z/]{0,20}") {
            let Some(home) = std::env::var_os("HOME").filter(|h| h.len() > 1) else { return Ok(()) };
            let home = PathBuf::from(home);
            let shown = display_path(&home.join(&rest));
            prop_assert!(shown.starts_with('~'), "{}", shown);
            prop_assert!(!shown.starts_with(home.to_str().unwrap()), "{}", shown);
            let outside = Path::new(&outside);
            if !outside.starts_with(&home) {
                prop_assert_eq!(display_path(outside), outside.display().to_string());
            }
        }
    }
}
