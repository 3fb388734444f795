//! The local side of a round trip: reading the session when the plugin could not, and remembering
//! unfinished round trips so they can be collected later.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// `opencode export <id>` (only when the plugin's in-process client could not give us the session).
pub async fn export_session(
    opencode_bin: &str,
    session_id: &str,
    cwd: Option<&Path>,
) -> Result<Vec<u8>> {
    let output = run_opencode(opencode_bin, &["export".as_ref(), session_id.as_ref()], cwd).await?;
    if !output.status.success() {
        return Err(Error::Session(format!(
            "`opencode export` failed: {}",
            last_line(&output.stderr)
        )));
    }
    Ok(output.stdout)
}

/// Run the local `opencode` with `args` in `cwd` (no stdin; killed if the call is dropped).
async fn run_opencode(
    opencode_bin: &str,
    args: &[&std::ffi::OsStr],
    cwd: Option<&Path>,
) -> Result<std::process::Output> {
    let mut command = tokio::process::Command::new(opencode_bin);
    command.args(args).stdin(Stdio::null()).kill_on_drop(true);
    in_directory(&mut command, cwd);
    let what = format!("running `opencode {}`", args[0].to_string_lossy());
    command.output().await.map_err(|e| Error::io(what, e))
}

/// OpenCode takes its project directory from `$PWD`, not from the real cwd, so set both.
fn in_directory(command: &mut tokio::process::Command, cwd: Option<&Path>) {
    if let Some(cwd) = cwd.filter(|c| c.is_dir()) {
        command.current_dir(cwd).env("PWD", cwd);
    }
}

fn last_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no output")
        .chars()
        .take(300)
        .collect()
}

/// Our local state directory: `$XDG_STATE_HOME/opencode-remote` (or `~/.local/state/…`).
pub fn state_dir() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".local/state")
        });
    base.join("opencode-remote")
}

/// Write `bytes` to a new private (0600) file under our state dir.
pub fn write_private(relative: &str, bytes: &[u8]) -> Result<PathBuf> {
    use std::io::Write;
    let path = state_dir().join(relative);
    if let Some(parent) = path.parent() {
        create_private_dir(parent)?;
    }
    let failed = |e| Error::io(format!("writing {}", crate::error::display_path(&path)), e);
    // A fresh 0600 temp file renamed over the old one: a crash leaves the old file or the new one, never
    // half of either, and an old file's looser mode never carries over.
    let temp = path.with_file_name(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("state"),
        std::process::id()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&temp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(error) = written.and_then(|()| std::fs::rename(&temp, &path)) {
        let _ = std::fs::remove_file(&temp);
        return Err(failed(error));
    }
    Ok(path)
}

fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| Error::io("creating the state directory", e))
}

/// A round trip that was dispatched but not yet brought back. Saved before the dispatch is sent, so a
/// call that is cancelled or dies mid-way still leaves the job findable.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PendingJob {
    pub job_id: String,
    pub host: String,
    pub session_id: String,
    /// When it was dispatched (local clock, ms since the epoch).
    #[serde(default)]
    pub started_at_ms: u64,
    /// The prompt the remote run got: its first message, expected in the back-file.
    #[serde(default)]
    pub prompt: String,
}

impl PendingJob {
    fn path(session_id: &str, host: &str) -> PathBuf {
        state_dir()
            .join("pending")
            .join(format!("{session_id}__{host}.json"))
    }

    pub fn save(&self) -> Result<()> {
        let bytes = serde_json::to_vec(self).expect("serializable");
        write_private(
            &format!("pending/{}__{}.json", self.session_id, self.host),
            &bytes,
        )
        .map(|_| ())
    }

    pub fn load(session_id: &str, host: &str) -> Option<PendingJob> {
        let bytes = std::fs::read(Self::path(session_id, host)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn remove(&self) {
        let _ = std::fs::remove_file(Self::path(&self.session_id, &self.host));
    }
}
