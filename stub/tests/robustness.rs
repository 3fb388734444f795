//! The stub stays usable when the workspace holds things that are not files: a FIFO or a device
//! must not block a worker thread.

mod common;

use std::ffi::CString;
use std::os::unix::fs::symlink;

use common::Sandbox;
use serde_json::json;

fn mkfifo(path: &std::path::Path) {
    let c = CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only reads it.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// Before: `File::open` on a FIFO with no writer blocked the worker, and the request never
/// answered (the test client's read timeout fires). Now it is refused at once with a clear error.
#[test]
fn reading_a_fifo_should_be_refused_without_blocking() {
    let sb = Sandbox::new();
    let stub = sb.start();
    let root = sb.path().join("ws");
    stub.register("w", &root);
    mkfifo(&root.join("pipe"));
    symlink("pipe", root.join("link-to-pipe")).unwrap();
    for path in ["pipe", "link-to-pipe"] {
        for mode in ["text", "bytes"] {
            let err = stub.err(
                "/v1/workspaces/w/fs/read",
                json!({ "path": path, "mode": mode }),
                400,
            );
            assert_eq!(err["type"], "bad_request", "{err}");
            let message = err["message"].as_str().unwrap();
            assert!(message.contains("not a regular file"), "{message}");
        }
    }
    // grep over a tree holding the FIFO (directly and through a link) answers, and finds the file.
    std::fs::write(root.join("a.txt"), "needle\n").unwrap();
    let found = stub.ok(
        "/v1/workspaces/w/grep",
        json!({ "pattern": "needle", "path": "." }),
    );
    assert!(found.to_string().contains("a.txt"), "{found}");
    // The stub still serves requests afterwards.
    let r = stub.ok("/v1/workspaces/w/fs/read", json!({ "path": "a.txt" }));
    assert_eq!(r["lines"], json!(["needle"]));
}

/// Open file descriptors of a process (Linux `/proc`).
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Before: a connection that sent half a request head was kept open for good (slow-loris).
/// Now the stub closes it once its header deadline (10 s) passes: the read sees the close, not
/// the test client's own 20 s read timeout.
#[test]
fn a_connection_that_never_finishes_its_headers_should_be_closed() {
    use std::io::{Read, Write};
    let sb = Sandbox::new();
    let stub = sb.start();
    let mut slow = std::os::unix::net::UnixStream::connect(&stub.socket).unwrap();
    slow.set_read_timeout(Some(common::IO_TIMEOUT)).unwrap();
    slow.write_all(b"GET /global/health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut buf = [0u8; 512];
    let read = slow.read(&mut buf);
    assert!(
        read.is_ok() || matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "the stub should close the stalled connection: {read:?}"
    );
    // The stub still answers.
    assert_eq!(stub.call("GET", "/global/health", None).0, 200);
}

/// Before: every connection was accepted, so a client could hold any number of the stub's
/// descriptors. Now at most 128 are served at once; the rest wait in the kernel's backlog.
#[test]
fn open_connections_should_be_capped() {
    const CAP: usize = 128;
    let sb = Sandbox::new();
    let stub = sb.start();
    let before = fd_count(stub.pid());
    let idle: Vec<_> = (0..CAP + 64)
        .map(|_| std::os::unix::net::UnixStream::connect(&stub.socket).unwrap())
        .collect();
    // Give the stub time to accept all it will; the bound must hold at every sample.
    let mut most = 0;
    for _ in 0..30 {
        most = most.max(fd_count(stub.pid()));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        most <= before + CAP,
        "the stub held {} connections' descriptors",
        most - before
    );
    drop(idle);
    assert_eq!(stub.call("GET", "/global/health", None).0, 200);
}
