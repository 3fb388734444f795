//! Public-key authentication in OpenSSH's order: ssh-agent first, then identity files.
//!
//! Passwords are never tried here: a password prompt belongs to an interactive `setup`, not to a tool
//! call the model made. An encrypted key with no agent holding it is reported as such instead of hanging
//! on a passphrase nobody can type.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::client::{AuthResult, Handle};
use russh::keys::agent::client::AgentClient;
use russh::keys::agent::AgentIdentity;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKey};
use russh::MethodKind;

use super::config::SshTarget;
use super::connect::ClientHandler;
use crate::error::{Error, Result};

/// Default identities, in the order OpenSSH tries them.
const DEFAULT_IDENTITIES: &[&str] = &["id_ed25519", "id_ecdsa", "id_rsa"];

/// What was tried and what the server would accept, for the final error.
#[derive(Default)]
struct Attempts {
    tried: Vec<String>,
    accepted: Vec<String>,
    encrypted_key: Option<PathBuf>,
}

impl Attempts {
    fn record(&mut self, what: String, result: &AuthResult) {
        self.tried.push(what);
        if let AuthResult::Failure {
            remaining_methods, ..
        } = result
        {
            self.accepted = remaining_methods
                .iter()
                .map(|m| <&str>::from(m).to_string())
                .collect();
        }
    }
}

/// Returns how we got in (for `doctor`), e.g. `ssh-agent (ssh-ed25519)`.
pub(super) async fn authenticate(
    handle: &mut Handle<ClientHandler>,
    target: &SshTarget,
) -> Result<String> {
    let ssh_error = |e: &dyn std::fmt::Display| Error::Ssh {
        host: target.name.clone(),
        detail: e.to_string(),
    };
    let rsa_hash = handle
        .best_supported_rsa_hash()
        .await
        .map_err(|e| ssh_error(&e))?
        .flatten();
    let identity_files = identity_files(target);
    let mut attempts = Attempts::default();

    if let Some(method) =
        try_agent(handle, target, &identity_files, rsa_hash, &mut attempts).await?
    {
        return Ok(method);
    }
    for path in &identity_files {
        if let Some(method) = try_key_file(handle, target, path, rsa_hash, &mut attempts).await? {
            return Ok(method);
        }
    }
    if let Some(key) = attempts.encrypted_key {
        return Err(Error::KeyEncrypted {
            host: target.name.clone(),
            key,
        });
    }
    if attempts.tried.is_empty() {
        // Nothing to offer: ask the server what it would accept ("none" auth lists the methods).
        if let Ok(result) = handle.authenticate_none(target.user.clone()).await {
            attempts.record("no key".into(), &result);
        }
    }
    if attempts.accepted.is_empty() {
        attempts.accepted = vec![<&str>::from(&MethodKind::PublicKey).to_string()];
    }
    Err(Error::AuthFailed {
        host: target.name.clone(),
        user: target.user.clone(),
        tried: attempts.tried,
        accepted: attempts.accepted,
    })
}

/// Configured identity files, or OpenSSH's defaults that exist.
fn identity_files(target: &SshTarget) -> Vec<PathBuf> {
    if !target.identity_files.is_empty() {
        return target.identity_files.clone();
    }
    let Some(home) = std::env::var_os("HOME") else {
        return Vec::new();
    };
    DEFAULT_IDENTITIES
        .iter()
        .map(|name| Path::new(&home).join(".ssh").join(name))
        .filter(|p| p.exists())
        .collect()
}

/// Largest key file read: a 16384-bit RSA key in OpenSSH format is about 13 KiB.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// The public half of an identity file, from `<file>.pub` (readable even when the key is encrypted).
fn public_key_of(path: &Path) -> Option<PublicKey> {
    let mut pub_path = path.as_os_str().to_owned();
    pub_path.push(".pub");
    let text = crate::config::file::read_regular(Path::new(&pub_path), MAX_KEY_FILE_BYTES).ok()?;
    PublicKey::from_openssh(String::from_utf8_lossy(&text).trim()).ok()
}

async fn try_agent(
    handle: &mut Handle<ClientHandler>,
    target: &SshTarget,
    identity_files: &[PathBuf],
    rsa_hash: Option<HashAlg>,
    attempts: &mut Attempts,
) -> Result<Option<String>> {
    if std::env::var_os("SSH_AUTH_SOCK").is_none() {
        return Ok(None);
    }
    // An unreachable agent is not fatal: OpenSSH falls through to key files too.
    let Ok(mut agent) = AgentClient::connect_env().await else {
        return Ok(None);
    };
    let Ok(identities) = agent.request_identities().await else {
        return Ok(None);
    };
    let wanted: Vec<PublicKey> = identity_files
        .iter()
        .filter_map(|p| public_key_of(p))
        .collect();
    for identity in identities {
        let AgentIdentity::PublicKey { key, .. } = identity else {
            continue;
        };
        if target.identities_only && !wanted.iter().any(|w| w.key_data() == key.key_data()) {
            continue;
        }
        let label = format!("ssh-agent ({})", key.algorithm());
        let result = handle
            .authenticate_publickey_with(target.user.clone(), key, rsa_hash, &mut agent)
            .await
            .map_err(|e| Error::Ssh {
                host: target.name.clone(),
                detail: e.to_string(),
            })?;
        if result.success() {
            return Ok(Some(label));
        }
        attempts.record(label, &result);
    }
    Ok(None)
}

async fn try_key_file(
    handle: &mut Handle<ClientHandler>,
    target: &SshTarget,
    path: &Path,
    rsa_hash: Option<HashAlg>,
    attempts: &mut Attempts,
) -> Result<Option<String>> {
    // Config may come from a cloned repository: `identityFile: "/dev/zero"` must not hang or fill memory.
    let Ok(text) = crate::config::file::read_regular(path, MAX_KEY_FILE_BYTES) else {
        return Ok(None);
    };
    let key = match russh::keys::decode_secret_key(&String::from_utf8_lossy(&text), None) {
        Ok(key) => key,
        Err(russh::keys::Error::KeyIsEncrypted) => {
            attempts
                .encrypted_key
                .get_or_insert_with(|| path.to_path_buf());
            return Ok(None);
        }
        // A missing or unreadable file is skipped, as OpenSSH does.
        Err(_) => return Ok(None),
    };
    let label = format!(
        "key file {} ({})",
        crate::error::display_path(path),
        key.algorithm()
    );
    let result = handle
        .authenticate_publickey(
            target.user.clone(),
            PrivateKeyWithHashAlg::new(Arc::new(key), rsa_hash),
        )
        .await
        .map_err(|e| Error::Ssh {
            host: target.name.clone(),
            detail: e.to_string(),
        })?;
    if result.success() {
        return Ok(Some(label));
    }
    attempts.record(label, &result);
    Ok(None)
}

/// Password auth, for `setup` of a host that has no key of ours yet. Never used by tools.
pub(super) async fn password(
    handle: &mut Handle<ClientHandler>,
    target: &SshTarget,
    password: &str,
) -> Result<String> {
    let result = handle
        .authenticate_password(target.user.clone(), password)
        .await
        .map_err(|e| Error::Ssh {
            host: target.name.clone(),
            detail: e.to_string(),
        })?;
    if result.success() {
        return Ok("password".into());
    }
    let mut attempts = Attempts::default();
    attempts.record("password".into(), &result);
    Err(Error::AuthFailed {
        host: target.name.clone(),
        user: target.user.clone(),
        tried: attempts.tried,
        accepted: attempts.accepted,
    })
}
