//! Public-key authentication in OpenSSH's order: ssh-agent first, then identity files. A user
//! certificate (from `CertificateFile`, a `<key>-cert.pub` beside an identity file, or held by the agent)
//! is offered before its plain key, as OpenSSH does.
//!
//! Passwords are never tried here: a password prompt belongs to an interactive `setup`, not to a tool
//! call the model made. An encrypted key with no agent holding it is reported as such instead of hanging
//! on a passphrase nobody can type.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::client::{AuthResult, Handle, KeyboardInteractiveAuthResponse};
use russh::keys::agent::client::AgentClient;
use russh::keys::agent::AgentIdentity;
use russh::keys::{Certificate, HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};
use russh::MethodKind;

use super::config::SshTarget;
use super::connect::ClientHandler;
use crate::error::{Error, Result};

use super::config::DEFAULT_IDENTITIES;

/// Keyboard-interactive rounds answered before giving up (PAM asks once; a loop means it wants more
/// than a password).
const MAX_KEYBOARD_INTERACTIVE_ROUNDS: usize = 4;

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
    let certificates = certificates(target, &identity_files);
    let mut attempts = Attempts::default();

    let keys = Keys {
        identity_files: &identity_files,
        certificates: &certificates,
        rsa_hash,
    };
    if let Some(method) = try_agent(handle, target, &keys, &mut attempts).await? {
        return Ok(method);
    }
    for path in &identity_files {
        if let Some(method) = try_key_file(handle, target, path, &keys, &mut attempts).await? {
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

/// What public-key auth can offer.
struct Keys<'a> {
    identity_files: &'a [PathBuf],
    certificates: &'a [(PathBuf, Certificate)],
    rsa_hash: Option<HashAlg>,
}

impl Keys<'_> {
    /// The certificates for one key, in the order found.
    fn certificates_for<'c>(
        &'c self,
        key: &'c russh::keys::ssh_key::public::KeyData,
    ) -> impl Iterator<Item = &'c (PathBuf, Certificate)> + 'c {
        self.certificates
            .iter()
            .filter(move |(_, cert)| cert.public_key() == key)
    }
}

/// `CertificateFile`s, then `<identity>-cert.pub` beside each identity file (OpenSSH loads both);
/// unreadable or malformed ones are skipped, as OpenSSH does.
fn certificates(target: &SshTarget, identity_files: &[PathBuf]) -> Vec<(PathBuf, Certificate)> {
    let beside = identity_files.iter().map(|path| {
        let mut name = path.as_os_str().to_owned();
        name.push("-cert.pub");
        PathBuf::from(name)
    });
    let mut found: Vec<(PathBuf, Certificate)> = Vec::new();
    for path in target.certificate_files.iter().cloned().chain(beside) {
        let Ok(text) = crate::config::file::read_regular(&path, MAX_KEY_FILE_BYTES) else {
            continue;
        };
        let Ok(cert) = Certificate::from_openssh(String::from_utf8_lossy(&text).trim()) else {
            log::debug!("{}: not an OpenSSH certificate", path.display());
            continue;
        };
        if !found.iter().any(|(_, known)| known == &cert) {
            found.push((path, cert));
        }
    }
    found
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
    keys: &Keys<'_>,
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
    let wanted: Vec<PublicKey> = keys
        .identity_files
        .iter()
        .filter_map(|p| public_key_of(p))
        .collect();
    let ssh_error = |e: &dyn std::fmt::Display| Error::Ssh {
        host: target.name.clone(),
        detail: e.to_string(),
    };
    for identity in identities {
        match identity {
            AgentIdentity::PublicKey { key, .. } => {
                // A configured certificate for this agent key goes first, signed by the agent.
                let configured = keys.certificates_for(key.key_data()).any(|_| true);
                if target.identities_only
                    && !configured
                    && !wanted.iter().any(|w| w.key_data() == key.key_data())
                {
                    continue;
                }
                for (path, cert) in keys.certificates_for(key.key_data()) {
                    let label = format!(
                        "ssh-agent ({}) with certificate {}",
                        key.algorithm(),
                        crate::error::display_path(path)
                    );
                    let result = handle
                        .authenticate_certificate_with(
                            target.user.clone(),
                            cert.clone(),
                            keys.rsa_hash,
                            &mut agent,
                        )
                        .await
                        .map_err(|e| ssh_error(&e))?;
                    if result.success() {
                        return Ok(Some(label));
                    }
                    attempts.record(label, &result);
                }
                let label = format!("ssh-agent ({})", key.algorithm());
                let result = handle
                    .authenticate_publickey_with(
                        target.user.clone(),
                        key,
                        keys.rsa_hash,
                        &mut agent,
                    )
                    .await
                    .map_err(|e| ssh_error(&e))?;
                if result.success() {
                    return Ok(Some(label));
                }
                attempts.record(label, &result);
            }
            AgentIdentity::Certificate { certificate, .. } => {
                if target.identities_only
                    && !wanted
                        .iter()
                        .any(|w| w.key_data() == certificate.public_key())
                    && keys
                        .certificates_for(certificate.public_key())
                        .next()
                        .is_none()
                {
                    continue;
                }
                let label = format!("ssh-agent certificate ({})", certificate.algorithm());
                let result = handle
                    .authenticate_certificate_with(
                        target.user.clone(),
                        certificate,
                        keys.rsa_hash,
                        &mut agent,
                    )
                    .await
                    .map_err(|e| ssh_error(&e))?;
                if result.success() {
                    return Ok(Some(label));
                }
                attempts.record(label, &result);
            }
        }
    }
    Ok(None)
}

