//! OpenSSH user certificates at auth: a `<key>-cert.pub` beside the identity file and a
//! `CertificateFile` are offered with their key, against an sshd that trusts only the CA (the key
//! itself is not in `authorized_keys`).

#[allow(
    dead_code,
    reason = "each test binary uses a different part of the fixture"
)]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{keygen, Sshd, SshdOptions, USER};
use opencode_remote::error::Error;
use opencode_remote::ssh::connect::connect;

/// An sshd trusting certificates signed by a fresh CA in its temp dir; returns it and the CA key.
fn sshd_trusting_a_ca() -> (Sshd, tempfile::TempDir, PathBuf) {
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = ca_dir.path().join("user_ca");
    keygen(&ca, "");
    let sshd = Sshd::spawn_with(SshdOptions {
        extra_config: vec![format!("TrustedUserCAKeys \"{}.pub\"", ca.display())],
        ..SshdOptions::default()
    });
    (sshd, ca_dir, ca)
}

/// `ssh-keygen -s ca` for `key.pub`, valid for the test user; the certificate is moved to `to`.
fn sign(ca: &Path, key: &Path, to: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-s"])
        .arg(ca)
        .args([
            "-I",
            "opencode-remote-test",
            "-n",
            USER.as_str(),
            "-V",
            "-5m:+1h",
        ])
        .arg(format!("{}.pub", key.display()))
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen -s runs");
    assert!(status.success(), "ssh-keygen -s failed");
    let made = PathBuf::from(format!("{}-cert.pub", key.display()));
    if made != to {
        std::fs::rename(&made, to).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_should_offer_a_certificate_beside_the_identity_file() {
    let (sshd, _ca_dir, ca) = sshd_trusting_a_ca();
    let key = sshd.dir.path().join("id_cert_user");
    keygen(&key, "");
    let mut target = sshd.target();
    target.identity_files = vec![key.clone()];
    match connect(&target).await {
        Err(Error::AuthFailed { .. }) => {}
        Err(other) => panic!("expected AUTH_FAILED without a certificate, got {other}"),
        Ok(_) => panic!("the key alone must not be accepted"),
    }
    sign(
        &ca,
        &key,
        &PathBuf::from(format!("{}-cert.pub", key.display())),
    );
    let connection = connect(&target).await.expect("auth with the certificate");
    assert!(
        connection.auth_method.contains("certificate"),
        "{}",
        connection.auth_method
    );
    let output = connection.exec("echo cert-ok", None).await.expect("exec");
    assert_eq!(output.stdout_text(), "cert-ok\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_should_offer_a_certificate_file_with_its_key() {
    let (sshd, _ca_dir, ca) = sshd_trusting_a_ca();
    let key = sshd.dir.path().join("id_other");
    keygen(&key, "");
    let cert = sshd.dir.path().join("elsewhere-cert.pub");
    sign(&ca, &key, &cert);
    let mut target = sshd.target();
    target.identity_files = vec![key];
    target.certificate_files = vec![cert];
    let connection = connect(&target).await.expect("auth with CertificateFile");
    assert!(
        connection.auth_method.contains("elsewhere-cert.pub"),
        "{}",
        connection.auth_method
    );
}
