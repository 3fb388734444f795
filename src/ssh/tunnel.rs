//! A local forward to the stub's Unix socket on the host (`ssh -L port:/path/to/socket` without the
//! ssh process): a listener on 127.0.0.1 here whose connections become `direct-streamlocal@openssh.com`
//! channels on the host's pooled connection. The remote end is a socket in the stub's 0700 directory,
//! which no other user on the host can reach or replace (a loopback TCP port there could be both).
//!
//! Each accepted connection asks the pool for a live connection, so when the SSH link drops the next
//! request simply reconnects: the tunnel heals itself without anyone restarting it. When this process
//! holds no live connection to the host, the channel goes through this user's shared one
//! ([`super::mux`]) if there is one.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::config::SshTarget;
use super::connect::reconnect_backoff;
use super::pool::POOL;
use crate::error::{Error, Result};

/// Copy buffer per direction: tokio's default 8 KiB means four times the syscalls and SSH packets of
/// OpenSSH's `-L` for bulk transfers.
const COPY_BUFFER_BYTES: usize = 256 * 1024;
/// How often a new local connection may try to reach the host before it is dropped.
const CHANNEL_ATTEMPTS: u32 = 4;

/// Why the server did not open the last channel to the socket, if it did not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenFailure {
    /// "Administratively prohibited": the server refuses forwarding outright.
    Prohibited,
    /// "Connect failed": OpenSSH answers this both when nothing listens on the socket and when its
    /// `AllowStreamLocalForwarding no` (or `DisableForwarding yes`) refuses the channel, so the
    /// caller tells the two apart by asking the host whether the stub answers there.
    ConnectFailed,
}

const OPENED: u8 = 0;
const PROHIBITED: u8 = 1;
const CONNECT_FAILED: u8 = 2;

/// A running forward. Dropping it (or [`Tunnel::close`]) stops accepting; open streams finish.
pub struct Tunnel {
    local: SocketAddr,
    target: Arc<SshTarget>,
    socket: Arc<str>,
    /// How the last channel open failed ([`OPENED`] once one succeeds): the client's request then
    /// only sees a closed connection, and this says why.
    failure: Arc<AtomicU8>,
    accept_task: JoinHandle<()>,
}

impl Tunnel {
    /// Forward `127.0.0.1:<free port>` here to the Unix socket at `socket` (absolute) on `target`.
    /// It does not connect: callers open it once they reached the host (a bad host then fails there).
    pub async fn open(target: SshTarget, socket: &str) -> Result<Tunnel> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| Error::io("opening the local tunnel port", e))?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::io("opening the local tunnel port", e))?;
        let target = Arc::new(target);
        let socket: Arc<str> = socket.into();
        let failure = Arc::new(AtomicU8::new(OPENED));
        let accept_task = tokio::spawn(accept_loop(
            listener,
            target.clone(),
            socket.clone(),
            failure.clone(),
        ));
        Ok(Tunnel {
            local,
            target,
            socket,
            failure,
            accept_task,
        })
    }

    pub fn local_port(&self) -> u16 {
        self.local.port()
    }

    /// The host this forward reaches.
    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    /// The socket on the host it forwards to.
    pub fn socket(&self) -> &str {
        &self.socket
    }

    /// How the server refused the last channel, if it did (see [`Error::ForwardingRefused`]).
    pub fn open_failure(&self) -> Option<OpenFailure> {
        match self.failure.load(Ordering::Relaxed) {
            PROHIBITED => Some(OpenFailure::Prohibited),
            CONNECT_FAILED => Some(OpenFailure::ConnectFailed),
            _ => None,
        }
    }

    pub fn close(&self) {
        self.accept_task.abort();
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: Arc<SshTarget>,
    remote: Arc<str>,
    failure: Arc<AtomicU8>,
) {
    loop {
        let (socket, _) = accept_backing_off(|| listener.accept()).await;
        let _ = socket.set_nodelay(true);
        let target = target.clone();
        let remote = remote.clone();
        let failure = failure.clone();
        tokio::spawn(async move {
            if let Err(error) = forward(socket, &target, &remote, &failure).await {
                log::debug!("tunnel to {}: {error}", target.name);
            }
        });
    }
}