async fn try_key_file(
    handle: &mut Handle<ClientHandler>,
    target: &SshTarget,
    path: &Path,
    keys: &Keys<'_>,
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
    let key = Arc::new(key);
    if let Some(method) = try_certificates(handle, target, path, &key, keys, attempts).await? {
        return Ok(Some(method));
    }
    let label = format!(
        "key file {} ({})",
        crate::error::display_path(path),
        key.algorithm()
    );
    let result = handle
        .authenticate_publickey(
            target.user.clone(),
            PrivateKeyWithHashAlg::new(key, keys.rsa_hash),
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

/// The certificates of one private key, each offered before the plain key.
async fn try_certificates(
    handle: &mut Handle<ClientHandler>,
    target: &SshTarget,
    path: &Path,
    key: &Arc<PrivateKey>,
    keys: &Keys<'_>,
    attempts: &mut Attempts,
) -> Result<Option<String>> {
    let public = key.public_key().key_data().clone();
    for (cert_path, cert) in keys.certificates_for(&public) {
        let label = format!(
            "key file {} with certificate {}",
            crate::error::display_path(path),
            crate::error::display_path(cert_path)
        );
        let result = handle
            .authenticate_openssh_cert(target.user.clone(), key.clone(), cert.clone())
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

/// Password auth, for `setup` of a host that has no key of ours yet. Never used by tools.
/// Hosts that only take keyboard-interactive (PAM) get the password as the answer to its prompts.
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
    let offers_keyboard_interactive = matches!(&result, AuthResult::Failure { remaining_methods, .. }
        if remaining_methods.contains(&MethodKind::KeyboardInteractive));
    if offers_keyboard_interactive
        && keyboard_interactive(handle, target, password, &mut attempts).await?
    {
        return Ok("keyboard-interactive".into());
    }
    Err(Error::AuthFailed {
        host: target.name.clone(),
        user: target.user.clone(),
        tried: attempts.tried,
        accepted: attempts.accepted,
    })
}

/// Answers every hidden prompt with the password (the usual PAM "Password:"), prompts that echo with
/// nothing. `Ok(false)` when the server says no.
async fn keyboard_interactive(
    handle: &mut Handle<ClientHandler>,
    target: &SshTarget,
    password: &str,
    attempts: &mut Attempts,
) -> Result<bool> {
    let ssh_error = |e: russh::Error| Error::Ssh {
        host: target.name.clone(),
        detail: e.to_string(),
    };
    let mut reply = handle
        .authenticate_keyboard_interactive_start(target.user.clone(), None)
        .await
        .map_err(ssh_error)?;
    for _ in 0..MAX_KEYBOARD_INTERACTIVE_ROUNDS {
        match reply {
            KeyboardInteractiveAuthResponse::Success => return Ok(true),
            KeyboardInteractiveAuthResponse::Failure {
                remaining_methods, ..
            } => {
                attempts.tried.push("keyboard-interactive".into());
                attempts.accepted = remaining_methods
                    .iter()
                    .map(|m| <&str>::from(m).to_string())
                    .collect();
                return Ok(false);
            }
            KeyboardInteractiveAuthResponse::InfoRequest { prompts, .. } => {
                let answers = answers_for(&prompts, password);
                reply = handle
                    .authenticate_keyboard_interactive_respond(answers)
                    .await
                    .map_err(ssh_error)?;
            }
        }
    }
    attempts.tried.push("keyboard-interactive".into());
    Ok(false)
}

fn answers_for(prompts: &[russh::client::Prompt], password: &str) -> Vec<String> {
    prompts
        .iter()
        .map(|p| {
            if p.echo {
                String::new()
            } else {
                password.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_should_give_the_password_to_hidden_prompts_only() {
        let prompts = [
            russh::client::Prompt {
                prompt: "Password: ".into(),
                echo: false,
            },
            russh::client::Prompt {
                prompt: "Note: ".into(),
                echo: true,
            },
        ];
        assert_eq!(answers_for(&prompts, "pw"), ["pw", ""]);
        assert!(answers_for(&[], "pw").is_empty());
    }
}
