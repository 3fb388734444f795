//! Talking to the running stub from its own host, as the same user: `status` (is it there and
//! healthy?) and `attach` (status, then register a workspace). The addon runs these inside its one
//! probe exec, so a warm workspace costs a single SSH round trip instead of tunnel, health and
//! register round trips. The token is read from its 0600 file here and never leaves the host.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use opencode_remote_protocol::{
    paths as layout, routes, Health, RegisterWorkspace, StubInfo, BEARER_PREFIX,
    EXIT_ATTACH_REFUSED, EXIT_NOT_RUNNING, EXIT_OUTDATED, PROTOCOL_VERSION,
};

use crate::read_token;

/// How long to wait for the recorded stub's health answer.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);
/// Registering writes and fsyncs the workspace file, which a busy disk can make slow.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(20);

/// The recorded stub, answering health with its own pid, and the token it accepts.
enum Running {
    Yes {
        info: StubInfo,
        token: Vec<u8>,
        health: Vec<u8>,
    },
    /// Our stub, but of an older protocol: not talked to; the client replaces it.
    Outdated(StubInfo),
    No(String),
}

/// `status`: 0 and the health JSON on stdout when the stub recorded in `run/stub.json` answers
/// health; [`EXIT_NOT_RUNNING`] when there is none or it does not answer; [`EXIT_OUTDATED`] when it
/// is our stub of an older protocol; 1 when it answers but refuses our token.
pub fn status(home: &Path) -> Result<i32> {
    match running(home)? {
        Running::Yes { health, .. } => {
            println!("{}", String::from_utf8_lossy(&health));
            Ok(0)
        }
        Running::Outdated(info) => outdated(&info),
        Running::No(why) => not_running(&why),
    }
}

/// `attach`: like `status`, then register `workspace` with `root` (idempotent). Prints three lines:
/// the running stub's [`StubInfo`], its token (for the addon's tunnel; this output only travels inside
/// the SSH channel), and the [`opencode_remote_protocol::WorkspaceInfo`] (exit 0) or the stub's error
/// (exit [`EXIT_ATTACH_REFUSED`]). One process doing all of it keeps the addon's probe cheap.
pub fn attach(home: &Path, workspace: &str, root: &str) -> Result<i32> {
    let (info, token) = match running(home)? {
        Running::Yes { info, token, .. } => (info, token),
        Running::Outdated(info) => return outdated(&info),
        Running::No(why) => return not_running(&why),
    };
    let body = serde_json::to_vec(&RegisterWorkspace {
        id: workspace.to_string(),
        root: root.to_string(),
    })?;
    let (code, answer) = http(
        Path::new(&info.socket),
        "POST",
        routes::WORKSPACES,
        &token,
        Some(&body),
        REGISTER_TIMEOUT,
    )?;
    // What `uname -sm` would say: the probe then needs no `uname` process when this answers.
    println!("{}", system_and_machine());
    println!("{}", serde_json::to_string(&info)?);
    println!("{}", String::from_utf8_lossy(&token));
    println!("{}", String::from_utf8_lossy(&answer));
    Ok(if code == 200 { 0 } else { EXIT_ATTACH_REFUSED })
}

/// `uname -sm` (the kernel's name and the machine), from uname(2).
pub fn system_and_machine() -> String {
    // SAFETY: uname(2) only fills the struct it is given.
    let mut names: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut names) } != 0 {
        return String::new();
    }
    let text = |field: &[libc::c_char]| {
        let bytes: Vec<u8> = field
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    format!("{} {}", text(&names.sysname), text(&names.machine))
}

fn not_running(why: &str) -> Result<i32> {
    eprintln!("opencode-remote-stub: not running: {why}");
    Ok(EXIT_NOT_RUNNING)
}

fn outdated(info: &StubInfo) -> Result<i32> {
    eprintln!(
        "opencode-remote-stub: stub {} (pid {}) speaks protocol {}, this one {PROTOCOL_VERSION}; replace it",
        info.version, info.pid, info.protocol
    );
    Ok(EXIT_OUTDATED)
}

fn running(home: &Path) -> Result<Running> {
    let info: StubInfo = match fs::read(home.join(layout::INFO_FILE)) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(info) => info,
            Err(e) => {
                return Ok(Running::No(format!(
                    "unreadable {}: {e}",
                    layout::INFO_FILE
                )))
            }
        },
        Err(_) => return Ok(Running::No(format!("no {}", layout::INFO_FILE))),
    };
    if info.protocol != PROTOCOL_VERSION {
        // Never talked to (a protocol-1 stub listens on a TCP port), only reported for replacing.
        return Ok(match crate::owner::check_process(home, info.pid) {
            Ok(()) => Running::Outdated(info),
            Err(why) => Running::No(why),
        });
    }
    let socket = crate::socket::socket_path(home)?;
    if Path::new(&info.socket) != socket {
        return Ok(Running::No(format!(
            "{} names the socket {:?}, not {}",
            layout::INFO_FILE,
            info.socket,
            socket.display()
        )));
    }
    // The token goes to the socket only once it is proven to be our own stub's.
    if let Err(why) = crate::owner::check(home, info.pid, &socket) {
        return Ok(Running::No(why));
    }
    let token = read_token(&home.join(layout::TOKEN_FILE))?;
    let (code, body) = match http(&socket, "GET", routes::HEALTH, &token, None, HEALTH_TIMEOUT) {
        Ok(r) => r,
        Err(e) => {
            return Ok(Running::No(format!(
                "{} does not answer: {e:#}",
                socket.display()
            )))
        }
    };
    match code {
        200 => {
            let health: Health = serde_json::from_slice(&body).context("bad health answer")?;
            if health.pid != info.pid {
                return Ok(Running::No(format!(
                    "{} is served by another process ({})",
                    socket.display(),
                    health.pid
                )));
            }
            Ok(Running::Yes {
                info,
                token,
                health: body,
            })
        }
        401 => bail!(
            "the stub on {} refuses the token in {}",
            socket.display(),
            layout::TOKEN_FILE
        ),
        other => Ok(Running::No(format!("health answered HTTP {other}"))),
    }
}

/// One HTTP/1.1 request on the stub's socket with `Connection: close`: all `status` and `attach`
/// need.
fn http(
    socket: &Path,
    method: &str,
    path: &str,
    token: &[u8],
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<(u16, Vec<u8>)> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let body = body.unwrap_or_default();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nAuthorization: {BEARER_PREFIX}",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(token);
    request.extend_from_slice(b"\r\n\r\n");
    request.extend_from_slice(body);
    stream.write_all(&request)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let head_end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("incomplete HTTP answer")?;
    let head = String::from_utf8_lossy(&response[..head_end]);
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("bad HTTP status line")?;
    Ok((code, response[head_end + 4..].to_vec()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn system_and_machine_should_say_what_uname_says() {
        let uname = std::process::Command::new("uname")
            .arg("-sm")
            .output()
            .unwrap();
        assert_eq!(
            super::system_and_machine(),
            String::from_utf8_lossy(&uname.stdout).trim()
        );
    }
}
