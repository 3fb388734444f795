//! Connecting: TCP (or a ProxyJump channel), the handshake with strict host-key checking, then auth.
//!
//! The connection moves through type-states: [`Unauthenticated`] holds a handshaken session that can try
//! auth methods; only [`authenticate`](Unauthenticated::authenticate) yields a usable [`Connection`].

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle, Msg};
use russh::keys::{PublicKey, PublicKeyOrCertificate};
use russh::{Channel, Preferred};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::config::SshTarget;
use super::known_hosts::{self, CertificateStatus, HostKeyStatus, HostLookup};
use super::tunnel::OpenFailure;
use crate::config::HostKeyPolicy;
use crate::error::{Error, Result};

/// Channels we keep open at once on one connection: below OpenSSH's default `MaxSessions 10`, so a
/// busy connection queues instead of getting "administratively prohibited".
pub const MAX_CHANNELS_PER_CONNECTION: usize = 8;
/// Pause before retrying a channel the server refused while others were open.
const CHANNEL_RETRY_DELAY: Duration = Duration::from_millis(50);
/// Unanswered keepalives before the connection counts as dead.
const KEEPALIVE_MAX: usize = 3;
/// Longest a closed channel keeps its slot while we wait for the server to confirm it freed it.
const SLOT_RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// Our russh handler: it checks the server key and records why it refused, so the caller can report
/// "host key changed" with file and line instead of russh's generic "unknown key".
///
/// Each hop of a ProxyJump chain gets its own handler built from that hop's own [`SshTarget`]: its
/// known_hosts files, `HostKeyAlias` and policy, never the target's (OpenSSH checks every hop with the
/// settings resolved for it).
pub struct ClientHandler {
    name: String,
    address: String,
    /// User files first, then the global ones: all are read, only the first user file is written.
    files: Vec<PathBuf>,
    learn_file: Option<PathBuf>,
    lookup: HostLookup,
    policy: HostKeyPolicy,
    rejection: Arc<Mutex<Option<Error>>>,
}

impl client::Handler for ClientHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        match self.verify(server_key) {
            Ok(()) => Ok(true),
            Err(error) => {
                *self.rejection.lock().expect("rejection lock") = Some(error);
                Ok(false)
            }
        }
    }
}

impl ClientHandler {
    fn new(target: &SshTarget, rejection: Arc<Mutex<Option<Error>>>) -> Self {
        ClientHandler {
            name: target.name.clone(),
            address: format!("{}:{}", target.hostname, target.port),
            files: known_hosts_files(target),
            learn_file: target.known_hosts_files.first().cloned(),
            lookup: HostLookup::new(
                &target.hostname,
                target.port,
                target.host_key_alias.as_deref(),
            ),
            policy: target.host_key_policy,
            rejection,
        }
    }

    fn verify(&self, server_key: &PublicKeyOrCertificate) -> Result<()> {
        let key = match server_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(cert) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let status = known_hosts::check_certificate(&self.files, &self.lookup, cert, now)
                    .map_err(|e| Error::io("reading known_hosts", e))?;
                match status {
                    CertificateStatus::Trusted => return Ok(()),
                    CertificateStatus::Revoked { file, line } => {
                        return Err(self.revoked(file, line));
                    }
                    // As OpenSSH: judge the key inside as a plain host key.
                    CertificateStatus::Untrusted => PublicKey::new(cert.public_key().clone(), ""),
                }
            }
        };
        self.verify_key(&key)
    }

    fn revoked(&self, file: PathBuf, line: usize) -> Error {
        Error::HostKeyRevoked {
            host: self.name.clone(),
            address: self.address.clone(),
            file,
            line,
        }
    }

    fn verify_key(&self, key: &PublicKey) -> Result<()> {
        let status = known_hosts::check_lookup(&self.files, &self.lookup, key)
            .map_err(|e| Error::io("reading known_hosts", e))?;
        match status {
            HostKeyStatus::Known => Ok(()),
            HostKeyStatus::Revoked { file, line } => Err(self.revoked(file, line)),
            HostKeyStatus::Changed { file, line } => Err(Error::HostKeyChanged {
                host: self.name.clone(),
                address: self.address.clone(),
                file,
                line,
            }),
            HostKeyStatus::Unknown => match (self.policy, &self.learn_file) {
                (HostKeyPolicy::AcceptNew, Some(file)) => {
                    known_hosts::learn_as(file, &self.lookup, key)
                        .map_err(|e| Error::io("recording the new host key", e))
                }
                // Strict, or no user file to learn into (`UserKnownHostsFile none`): OpenSSH refuses too.
                _ => Err(Error::HostKeyUnknown {
                    host: self.name.clone(),
                    address: self.address.clone(),
                    file: self
                        .learn_file
                        .clone()
                        .or_else(|| self.files.first().cloned())
                        .unwrap_or_default(),
                    fingerprint: known_hosts::fingerprint(key),
                }),
            },
        }
    }
}

