//! Helper for `bench/workspace.mjs` (not a test): the addon's SSH core driven directly, without napi.
//!
//! ```text
//! tunnel_bench tunnel <port> <user> <identity> <known_hosts> <remote_socket>
//!     Opens `opencode_remote::ssh::tunnel::Tunnel` to the Unix socket <remote_socket> on the host and prints
//!     `PORT <local port>`; serves until stdin closes.
//! tunnel_bench tunnel-shared <port> <user> <identity> <known_hosts> <remote_socket> <helper>
//!     The same, with this process holding no connection: each channel goes through the
//!     connection-sharing helper <helper> (`opencode_remote::ssh::mux`), as in a process that found
//!     the helper up.
//! tunnel_bench rtt <port> <user> <identity> <known_hosts> <samples>
//!     Per sample, a fresh connection: `connect()` (TCP, key exchange, host-key check, auth) timed
//!     alone, then one exec round trip (`true`: channel open, exec, exit status, close) on it.
//!     Prints `RTT {"handshakeMs": [...], "execMs": [...]}`.
//! tunnel_bench ackhop <port>
//!     A zero-delay hop to 127.0.0.1:<port> that acknowledges what it reads at once, as our client
//!     does on a direct connection; prints `PORT <local port>` and serves until stdin closes. The
//!     bench puts it between its delaying relay and sshd: the relay (Node) cannot ask for quick ACKs,
//!     so its kernel delays them, and sshd's Nagle then holds the end of a large answer for up to
//!     40 ms, a stall that no real link to our client has.
//! ```
//!
//! Build: `cargo build --release --example tunnel_bench`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use opencode_remote::config::HostKeyPolicy;
use opencode_remote::ssh::config::SshTarget;
use opencode_remote::ssh::connect::connect;
use opencode_remote::ssh::quick_ack::QuickAck;
use opencode_remote::ssh::tunnel::Tunnel;

fn target(args: &[String]) -> SshTarget {
    SshTarget {
        name: "bench".into(),
        hostname: "127.0.0.1".into(),
        port: args[0].parse().expect("port"),
        user: args[1].clone(),
        identity_files: vec![PathBuf::from(&args[2])],
        identities_only: true,
        proxy_jump: Vec::new(),
        proxy_command: None,
        global_known_hosts_files: Vec::new(),
        host_key_alias: None,
        certificate_files: Vec::new(),
        known_hosts_files: vec![PathBuf::from(&args[3])],
        host_key_policy: HostKeyPolicy::Strict,
        connect_timeout: Duration::from_secs(10),
        keepalive_interval: Duration::from_secs(15),
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    std::env::remove_var("SSH_AUTH_SOCK");
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() == 2 && args[0] == "ackhop" {
        return ack_hop(args[1].parse().expect("port")).await;
    }
    let usage = "usage: tunnel_bench tunnel|rtt <port> <user> <identity> <known_hosts> <n> \
                 | tunnel-shared <port> <user> <identity> <known_hosts> <socket> <helper>";
    if args.len() == 7 && args[0] == "tunnel-shared" {
        opencode_remote::ssh::mux::use_helper(PathBuf::from(&args[6]));
    } else if args.len() != 6 {
        eprintln!("{usage}");
        std::process::exit(2);
    }
    let target = target(&args[1..5]);
    match args[0].as_str() {
        "tunnel" | "tunnel-shared" => {
            let tunnel = Tunnel::open(target, &args[5]).await.expect("open tunnel");
            println!("PORT {}", tunnel.local_port());
            until_stdin_closes().await;
        }
        "rtt" => {
            let n: u32 = args[5].parse().expect("number");
            let (mut handshake, mut exec) = (Vec::new(), Vec::new());
            for _ in 0..n {
                let started = Instant::now();
                let connection = connect(&target).await.expect("connect");
                handshake.push(ms(started));
                let started = Instant::now();
                let output = connection.exec("true", None).await.expect("exec");
                exec.push(ms(started));
                assert!(output.success(), "`true` failed");
                connection.close().await;
            }
            println!("RTT {{\"handshakeMs\": {handshake:?}, \"execMs\": {exec:?}}}");
        }
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    }
}

/// Serve until the bench closes our stdin.
async fn until_stdin_closes() {
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink)
    })
    .await;
}

/// Forward every connection to `127.0.0.1:port`, acknowledging the server's data at once.
async fn ack_hop(port: u16) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    println!("PORT {}", listener.local_addr().expect("port").port());
    let accept = async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
                    return;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut QuickAck(server)).await;
            });
        }
    };
    tokio::select! {
        _ = accept => {}
        _ = until_stdin_closes() => {}
    }
}
