//! Commands and the stub's own life: streamed output, exit codes, timeouts, cancellation that
//! kills the whole process group, `status`, one stub per home, the token file, idle RSS.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::{bin, eventually, process_gone, rss_kib, stub_command, Sandbox};
use opencode_remote_protocol::{
    ExecEvent, EXIT_ALREADY_RUNNING, EXIT_ATTACH_REFUSED, EXIT_NOT_RUNNING, EXIT_OUTDATED,
};
use serde_json::json;

/// Kill grace (2 s) plus slack for a loaded machine.
const GONE_WITHIN: Duration = Duration::from_secs(10);

fn start_event(e: Option<ExecEvent>) -> (String, u32) {
    match e {
        Some(ExecEvent::Start { exec_id, pid }) => (exec_id, pid),
        other => panic!("expected start, got {other:?}"),
    }
}

/// Reads stdout events until a full line arrives; returns it.
fn stdout_line(stream: &mut common::ExecStream) -> String {
    let mut text = String::new();
    while !text.ends_with('\n') {
        match stream.next() {
            Some(ExecEvent::Stdout { data }) => text.push_str(&data),
            other => panic!("expected stdout, got {other:?}"),
        }
    }
    text.trim().to_string()
}

/// Output events merged per stream kind, in order, and the exit event.
fn collect(events: Vec<ExecEvent>) -> (Vec<(&'static str, String)>, ExecEvent) {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    let mut exit = None;
    for e in events {
        let (kind, data) = match e {
            ExecEvent::Stdout { data } => ("stdout", data),
            ExecEvent::Stderr { data } => ("stderr", data),
            other => {
                exit = Some(other);
                continue;
            }
        };
        match out.last_mut() {
            Some((k, d)) if *k == kind => d.push_str(&data),
            _ => out.push((kind, data)),
        }
    }
    (out, exit.expect("an exit event"))
}

#[test]
fn exec_should_stream_output_in_order_and_return_the_exit_code() {
    let sb = Sandbox::new();
    let stub = sb.start();
    let root = sb.path().join("proj");
    stub.register("w", &root);
    fs::create_dir_all(root.join("sub")).unwrap();
    // The command waits for a file the test creates only after it has read "one": so "one" must
    // have been streamed while the command was still running.
    let go = root.join("go");
    let mut s = stub.exec(
        "w",
        json!({
            "command": "echo one; n=0; while [ ! -e \"$GO\" ] && [ $n -lt 400 ]; do sleep 0.05; n=$((n+1)); done; echo two >&2; sleep 0.2; printf 'thr'; sleep 0.1; echo \"ee $FOO $(pwd)\"; exit 7",
            "cwd": "sub",
            "env": { "FOO": "bar", "GO": go },
        }),
    );
    assert_eq!(s.status, 200);
    let (_, pid) = start_event(s.next());
    assert_eq!(stdout_line(&mut s), "one");
    fs::write(&go, "").unwrap();
    let (out, exit) = collect(s.rest());
    let cwd = root.join("sub");
    assert_eq!(
        out,
        [
            ("stderr", "two\n".to_string()),
            ("stdout", format!("three bar {}\n", cwd.display())),
        ]
    );
    match exit {
        ExecEvent::Exit {
            code,
            signal,
            timed_out,
            cancelled,
            ..
        } => assert_eq!(
            (code, signal, timed_out, cancelled),
            (Some(7), None, false, false)
        ),
        other => panic!("{other:?}"),
    }
    assert!(eventually(GONE_WITHIN, || process_gone(pid)));
}

#[test]
fn exec_should_survive_hostile_command_text() {
    let sb = Sandbox::new();
    let stub = sb.start();
    let root = sb.path().join("proj");
    stub.register("w", &root);
    // The command is one argument of `sh -c`: quotes and newlines reach the shell intact, and
    // nothing of it is ever interpreted by the stub itself.
    let text = "it's \"quoted\" $(touch marker) `x`\nline2";
    let mut s = stub.exec(
        "w",
        json!({ "command": "printf '%s' \"$ARG\"", "env": { "ARG": text } }),
    );
    start_event(s.next());
    let (out, _) = collect(s.rest());
    assert_eq!(out, [("stdout", text.to_string())]);
    assert!(!root.join("marker").exists());
}

#[test]
fn exec_timeout_should_kill_the_whole_process_group() {
    let sb = Sandbox::new();
    let stub = sb.start();
    stub.register("w", &sb.path().join("proj"));
    let started = Instant::now();
    let mut s = stub.exec(
        "w",
        json!({ "command": "sleep 1000 & echo $!; wait", "timeoutMs": 500 }),
    );
    let (_, shell) = start_event(s.next());
    let grandchild: u32 = stdout_line(&mut s).parse().unwrap();
    let (_, exit) = collect(s.rest());
    match exit {
        ExecEvent::Exit {
            timed_out, signal, ..
        } => {
            assert!(timed_out);
            assert_eq!(signal, Some(libc::SIGTERM));
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(process_gone(shell));
    assert!(
        eventually(GONE_WITHIN, || process_gone(grandchild)),
        "background sleep {grandchild} survived the timeout"
    );
}

#[test]
fn exec_should_sigkill_a_group_that_ignores_sigterm() {
    let sb = Sandbox::new();
    let stub = sb.start();
    stub.register("w", &sb.path().join("proj"));
    let mut s = stub.exec(
        "w",
        json!({ "command": "trap '' TERM; sleep 1000 & echo $!; wait", "timeoutMs": 300 }),
    );
    start_event(s.next());
    let grandchild: u32 = stdout_line(&mut s).parse().unwrap();
    let (_, exit) = collect(s.rest());
    assert!(
        matches!(
            exit,
            ExecEvent::Exit {
                timed_out: true,
                signal: Some(9),
                ..
            }
        ),
        "{exit:?}"
    );
    assert!(eventually(GONE_WITHIN, || process_gone(grandchild)));
}

#[test]
fn closing_the_connection_should_kill_the_process_group() {
    let sb = Sandbox::new();
    let stub = sb.start();
    stub.register("w", &sb.path().join("proj"));
    // No output after the pid: the stub must notice the closed connection without writing to it.
    let mut s = stub.exec("w", json!({ "command": "sleep 1000 & echo $!; wait" }));
    let (_, shell) = start_event(s.next());
    let grandchild: u32 = stdout_line(&mut s).parse().unwrap();
    assert!(!process_gone(grandchild));
    drop(s);
    assert!(
        eventually(GONE_WITHIN, || process_gone(shell)
            && process_gone(grandchild)),
        "processes survived the closed connection"
    );
    assert!(eventually(GONE_WITHIN, || stub
        .log_text()
        .contains("\"reason\":\"disconnect\"")));
}

#[test]
fn cancel_route_should_kill_the_process_group() {
    let sb = Sandbox::new();
    let stub = sb.start();
    stub.register("w", &sb.path().join("proj"));
    stub.register("other", &sb.path().join("other"));
    let mut s = stub.exec("w", json!({ "command": "sleep 1000 & echo $!; wait" }));
    let (exec_id, _) = start_event(s.next());
    let grandchild: u32 = stdout_line(&mut s).parse().unwrap();
    // Another workspace cannot cancel it.
    let c = stub.ok(
        &format!("/v1/workspaces/other/exec/{exec_id}/cancel"),
        json!({}),
    );
    assert_eq!(c["cancelled"], false);
    let c = stub.ok(
        &format!("/v1/workspaces/w/exec/{exec_id}/cancel"),
        json!({}),
    );
    assert_eq!(c["cancelled"], true);
    let (_, exit) = collect(s.rest());
    assert!(
        matches!(
            exit,
            ExecEvent::Exit {
                cancelled: true,
                timed_out: false,
                ..
            }
        ),
        "{exit:?}"
    );
    assert!(eventually(GONE_WITHIN, || process_gone(grandchild)));
}

#[test]
fn exec_cwd_outside_the_root_should_need_approval() {
    let sb = Sandbox::new();
    let stub = sb.start();
    stub.register("w", &sb.path().join("proj"));
    let out = sb.path().join("outside");
    fs::create_dir_all(&out).unwrap();
    let s = stub.exec("w", json!({ "command": "touch made-here", "cwd": out }));
    assert_eq!(s.status, 403);
    let e = s.error.unwrap();
    assert_eq!(
        (e["operation"].as_str(), e["type"].as_str()),
        (Some("exec"), Some("permission_required"))
    );
    assert_eq!(e["patterns"], json!([format!("{}/*", out.display())]));
    assert!(!out.join("made-here").exists());
    // Paths the client found in the command are checked too.
    let s = stub.exec(
        "w",
        json!({ "command": "cat /etc/hostname", "paths": ["/etc/hostname"] }),
    );
    assert_eq!(s.status, 403);
    assert_eq!(s.error.unwrap()["patterns"], json!(["/etc/hostname"]));
    let (_, answer) = stub.call(
        "POST",
        "/v1/workspaces/w/permissions/reply",
        Some(&json!({ "requestId": e["requestId"], "reply": "once" })),
    );
    let mut s = stub.exec(
        "w",
        json!({ "command": "touch made-here", "cwd": out, "grant": answer["grant"] }),
    );
    start_event(s.next());
    s.rest();
    assert!(out.join("made-here").exists());
}

#[test]
fn status_should_tell_running_from_not_running() {
    let sb = Sandbox::new();
    let home = sb.home();
    let status = || {
        stub_command()
            .args(["status", "--home"])
            .arg(&home)
            .output()
            .unwrap()
    };
    assert_eq!(status().status.code(), Some(EXIT_NOT_RUNNING));
    let stub = sb.start();
    let out = status();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let health: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(health["pid"], stub.pid());
    // A clean stop removes run/stub.json.
    assert!(stub.terminate().success());
    assert!(!home.join("run/stub.json").exists());
    assert_eq!(status().status.code(), Some(EXIT_NOT_RUNNING));
    // After a crash the stale run/stub.json names a dead pid, and its socket file is left behind.
    let stub = sb.start();
    stub.kill();
    assert!(home.join("run/stub.json").exists());
    assert!(home.join("run/stub.sock").exists());
    assert_eq!(status().status.code(), Some(EXIT_NOT_RUNNING));
    // The next stub replaces the stale socket.
    let stub = sb.start();
    assert_eq!(status().status.code(), Some(0));
    drop(stub);
    let version = stub_command().arg("version").output().unwrap();
    assert_eq!(
        String::from_utf8(version.stdout).unwrap().trim(),
        env!("CARGO_PKG_VERSION")
    );
}

#[test]
fn attach_should_register_the_workspace_or_report_why_not() {
    let sb = Sandbox::new();
    let home = sb.home();
    let root = sb.dir.path().join("project");
    let attach = |id: &str, root: &std::path::Path| {
        stub_command()
            .args(["attach", "--home"])
            .arg(&home)
            .args(["--workspace", id, "--root"])
            .arg(root)
            .output()
            .unwrap()
    };
    assert_eq!(attach("w1", &root).status.code(), Some(EXIT_NOT_RUNNING));
    let stub = sb.start();
    // Four lines: what `uname -sm` says, the running stub, its token, the registration.
    let lines = |out: &std::process::Output| -> Vec<String> {
        String::from_utf8(out.stdout.clone())
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    };
    let out = attach("w1", &root);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let [system, running, token, info] = <[String; 4]>::try_from(lines(&out)).unwrap();
    let uname = std::process::Command::new("uname")
        .arg("-sm")
        .output()
        .unwrap();
    assert_eq!(system, String::from_utf8_lossy(&uname.stdout).trim());
    let running: serde_json::Value = serde_json::from_str(&running).unwrap();
    assert_eq!(running["pid"], stub.pid());
    assert_eq!(token, sb.token);
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["id"], "w1");
    assert_eq!(info["created"], true);
    assert!(root.is_dir(), "attach creates the root");
    // Idempotent, and the running stub now serves the workspace.
    let again: serde_json::Value = serde_json::from_str(&lines(&attach("w1", &root))[3]).unwrap();
    assert_eq!(again["created"], false);
    let (code, listed) = stub.call("GET", "/v1/workspaces", None);
    assert_eq!(code, 200);
    assert_eq!(listed[0]["id"], "w1");
    // A refusal carries the stub's error kind.
    let bad = attach("../escape", &root);
    assert_eq!(bad.status.code(), Some(EXIT_ATTACH_REFUSED), "{bad:?}");
    let error: serde_json::Value = serde_json::from_str(&lines(&bad)[3]).unwrap();
    assert_eq!(error["error"]["type"], "bad_request");
}

/// An upgrade: the home's lock is held by a stub of ours of an older protocol. The new `serve`
/// stops it (it is this user's process running a stub binary) and takes over the home.
#[test]
fn serve_should_replace_an_older_stub_of_ours() {
    let sb = Sandbox::new();
    let old = sb.start();
    let old_pid = old.pid();
    // Make its record say it is a protocol-1 stub of an older version.
    let record =
        json!({ "pid": old_pid, "port": 4100, "version": "0.0.1", "protocol": 1, "startedAt": 1 });
    fs::write(sb.home().join("run/stub.json"), record.to_string()).unwrap();
    let new = sb.start();
    assert_ne!(new.pid(), old_pid);
    let mut old = old;
    let status = old.child.wait().unwrap();
    assert!(status.success(), "the old stub stopped cleanly: {status:?}");
    assert_eq!(new.call("GET", "/global/health", None).0, 200);
}

#[test]
fn second_stub_on_the_same_home_should_refuse_to_start() {
    let sb = Sandbox::new();
    let stub = sb.start();
    let out = stub_command()
        .args(["serve", "--home"])
        .arg(sb.home())
        .env("HOME", sb.user_home())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(EXIT_ALREADY_RUNNING), "{out:?}");
    let (status, _) = stub.call("GET", "/global/health", None);
    assert_eq!(status, 200, "the first stub keeps running");
}

#[test]
fn serve_should_refuse_an_open_token_file_and_any_listen_address() {
    let sb = Sandbox::new();
    let token_file = sb.home().join("run/stub.token");
    fs::set_permissions(&token_file, fs::Permissions::from_mode(0o644)).unwrap();
    let out = stub_command()
        .args(["serve", "--home"])
        .arg(sb.home())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("chmod 600"), "{err}");
    assert!(!err.contains(&sb.token));
    fs::set_permissions(&token_file, fs::Permissions::from_mode(0o600)).unwrap();
    let out = stub_command()
        .args(["serve", "--listen", "127.0.0.1:0", "--home"])
        .arg(sb.home())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("unknown argument"));
}

