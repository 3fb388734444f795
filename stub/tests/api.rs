//! The stub's HTTP API against the real binary: auth, workspaces, file operations, permission-first
//! paths, glob and grep.

mod common;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

use common::{call, call_raw, Sandbox};
use serde_json::{json, Value};

fn set_mtime(path: &Path, secs_ago: u64) {
    let t = SystemTime::now() - Duration::from_secs(secs_ago);
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

#[test]
fn health_should_need_the_right_token() {
    let sb = Sandbox::new();
    let stub = sb.start();
    let wrong = format!("{}x", sb.token);
    for token in [None, Some("short"), Some(wrong.as_str())] {
        let (status, raw) = call_raw(&stub.socket, token, "GET", "/global/health", None);
        assert_eq!(status, 401);
        let text = String::from_utf8(raw).unwrap();
        assert!(text.contains("unauthorized"), "{text}");
        assert!(
            !text.contains(&sb.token) && !text.contains(&wrong),
            "{text}"
        );
    }
    // Unknown routes are behind auth too: no probing for routes without the token.
    assert_eq!(call(&stub.socket, None, "GET", "/nope", None).0, 401);
    let (status, health) = call(&stub.socket, Some(&sb.token), "GET", "/global/health", None);
    assert_eq!(status, 200);
    assert_eq!(health["healthy"], true);
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        health["protocol"],
        opencode_remote_protocol::PROTOCOL_VERSION
    );
    assert_eq!(health["pid"], stub.pid());
    assert_eq!(health["os"], "linux");
    assert_eq!(health["arch"], common::stub_arch().as_str());
    assert!(health["startedAt"].as_u64().unwrap() > 0);
    let (status, err) = call(&stub.socket, Some(&sb.token), "GET", "/nope", None);
    assert_eq!(
        (status, err["error"]["type"].as_str()),
        (404, Some("no_route"))
    );
}

/// The compare is `subtle::ConstantTimeEq` (server.rs `require_token`); what a test can check is
/// that every near miss — same length with the first or the last byte wrong, one byte short or
/// long, empty — is refused with the very same answer, so nothing tells them apart but time.
#[test]
fn auth_should_refuse_every_near_miss_with_one_answer() {
    let sb = Sandbox::new();
    let stub = sb.start();
    let flip = |i: usize| {
        let mut bytes = sb.token.clone().into_bytes();
        bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
        String::from_utf8(bytes).unwrap()
    };
    let near_misses = [
        flip(0),
        flip(sb.token.len() - 1),
        sb.token[..sb.token.len() - 1].to_string(),
        format!("{}0", sb.token),
        String::new(),
    ];
    let (_, refused) = call_raw(&stub.socket, None, "GET", "/global/health", None);
    for token in &near_misses {
        let (status, raw) = call_raw(&stub.socket, Some(token), "GET", "/global/health", None);
        assert_eq!((status, &raw), (401, &refused), "{token:?}");
    }
    let (status, _) = call_raw(&stub.socket, Some(&sb.token), "GET", "/global/health", None);
    assert_eq!(status, 200);
}

