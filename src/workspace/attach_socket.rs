//! A warm workspace create without an exec on the host. An exec costs sshd a session (a process, PAM,
//! the login shell): about two thirds of a warm create. The running stub also listens on its attach
//! socket ([`paths::ATTACH_SOCKET_FILE`]), where one channel registers the workspace and answers the
//! stub and its token. The socket's absolute path comes from the last stub this machine saw on the
//! host (a small local record, not secret); when there is none, or the stub does not answer there,
//! the caller falls back to the probe exec.
//!
//! The channel goes through this user's shared connection ([`crate::ssh::mux`]) when there is one:
//! a create in a freshly started OpenCode then costs two round trips and no handshake.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use opencode_remote_protocol::{
    paths, routes, ApiError, Attached, RegisterWorkspace, StubInfo, PROTOCOL_VERSION,
};

use super::bootstrap::{Stub, STUB_VERSION};
use super::stub_client::StubClient;
use crate::error::{Error, Result};
use crate::login::local::{state_dir, write_private};
use crate::ssh::config::SshTarget;
#[cfg(unix)]
use crate::ssh::mux::Opened;
use crate::ssh::pool::POOL;
use crate::ssh::tunnel::Tunnel;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The attach socket answers within this, or the probe exec takes over.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer read (the stub's info, token and one workspace: well under a KiB).
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Where the stubs' sockets were last seen, by host.
const RECORD_FILE: &str = "stub-sockets.json";

/// Register `register` through the stub's attach socket. `None` when that is not possible (no
/// record of the host's stub, no stub there, another version): the caller probes instead. A root
/// the stub refuses is an error, as from the probe; so is a host this process cannot connect to.
pub async fn attach(target: &SshTarget, register: &RegisterWorkspace) -> Option<Result<Stub>> {
    let socket = attach_socket_of(&known_socket(target)?)?;
    let request = request_text(register)?;
    let answer = match tokio::time::timeout(ANSWER_TIMEOUT, ask(target, &socket, &request)).await {
        Ok(Ok(answer)) => answer?,
        Ok(Err(error)) => return Some(Err(error)),
        Err(_) => return None,
    };
    let attached = match answer {
        Answer::Attached(attached) => attached,
        Answer::Refused(refused) => {
            return Some(Err(Error::Remote {
                host: target.name.clone(),
                kind: refused.error.kind,
                message: refused.error.message,
            }))
        }
    };
    if attached.info.version != STUB_VERSION || attached.info.protocol != PROTOCOL_VERSION {
        return None;
    }
    let tunnel = match Tunnel::open(target.clone(), &attached.info.socket).await {
        Ok(tunnel) => Arc::new(tunnel),
        Err(error) => return Some(Err(error)),
    };
    Some(Ok(Stub {
        client: StubClient::new(&target.name, tunnel.local_port(), &attached.token),
        tunnel,
        info: attached.info,
        reused: true,
        attached: Some(attached.workspace),
    }))
}

enum Answer {
    Attached(Attached),
    Refused(ApiError),
}

/// `POST /v1/attach` with `register` as its body.
fn request_text(register: &RegisterWorkspace) -> Option<String> {
    let body = serde_json::to_string(register).ok()?;
    Some(format!(
        "POST {} HTTP/1.1\r\nHost: stub\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        routes::ATTACH,
        body.len()
    ))
}

/// `request` over one channel to `socket`, taken as the tunnel takes its channels: on this
/// process's live connection, else through the shared one, else on a connection made here.
/// `Ok(None)` when the channel or the answer fails; an error when this process cannot connect to
/// the host at all.
async fn ask(target: &SshTarget, socket: &str, request: &str) -> Result<Option<Answer>> {
    #[cfg(unix)]
    if !POOL.is_live(target).await {
        match crate::ssh::mux::open(target, socket).await {
            Some(Opened::Stream(mut stream)) => return Ok(exchange(&mut stream, request).await),
            Some(Opened::Refused(_)) => return Ok(None),
            None => {}
        }
    }
    let connection = POOL.get(target).await?;
    let Ok(Ok(channel)) = connection.open_direct_streamlocal(socket).await else {
        return Ok(None);
    };
    let mut stream = channel.into_stream();
    Ok(exchange(&mut stream, request).await)
}

/// Send `request` and read one whole answer. The channel closes when the stream is dropped, without
/// waiting for the stub's end of it.
async fn exchange(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    request: &str,
) -> Option<Answer> {
    stream.write_all(request.as_bytes()).await.ok()?;
    stream.flush().await.ok()?;
    let mut raw = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        if let Some(answer) = whole_answer(&raw) {
            return parse_answer(answer);
        }
        let read = stream.read(&mut buffer).await.ok()?;
        if read == 0 || raw.len() + read > MAX_ANSWER_BYTES {
            return None;
        }
        raw.extend_from_slice(&buffer[..read]);
    }
}