/// The stub listens on a socket only its user can reach: no TCP port at all, the socket 0600 in a
/// 0700 run directory (closed by the stub when it was merely readable by others), and a run
/// directory others could write to (where anything may be theirs) is refused.
#[test]
fn serve_should_listen_on_a_private_socket_only() {
    let sb = Sandbox::new();
    let run = sb.home().join("run");
    fs::set_permissions(&run, fs::Permissions::from_mode(0o755)).unwrap();
    let stub = sb.start();
    let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(stub.socket, run.join("stub.sock"));
    assert_eq!(mode(&stub.socket), 0o600);
    assert_eq!(mode(&run), 0o700);
    let tcp = fs::read_to_string("/proc/net/tcp").unwrap()
        + &fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
    let inodes: Vec<String> = tcp
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(9).map(str::to_string))
        .collect();
    let fds: Vec<String> = fs::read_dir(format!("/proc/{}/fd", stub.pid()))
        .unwrap()
        .flatten()
        .filter_map(|fd| fs::read_link(fd.path()).ok())
        .map(|t| t.to_string_lossy().into_owned())
        .collect();
    assert!(
        !fds.iter()
            .any(|fd| inodes.iter().any(|i| *fd == format!("socket:[{i}]"))),
        "the stub holds a TCP socket: {fds:?}"
    );
    let log = stub.log_text();
    let status = stub.terminate();
    assert!(
        !run.join("stub.sock").exists(),
        "a clean stop removes the socket ({status:?}): {log}"
    );
    fs::set_permissions(&run, fs::Permissions::from_mode(0o777)).unwrap();
    let out = stub_command()
        .args(["serve", "--home"])
        .arg(sb.home())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("refusing to listen") && err.contains("chmod 700"),
        "{err}"
    );
}