#[test]
fn fs_ops_should_work_inside_the_root() {
    let sb = Sandbox::new();
    let stub = sb.start();
    let root = sb.path().join("proj");
    let info = stub.register("w1", &root);
    assert_eq!(info["root"], root.to_str().unwrap());
    assert_eq!(info["created"], true);
    assert!(root.is_dir(), "a missing root is created");
    // Registering again is idempotent.
    assert_eq!(stub.register("w1", &root)["created"], false);

    let w = stub.ok(
        "/v1/workspaces/w1/fs/write",
        json!({ "path": "src/a.txt", "content": "one\ntwo\r\nthree\n" }),
    );
    assert_eq!(w["created"], true);
    assert_eq!(w["path"], root.join("src/a.txt").to_str().unwrap());
    let r = stub.ok("/v1/workspaces/w1/fs/read", json!({ "path": "src/a.txt" }));
    assert_eq!(r["lines"], json!(["one", "two", "three"]));
    assert_eq!(
        (r["totalLines"].as_u64(), r["truncated"].as_bool()),
        (Some(3), Some(false))
    );
    // Absolute paths work the same.
    let abs = root.join("src/a.txt");
    let r = stub.ok(
        "/v1/workspaces/w1/fs/read",
        json!({ "path": abs, "offset": 1, "limit": 1 }),
    );
    assert_eq!(r["lines"], json!(["two"]));
    assert_eq!(
        (r["offset"].as_u64(), r["truncated"].as_bool()),
        (Some(1), Some(true))
    );
    let r = stub.ok(
        "/v1/workspaces/w1/fs/read",
        json!({ "path": "src/a.txt", "mode": "bytes" }),
    );
    assert_eq!(r["base64"], "b25lCnR3bw0KdGhyZWUK");
    let w = stub.ok(
        "/v1/workspaces/w1/fs/write",
        json!({ "path": "bin.dat", "base64": "AAEC" }),
    );
    assert_eq!(w["size"], 3);
    let r = stub.ok("/v1/workspaces/w1/fs/read", json!({ "path": "bin.dat" }));
    assert_eq!(
        (r["binary"].as_bool(), r["lines"].as_array().unwrap().len()),
        (Some(true), 0)
    );

    let s = stub.ok("/v1/workspaces/w1/fs/stat", json!({ "path": "src" }));
    assert_eq!(
        (s["exists"].as_bool(), s["kind"].as_str()),
        (Some(true), Some("dir"))
    );
    let s = stub.ok("/v1/workspaces/w1/fs/stat", json!({ "path": "src/a.txt" }));
    assert_eq!(
        (s["kind"].as_str(), s["size"].as_u64()),
        (Some("file"), Some(15))
    );
    let s = stub.ok("/v1/workspaces/w1/fs/stat", json!({ "path": "missing" }));
    assert_eq!(s["exists"], false);

    let l = stub.ok("/v1/workspaces/w1/fs/list", json!({}));
    let names: Vec<&str> = l["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bin.dat", "src"]);

    stub.ok(
        "/v1/workspaces/w1/fs/rename",
        json!({ "from": "src/a.txt", "to": "moved/b.txt" }),
    );
    assert!(root.join("moved/b.txt").is_file() && !root.join("src/a.txt").exists());
    let rm = stub.ok(
        "/v1/workspaces/w1/fs/remove",
        json!({ "path": "moved/b.txt" }),
    );
    assert_eq!(rm["removed"], true);
    let e = stub.err(
        "/v1/workspaces/w1/fs/read",
        json!({ "path": "moved/b.txt" }),
        404,
    );
    assert_eq!(e["type"], "not_found");
    let e = stub.err("/v1/workspaces/w1/fs/read", json!({ "path": "src" }), 400);
    assert_eq!(e["type"], "is_directory");
    let e = stub.err("/v1/workspaces/w1/fs/remove", json!({ "path": "." }), 400);
    assert!(e["message"].as_str().unwrap().contains("root"));
    let e = stub.err("/v1/workspaces/nope/fs/read", json!({ "path": "x" }), 404);
    assert_eq!(e["type"], "unknown_workspace");
    let e = stub.err("/v1/workspaces/w1/fs/read", json!({ "nopath": 1 }), 400);
    assert_eq!(e["type"], "bad_request");
    let e = stub.err(
        "/v1/workspaces",
        json!({ "id": "../evil", "root": root }),
        400,
    );
    assert_eq!(e["type"], "bad_request");
}