/// All known_hosts files a hop reads: its user files, then its global ones.
fn known_hosts_files(target: &SshTarget) -> Vec<PathBuf> {
    target
        .known_hosts_files
        .iter()
        .chain(&target.global_known_hosts_files)
        .cloned()
        .collect()
}

/// russh's defaults, with the host key algorithms ordered by the key types on file for this hop.
fn preferred(target: &SshTarget) -> Result<Preferred> {
    let lookup = HostLookup::new(
        &target.hostname,
        target.port,
        target.host_key_alias.as_deref(),
    );
    let order = known_hosts::preferred_algorithms(&known_hosts_files(target), &lookup)
        .map_err(|e| Error::io("reading known_hosts", e))?;
    Ok(Preferred {
        key: Cow::Owned(order.keys),
        host_key_certificates: Cow::Owned(order.certificates),
        cipher: Cow::Borrowed(cipher_order()),
        ..Preferred::default()
    })
}

/// russh's ciphers, AES-GCM first where the CPU encrypts AES and multiplies carry-less itself: there
/// it is the fastest of them by far (a workspace's tunnel carries whole files), and as strong as
/// ChaCha20-Poly1305, which russh (like OpenSSH) otherwise puts first.
fn cipher_order() -> &'static [russh::cipher::Name] {
    use russh::cipher::{AES_128_CTR, AES_192_CTR, AES_256_CTR, AES_256_GCM, CHACHA20_POLY1305};
    const AES_FIRST: &[russh::cipher::Name] = &[
        AES_256_GCM,
        CHACHA20_POLY1305,
        AES_256_CTR,
        AES_192_CTR,
        AES_128_CTR,
    ];
    const CHACHA_FIRST: &[russh::cipher::Name] = &[
        CHACHA20_POLY1305,
        AES_256_GCM,
        AES_256_CTR,
        AES_192_CTR,
        AES_128_CTR,
    ];
    if has_aes_hardware() {
        AES_FIRST
    } else {
        CHACHA_FIRST
    }
}

#[cfg(target_arch = "x86_64")]
fn has_aes_hardware() -> bool {
    std::arch::is_x86_feature_detected!("aes") && std::arch::is_x86_feature_detected!("pclmulqdq")
}