/// A stub of the previous protocol (a loopback TCP port in its record) is ours to replace, not to
/// talk to: `status` and `attach` say so with their own exit code, and send nothing to its port.
#[test]
fn status_should_report_an_older_protocol_stub_as_outdated() {
    use std::io::Read;
    let running = Sandbox::new();
    // A live stub process running this very binary stands in for the old one.
    let old = running.start();
    let sb = Sandbox::new();
    let home = sb.home();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let info = json!({ "pid": old.pid(), "port": port, "version": "0.0.1", "protocol": 1, "startedAt": 1 });
    fs::write(home.join("run/stub.json"), info.to_string()).unwrap();
    let heard = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut got = Vec::new();
        let _ = socket.read_to_end(&mut got);
        got
    });
    for sub in [
        &["status"][..],
        &["attach", "--workspace", "w", "--root", "/tmp"][..],
    ] {
        let out = stub_command()
            .args(sub)
            .arg("--home")
            .arg(&home)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(EXIT_OUTDATED), "{sub:?}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("protocol 1"),
            "{out:?}"
        );
    }
    // A record of another user's process (or a gone one) is not ours to stop.
    let gone = json!({ "pid": 1, "port": port, "version": "0.0.1", "protocol": 1, "startedAt": 1 });
    fs::write(home.join("run/stub.json"), gone.to_string()).unwrap();
    let out = stub_command()
        .args(["status", "--home"])
        .arg(&home)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(EXIT_NOT_RUNNING), "{out:?}");
    let _ = std::net::TcpStream::connect(("127.0.0.1", port));
    let heard = heard.join().unwrap();
    assert!(heard.is_empty(), "{}", String::from_utf8_lossy(&heard));
}

