//! Turning a password-only host into a key host, once: generate a local ed25519 key for it and append
//! the public half to the remote `authorized_keys`. After that the password is never needed again.

use std::io::Write;
use std::path::{Path, PathBuf};

use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::LineEnding;
use russh::keys::PrivateKey;

use super::connect::Connection;
use super::quote::quote;
use crate::error::{Error, Result};

/// `~/.ssh/opencode-remote_<host>`: generated on first use, 0600, no passphrase (it is only ever used
/// for this host, and tools cannot type passphrases).
pub fn ensure_local_key(host: &str) -> Result<(PathBuf, String)> {
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    let path = home.join(".ssh").join(format!("opencode-remote_{host}"));
    if let (Ok(_), Ok(public)) = (
        std::fs::metadata(&path),
        std::fs::read_to_string(pub_path(&path)),
    ) {
        return Ok((path, public.trim().to_string()));
    }
    let mut key = PrivateKey::from(Ed25519Keypair::from_seed(&rand::random::<[u8; 32]>()));
    key.set_comment(format!("opencode-remote {host}"));
    let private = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| Error::io("encoding the new key", std::io::Error::other(e)))?;
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|e| Error::io("encoding the new key", std::io::Error::other(e)))?;
    create_private_dir(path.parent().expect("has a parent"))?;
    write_new(&path, private.as_bytes(), 0o600)?;
    write_new(&pub_path(&path), format!("{public}\n").as_bytes(), 0o644)?;
    Ok((path, public))
}

/// Append `public_line` to the remote user's `~/.ssh/authorized_keys` unless it is already there.
pub async fn authorize(connection: &Connection, public_line: &str) -> Result<()> {
    let key = quote(public_line);
    let script = format!(
        "umask 077\ncd || exit 1\nmkdir -p .ssh && touch .ssh/authorized_keys || exit 1\n\
         grep -qxF {key} .ssh/authorized_keys || printf '%s\\n' {key} >> .ssh/authorized_keys\n"
    );
    let output = connection.exec("sh -s", Some(script.as_bytes())).await?;
    if output.success() {
        Ok(())
    } else {
        Err(Error::Ssh {
            host: connection.target().name.clone(),
            detail: format!("could not install the key: {}", output.stderr_text().trim()),
        })
    }
}

fn pub_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))
}

fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    let mut file = options
        .open(path)
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    file.write_all(data)
        .and_then(|_| file.sync_all())
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}
