//! The local port forward against a real sshd: bytes arrive intact, and the tunnel heals itself when
//! the SSH connection is killed.

#[allow(
    dead_code,
    reason = "each test binary uses a different part of the fixture"
)]
mod common;

use std::time::Duration;

use common::Sshd;
use opencode_remote::ssh::tunnel::Tunnel;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP echo server on loopback: the "remote" service the tunnel reaches through sshd.
async fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut reader, mut writer) = socket.split();
                let _ = tokio::io::copy(&mut reader, &mut writer).await;
            });
        }
    });
    port
}

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
    let service = echo_server().await;
    let tunnel = Tunnel::open(sshd.target(), service)
        .await
        .expect("open tunnel");
    let payload: Vec<u8> = (0..4 * 1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    assert_eq!(round_trip(tunnel.local_port(), &payload).await, payload);
}

#[tokio::test(flavor = "multi_thread")]
async fn tunnel_should_heal_after_the_ssh_connection_is_killed() {
    std::env::remove_var("SSH_AUTH_SOCK");
    let sshd = Sshd::spawn();
    let service = echo_server().await;
    let tunnel = Tunnel::open(sshd.target(), service)
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
