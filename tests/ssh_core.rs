//! The SSH core against a real OpenSSH sshd on 127.0.0.1 (see `common`): exec, quoting, SFTP, host keys,
//! auth, ProxyJump and the pool.
//!
//! No test here may use an ssh-agent: `SSH_AUTH_SOCK` is removed for the whole binary (agent tests are in
//! `ssh_agent.rs`, a separate process).

#[allow(
    dead_code,
    reason = "each test binary uses a different part of the fixture"
)]
mod common;

use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use common::{free_port, keygen, Sshd, SshdOptions, USER};
use opencode_remote::config::HostKeyPolicy;
use opencode_remote::error::Error;
use opencode_remote::ssh::connect::{connect, MAX_CHANNELS_PER_CONNECTION};
use opencode_remote::ssh::pool::POOL;
use opencode_remote::ssh::quote::command_line;

/// sshd with `SSH_AUTH_SOCK` gone from this process first, so auth never consults an agent (not even the
/// developer's own). The `Once` makes the first test remove it before any test connects.
fn sshd() -> Sshd {
    sshd_with(SshdOptions::default())
}

fn sshd_with(options: SshdOptions) -> Sshd {
    static NO_AGENT: Once = Once::new();
    NO_AGENT.call_once(|| {
        if std::env::var_os("SSH_AUTH_SOCK").is_some() {
            std::env::remove_var("SSH_AUTH_SOCK");
        }
    });
    Sshd::spawn_with(options)
}

