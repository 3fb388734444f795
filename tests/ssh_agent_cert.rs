//! A user certificate held by ssh-agent is offered. A binary of its own because auth reads
//! `SSH_AUTH_SOCK` from the process environment, which this test sets; keep it the only test here.

#[allow(
    dead_code,
    reason = "each test binary uses a different part of the fixture"
)]
mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{keygen, Sshd, SshdOptions, USER};
use opencode_remote::ssh::connect::connect;

/// `ssh-agent -D -a <socket>`, killed on drop.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_should_offer_the_certificate_it_holds() {
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = ca_dir.path().join("user_ca");
    keygen(&ca, "");
    let sshd = Sshd::spawn_with(SshdOptions {
        extra_config: vec![format!("TrustedUserCAKeys \"{}.pub\"", ca.display())],
        ..SshdOptions::default()
    });
    let key = ca_dir.path().join("id_agent_cert");
    keygen(&key, "");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-s"])
        .arg(&ca)
        .args(["-I", "agent-cert", "-n", USER.as_str(), "-V", "-5m:+1h"])
        .arg(format!("{}.pub", key.display()))
        .status()
        .expect("ssh-keygen -s");
    assert!(status.success());

    let socket = ca_dir.path().join("agent.sock");
    let _agent = Agent(
        Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ssh-agent"),
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "ssh-agent did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    // ssh-add loads `<key>-cert.pub` with the key.
    let added = Command::new("ssh-add")
        .arg(&key)
        .env("SSH_AUTH_SOCK", &socket)
        .stdin(Stdio::null())
        .output()
        .expect("ssh-add");
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    // Only the agent has the key and certificate now.
    std::fs::remove_file(&key).unwrap();
    std::fs::remove_file(PathBuf::from(format!("{}-cert.pub", key.display()))).unwrap();
    // The only test in this process, so no other thread reads the environment concurrently.
    std::env::set_var("SSH_AUTH_SOCK", &socket);

    let mut target = sshd.target();
    target.identity_files = Vec::new();
    target.identities_only = false;
    let connection = connect(&target)
        .await
        .expect("auth with the agent's certificate");
    assert!(
        connection.auth_method.starts_with("ssh-agent certificate"),
        "{}",
        connection.auth_method
    );
    std::env::remove_var("SSH_AUTH_SOCK");
}
