//! SFTP transfers. Uploads are atomic on the remote: written to a temp name in the same directory,
//! fsynced, then renamed over the target, so a reader never sees half a file.

use russh_sftp::client::SftpSession;
use russh_sftp::protocol::FileAttributes;
use tokio::io::AsyncWriteExt;

use super::connect::Connection;
use super::quote::command_line;
use crate::error::Result;

/// Upload granularity for progress reports (russh-sftp pipelines writes within a chunk).
const UPLOAD_CHUNK_BYTES: usize = 256 * 1024;

/// An open SFTP subsystem; holds one channel slot while alive.
pub struct Sftp<'a> {
    connection: &'a Connection,
    session: SftpSession,
    _slot: super::connect::ChannelSlot,
}

impl Connection {
    pub async fn sftp(&self) -> Result<Sftp<'_>> {
        // Two slots: the SFTP channel, and room for the `mv` an overwriting upload runs while it is open
        // (waiting for a free slot there could deadlock when every slot is an SFTP session).
        let (channel, slot) = self.open_session(2).await?;
        channel
            .request_subsystem(true, "sftp")
            .await
            .map_err(|e| self.ssh_error(e))?;
        let session = SftpSession::new(channel.into_stream())
            .await
            .map_err(|e| self.ssh_error(e))?;
        Ok(Sftp {
            connection: self,
            session,
            _slot: slot,
        })
    }
}

impl Sftp<'_> {
    /// `mkdir -p`: paths are relative to the remote home unless absolute.
    pub async fn create_dir_all(&self, path: &str) -> Result<()> {
        let mut prefix = String::new();
        for component in path.split('/') {
            if component.is_empty() {
                prefix.push('/');
                continue;
            }
            prefix.push_str(component);
            if !self
                .session
                .try_exists(prefix.clone())
                .await
                .map_err(|e| self.connection.ssh_error(e))?
            {
                self.session
                    .create_dir(prefix.clone())
                    .await
                    .map_err(|e| self.connection.ssh_error(e))?;
            }
            prefix.push('/');
        }
        Ok(())
    }

    /// Write `data` to `path` atomically with permissions `mode`.
    pub async fn upload_atomic(&self, path: &str, data: &[u8], mode: u32) -> Result<()> {
        self.upload_atomic_with_progress(path, data, mode, &|_| {})
            .await
    }

    /// [`Sftp::upload_atomic`], reporting the bytes written so far after each chunk.
    pub async fn upload_atomic_with_progress(
        &self,
        path: &str,
        data: &[u8],
        mode: u32,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<()> {
        let temp = temp_name(path);
        let result = self
            .write_then_rename(&temp, path, data, mode, progress)
            .await;
        if result.is_err() {
            let _ = self.session.remove_file(temp).await;
        }
        result
    }

    async fn write_then_rename(
        &self,
        temp: &str,
        path: &str,
        data: &[u8],
        mode: u32,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<()> {
        let err = |e: russh_sftp::client::error::Error| {
            self.connection.ssh_error(format!("upload of {path}: {e}"))
        };
        let io_err =
            |e: std::io::Error| self.connection.ssh_error(format!("upload of {path}: {e}"));
        let mut file = self.session.create(temp.to_string()).await.map_err(err)?;
        let mut written = 0;
        for chunk in data.chunks(UPLOAD_CHUNK_BYTES) {
            file.write_all(chunk).await.map_err(io_err)?;
            written += chunk.len() as u64;
            progress(written);
        }
        // fsync@openssh.com: the data is on disk before the rename makes it visible.
        file.sync_all().await.map_err(err)?;
        file.shutdown().await.map_err(io_err)?;
        let mut attributes = FileAttributes::empty();
        attributes.permissions = Some(mode);
        self.session
            .set_metadata(temp.to_string(), attributes)
            .await
            .map_err(err)?;
        if self
            .session
            .rename(temp.to_string(), path.to_string())
            .await
            .is_ok()
        {
            return Ok(());
        }
        // SFTP v3 rename refuses an existing target; `mv -f` replaces it atomically (rename(2)). It runs
        // in the second slot this Sftp reserved, so it never waits for the cap.
        let channel = self
            .connection
            .handle
            .channel_open_session()
            .await
            .map_err(|e| self.connection.ssh_error(e))?;
        let mv = command_line(&["mv", "-f", "--", temp, path]);
        let output = self.connection.exec_on(channel, &mv, None).await?;
        if !output.success() {
            let detail = format!("rename to {path}: {}", output.stderr_text().trim());
            return Err(self.connection.ssh_error(detail));
        }
        Ok(())
    }

    pub async fn download(&self, path: &str) -> Result<Vec<u8>> {
        self.session.read(path.to_string()).await.map_err(|e| {
            self.connection
                .ssh_error(format!("download of {path}: {e}"))
        })
    }

    pub async fn exists(&self, path: &str) -> Result<bool> {
        self.session
            .try_exists(path.to_string())
            .await
            .map_err(|e| self.connection.ssh_error(e))
    }

    pub async fn mode(&self, path: &str) -> Result<Option<u32>> {
        let metadata = self
            .session
            .metadata(path.to_string())
            .await
            .map_err(|e| self.connection.ssh_error(e))?;
        Ok(metadata.permissions)
    }
}

/// `dir/.name.tmp-<random>`: same directory, so the rename never crosses a filesystem.
fn temp_name(path: &str) -> String {
    let (dir, name) = match path.rfind('/') {
        Some(i) => (&path[..=i], &path[i + 1..]),
        None => ("", path),
    };
    format!("{dir}.{name}.tmp-{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::temp_name;

    #[test]
    fn temp_name_should_stay_in_the_same_directory() {
        let name = temp_name("a/b/stub");
        assert!(name.starts_with("a/b/.stub.tmp-"), "{name}");
        assert!(temp_name("stub").starts_with(".stub.tmp-"));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::ssh::quote::oracle::{cases, hostile_text, words};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(cases(64))]

        /// The `mv` that replaces an existing upload target gets the temp name and the target as two
        /// operands after `--`, and the temp name stays in the target's directory.
        #[test]
        fn overwrite_command_should_pass_paths_verbatim(path in hostile_text()) {
            prop_assume!(!path.contains('\0'));
            let temp = temp_name(&path);
            let dir = path.rfind('/').map_or("", |i| &path[..=i]);
            prop_assert!(temp.starts_with(dir));
            prop_assert!(!temp[dir.len()..].contains('/'));
            let argv = words("sh", &command_line(&["mv", "-f", "--", &temp, &path]));
            prop_assert_eq!(argv, ["mv", "-f", "--", temp.as_str(), path.as_str()]);
        }
    }
}