fn expect_err(result: Result<impl Sized, Error>) -> (&'static str, Error) {
    match result {
        Ok(_) => panic!("expected an error, got a connection"),
        Err(error) => (error.code(), error),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_should_return_stdout_stderr_and_exit_status_separately() {
    let sshd = sshd();
    let connection = connect(&sshd.target()).await.expect("connect");
    let output = connection
        .exec("echo out; echo err >&2; exit 3", None)
        .await
        .expect("exec");
    assert_eq!(output.stdout_text(), "out\n");
    assert_eq!(output.stderr_text(), "err\n");
    assert_eq!(output.exit_status, Some(3));
    assert!(!output.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_should_feed_stdin_then_eof() {
    let sshd = sshd();
    let connection = connect(&sshd.target()).await.expect("connect");
    let output = connection
        .exec("cat", Some(b"line one\nline two\n"))
        .await
        .expect("exec");
    assert_eq!(output.stdout_text(), "line one\nline two\n");
    assert_eq!(output.exit_status, Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_should_deliver_a_large_output_whole() {
    let sshd = sshd();
    let connection = connect(&sshd.target()).await.expect("connect");
    // 300 000 lines of 8 bytes: 2.4 MB, more than russh's 2 MiB window, in a checkable order.
    let output = connection
        .exec("seq 1000000 1299999", None)
        .await
        .expect("exec");
    let expected: String = (1_000_000..1_300_000).map(|n| format!("{n}\n")).collect();
    assert!(expected.len() > 2 << 20);
    assert_eq!(output.stdout.len(), expected.len());
    assert!(
        output.stdout == expected.as_bytes(),
        "output differs from seq's"
    );
    assert_eq!(output.exit_status, Some(0));
}

/// A runaway or hostile remote cannot grow our memory without bound: past the cap the command fails.
/// (The production cap is the largest session export plus its status line; a small one keeps this fast.)
#[tokio::test(flavor = "multi_thread")]
async fn exec_should_refuse_output_beyond_its_cap() {
    let sshd = sshd();
    let connection = connect(&sshd.target()).await.expect("connect");
    let cap = 1 << 20;
    let whole = connection
        .exec_capped(&format!("head -c {cap} /dev/zero"), None, cap)
        .await
        .expect("output of exactly the cap is fine");
    assert_eq!(whole.stdout.len(), cap);
    let error = connection
        .exec_capped("head -c 3000000 /dev/zero", None, cap)
        .await
        .expect_err("3 MB over a 1 MiB cap");
    assert_eq!(error.code(), "REMOTE_RUN_FAILED");
    assert!(
        error.to_string().contains("more than 1048576 bytes"),
        "{error}"
    );
    const {
        assert!(
            opencode_remote::ssh::exec::MAX_STDOUT_BYTES
                > opencode_remote::session::MAX_EXPORT_BYTES
        )
    };
    // The connection is still usable afterwards.
    let output = connection.exec("echo ok", None).await.expect("exec");
    assert_eq!(output.stdout_text(), "ok\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_should_pass_large_stdin_through_to_stdout() {
    let sshd = sshd();
    let connection = connect(&sshd.target()).await.expect("connect");
    let input: Vec<u8> = (0..(2u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        connection.exec("cat", Some(&input)),
    )
    .await
    .expect("2 MiB through `cat` finishes (no flow-control deadlock)")
    .expect("exec");
    assert_eq!(output.stdout.len(), input.len());
    assert!(output.stdout == input, "cat echoed different bytes");
}

#[tokio::test(flavor = "multi_thread")]
async fn command_line_should_reach_the_remote_shell_verbatim() {
    let sshd = sshd();
    let connection = connect(&sshd.target()).await.expect("connect");
    let marker = sshd.dir.path().join("pwned");
    let marker = marker.display();
    let hostile = format!(
        "it's \"quoted\" $(touch {marker}) `touch {marker}` ; touch {marker} && echo no \
         | cat\rsecond line\t$HOME ${{PATH}} * ? ~ ! \\ \\n ü 日本 🦀 %s %n"
    );
    let line = command_line(&["printf", "%s", &hostile]);
    let output = connection.exec(&line, None).await.expect("exec");
    assert_eq!(output.stdout_text(), hostile);
    assert_eq!(output.stderr_text(), "");
    assert_eq!(output.exit_status, Some(0));
    // Control: unquoted, the same substitution does run, so the marker check above can fail.
    let control = sshd.dir.path().join("control");
    let unquoted = format!("printf %s $(touch {})", control.display());
    connection.exec(&unquoted, None).await.expect("exec");
    assert!(
        control.exists(),
        "the control command substitution did not run"
    );
    assert!(
        !sshd.dir.path().join("pwned").exists(),
        "the remote shell ran part of the argument"
    );
    // A newline ends a command in csh even inside quotes, so no line with one is ever sent.
    let two_lines = command_line(&["printf", "%s", &format!("x\n; touch {marker} '")]);
    let error = connection
        .exec(&two_lines, None)
        .await
        .expect_err("a command line with a newline");
    assert_eq!(error.code(), "REMOTE_RUN_FAILED");
    assert!(!sshd.dir.path().join("pwned").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn sftp_should_create_dirs_and_upload_atomically() {
    let sshd = sshd();
    let connection = connect(&sshd.target()).await.expect("connect");
    let sftp = connection.sftp().await.expect("sftp");
    let dir = sshd.dir.path().join("remote/a/b/c");
    let dir_text = dir.to_str().expect("utf-8 temp dir");
    sftp.create_dir_all(dir_text).await.expect("create_dir_all");
    sftp.create_dir_all(dir_text)
        .await
        .expect("create_dir_all is idempotent");
    assert!(dir.is_dir());

    let path = format!("{dir_text}/stub");
    let data: Vec<u8> = (0..(3u32 << 20))
        .map(|i| (i.wrapping_mul(40_503) >> 7) as u8)
        .collect();
    sftp.upload_atomic(&path, &data, 0o755)
        .await
        .expect("upload");
    assert!(sftp.exists(&path).await.expect("exists"));
    assert!(
        sftp.download(&path).await.expect("download") == data,
        "downloaded bytes differ"
    );
    assert_eq!(
        sftp.mode(&path).await.expect("mode").map(|m| m & 0o7777),
        Some(0o755)
    );

    let replacement = b"#!/bin/sh\necho replaced\n".to_vec();
    sftp.upload_atomic(&path, &replacement, 0o700)
        .await
        .expect("overwrite");
    assert_eq!(sftp.download(&path).await.expect("download"), replacement);
    assert_eq!(
        sftp.mode(&path).await.expect("mode").map(|m| m & 0o7777),
        Some(0o700)
    );
    assert_eq!(
        connection
            .exec(&command_line(&[&path]), None)
            .await
            .expect("run")
            .stdout_text(),
        "replaced\n"
    );

    let names: Vec<String> = std::fs::read_dir(&dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["stub"], "temp files left behind");
    assert!(!sftp
        .exists(&format!("{dir_text}/missing"))
        .await
        .expect("exists"));
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_should_refuse_a_changed_host_key_without_leaking_the_address() {
    let sshd = sshd();
    let other_key = sshd.dir.path().join("other_host_key");
    keygen(&other_key, "");
    let line = format!(
        "[127.0.0.1]:{} {}\n",
        sshd.port,
        common::public_key_line(&other_key)
    );
    std::fs::write(&sshd.known_hosts, line).expect("write known_hosts");

    let (code, error) = expect_err(connect(&sshd.target()).await);
    assert_eq!(code, "HOST_KEY_CHANGED", "{error}");
    assert!(
        matches!(error, Error::HostKeyChanged { line: 1, .. }),
        "{error:?}"
    );
    let file = opencode_remote::error::display_path(&sshd.known_hosts);
    let message = error.public_message().replace(&file, "<known_hosts>");
    assert!(
        message.contains("testhost") && message.contains("<known_hosts>"),
        "{message}"
    );
    for secret in ["127.0.0.1", &sshd.port.to_string(), &format!("{}@", *USER)] {
        assert!(
            !message.contains(secret),
            "public message shows {secret:?}: {message}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_should_refuse_an_unknown_host_when_strict() {
    let sshd = sshd();
    let mut target = sshd.target();
    target.known_hosts_files = vec![sshd.dir.path().join("empty_known_hosts")];
    let (code, error) = expect_err(connect(&target).await);
    assert_eq!(code, "HOST_KEY_UNKNOWN", "{error}");
    assert!(
        !target.known_hosts_files[0].exists(),
        "strict must not write known_hosts"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_should_learn_an_unknown_host_with_accept_new() {
    let sshd = sshd();
    let known_hosts = sshd.dir.path().join("learned/known_hosts");
    let mut target = sshd.target();
    target.known_hosts_files = vec![known_hosts.clone()];
    target.host_key_policy = HostKeyPolicy::AcceptNew;
    let connection = connect(&target).await.expect("accept-new connects");
    assert!(connection.exec("true", None).await.expect("exec").success());

    let learned = std::fs::read_to_string(&known_hosts).expect("known_hosts written");
    let host_key = common::public_key_line(&sshd.host_key);
    let key_fields: Vec<&str> = host_key.split_whitespace().take(2).collect();
    let wanted = format!("[127.0.0.1]:{} {}", sshd.port, key_fields.join(" "));
    assert!(learned.lines().any(|l| l.starts_with(&wanted)), "{learned}");

    target.host_key_policy = HostKeyPolicy::Strict;
    connect(&target)
        .await
        .expect("strict connects after learning");
    assert_eq!(
        std::fs::read_to_string(&known_hosts).expect("read"),
        learned,
        "learned twice"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn authenticate_should_fail_with_a_key_the_server_does_not_know() {
    let sshd = sshd();
    let stranger = sshd.dir.path().join("id_stranger");
    keygen(&stranger, "");
    let mut target = sshd.target();
    target.identity_files = vec![stranger];
    let (code, error) = expect_err(connect(&target).await);
    assert_eq!(code, "AUTH_FAILED", "{error}");
    assert!(
        matches!(&error, Error::AuthFailed { tried, .. } if tried.len() == 1),
        "{error:?}"
    );
    assert!(
        !error.public_message().contains(&format!("{}@", *USER)),
        "{}",
        error.public_message()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn authenticate_should_report_an_encrypted_key_without_an_agent_promptly() {
    let sshd = sshd();
    let locked = sshd.dir.path().join("id_locked");
    keygen(&locked, "secret-pass");
    sshd.authorize(&locked);
    let mut target = sshd.target();
    target.identity_files = vec![locked.clone()];
    let started = Instant::now();
    let (code, error) = expect_err(connect(&target).await);
    assert_eq!(code, "KEY_ENCRYPTED", "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(&error, Error::KeyEncrypted { key, .. } if *key == locked),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_should_tunnel_through_a_proxy_jump() {
    let sshd = sshd();
    let mut target = sshd.target();
    target.proxy_jump = vec![sshd.target()];
    let accepted_before = sshd.log_text().matches("Accepted publickey").count();
    let connection = connect(&target)
        .await
        .expect("connect through the jump host");
    let output = connection
        .exec("echo $SSH_CONNECTION", None)
        .await
        .expect("exec");
    // "client_ip client_port server_ip server_port": the jump host's sshd dialled us from loopback.
    let fields: Vec<String> = output
        .stdout_text()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(fields.len(), 4, "{fields:?}");
    assert_eq!(fields[0], "127.0.0.1");
    assert_eq!(
        (fields[2].as_str(), fields[3].clone()),
        ("127.0.0.1", sshd.port.to_string())
    );
    let accepted = sshd.log_text().matches("Accepted publickey").count() - accepted_before;
    assert_eq!(
        accepted, 2,
        "one login for the jump host, one for the target"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pool_should_share_one_connection_and_replace_a_dead_one() {
    let sshd = sshd();
    let mut target = sshd.target();
    target.keepalive_interval = Duration::from_secs(1);
    let first = POOL.get(&target).await.expect("pool get");
    let again = POOL.get(&target).await.expect("pool get");
    assert!(
        Arc::ptr_eq(&first, &again),
        "a second get must reuse the connection"
    );
    drop(again);

    assert!(
        sshd.kill_connections() > 0,
        "no per-connection sshd to kill"
    );
    let deadline = Instant::now() + Duration::from_secs(8);
    while !first.is_closed() {
        assert!(
            Instant::now() < deadline,
            "the killed connection still looks open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let fresh = POOL.get(&target).await.expect("pool reconnects");
    assert!(
        !Arc::ptr_eq(&first, &fresh),
        "a dead connection was handed out"
    );
    assert_eq!(
        fresh
            .exec("echo alive", None)
            .await
            .expect("exec")
            .stdout_text(),
        "alive\n"
    );
    POOL.evict(&target).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_should_adapt_to_a_server_with_fewer_sessions_than_our_cap() {
    let sshd = sshd_with(SshdOptions {
        max_sessions: 2,
        ..SshdOptions::default()
    });
    let connection = Arc::new(connect(&sshd.target()).await.expect("connect"));
    let runs: Vec<_> = (0..6)
        .map(|i| {
            let connection = connection.clone();
            tokio::spawn(async move {
                (
                    i,
                    connection.exec(&format!("sleep 0.3; echo {i}"), None).await,
                )
            })
        })
        .collect();
    for run in runs {
        let (i, result) = run.await.expect("task");
        let output = result.unwrap_or_else(|e| panic!("exec {i} failed under MaxSessions 2: {e}"));
        assert_eq!(output.stdout_text(), format!("{i}\n"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_should_never_hold_more_sessions_on_the_server_than_our_cap() {
    // sshd frees a closed session's slot one event-loop pass after it reads our CLOSE, so a channel opened
    // at once would be counted on top of the old one: quick commands must still stay within our cap.
    let sshd = sshd();
    let connection = Arc::new(connect(&sshd.target()).await.expect("connect"));
    let runs: Vec<_> = (0..40)
        .map(|i| {
            let connection = connection.clone();
            tokio::spawn(async move { connection.exec(&format!("echo {i}"), None).await })
        })
        .collect();
    for (i, run) in runs.into_iter().enumerate() {
        let output = run.await.expect("task").expect("exec");
        assert_eq!(output.stdout_text(), format!("{i}\n"));
    }
    // sshd adds a session slot only when every slot is taken, so the highest slot id + 1 is the peak.
    let peak = sshd
        .log_text()
        .lines()
        .filter_map(|line| line.split_once("Starting session: ")?.1.rsplit_once(" id "))
        .filter_map(|(_, id)| id.trim().parse::<usize>().ok())
        .max()
        .expect("sessions logged")
        + 1;
    assert!(
        peak <= MAX_CHANNELS_PER_CONNECTION,
        "sshd held {peak} sessions at once; our cap is {MAX_CHANNELS_PER_CONNECTION}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_should_queue_beyond_the_channel_cap_on_one_connection() {
    let sshd = sshd();
    let target = sshd.target();
    let connection = POOL.get(&target).await.expect("pool get");
    let started = Instant::now();
    let runs: Vec<_> = (0..30)
        .map(|i| {
            let connection = connection.clone();
            tokio::spawn(async move {
                (
                    i,
                    connection.exec(&format!("sleep 0.2; echo {i}"), None).await,
                )
            })
        })
        .collect();
    for run in runs {
        let (i, result) = run.await.expect("task");
        let output = result.unwrap_or_else(|e| panic!("exec {i} failed: {e}"));
        assert_eq!(output.stdout_text(), format!("{i}\n"));
    }
    // 30 runs, at most MAX_CHANNELS_PER_CONNECTION (8) at once: at least 4 rounds of 0.2 s.
    assert_eq!(MAX_CHANNELS_PER_CONNECTION, 8);
    assert!(
        started.elapsed() >= Duration::from_millis(750),
        "not queued: {:?}",
        started.elapsed()
    );
    POOL.evict(&target).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_should_report_a_closed_port_as_unreachable_quickly() {
    let sshd = sshd();
    let mut target = sshd.target();
    target.port = free_port();
    let started = Instant::now();
    let (code, error) = expect_err(connect(&target).await);
    assert_eq!(code, "HOST_UNREACHABLE", "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pool_should_reconnect_after_the_server_restarts() {
    let mut sshd = sshd();
    let mut target = sshd.target();
    target.keepalive_interval = Duration::from_secs(1);
    let first = POOL.get(&target).await.expect("pool get");
    sshd.stop();
    let (code, error) = expect_err(connect(&target).await);
    assert_eq!(code, "HOST_UNREACHABLE", "{error}");
    sshd.restart();
    let deadline = Instant::now() + Duration::from_secs(8);
    while !first.is_closed() {
        assert!(
            Instant::now() < deadline,
            "the connection to the stopped sshd still looks open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let fresh = POOL.get(&target).await.expect("pool reconnects");
    assert_eq!(
        fresh
            .exec("echo back", None)
            .await
            .expect("exec")
            .stdout_text(),
        "back\n"
    );
    POOL.evict(&target).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_should_fail_promptly_when_the_connection_dies() {
    let sshd = sshd();
    let connection = Arc::new(connect(&sshd.target()).await.expect("connect"));
    let running = tokio::spawn({
        let connection = connection.clone();
        async move { connection.exec("sleep 30", None).await }
    });
    // Let the command start before the server side disappears.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sshd.log_text().contains("Starting session: command") {
        assert!(Instant::now() < deadline, "the command never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sshd.kill_connections();
    let result = tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("exec returns once the connection is gone")
        .expect("task");
    let (code, error) = expect_err(result);
    assert_eq!(code, "SSH_FAILED", "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_should_time_out_on_a_server_that_never_answers() {
    let sshd = sshd();
    // Accepts TCP (the kernel completes the handshake) but never sends an SSH banner.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut target = sshd.target();
    target.port = silent.local_addr().expect("addr").port();
    target.connect_timeout = Duration::from_secs(1);
    let started = Instant::now();
    let (code, error) = expect_err(connect(&target).await);
    assert_eq!(code, "HOST_UNREACHABLE", "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_should_return_when_the_command_ignores_a_large_stdin() {
    let sshd = sshd();
    let connection = connect(&sshd.target()).await.expect("connect");
    // More than OpenSSH's 2 MiB session window, so the server must consume stdin for the write to finish.
    let input = vec![b'x'; 8 << 20];
    for (command, status) in [("exit 4", 4), ("head -c 1 >/dev/null", 0)] {
        let output = tokio::time::timeout(
            Duration::from_secs(10),
            connection.exec(command, Some(&input)),
        )
        .await
        .unwrap_or_else(|_| panic!("`{command}` with unread stdin hangs exec"))
        .expect("exec");
        assert_eq!(output.exit_status, Some(status), "{command}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sftp_should_overwrite_files_concurrently_at_the_channel_cap() {
    let sshd = sshd();
    let connection = Arc::new(connect(&sshd.target()).await.expect("connect"));
    let files = 2 * MAX_CHANNELS_PER_CONNECTION;
    let uploads: Vec<_> = (0..files)
        .map(|i| {
            let path = sshd.dir.path().join(format!("file{i}"));
            std::fs::write(&path, b"old").expect("write");
            let connection = connection.clone();
            tokio::spawn(async move {
                let sftp = connection.sftp().await.expect("sftp");
                // Every slot is taken by an open Sftp before the first overwrite needs its `mv -f`.
                tokio::time::sleep(Duration::from_millis(300)).await;
                sftp.upload_atomic(path.to_str().expect("utf-8"), b"new", 0o644)
                    .await
            })
        })
        .collect();
    let all = async {
        for upload in uploads {
            upload.await.expect("task").expect("upload");
        }
    };
    tokio::time::timeout(Duration::from_secs(10), all)
        .await
        .expect("concurrent overwrites deadlocked");
    for i in 0..files {
        assert_eq!(
            std::fs::read(sshd.dir.path().join(format!("file{i}"))).expect("read"),
            b"new"
        );
    }
}

/// A key path from config may come with a cloned repository: a device or FIFO is skipped, not read
/// forever (`/dev/zero`) or waited on (a FIFO blocks `open` until a writer appears).
#[tokio::test(flavor = "multi_thread")]
async fn authenticate_should_skip_key_files_that_are_devices_or_fifos() {
    let sshd = sshd();
    let fifo = sshd.dir.path().join("id_fifo");
    let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let mut target = sshd.target();
    target.identity_files = vec!["/dev/zero".into(), fifo];
    // The guard only turns a hang into a failure; the assertion is on the error.
    let result = tokio::time::timeout(Duration::from_secs(60), connect(&target))
        .await
        .expect("a device or FIFO key file must not hang the login");
    let (code, error) = expect_err(result);
    assert_eq!(code, "AUTH_FAILED", "{error}");
}