#[test]
fn write_should_be_atomic_and_keep_the_mode() {
    let sb = Sandbox::new();
    let stub = sb.start();
    let root = sb.path().join("proj");
    stub.register("w", &root);
    let file = root.join("script.sh");
    fs::write(&file, "old").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o750)).unwrap();
    let w = stub.ok(
        "/v1/workspaces/w/fs/write",
        json!({ "path": "script.sh", "content": "new" }),
    );
    assert_eq!(w["created"], false);
    assert_eq!(fs::read_to_string(&file).unwrap(), "new");
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o7777,
        0o750
    );
    stub.ok(
        "/v1/workspaces/w/fs/write",
        json!({ "path": "new.sh", "content": "x", "mode": 0o700 }),
    );
    assert_eq!(
        fs::metadata(root.join("new.sh"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o700
    );
    let names: Vec<String> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "no temp file left behind: {names:?}");
    // Writing through a symlink inside the root updates the target and keeps the link.
    symlink("script.sh", root.join("link.sh")).unwrap();
    stub.ok(
        "/v1/workspaces/w/fs/write",
        json!({ "path": "link.sh", "content": "via link" }),
    );
    assert!(fs::symlink_metadata(root.join("link.sh"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::read_to_string(&file).unwrap(), "via link");
}

/// A file outside the root, in `<sandbox>/outside/`.
fn outside(sb: &Sandbox) -> std::path::PathBuf {
    let dir = sb.path().join("outside");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("secret.txt"), "secret\n").unwrap();
    fs::write(dir.join("other.txt"), "other\n").unwrap();
    dir
}

fn reply(stub: &common::Stub, ws: &str, request_id: &Value, answer: &str) -> (u16, Value) {
    stub.call(
        "POST",
        &format!("/v1/workspaces/{ws}/permissions/reply"),
        Some(&json!({ "requestId": request_id, "reply": answer })),
    )
}

#[test]
fn outside_path_should_be_refused_until_approved_once() {
    let sb = Sandbox::new();
    let stub = sb.start();
    let out = outside(&sb);
    stub.register("w", &sb.path().join("proj"));
    let secret = out.join("secret.txt");
    let req = json!({ "path": secret });
    let e = stub.err("/v1/workspaces/w/fs/read", req.clone(), 403);
    assert_eq!(e["type"], "permission_required");
    assert_eq!(e["permission"], "external_directory");
    assert_eq!(e["operation"], "read");
    assert_eq!(e["path"], secret.to_str().unwrap());
    assert_eq!(e["patterns"], json!([secret.to_str().unwrap()]));
    let id = e["requestId"].clone();
    assert!(id.as_str().unwrap().starts_with("per_") && id.as_str().unwrap().len() > 20);
    // Asking again before the user answered reuses the same request.
    let again = stub.err("/v1/workspaces/w/fs/read", req.clone(), 403);
    assert_eq!(again["requestId"], id);
    let (_, pending) = stub.call("GET", "/v1/workspaces/w/permissions", None);
    assert_eq!(pending["pending"][0]["requestId"], id);

    let (status, answer) = reply(&stub, "w", &id, "once");
    assert_eq!(status, 200, "{answer}");
    let grant = answer["grant"].clone();
    assert!(grant.as_str().unwrap().starts_with("grt_"));
    // Without the grant: still refused (a once approval is for one retry only).
    let e = stub.err("/v1/workspaces/w/fs/read", req.clone(), 403);
    // The grant does not cover another operation on the same path.
    let e2 = stub.err(
        "/v1/workspaces/w/fs/write",
        json!({ "path": secret, "content": "x", "grant": grant }),
        403,
    );
    assert_eq!(e2["operation"], "write");
    // Nor another path in the same directory.
    stub.err(
        "/v1/workspaces/w/fs/read",
        json!({ "path": out.join("other.txt"), "grant": grant }),
        403,
    );
    let r = stub.ok(
        "/v1/workspaces/w/fs/read",
        json!({ "path": secret, "grant": grant }),
    );
    assert_eq!(r["lines"], json!(["secret"]));
    // Used up.
    stub.err(
        "/v1/workspaces/w/fs/read",
        json!({ "path": secret, "grant": grant }),
        403,
    );
    assert_eq!(fs::read_to_string(&secret).unwrap(), "secret\n");

    // reject drops the request; replying twice is an unknown request.
    let (status, _) = reply(&stub, "w", &e["requestId"], "reject");
    assert_eq!(status, 200);
    let (status, answer) = reply(&stub, "w", &e["requestId"], "always");
    assert_eq!(
        (status, answer["error"]["type"].as_str()),
        (404, Some("unknown_request"))
    );
    stub.err("/v1/workspaces/w/fs/read", req, 403);
}

#[test]
fn always_should_persist_across_a_stub_restart() {
    let sb = Sandbox::new();
    let stub = sb.start();
    let out = outside(&sb);
    stub.register("w", &sb.path().join("proj"));
    let e = stub.err(
        "/v1/workspaces/w/fs/read",
        json!({ "path": out.join("secret.txt") }),
        403,
    );
    let (status, answer) = reply(&stub, "w", &e["requestId"], "always");
    assert_eq!(status, 200);
    let secret = out.join("secret.txt");
    assert_eq!(answer["patterns"], json!([secret.to_str().unwrap()]));
    // `always` approves what was asked: reading that file. Not a sibling, not writing it, not
    // running a command there.
    stub.ok("/v1/workspaces/w/fs/read", json!({ "path": secret }));
    stub.ok("/v1/workspaces/w/fs/stat", json!({ "path": secret }));
    stub.err(
        "/v1/workspaces/w/fs/read",
        json!({ "path": out.join("other.txt") }),
        403,
    );
    let e = stub.err(
        "/v1/workspaces/w/fs/write",
        json!({ "path": secret, "content": "x" }),
        403,
    );
    assert_eq!(e["patterns"], json!([secret.to_str().unwrap()]));
    stub.err(
        "/v1/workspaces/w/fs/write",
        json!({ "path": out.join("deeper/new.txt"), "content": "x" }),
        403,
    );
    let file = sb.home().join("state/approvals/w.json");
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let saved: serde_json::Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    assert_eq!(saved["always"][0]["access"], "read");
    assert_eq!(saved["always"][0]["pattern"], secret.to_str().unwrap());

    // A directory operation asks for (and approves) the directory's subtree, for that access only.
    let e = stub.err("/v1/workspaces/w/fs/list", json!({ "path": out }), 403);
    assert_eq!(e["patterns"], json!([format!("{}/*", out.display())]));
    reply(&stub, "w", &e["requestId"], "always");
    stub.ok(
        "/v1/workspaces/w/fs/read",
        json!({ "path": out.join("other.txt") }),
    );

    // A crash, not a clean stop: nothing is saved on the way out.
    stub.kill();
    let stub = sb.start();
    let r = stub.ok("/v1/workspaces/w/fs/read", json!({ "path": secret }));
    assert_eq!(r["lines"], json!(["secret"]));
    let (_, info) = stub.call("GET", "/v1/workspaces/w", None);
    assert_eq!(
        info["always"],
        json!([secret.to_str().unwrap(), format!("{}/*", out.display())])
    );
    stub.err(
        "/v1/workspaces/w/fs/write",
        json!({ "path": secret, "content": "x" }),
        403,
    );
    // A sibling directory is not covered.
    let sibling = sb.path().join("outside2");
    fs::create_dir_all(&sibling).unwrap();
    stub.err("/v1/workspaces/w/fs/list", json!({ "path": sibling }), 403);
}

#[test]
fn pending_request_should_survive_a_restart() {
    let sb = Sandbox::new();
    let stub = sb.start();
    let out = outside(&sb);
    stub.register("w", &sb.path().join("proj"));
    let e = stub.err("/v1/workspaces/w/fs/list", json!({ "path": out }), 403);
    stub.kill();
    let stub = sb.start();
    let (status, answer) = reply(&stub, "w", &e["requestId"], "once");
    assert_eq!(status, 200, "{answer}");
    stub.ok(
        "/v1/workspaces/w/fs/list",
        json!({ "path": out, "grant": answer["grant"] }),
    );
}

#[test]
fn dotdot_escape_should_be_refused() {
    let sb = Sandbox::new();
    let stub = sb.start();
    let out = outside(&sb);
    let root = sb.path().join("proj");
    stub.register("w", &root);
    fs::create_dir_all(root.join("sub")).unwrap();
    for path in [
        "../outside/secret.txt",
        "sub/../../outside/secret.txt",
        "missing/../../outside/secret.txt",
    ] {
        let e = stub.err("/v1/workspaces/w/fs/read", json!({ "path": path }), 403);
        assert_eq!(
            e["path"],
            out.join("secret.txt").to_str().unwrap(),
            "{path}"
        );
    }
    stub.err(
        "/v1/workspaces/w/fs/write",
        json!({ "path": "../outside/new.txt", "content": "x" }),
        403,
    );
    assert!(!out.join("new.txt").exists());
    // `..` that stays inside the root is fine.
    stub.ok(
        "/v1/workspaces/w/fs/write",
        json!({ "path": "sub/../inside.txt", "content": "x" }),
    );
    assert!(root.join("inside.txt").is_file());
}

#[test]
fn symlink_inside_the_root_pointing_outside_should_be_refused() {
    let sb = Sandbox::new();
    let stub = sb.start();
    let out = outside(&sb);
    let root = sb.path().join("proj");
    stub.register("w", &root);
    symlink(&out, root.join("dirlink")).unwrap();
    symlink(out.join("secret.txt"), root.join("filelink")).unwrap();
    symlink("../outside/secret.txt", root.join("rellink")).unwrap();
    symlink(out.join("missing.txt"), root.join("dangling")).unwrap();
    let secret = out.join("secret.txt");
    for path in ["dirlink/secret.txt", "filelink", "rellink"] {
        let e = stub.err("/v1/workspaces/w/fs/read", json!({ "path": path }), 403);
        assert_eq!(e["path"], secret.to_str().unwrap(), "{path}");
    }
    stub.err(
        "/v1/workspaces/w/fs/list",
        json!({ "path": "dirlink" }),
        403,
    );
    stub.err(
        "/v1/workspaces/w/fs/stat",
        json!({ "path": "dirlink" }),
        403,
    );
    stub.err(
        "/v1/workspaces/w/glob",
        json!({ "pattern": "*", "path": "dirlink" }),
        403,
    );
    stub.err(
        "/v1/workspaces/w/grep",
        json!({ "pattern": "s", "path": "dirlink" }),
        403,
    );
    stub.err(
        "/v1/workspaces/w/fs/write",
        json!({ "path": "filelink", "content": "pwned" }),
        403,
    );
    stub.err(
        "/v1/workspaces/w/fs/write",
        json!({ "path": "dangling", "content": "pwned" }),
        403,
    );
    assert!(!out.join("missing.txt").exists());
    assert_eq!(fs::read_to_string(&secret).unwrap(), "secret\n");
    let exec = stub.exec("w", json!({ "command": "pwd", "cwd": "dirlink" }));
    assert_eq!(exec.status, 403);
    // The link itself is inside the root: removing it is allowed and leaves the target alone.
    stub.ok("/v1/workspaces/w/fs/remove", json!({ "path": "filelink" }));
    assert!(secret.is_file());
    // glob and grep do not follow the directory link out of the root.
    let g = stub.ok("/v1/workspaces/w/glob", json!({ "pattern": "**/*.txt" }));
    assert_eq!(g["files"], json!([]));
    let g = stub.ok("/v1/workspaces/w/grep", json!({ "pattern": "secret" }));
    assert_eq!(g["matches"], json!([]));
}

#[test]
fn workspaces_should_not_see_each_others_approvals() {
    let sb = Sandbox::new();
    let stub = sb.start();
    let out = outside(&sb);
    let root_a = sb.path().join("a");
    let root_b = sb.path().join("b");
    stub.register("wa", &root_a);
    stub.register("wb", &root_b);
    fs::write(root_a.join("a.txt"), "a").unwrap();
    let secret = json!({ "path": out.join("secret.txt") });
    let ea = stub.err("/v1/workspaces/wa/fs/read", secret.clone(), 403);
    let eb = stub.err("/v1/workspaces/wb/fs/read", secret.clone(), 403);
    assert_ne!(ea["requestId"], eb["requestId"]);
    // B cannot answer A's request.
    let (status, _) = reply(&stub, "wb", &ea["requestId"], "always");
    assert_eq!(status, 404);
    let (status, answer) = reply(&stub, "wa", &ea["requestId"], "once");
    assert_eq!(status, 200);
    // Nor use A's grant.
    let mut with_grant = secret.clone();
    with_grant["grant"] = answer["grant"].clone();
    stub.err("/v1/workspaces/wb/fs/read", with_grant.clone(), 403);
    stub.ok("/v1/workspaces/wa/fs/read", with_grant);
    let ea = stub.err("/v1/workspaces/wa/fs/read", secret.clone(), 403);
    reply(&stub, "wa", &ea["requestId"], "always");
    stub.ok("/v1/workspaces/wa/fs/read", secret.clone());
    stub.err("/v1/workspaces/wb/fs/read", secret.clone(), 403);
    let (_, pb) = stub.call("GET", "/v1/workspaces/wb/permissions", None);
    assert_eq!(pb["always"], json!([]));
    // Each root is outside the other workspace.
    stub.err(
        "/v1/workspaces/wb/fs/read",
        json!({ "path": root_a.join("a.txt") }),
        403,
    );
    let (_, list) = stub.call("GET", "/v1/workspaces", None);
    assert_eq!(list.as_array().unwrap().len(), 2);
    // Forgetting B leaves A alone.
    let (status, _) = stub.call("DELETE", "/v1/workspaces/wb", None);
    assert_eq!(status, 200);
    assert!(!sb.home().join("state/approvals/wb.json").exists());
    stub.ok("/v1/workspaces/wa/fs/read", secret);
    stub.err("/v1/workspaces/wb/fs/read", json!({ "path": "x" }), 404);
}

/// A git work tree with ignored files, a hidden file and files of known ages.
fn search_fixture(root: &Path) {
    fs::create_dir_all(root.join(".git")).unwrap();
    fs::create_dir_all(root.join("src/deep")).unwrap();
    fs::create_dir_all(root.join("ignored")).unwrap();
    fs::write(root.join(".gitignore"), "ignored/\n*.log\n").unwrap();
    fs::write(root.join(".git/config"), "needle in git\n").unwrap();
    fs::write(root.join("src/old.txt"), "needle old\n").unwrap();
    fs::write(
        root.join("src/deep/new.txt"),
        "x\nneedle new\nneedle again\n",
    )
    .unwrap();
    fs::write(root.join("top.txt"), "no match\n").unwrap();
    fs::write(root.join(".hidden.txt"), "needle hidden\n").unwrap();
    fs::write(root.join("ignored/skip.txt"), "needle ignored\n").unwrap();
    fs::write(root.join("debug.log"), "needle log\n").unwrap();
    fs::write(root.join("src/blob.bin"), b"needle\0binary").unwrap();
    set_mtime(&root.join("src/old.txt"), 3000);
    set_mtime(&root.join("top.txt"), 2000);
    set_mtime(&root.join(".hidden.txt"), 1000);
    set_mtime(&root.join("src/deep/new.txt"), 10);
}

#[test]
fn glob_should_honour_gitignore_sort_newest_first_and_cap() {
    let sb = Sandbox::new();
    let stub = sb.start();
    let root = sb.path().join("proj");
    stub.register("w", &root);
    search_fixture(&root);
    let rel = |v: &Value| -> Vec<String> {
        v["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                Path::new(f.as_str().unwrap())
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
    };
    let g = stub.ok("/v1/workspaces/w/glob", json!({ "pattern": "*.txt" }));
    assert_eq!(
        rel(&g),
        ["src/deep/new.txt", ".hidden.txt", "top.txt", "src/old.txt"]
    );
    assert_eq!(g["truncated"], false);
    let g = stub.ok(
        "/v1/workspaces/w/glob",
        json!({ "pattern": "*.txt", "limit": 2 }),
    );
    assert_eq!(rel(&g), ["src/deep/new.txt", ".hidden.txt"]);
    assert_eq!(g["truncated"], true);
    let g = stub.ok("/v1/workspaces/w/glob", json!({ "pattern": "src/*.txt" }));
    assert_eq!(rel(&g), ["src/old.txt"]);
    let g = stub.ok(
        "/v1/workspaces/w/glob",
        json!({ "pattern": "**/*.txt", "path": "src", "ignore": ["deep"] }),
    );
    assert_eq!(rel(&g), ["src/old.txt"]);
    let g = stub.ok("/v1/workspaces/w/glob", json!({ "pattern": "*.log" }));
    assert_eq!(rel(&g), Vec::<String>::new(), "gitignored *.log");
    let e = stub.err("/v1/workspaces/w/glob", json!({ "pattern": "a[" }), 400);
    assert_eq!(e["type"], "bad_request");
}

#[test]
fn grep_should_honour_gitignore_skip_binaries_and_cap() {
    let sb = Sandbox::new();
    let stub = sb.start();
    let root = sb.path().join("proj");
    stub.register("w", &root);
    search_fixture(&root);
    let g = stub.ok("/v1/workspaces/w/grep", json!({ "pattern": "needle" }));
    let got: Vec<(String, u64, String)> = g["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                Path::new(m["path"].as_str().unwrap())
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                m["line"].as_u64().unwrap(),
                m["text"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        ("src/deep/new.txt", 2, "needle new"),
        ("src/deep/new.txt", 3, "needle again"),
        (".hidden.txt", 1, "needle hidden"),
        ("src/old.txt", 1, "needle old"),
    ];
    assert_eq!(got, want.map(|(p, l, t)| (p.to_string(), l, t.to_string())));
    assert_eq!(g["truncated"], false);
    let g = stub.ok(
        "/v1/workspaces/w/grep",
        json!({ "pattern": "NEEDLE", "caseInsensitive": true, "limit": 1 }),
    );
    assert_eq!(g["matches"].as_array().unwrap().len(), 1);
    assert_eq!(g["truncated"], true);
    let g = stub.ok(
        "/v1/workspaces/w/grep",
        json!({ "pattern": "needle", "include": "old.*" }),
    );
    assert_eq!(g["matches"].as_array().unwrap().len(), 1);
    let g = stub.ok(
        "/v1/workspaces/w/grep",
        json!({ "pattern": "needle (new|again)", "path": "src/deep/new.txt", "maxLineChars": 4 }),
    );
    assert_eq!(g["matches"][0]["text"], "need");
    let e = stub.err("/v1/workspaces/w/grep", json!({ "pattern": "(" }), 400);
    assert_eq!(e["type"], "bad_request");
}

/// A grep for `needle <n>` answers every line in `want` once, in any order, and nothing else.
fn assert_every_needle_found(stub: &common::Stub, mut want: Vec<String>) {
    let g = stub.ok(
        "/v1/workspaces/w/grep",
        json!({ "pattern": "needle \\d+", "limit": 1000 }),
    );
    want.sort();
    assert_eq!(matched_texts(&g), want);
    assert_eq!(g["truncated"], false);
}

/// The text of every match in a grep answer, sorted.
fn matched_texts(answer: &Value) -> Vec<String> {
    let mut texts: Vec<String> = answer["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect();
    texts.sort();
    texts
}

#[test]
fn grep_should_find_every_match_in_many_small_directories_with_few_descriptors() {
    // Queued files keep their directories open: a tree of one-file directories must not run a
    // stub with a low descriptor limit out of them (the files it could not open were missed).
    let sb = Sandbox::new();
    let stub = sb.start();
    let _ = stub.limit_open_files(64);
    let root = sb.path().join("proj");
    stub.register("w", &root);
    let mut want = Vec::new();
    for d in 0..300 {
        let dir = root.join("many").join(format!("d{d:03}"));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("f.txt"), format!("needle {d}\n")).unwrap();
        want.push(format!("needle {d}"));
    }
    assert_every_needle_found(&stub, want);
}

#[test]
fn grep_should_fail_rather_than_answer_less_when_out_of_descriptors() {
    // A file the stub cannot open for want of descriptors is not one the grep may skip: the agent
    // would take the partial answer for the whole. Every answer must be whole or an error, never a
    // 200 without some of the files.
    let sb = Sandbox::new();
    let stub = sb.start();
    let root = sb.path().join("proj");
    stub.register("w", &root);
    let dir = root.join("flat");
    fs::create_dir_all(&dir).unwrap();
    let mut want = Vec::new();
    for n in 0..2000 {
        fs::write(dir.join(format!("f{n:04}.txt")), format!("needle {n}\n")).unwrap();
        want.push(format!("needle {n}"));
    }
    want.sort();
    let open_now = fs::read_dir(format!("/proc/{}/fd", stub.pid()))
        .unwrap()
        .count() as u64;
    // The request's connection, the walk's base, and one more: the threads' file opens then meet
    // the limit while the walk still lists.
    let before = stub.limit_open_files(open_now + 3);
    let grep = json!({ "pattern": "needle \\d+", "limit": 10000 });
    for _ in 0..5 {
        let (status, body) = stub.call("POST", "/v1/workspaces/w/grep", Some(&grep));
        if status == 200 {
            let got = matched_texts(&body);
            assert_eq!(got.len(), want.len(), "a partial answer");
            assert_eq!(got, want);
        } else {
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains("(os error 24)"), "EMFILE: {body}");
        }
    }
    stub.limit_open_files(before);
    let (status, body) = stub.call("POST", "/v1/workspaces/w/grep", Some(&grep));
    assert_eq!(status, 200);
    assert_eq!(body["matches"].as_array().unwrap().len(), want.len());
}

#[test]
fn grep_over_many_files_should_find_each_match_once() {
    // Files are searched on several threads while the walk goes on: none lost, none twice.
    let sb = Sandbox::new();
    let stub = sb.start();
    let root = sb.path().join("proj");
    stub.register("w", &root);
    let mut want = Vec::new();
    for d in 0..20 {
        let dir = root.join(format!("d{d:02}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..50 {
            let n = d * 50 + f;
            let hit = n % 7 == 0;
            let body = if hit {
                format!("first\nneedle {n}\nlast\n")
            } else {
                "first\nhay\nlast\n".into()
            };
            fs::write(dir.join(format!("f{f:02}.txt")), body).unwrap();
            if hit {
                want.push(format!("needle {n}"));
            }
        }
    }
    assert_every_needle_found(&stub, want);
    let g = stub.ok(
        "/v1/workspaces/w/grep",
        json!({ "pattern": "needle", "limit": 5 }),
    );
    assert_eq!(g["matches"].as_array().unwrap().len(), 5);
    assert_eq!(g["truncated"], true);
}

#[test]
fn log_should_record_requests_but_never_the_token() {
    let sb = Sandbox::new();
    let stub = sb.start();
    let out = outside(&sb);
    stub.register("w", &sb.path().join("proj"));
    let wrong = format!("{}-wrong", sb.token);
    call(&stub.socket, Some(&wrong), "GET", "/global/health", None);
    stub.ok(
        "/v1/workspaces/w/fs/write",
        json!({ "path": "f.txt", "content": "file-content-marker" }),
    );
    stub.err(
        "/v1/workspaces/w/fs/read",
        json!({ "path": out.join("secret.txt") }),
        403,
    );
    let mut exec = stub.exec("w", json!({ "command": "echo output-marker" }));
    exec.rest();
    let log = stub.log_text();
    assert!(
        log.contains("\"route\":\"/v1/workspaces/{ws}/fs/write\""),
        "{log}"
    );
    assert!(log.contains("\"status\":401"), "{log}");
    assert!(log.contains("\"workspace\":\"w\""), "{log}");
    for secret in [
        sb.token.as_str(),
        wrong.as_str(),
        "file-content-marker",
        "output-marker",
        "secret\n",
    ] {
        assert!(!log.contains(secret), "log contains {secret:?}");
    }
    for line in log.lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
}

#[test]
fn the_attach_socket_should_register_and_answer_the_token_and_serve_nothing_else() {
    let sb = Sandbox::new();
    let stub = sb.start();
    let attach_socket = stub
        .home
        .join(opencode_remote_protocol::paths::ATTACH_SOCKET_FILE);
    let mode = fs::metadata(&attach_socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the attach socket is the user's alone");
    let root = sb.user_home().join("attached");
    let body = json!({ "id": "w1", "root": root.display().to_string() });
    let (status, attached) = call(&attach_socket, None, "POST", "/v1/attach", Some(&body));
    assert_eq!(status, 200, "{attached}");
    assert_eq!(attached["token"], sb.token.as_str());
    assert_eq!(
        attached["info"]["socket"],
        stub.socket.display().to_string()
    );
    assert_eq!(attached["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(attached["system"].as_str().unwrap().starts_with("Linux "));
    assert_eq!(
        attached["workspace"]["root"],
        fs::canonicalize(&root).unwrap().display().to_string()
    );
    // Registered for the tunnel's requests too.
    let (status, listed) = call(&stub.socket, Some(&sb.token), "GET", "/v1/workspaces", None);
    assert_eq!(status, 200);
    assert!(listed.as_array().unwrap().iter().any(|w| w["id"] == "w1"));
    // Nothing but attach there, and no attach on the main socket without the token.
    let (status, _) = call(&attach_socket, None, "GET", "/global/health", None);
    assert_eq!(status, 404);
    let (status, _) = call(&stub.socket, None, "POST", "/v1/attach", Some(&body));
    assert_eq!(status, 401);
    // A root that cannot be registered fails there with the stub's error shape.
    let file = sb.user_home().join("a-file");
    fs::write(&file, "x").unwrap();
    let refused = json!({ "id": "w2", "root": file.display().to_string() });
    let (status, err) = call(&attach_socket, None, "POST", "/v1/attach", Some(&refused));
    assert!(
        status >= 400 && err["error"]["type"].is_string(),
        "{status} {err}"
    );
}
