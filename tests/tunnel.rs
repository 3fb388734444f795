//! The forward to a Unix socket against a real sshd (stream-local forwarding): bytes arrive intact,
//! the tunnel heals itself when the SSH connection is killed, and a server that refuses stream-local
//! forwarding is told apart from a socket nobody listens on.

#[allow(
    dead_code,
    reason = "each test binary uses a different part of the fixture"
)]
mod common;

use std::time::Duration;

use common::{echo_server, Sshd, SshdOptions};
use opencode_remote::ssh::tunnel::{OpenFailure, Tunnel};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn round_trip(port: u16, payload: &[u8]) -> Vec<u8> {
    let mut socket = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to tunnel");
    let (mut reader, mut writer) = socket.split();
    let write = async {
        writer.write_all(payload).await.expect("write");
        writer.shutdown().await.expect("shutdown");
    };
    let mut echoed = Vec::new();
    let read = reader.read_to_end(&mut echoed);
    let (_, read) = tokio::join!(write, read);
    read.expect("read");
    echoed
}

#[tokio::test(flavor = "multi_thread")]
async fn tunnel_should_carry_bytes_intact() {
    std::env::remove_var("SSH_AUTH_SOCK");
    let sshd = Sshd::spawn();
    let (service, _dir) = echo_server().await;
    let tunnel = Tunnel::open(sshd.target(), &service)
        .await
        .expect("open tunnel");
    let payload: Vec<u8> = (0..4 * 1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    assert_eq!(round_trip(tunnel.local_port(), &payload).await, payload);
}

#[tokio::test(flavor = "multi_thread")]
async fn tunnel_should_heal_after_the_ssh_connection_is_killed() {
    std::env::remove_var("SSH_AUTH_SOCK");
    let sshd = Sshd::spawn();
    let (service, _dir) = echo_server().await;
    let tunnel = Tunnel::open(sshd.target(), &service)
        .await
        .expect("open tunnel");
    assert_eq!(round_trip(tunnel.local_port(), b"before").await, b"before");
    assert!(
        sshd.kill_connections() > 0,
        "there was a connection to kill"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(round_trip(tunnel.local_port(), b"after").await, b"after");
}

/// OpenSSH answers "connect failed" both when nothing listens on the socket and when its
/// `AllowStreamLocalForwarding no` refuses the channel: the tunnel records that answer (the
/// workspace code then asks the host whether the stub answers there).
#[tokio::test(flavor = "multi_thread")]
async fn tunnel_should_record_a_refused_channel() {
    std::env::remove_var("SSH_AUTH_SOCK");
    let (service, _dir) = echo_server().await;
    for (extra, socket) in [
        (
            vec!["AllowStreamLocalForwarding no".to_string()],
            service.clone(),
        ),
        (Vec::new(), format!("{service}.missing")),
    ] {
        let sshd = Sshd::spawn_with(SshdOptions {
            extra_config: extra.clone(),
            ..SshdOptions::default()
        });
        let tunnel = Tunnel::open(sshd.target(), &socket)
            .await
            .expect("open tunnel");
        assert_eq!(tunnel.open_failure(), None);
        // The local connection is closed without an answer.
        let mut socket = TcpStream::connect(("127.0.0.1", tunnel.local_port()))
            .await
            .expect("connect to tunnel");
        let mut answer = Vec::new();
        let _ = socket.read_to_end(&mut answer).await;
        assert!(answer.is_empty());
        assert_eq!(
            tunnel.open_failure(),
            Some(OpenFailure::ConnectFailed),
            "{extra:?}"
        );
        if !extra.is_empty() {
            assert!(
                sshd.log_text().contains("refused streamlocal port forward"),
                "{}",
                sshd.log_text()
            );
        }
    }
}
