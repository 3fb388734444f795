//! A cheap "does anything answer" check: a TCP connect to the first hop, without SSH. It lets a
//! provider skip a host that is down instead of failing the whole workspace create on it.

use std::time::Duration;

use super::config::SshTarget;

/// `Ok` when the first hop on the way to `target` accepts a TCP connection within `timeout`; else why
/// not, in words (never shown to the model: it names addresses).
pub async fn first_hop_answers(target: &SshTarget, timeout: Duration) -> Result<(), String> {
    let hop = target.proxy_jump.first().unwrap_or(target);
    if hop.proxy_command.is_some() {
        // Reached through a command: probing it would mean running it; the connection will tell.
        return Ok(());
    }
    let connect = tokio::net::TcpStream::connect((hop.hostname.as_str(), hop.port));
    match tokio::time::timeout(timeout, connect).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {} s", timeout.as_secs())),
    }
}