/// The answer in `raw` once its head and its `Content-Length` bytes of body have arrived.
fn whole_answer(raw: &[u8]) -> Option<&[u8]> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let length: usize = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    })?;
    raw.get(..end + 4 + length)
}

/// The status and JSON body of an answer.
fn parse_answer(raw: &[u8]) -> Option<Answer> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
    let body = &raw[end + 4..];
    match status {
        200 => serde_json::from_slice(body).ok().map(Answer::Attached),
        400..=499 => serde_json::from_slice(body).ok().map(Answer::Refused),
        _ => None,
    }
}

/// `run/attach.sock` beside the stub's main socket.
fn attach_socket_of(main_socket: &str) -> Option<String> {
    let run = Path::new(main_socket).parent()?;
    let name = Path::new(paths::ATTACH_SOCKET_FILE).file_name()?;
    Some(run.join(name).to_string_lossy().into_owned())
}

/// What identifies the host's stub: the account it runs as on that address.
fn host_key(target: &SshTarget) -> String {
    format!("{}@{}:{}", target.user, target.hostname, target.port)
}

fn record_file() -> PathBuf {
    state_dir().join(RECORD_FILE)
}

fn known_sockets() -> BTreeMap<String, String> {
    std::fs::read(record_file())
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

fn known_socket(target: &SshTarget) -> Option<String> {
    known_sockets().remove(&host_key(target))
}

/// Remember where the host's stub listens, for the next create's attach. Best effort: without the
/// record the next create probes.
pub fn remember(target: &SshTarget, info: &StubInfo) {
    let key = host_key(target);
    let mut sockets = known_sockets();
    if sockets.get(&key) == Some(&info.socket) {
        return;
    }
    sockets.insert(key, info.socket.clone());
    let Ok(bytes) = serde_json::to_vec_pretty(&sockets) else {
        return;
    };
    if let Err(error) = write_private(RECORD_FILE, &bytes) {
        log::debug!("recording the stub's socket: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_attach_socket_should_be_beside_the_main_one() {
        assert_eq!(
            attach_socket_of("/home/u/.opencode-remote/run/stub.sock").as_deref(),
            Some("/home/u/.opencode-remote/run/attach.sock")
        );
    }

    #[test]
    fn answers_should_be_read_by_status() {
        let ok = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 9\r\n\r\n{}",
            r#"{"system":"Linux x86_64","info":{"pid":1,"socket":"/h/run/stub.sock","version":"0.1.0","protocol":2,"startedAt":1},"token":"t","workspace":{"id":"w","root":"/r"}}"#
        );
        assert!(matches!(parse_answer(ok.as_bytes()), Some(Answer::Attached(a)) if a.token == "t"));
        let refused = "HTTP/1.1 400 Bad Request\r\n\r\n{\"error\":{\"type\":\"not_directory\",\"message\":\"no\"}}";
        assert!(matches!(
            parse_answer(refused.as_bytes()),
            Some(Answer::Refused(e)) if e.error.message == "no"
        ));
        assert!(parse_answer(b"HTTP/1.1 500 Oops\r\n\r\n{}").is_none());
        let head = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n";
        assert_eq!(
            whole_answer(format!("{head}{{}}").as_bytes()),
            None,
            "half the body"
        );
        assert_eq!(
            whole_answer(format!("{head}{{}}{{}}more").as_bytes()),
            Some(format!("{head}{{}}{{}}").as_bytes())
        );
        assert!(parse_answer(b"garbage").is_none());
    }
}