#[cfg(target_arch = "aarch64")]
fn has_aes_hardware() -> bool {
    std::arch::is_aarch64_feature_detected!("aes")
        && std::arch::is_aarch64_feature_detected!("pmull")
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn has_aes_hardware() -> bool {
    false
}

/// A handshaken session whose server key was accepted, not yet authenticated.
pub struct Unauthenticated {
    pub(super) handle: Handle<ClientHandler>,
    pub(super) target: SshTarget,
    jump: Option<Arc<Connection>>,
}

/// An authenticated connection; channels are opened through [`Connection::open_session`] and friends.
pub struct Connection {
    /// Shared with [`ChannelSlot`]s, which use it to confirm a close with the server.
    pub(super) handle: Arc<Handle<ClientHandler>>,
    pub(super) target: SshTarget,
    channel_slots: Arc<Semaphore>,
    /// How authentication succeeded, e.g. `ssh-agent (ssh-ed25519)`.
    pub auth_method: String,
    /// The current cap (the semaphore's size); lowered when the server's MaxSessions is smaller.
    channel_cap: AtomicUsize,
    /// Keeps the jump host's connection alive as long as this one.
    _jump: Option<Arc<Connection>>,
}

impl Connection {
    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    pub fn is_closed(&self) -> bool {
        self.handle.is_closed() || self._jump.as_ref().is_some_and(|j| j.is_closed())
    }

    /// Open a session channel while holding `slots` channel slots (the extra ones reserve room for a
    /// follow-up channel the caller needs while this one is open). Waits when the cap is reached. When
    /// the server refuses a channel while others are open, its `MaxSessions` is below our cap: the cap
    /// shrinks for this connection and the request retries once a channel closes, instead of failing.
    pub(super) async fn open_session(&self, slots: u32) -> Result<(Channel<Msg>, ChannelSlot)> {
        loop {
            let permit = self
                .channel_slots
                .clone()
                .acquire_many_owned(slots)
                .await
                .expect("semaphore never closed");
            match self.handle.channel_open_session().await {
                Ok(channel) => {
                    let slot = ChannelSlot {
                        permit: Some(permit),
                        handle: self.handle.clone(),
                    };
                    return Ok((channel, slot));
                }
                Err(russh::Error::ChannelOpenFailure(_)) if self.others_open(slots) => {
                    self.shrink_cap();
                    drop(permit);
                    tokio::time::sleep(CHANNEL_RETRY_DELAY).await;
                }
                Err(error) => return Err(self.ssh_error(error)),
            }
        }
    }

    /// A `direct-streamlocal@openssh.com` channel to the Unix socket at `socket` on the host (OpenSSH
    /// ≥ 6.7). Forwarded channels do not count against the server's MaxSessions (that limits
    /// sessions), so they take no slot. The outer error is the link's; the inner one is the server's
    /// refusal of this channel.
    pub async fn open_direct_streamlocal(
        &self,
        socket: &str,
    ) -> Result<std::result::Result<Channel<Msg>, OpenFailure>> {
        match self.handle.channel_open_direct_streamlocal(socket).await {
            Ok(channel) => Ok(Ok(channel)),
            Err(russh::Error::ChannelOpenFailure(reason)) => Ok(Err(match reason {
                russh::ChannelOpenFailure::AdministrativelyProhibited => OpenFailure::Prohibited,
                _ => OpenFailure::ConnectFailed,
            })),
            Err(other) => Err(self.ssh_error(other)),
        }
    }

    /// Whether channels other than the caller's (holding `held` slots) are open.
    fn others_open(&self, held: u32) -> bool {
        let cap = self.channel_cap.load(Ordering::Relaxed);
        cap > self.channel_slots.available_permits() + held as usize
    }

    /// Lower the cap by one, if a slot is free to take away (never below one).
    fn shrink_cap(&self) {
        let cap = self.channel_cap.load(Ordering::Relaxed);
        if cap > 1 && self.channel_slots.forget_permits(1) == 1 {
            self.channel_cap.fetch_sub(1, Ordering::Relaxed);
            log::debug!(
                "{}: the server refused a channel; now at most {} at once",
                self.target.name,
                cap - 1
            );
        }
    }

    pub(super) fn ssh_error(&self, error: impl std::fmt::Display) -> Error {
        Error::Ssh {
            host: self.target.name.clone(),
            detail: error.to_string(),
        }
    }

    /// Close politely; errors are irrelevant when we are leaving anyway.
    pub async fn close(&self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}

/// A session channel's place under the connection's cap, held while the channel is open.
///
/// Dropping it gives the place back only once the server has answered a keepalive sent after the
/// channel's close. OpenSSH frees a closed session's `MaxSessions` slot in the event-loop pass after it
/// read our CLOSE, so a channel opened the moment the close went out can still find the old session
/// counted: 20 concurrent dispatches under our cap of 8 were seen as 9 sessions by sshd. The server
/// answers requests in order and after that pass, so after the reply its count is never above ours.
pub struct ChannelSlot {
    permit: Option<OwnedSemaphorePermit>,
    handle: Arc<Handle<ClientHandler>>,
}

impl Drop for ChannelSlot {
    fn drop(&mut self) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        // Outside a runtime (never the case in the addon) the slot is simply returned.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let handle = self.handle.clone();
        runtime.spawn(async move {
            // A dead connection answers at once (send fails); a hung one is cut by keepalive anyway.
            let _ = tokio::time::timeout(SLOT_RELEASE_TIMEOUT, handle.send_ping()).await;
            drop(permit);
        });
    }
}

fn client_config(target: &SshTarget, preferred: Preferred) -> Arc<client::Config> {
    Arc::new(client::Config {
        preferred,
        keepalive_interval: Some(target.keepalive_interval),
        keepalive_max: KEEPALIVE_MAX,
        inactivity_timeout: None,
        nodelay: true,
        // Bulk transfers through the tunnel (downloads above all) stalled on russh's 2 MiB window and
        // 100-message channel buffer; OpenSSH's client keeps more in flight.
        window_size: TUNNEL_WINDOW_BYTES,
        channel_buffer_size: CHANNEL_BUFFER_MESSAGES,
        ..Default::default()
    })
}

/// The initial window of a channel we open (flow control).
const TUNNEL_WINDOW_BYTES: u32 = 8 * 1024 * 1024;
/// Messages a channel buffers before it pushes back on the TCP stream.
const CHANNEL_BUFFER_MESSAGES: usize = 512;

/// Open an authenticated connection to `target`, through its ProxyJump chain if it has one.
pub async fn connect(target: &SshTarget) -> Result<Connection> {
    let timeout = target.connect_timeout;
    let attempt = async {
        let session = handshake(target).await?;
        session.authenticate().await
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(Error::Unreachable {
            host: target.name.clone(),
            address: target.address(),
            detail: format!("no answer within {} s", timeout.as_secs()),
        }),
    }
}

/// TCP (or jump channel) plus key exchange and host-key verification.
pub async fn handshake(target: &SshTarget) -> Result<Unauthenticated> {
    let rejection = Arc::new(Mutex::new(None));
    let handler = ClientHandler::new(target, rejection.clone());
    let config = client_config(target, preferred(target)?);
    let mut proxy = None;
    let (result, jump) = match target.proxy_jump.split_last() {
        // A ProxyJump chain wins over a ProxyCommand: only a chain's first hop (which has no jumps of
        // its own) runs its ProxyCommand, as `ssh -J` does.
        None if target.proxy_command.is_some() => {
            let command = target.proxy_command.clone().unwrap_or_default();
            let (stream, process) =
                super::proxy_command::spawn(&command).map_err(|e| Error::ProxyCommandFailed {
                    host: target.name.clone(),
                    command: command.clone(),
                    detail: format!("cannot start it: {e}"),
                })?;
            proxy = Some((command, process));
            (client::connect_stream(config, stream, handler).await, None)
        }
        None => {
            let stream = tokio::net::TcpStream::connect((target.hostname.as_str(), target.port))
                .await
                .map_err(|e| unreachable(target, e))?;
            let _ = stream.set_nodelay(true);
            let stream = super::quick_ack::QuickAck(stream);
            (client::connect_stream(config, stream, handler).await, None)
        }
        Some((last_jump, earlier)) => {
            let mut jump_target = last_jump.clone();
            jump_target.proxy_jump = earlier.to_vec();
            let jump = Arc::new(Box::pin(connect(&jump_target)).await?);
            let channel = jump
                .handle
                .channel_open_direct_tcpip(
                    target.hostname.clone(),
                    target.port as u32,
                    "127.0.0.1",
                    0,
                )
                .await
                .map_err(|e| unreachable(target, e))?;
            (
                client::connect_stream(config, channel.into_stream(), handler).await,
                Some(jump),
            )
        }
    };
    match result {
        Ok(handle) => Ok(Unauthenticated {
            handle,
            target: target.clone(),
            jump,
        }),
        Err(error) => {
            let rejected = rejection.lock().expect("rejection lock").take();
            match (rejected, proxy) {
                (Some(rejected), _) => Err(rejected),
                (None, Some((command, process))) => Err(Error::ProxyCommandFailed {
                    host: target.name.clone(),
                    command,
                    detail: format!("{} ({error})", process.describe().await),
                }),
                (None, None) => Err(unreachable(target, error)),
            }
        }
    }
}

impl Unauthenticated {
    /// Try the auth methods in OpenSSH's order; on success the session becomes a [`Connection`].
    pub async fn authenticate(mut self) -> Result<Connection> {
        let auth_method = super::auth::authenticate(&mut self.handle, &self.target).await?;
        Ok(self.into_connection(auth_method))
    }

    /// Log in with a password (only `setup` does this, to install a key; tools never ask for one).
    pub async fn authenticate_with_password(mut self, password: &str) -> Result<Connection> {
        let auth_method = super::auth::password(&mut self.handle, &self.target, password).await?;
        Ok(self.into_connection(auth_method))
    }

    fn into_connection(self, auth_method: String) -> Connection {
        Connection {
            handle: Arc::new(self.handle),
            target: self.target,
            channel_slots: Arc::new(Semaphore::new(MAX_CHANNELS_PER_CONNECTION)),
            channel_cap: AtomicUsize::new(MAX_CHANNELS_PER_CONNECTION),
            auth_method,
            _jump: self.jump,
        }
    }
}

fn unreachable(target: &SshTarget, error: impl std::fmt::Display) -> Error {
    Error::Unreachable {
        host: target.name.clone(),
        address: target.address(),
        detail: error.to_string(),
    }
}

/// How long to wait between reconnect attempts: 0.2 s doubling to 5 s.
pub fn reconnect_backoff(attempt: u32) -> Duration {
    Duration::from_millis((200u64 << attempt.min(5)).min(5_000))
}
