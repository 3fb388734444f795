//! A command's output, bounded in memory.
//!
//! A model may run `yes` or `cat` a huge log: the addon lives in OpenCode's process, so keeping every
//! byte would push OpenCode out of memory. Each stream keeps its head and its tail; past
//! [`SPILL_AFTER_BYTES`] the whole output (both streams, in arrival order) goes to a file instead,
//! created 0600 in a 0700 directory, as OpenCode saves truncated tool output.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Bytes of the start of a stream kept in memory.
pub const HEAD_BYTES: usize = 64 * 1024;
/// Bytes of the end of a stream kept in memory (OpenCode shows at most the last 50 KiB).
pub const TAIL_BYTES: usize = 256 * 1024;
/// Output held in memory before it is written to the full-output file.
pub const SPILL_AFTER_BYTES: usize = 1024 * 1024;
/// Between the head and the tail of a cut stream.
pub const CUT_MARK: &str = "\n\n... output truncated ...\n\n";

/// One stream: all of it while short, else its head and tail.
#[derive(Default)]
struct Stream {
    head: String,
    tail: String,
    cut: bool,
}

impl Stream {
    fn push(&mut self, data: &str) {
        if !self.cut {
            self.head.push_str(data);
            if self.head.len() <= HEAD_BYTES + TAIL_BYTES {
                return;
            }
            let at = floor_char_boundary(&self.head, HEAD_BYTES);
            self.tail = self.head.split_off(at);
            self.cut = true;
        } else {
            self.tail.push_str(data);
        }
        if self.tail.len() > 2 * TAIL_BYTES {
            let from = ceil_char_boundary(&self.tail, self.tail.len() - TAIL_BYTES);
            self.tail.drain(..from);
        }
    }

    fn finish(self) -> String {
        if !self.cut {
            return self.head;
        }
        let from = ceil_char_boundary(&self.tail, self.tail.len().saturating_sub(TAIL_BYTES));
        format!("{}{CUT_MARK}{}", self.head, &self.tail[from..])
    }
}

/// Both streams of a command, and the full-output file once the output grew past the limit.
pub struct CappedOutput {
    stdout: Stream,
    stderr: Stream,
    /// Everything so far in arrival order, until it is spilled (or dropped, with nowhere to spill).
    pending: Vec<u8>,
    total: usize,
    spill_dir: Option<PathBuf>,
    spill: Option<(PathBuf, File)>,
    spill_failed: bool,
}

impl CappedOutput {
    /// `spill_dir`: where the full output of a long command is saved (`None`: keep only head and tail).
    pub fn new(spill_dir: Option<PathBuf>) -> Self {
        CappedOutput {
            stdout: Stream::default(),
            stderr: Stream::default(),
            pending: Vec::new(),
            total: 0,
            spill_dir,
            spill: None,
            spill_failed: false,
        }
    }

    pub fn stdout(&mut self, data: &str) {
        self.stdout.push(data);
        self.record(data);
    }

    pub fn stderr(&mut self, data: &str) {
        self.stderr.push(data);
        self.record(data);
    }

    fn record(&mut self, data: &str) {
        self.total += data.len();
        if let Some((_, file)) = &mut self.spill {
            if file.write_all(data.as_bytes()).is_err() {
                self.spill = None;
                self.spill_failed = true;
            }
            return;
        }
        if self.spill_failed {
            return;
        }
        self.pending.extend_from_slice(data.as_bytes());
        if self.total <= SPILL_AFTER_BYTES {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        match self
            .spill_dir
            .as_deref()
            .map(|dir| create_spill_file(dir, &pending))
        {
            Some(Ok(spill)) => self.spill = Some(spill),
            Some(Err(error)) => {
                log::warn!("could not save a long command output: {error}");
                self.spill_failed = true;
            }
            None => self.spill_failed = true,
        }
    }

    /// `(stdout, stderr, whether either was cut, the full-output file)`.
    pub fn finish(mut self) -> (String, String, bool, Option<PathBuf>) {
        let cut = self.stdout.cut || self.stderr.cut;
        let path = match self.spill.take() {
            Some((path, _)) if cut => Some(path),
            Some((path, _)) => {
                // Not cut after all (the output was long but within head+tail): no file needed.
                let _ = std::fs::remove_file(path);
                None
            }
            None => None,
        };
        (self.stdout.finish(), self.stderr.finish(), cut, path)
    }
}

fn create_spill_file(dir: &Path, pending: &[u8]) -> std::io::Result<(PathBuf, File)> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let name = format!(
        "tool_remote_{:016x}{:08x}",
        rand::random::<u64>(),
        rand::random::<u32>()
    );
    let path = dir.join(name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(pending)?;
    Ok((path, file))
}

fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn ceil_char_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at += 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn capped_output_should_keep_head_and_tail_and_spill_everything_to_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let spill_dir = dir.path().join("tool-output");
        let mut output = CappedOutput::new(Some(spill_dir.clone()));
        let line = "y\n".repeat(4096);
        let chunks = 4 * SPILL_AFTER_BYTES / line.len();
        output.stdout("first\n");
        for _ in 0..chunks {
            output.stdout(&line);
        }
        output.stderr("é-last\n");
        output.stdout("the end\n");
        let (stdout, stderr, cut, path) = output.finish();
        assert!(cut);
        assert!(
            stdout.len() <= HEAD_BYTES + CUT_MARK.len() + TAIL_BYTES,
            "{}",
            stdout.len()
        );
        assert!(stdout.starts_with("first\ny\n") && stdout.ends_with("y\nthe end\n"));
        assert!(stdout.contains(CUT_MARK));
        assert_eq!(stderr, "é-last\n");
        let path = path.expect("the full output is saved");
        let saved = std::fs::read_to_string(&path).unwrap();
        assert_eq!(saved.len(), 6 + chunks * line.len() + "é-last\n".len() + 8);
        assert!(saved.ends_with("y\né-last\nthe end\n"));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&path), mode(&spill_dir)), (0o600, 0o700));
    }

    #[test]
    fn capped_output_should_keep_short_output_whole_without_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut output = CappedOutput::new(Some(dir.path().to_path_buf()));
        output.stdout("hello\n");
        output.stderr("oops\n");
        let (stdout, stderr, cut, path) = output.finish();
        assert_eq!(
            (stdout.as_str(), stderr.as_str(), cut, path),
            ("hello\n", "oops\n", false, None)
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn capped_output_should_stay_bounded_with_nowhere_to_spill() {
        let mut output = CappedOutput::new(None);
        let chunk = "x".repeat(64 * 1024);
        for _ in 0..64 {
            output.stdout(&chunk);
        }
        assert!(output.pending.len() <= SPILL_AFTER_BYTES + chunk.len());
        let (stdout, _, cut, path) = output.finish();
        assert!(cut && path.is_none());
        assert!(stdout.len() <= HEAD_BYTES + CUT_MARK.len() + TAIL_BYTES);
    }
}
