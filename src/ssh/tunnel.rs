//! A local port forward (`ssh -L` without the ssh process): a listener on 127.0.0.1 whose connections
//! become direct-tcpip channels on the host's pooled connection.
//!
//! Each accepted connection asks the pool for a live connection, so when the SSH link drops the next
//! request simply reconnects: the tunnel heals itself without anyone restarting it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

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

/// A running forward. Dropping it (or [`Tunnel::close`]) stops accepting; open streams finish.
pub struct Tunnel {
    local: SocketAddr,
    remote_port: Arc<AtomicU16>,
    /// Set when the server refused a forwarding channel outright (`AllowTcpForwarding no`): the
    /// client's request then only sees a closed connection, and this says why.
    refused: Arc<AtomicBool>,
    accept_task: JoinHandle<()>,
}

impl Tunnel {
    /// Forward `127.0.0.1:<free port>` here to `127.0.0.1:remote_port` on `target`.
    pub async fn open(target: SshTarget, remote_port: u16) -> Result<Tunnel> {
        // Connect first, so a bad host fails here and not on the first request.
        POOL.get(&target).await?;
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| Error::io("opening the local tunnel port", e))?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::io("opening the local tunnel port", e))?;
        let remote_port = Arc::new(AtomicU16::new(remote_port));
        let refused = Arc::new(AtomicBool::new(false));
        let accept_task = tokio::spawn(accept_loop(
            listener,
            Arc::new(target),
            remote_port.clone(),
            refused.clone(),
        ));
        Ok(Tunnel {
            local,
            remote_port,
            refused,
            accept_task,
        })
    }

    pub fn local_port(&self) -> u16 {
        self.local.port()
    }

    /// Whether the server refused to forward (see [`Error::ForwardingRefused`]).
    pub fn forwarding_refused(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }

    /// Point the forward at another remote port (the stub restarted elsewhere).
    pub fn set_remote_port(&self, port: u16) {
        self.remote_port.store(port, Ordering::Relaxed);
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
    remote_port: Arc<AtomicU16>,
    refused: Arc<AtomicBool>,
) {
    loop {
        let (socket, peer) = accept_backing_off(|| listener.accept()).await;
        let _ = socket.set_nodelay(true);
        let target = target.clone();
        let port = remote_port.load(Ordering::Relaxed);
        let refused = refused.clone();
        tokio::spawn(async move {
            if let Err(error) = forward(socket, peer, &target, port, &refused).await {
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
async fn accept_backing_off<T, F, Fut>(mut accept: F) -> T
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

/// Carry one local connection over a direct-tcpip channel, reconnecting the SSH link if it is gone.
async fn forward(
    mut socket: TcpStream,
    peer: SocketAddr,
    target: &SshTarget,
    port: u16,
    refused: &AtomicBool,
) -> Result<()> {
    let mut attempt = 0;
    let channel = loop {
        let opened = async {
            let connection = POOL.get(target).await?;
            connection.open_direct_tcpip(port, peer).await
        };
        match opened.await {
            Ok(channel) => break channel,
            // Only a dead SSH link is worth a reconnect; a refused channel (nothing listens on the
            // remote port) is the remote's answer, and evicting would break every other user of the link.
            Err(error @ (Error::Unreachable { .. } | Error::Ssh { .. }))
                if attempt + 1 < CHANNEL_ATTEMPTS && link_is_down(target).await =>
            {
                log::debug!("tunnel to {}: {error}; reconnecting", target.name);
                POOL.evict(target).await;
                attempt += 1;
                tokio::time::sleep(reconnect_backoff(attempt)).await;
            }
            Err(error) => {
                // Recorded before the local socket closes, so the client that sees it close can ask why.
                if matches!(error, Error::ForwardingRefused { .. }) {
                    refused.store(true, Ordering::Relaxed);
                }
                return Err(error);
            }
        }
    };
    refused.store(false, Ordering::Relaxed);
    let mut stream = channel.into_stream();
    tokio::io::copy_bidirectional_with_sizes(
        &mut socket,
        &mut stream,
        COPY_BUFFER_BYTES,
        COPY_BUFFER_BYTES,
    )
    .await
    .map_err(|e| Error::Ssh {
        host: target.name.clone(),
        detail: format!("tunnel stream: {e}"),
    })?;
    Ok(())
}

/// Whether the pooled connection for `target` is gone (or was never made).
async fn link_is_down(target: &SshTarget) -> bool {
    POOL.peek(target)
        .await
        .is_none_or(|connection| connection.is_closed())
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
