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