#[test]
fn size_and_idle_rss_should_be_reported() {
    let sb = Sandbox::new();
    let stub = sb.start();
    let (status, _) = stub.call("GET", "/global/health", None);
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_millis(200));
    let kib = rss_kib(stub.pid());
    let size = fs::metadata(bin()).unwrap().len();
    println!(
        "stub {}: {size} bytes, idle VmRSS {kib} KiB",
        bin().display()
    );
    let release = std::env::var_os("OPENCODE_REMOTE_STUB_BIN").is_some();
    let emulated = std::env::var_os("OPENCODE_REMOTE_STUB_RUNNER").is_some();
    if release {
        // The targets apply to the release binaries (stub/build.sh); a debug build is larger.
        assert!(size <= 5 * 1024 * 1024, "binary is {size} bytes");
    }
    if release && !emulated {
        assert!(kib <= 8 * 1024, "idle RSS {kib} KiB");
    } else {
        assert!(kib < 64 * 1024, "idle RSS {kib} KiB");
    }
}

/// Before: `status` (and `attach`) sent the token to whatever listened on the port in
/// run/stub.json as long as the recorded pid existed, so a process squatting that port after the
/// stub died received the token. The socket now lives in a directory other users cannot enter,
/// and the recorded pid must still be a stub binary of ours holding that very socket; here the
/// squatter is this test process (same user, not a stub), bound where the dead stub's socket was.
#[test]
fn status_should_not_send_the_token_to_a_squatter_on_the_recorded_socket() {
    use std::io::Read;
    let sb = Sandbox::new();
    let home = sb.home();
    let stub = sb.start();
    let socket = stub.socket.clone();
    stub.kill();
    fs::remove_file(&socket).unwrap();
    let squatter = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let info = json!({ "pid": std::process::id(), "socket": socket, "version": "0.0.1", "protocol": opencode_remote_protocol::PROTOCOL_VERSION, "startedAt": 1 });
    fs::write(home.join("run/stub.json"), info.to_string()).unwrap();
    let heard = std::thread::spawn(move || {
        let (mut socket, _) = squatter.accept().unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut got = Vec::new();
        let _ = socket.read_to_end(&mut got);
        got
    });
    let out = stub_command()
        .args(["status", "--home"])
        .arg(&home)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(EXIT_NOT_RUNNING), "{out:?}");
    // Wake the squatter if nobody came, and see what it was told.
    let _ = std::os::unix::net::UnixStream::connect(&socket);
    let heard = String::from_utf8_lossy(&heard.join().unwrap()).into_owned();
    assert!(!heard.contains(&sb.token), "the squatter got the token");
    assert!(!heard.to_lowercase().contains("authorization"), "{heard}");
}