/// Pause after an accept error that is not about one connection (EMFILE, ENFILE, ENOBUFS): the
/// pending connection stays in the backlog, so retrying at once would spin a core until a
/// descriptor frees up.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The next accepted connection; errors are logged and retried, after [`ACCEPT_BACKOFF`] unless
/// they concern only the connection being accepted.
pub(super) async fn accept_backing_off<T, F, Fut>(mut accept: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::io::Result<T>>,
{
    loop {
        match accept().await {
            Ok(accepted) => return accepted,
            Err(error) => {
                use std::io::ErrorKind::{ConnectionAborted, ConnectionReset, Interrupted};
                if matches!(
                    error.kind(),
                    ConnectionAborted | ConnectionReset | Interrupted
                ) {
                    continue;
                }
                log::warn!("local tunnel port: accept failed: {error}; retrying");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Carry one local connection over a direct-streamlocal channel, reconnecting the SSH link if it is
/// gone.
async fn forward(
    socket: TcpStream,
    target: &SshTarget,
    remote: &str,
    failure: &AtomicU8,
) -> Result<()> {
    #[cfg(unix)]
    if !POOL.is_live(target).await {
        match super::mux::open(target, remote).await {
            Some(super::mux::Opened::Stream(stream)) => {
                failure.store(OPENED, Ordering::Relaxed);
                return splice(socket, stream, target).await;
            }
            Some(super::mux::Opened::Refused(refusal)) => {
                return Err(refused(target, refusal, failure))
            }
            None => {}
        }
    }
    let mut attempt = 0;
    let channel = loop {
        let opened = async {
            let connection = POOL.get(target).await?;
            connection.open_direct_streamlocal(remote).await
        };
        match opened.await {
            Ok(Ok(channel)) => break channel,
            // The server's answer, not a link problem: reconnecting would not change it, and evicting
            // would break every other user of the link.
            Ok(Err(refusal)) => return Err(refused(target, refusal, failure)),
            // Only a dead SSH link is worth a reconnect.
            Err(error @ (Error::Unreachable { .. } | Error::Ssh { .. }))
                if attempt + 1 < CHANNEL_ATTEMPTS && !POOL.is_live(target).await =>
            {
                log::debug!("tunnel to {}: {error}; reconnecting", target.name);
                POOL.evict(target).await;
                attempt += 1;
                tokio::time::sleep(reconnect_backoff(attempt)).await;
            }
            Err(error) => return Err(error),
        }
    };
    failure.store(OPENED, Ordering::Relaxed);
    splice(socket, channel.into_stream(), target).await
}

/// Record the server's refusal (before the local socket closes, so the client that sees it close can
/// ask why) and describe it.
fn refused(target: &SshTarget, refusal: OpenFailure, failure: &AtomicU8) -> Error {
    let code = match refusal {
        OpenFailure::Prohibited => PROHIBITED,
        OpenFailure::ConnectFailed => CONNECT_FAILED,
    };
    failure.store(code, Ordering::Relaxed);
    match refusal {
        OpenFailure::Prohibited => Error::ForwardingRefused {
            host: target.name.clone(),
        },
        OpenFailure::ConnectFailed => Error::Ssh {
            host: target.name.clone(),
            detail: "the host could not connect to the stub's socket".into(),
        },
    }
}

/// Copy both ways between the local connection and the channel until both are done.
async fn splice(
    mut socket: TcpStream,
    mut channel: impl AsyncRead + AsyncWrite + Unpin,
    target: &SshTarget,
) -> Result<()> {
    copy_both_ways(&mut socket, &mut channel)
        .await
        .map_err(|e| Error::Ssh {
            host: target.name.clone(),
            detail: format!("tunnel stream: {e}"),
        })?;
    Ok(())
}

/// Copy both ways until both directions are done, with buffers sized for bulk transfers (see
/// [`COPY_BUFFER_BYTES`]); the sharing helper splices its channels with it too.
pub(super) async fn copy_both_ways(
    a: &mut (impl AsyncRead + AsyncWrite + Unpin + ?Sized),
    b: &mut (impl AsyncRead + AsyncWrite + Unpin + ?Sized),
) -> std::io::Result<()> {
    tokio::io::copy_bidirectional_with_sizes(a, b, COPY_BUFFER_BYTES, COPY_BUFFER_BYTES).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Before: the accept loop `continue`d on any error at once, so running out of descriptors
    /// (EMFILE) spun a core. Now each such error waits [`ACCEPT_BACKOFF`] (checked on tokio's
    /// paused clock, so the test does not depend on real timing).
    #[tokio::test(start_paused = true)]
    async fn accept_errors_should_back_off_instead_of_spinning() {
        let started = tokio::time::Instant::now();
        let mut calls = 0;
        let accepted = accept_backing_off(|| {
            calls += 1;
            let n = calls;
            async move {
                if n <= 5 {
                    Err(std::io::Error::from_raw_os_error(libc_emfile()))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(accepted, 6);
        assert!(
            started.elapsed() >= ACCEPT_BACKOFF * 5,
            "{:?}",
            started.elapsed()
        );
    }

    /// EMFILE on Linux and the BSDs.
    fn libc_emfile() -> i32 {
        24
    }
}
