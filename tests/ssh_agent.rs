//! Auth through ssh-agent. A binary of its own because auth reads `SSH_AUTH_SOCK` from the process
//! environment, which this test sets; keep it the only test here so nothing races on that variable.

#[allow(
    dead_code,
    reason = "each test binary uses a different part of the fixture"
)]
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{keygen, Sshd};
use opencode_remote::error::Error;
use opencode_remote::ssh::connect::connect;

const PASSPHRASE: &str = "secret-pass";

/// `ssh-agent -D -a <dir>/agent.sock`, killed on drop.
struct Agent {
    child: Child,
    socket: PathBuf,
}

impl Agent {
    fn start(dir: &Path) -> Agent {
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .env("HOME", dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ssh-agent");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !socket.exists() {
            assert!(
                Instant::now() < deadline,
                "ssh-agent did not create its socket"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Agent { child, socket }
    }

    /// `ssh-add` an encrypted key, answering the passphrase prompt through `SSH_ASKPASS`.
    fn add(&self, key: &Path, passphrase: &str, dir: &Path) {
        let askpass = dir.join("askpass.sh");
        std::fs::write(
            &askpass,
            format!("#!/bin/sh\nprintf '%s\\n' '{passphrase}'\n"),
        )
        .expect("write askpass");
        std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o700))
            .expect("chmod askpass");
        let output = Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.socket)
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("HOME", dir)
            .stdin(Stdio::null())
            .output()
            .expect("run ssh-add");
        assert!(
            output.status.success(),
            "ssh-add: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_should_sign_only_for_the_configured_identity() {
    let sshd = Sshd::spawn();
    let locked = sshd.dir.path().join("id_locked");
    keygen(&locked, PASSPHRASE);
    sshd.authorize(&locked);
    let agent = Agent::start(sshd.dir.path());
    agent.add(&locked, PASSPHRASE, sshd.dir.path());
    // The only test in this process, so no other thread reads the environment concurrently.
    std::env::set_var("SSH_AUTH_SOCK", &agent.socket);

    // The file is encrypted, so only the agent can have signed.
    let mut target = sshd.target();
    target.identity_files = vec![locked];
    let connection = connect(&target).await.expect("auth through the agent");
    assert_eq!(
        connection
            .exec("echo via-agent", None)
            .await
            .expect("exec")
            .stdout_text(),
        "via-agent\n"
    );

    // IdentitiesOnly: the agent's key is authorized but is not this identity, so it is never offered.
    let stranger = sshd.dir.path().join("id_stranger");
    keygen(&stranger, "");
    target.identity_files = vec![stranger];
    match connect(&target).await {
        Err(Error::AuthFailed { tried, .. }) => {
            assert!(
                tried.iter().all(|t| !t.starts_with("agent")),
                "agent key offered: {tried:?}"
            )
        }
        Err(other) => panic!("expected AUTH_FAILED, got {}: {other}", other.code()),
        Ok(_) => panic!("the agent's key was used despite identities_only"),
    }
    std::env::remove_var("SSH_AUTH_SOCK");
}
