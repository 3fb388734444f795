//! `ProxyCommand`: a local command whose stdin/stdout carry the SSH connection, as OpenSSH runs it
//! (`sshconnect.c` `ssh_proxy_connect`: `exec <command>` under `/bin/sh -c`).
//!
//! The command lives exactly as long as the transport: dropping the [`ProxyStream`] (russh drops it
//! when the connection ends) kills it. Its stderr is kept (the last few KiB) so a failure can say why.

use std::io;
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::process::{ChildStdin, ChildStdout, Command};
use tokio::sync::{oneshot, watch};

/// The shell OpenSSH uses (`_PATH_BSHELL`).
const SHELL: &str = "/bin/sh";
/// stderr kept for the error message.
const STDERR_TAIL_BYTES: usize = 2048;
/// How long a failed handshake waits for the command to exit before reporting it as still running.
const EXIT_WAIT: Duration = Duration::from_secs(2);

/// The command's stdout (what the server sends) and stdin (what we send), as one stream.
pub struct ProxyStream {
    stdout: ChildStdout,
    stdin: ChildStdin,
    /// Dropping it tells the reaper task to kill the command.
    _kill: oneshot::Sender<()>,
}

/// What is known about a running or finished proxy command, for error messages.
#[derive(Clone)]
pub struct ProxyProcess {
    status: watch::Receiver<Option<ExitStatus>>,
    stderr_done: watch::Receiver<bool>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

/// Starts `command` under `sh -c`. Must run inside a tokio runtime (it spawns the reaper task).
pub fn spawn(command: &str) -> io::Result<(ProxyStream, ProxyProcess)> {
    let mut child = Command::new(SHELL)
        .arg("-c")
        // `exec` so that killing the child kills the command itself, not only the shell.
        .arg(format!("exec {command}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let (Some(stdin), Some(stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(io::Error::other("the proxy command has no pipes"));
    };

    let (status_tx, status) = watch::channel(None);
    let (kill, killed) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let status = tokio::select! {
            status = child.wait() => status,
            // The stream was dropped (or sent an explicit kill): the connection is gone.
            _ = killed => {
                let _ = child.start_kill();
                child.wait().await
            }
        };
        let _ = status_tx.send(status.ok());
    });

    let tail = Arc::new(Mutex::new(Vec::new()));
    let (done_tx, stderr_done) = watch::channel(false);
    let sink = tail.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 1024];
        while let Ok(n @ 1..) = stderr.read(&mut buf).await {
            let mut kept = sink.lock().expect("stderr lock");
            kept.extend_from_slice(&buf[..n]);
            let excess = kept.len().saturating_sub(STDERR_TAIL_BYTES);
            kept.drain(..excess);
        }
        let _ = done_tx.send(true);
    });

    let stream = ProxyStream {
        stdout,
        stdin,
        _kill: kill,
    };
    let process = ProxyProcess {
        status,
        stderr_done,
        stderr: tail,
    };
    Ok((stream, process))
}

impl ProxyProcess {
    /// "exited with status 255: <stderr tail>", after giving the command a moment to finish.
    pub async fn describe(&self) -> String {
        let mut status = self.status.clone();
        let mut stderr_done = self.stderr_done.clone();
        let _ = tokio::time::timeout(EXIT_WAIT, async {
            let _ = status.wait_for(Option::is_some).await;
            let _ = stderr_done.wait_for(|done| *done).await;
        })
        .await;
        let how = match *self.status.borrow() {
            Some(status) => match status.code() {
                Some(code) => format!("exited with status {code}"),
                None => format!("ended by {status}"),
            },
            None => "is still running but closed the connection".to_string(),
        };
        let stderr = self.stderr.lock().expect("stderr lock");
        let text = String::from_utf8_lossy(&stderr);
        let text = text.trim();
        if text.is_empty() {
            format!("{how} (no output on stderr)")
        } else {
            format!("{how}: {}", text.lines().collect::<Vec<_>>().join(" / "))
        }
    }
}

impl AsyncRead for ProxyStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdout).poll_read(cx, buf)
    }
}

impl AsyncWrite for ProxyStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stdin).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdin).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdin).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn spawn_should_carry_bytes_both_ways() {
        let (mut stream, _process) = spawn("cat").unwrap();
        stream.write_all(b"hello\n").await.unwrap();
        let mut buf = [0u8; 6];
        stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello\n");
    }

    /// Like OpenSSH the command runs as `exec <command>`: a compound command needs its own shell.
    #[tokio::test]
    async fn describe_should_report_exit_status_and_stderr_tail() {
        let (mut stream, process) =
            spawn("sh -c 'echo first >&2; echo no route to jump >&2; exit 7'").unwrap();
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await.unwrap();
        let text = process.describe().await;
        assert_eq!(text, "exited with status 7: first / no route to jump");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn dropping_the_stream_should_kill_the_command() {
        let (stream, process) = spawn("sleep 600").unwrap();
        drop(stream);
        let mut status = process.status.clone();
        let status =
            tokio::time::timeout(Duration::from_secs(10), status.wait_for(Option::is_some))
                .await
                .expect("the command ends")
                .unwrap()
                .expect("status");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
    }
}
