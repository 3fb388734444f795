//! OpenCode's file, find and vcs routes served by the stub (`/v1/workspaces/{ws}/oc/...`), against
//! the real binary: OpenCode 1.18.33's shapes, confinement to the root, git and non-git roots.
//! The differential test against a real `opencode serve` is `__test__/oc-routes.test.mjs`.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;

use common::{call_raw, Sandbox, Stub};
use serde_json::{json, Value};

fn get(stub: &Stub, ws: &str, path: &str) -> (u16, Value) {
    stub.call("GET", &format!("/v1/workspaces/{ws}/oc{path}"), None)
}

fn ok(stub: &Stub, ws: &str, path: &str) -> Value {
    let (status, body) = get(stub, ws, path);
    assert_eq!(status, 200, "{path}: {body}");
    body
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

/// A git repository with a commit on `main`, one on `feat`, and uncommitted changes.
fn repo(root: &Path) {
    fs::create_dir_all(root.join("src/util")).unwrap();
    fs::create_dir_all(root.join("node_modules/x")).unwrap();
    fs::write(root.join(".gitignore"), "node_modules\n*.log\n").unwrap();
    fs::write(root.join("README.md"), "hello world\nfoo bar\n").unwrap();
    fs::write(root.join("src/main.rs"), "fn main() {\n    hello();\n}\n").unwrap();
    fs::write(root.join("src/util/gone.rs"), "pub fn gone() {}\n").unwrap();
    fs::write(root.join("node_modules/x/hello.js"), "hello\n").unwrap();
    fs::write(root.join("debug.log"), "hello log\n").unwrap();
    fs::write(root.join("img.png"), b"\x89PNG\r\n\x1a\n\0\0").unwrap();
    git(root, &["init", "-q", "-b", "main"]);
    git(root, &["add", "-A"]);
    git(root, &["commit", "-qm", "init"]);
    git(root, &["checkout", "-q", "-b", "feat"]);
    fs::write(root.join("feature.txt"), "one\ntwo\n").unwrap();
    git(root, &["add", "-A"]);
    git(root, &["commit", "-qm", "feat"]);
    fs::write(root.join("README.md"), "hello world\nfoo bar\nmore\n").unwrap();
    fs::remove_file(root.join("src/util/gone.rs")).unwrap();
    fs::write(root.join("src/new.txt"), "a\nb\nc").unwrap();
}

fn setup() -> (Sandbox, Stub, std::path::PathBuf) {
    let sb = Sandbox::new();
    let stub = sb.start();
    let root = sb.path().join("proj");
    fs::create_dir_all(&root).unwrap();
    repo(&root);
    stub.register("w1", &root);
    (sb, stub, root)
}

#[test]
fn file_routes_should_answer_in_opencode_shapes() {
    let (_sb, stub, root) = setup();
    let list = ok(&stub, "w1", "/file?path=");
    let paths: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["path"].as_str().unwrap())
        .collect();
    // Directories first, then files, each in `localeCompare` order.
    assert_eq!(
        paths,
        [
            ".git/",
            "node_modules/",
            "src/",
            ".gitignore",
            "debug.log",
            "feature.txt",
            "img.png",
            "README.md"
        ]
    );
    let modules = &list[1];
    assert_eq!(
        modules,
        &json!({"name": "node_modules", "path": "node_modules/",
            "absolute": root.join("node_modules").to_str().unwrap(), "type": "directory", "ignored": true})
    );
    let sub = ok(&stub, "w1", "/file?path=src");
    assert_eq!(sub[0]["path"], "src/util/");
    assert_eq!(sub[1]["name"], "main.rs");

    assert_eq!(
        ok(&stub, "w1", "/file/content?path=README.md"),
        json!({"type": "text", "content": "hello world\nfoo bar\nmore"})
    );
    assert_eq!(
        ok(&stub, "w1", "/file/content?path=img.png"),
        json!({"type": "binary", "content": "iVBORw0KGgoAAA==", "encoding": "base64", "mimeType": "image/png"})
    );
    assert_eq!(
        ok(&stub, "w1", "/file/content?path=missing.txt"),
        json!({"type": "text", "content": ""})
    );
    assert_eq!(ok(&stub, "w1", "/file/status"), json!([]));

    let (status, body) = get(&stub, "w1", "/file/content");
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"name": "BadRequest", "data": {"message": "Missing key\n  at [\"path\"]", "kind": "Query"}})
    );
    let (status, body) = get(&stub, "w1", "/file?path=nope");
    assert_eq!((status, body["name"].as_str()), (500, Some("UnknownError")));
    let (status, body) = get(&stub, "w1", "/file/content?path=src");
    assert_eq!((status, body["name"].as_str()), (500, Some("UnknownError")));
    let (status, body) = get(&stub, "nope", "/file?path=");
    assert_eq!(
        (status, body["name"].as_str()),
        (404, Some("NotFoundError"))
    );
}

#[test]
fn file_routes_should_refuse_paths_outside_the_root_without_asking() {
    let (sb, stub, root) = setup();
    let outside = sb.path().join("secret");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("key"), "secret").unwrap();
    symlink(&outside, root.join("out")).unwrap();
    symlink(outside.join("key"), root.join("key-link")).unwrap();
    symlink("src/main.rs", root.join("main-link")).unwrap();
    let escapes = [
        "/file/content?path=../secret/key".to_string(),
        format!("/file/content?path={}", outside.join("key").display()),
        "/file/content?path=out/key".into(),
        "/file/content?path=key-link".into(),
        "/file?path=out".into(),
        "/file?path=..".into(),
        "/file?path=%2Fetc".into(),
    ];
    for path in &escapes {
        let (status, body) = get(&stub, "w1", path);
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["name"], "BadRequest", "{path}");
        assert!(
            body["data"]["message"]
                .as_str()
                .unwrap()
                .contains("outside the workspace root"),
            "{body}"
        );
    }
    // No permission request was made: these are the TUI's reads, not tool calls.
    let (_, perms) = stub.call("GET", "/v1/workspaces/w1/permissions", None);
    assert_eq!(perms["pending"], json!([]), "{perms}");
    // A symlink inside the root to a file inside it is read through; listings leave symlinks out.
    assert_eq!(
        ok(&stub, "w1", "/file/content?path=main-link")["content"],
        "fn main() {\n    hello();\n}"
    );
    let names: Vec<Value> = ok(&stub, "w1", "/file?path=")
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].clone())
        .collect();
    assert!(!names.contains(&json!("main-link")) && !names.contains(&json!("out")));
    // An absolute path inside the root works like a relative one.
    let abs = root.join("README.md");
    assert_eq!(
        ok(
            &stub,
            "w1",
            &format!("/file/content?path={}", abs.display())
        )["type"],
        "text"
    );
}

#[test]
fn find_routes_should_search_the_root_like_opencode() {
    let (_sb, stub, root) = setup();
    let found = ok(&stub, "w1", "/find?pattern=hel%2Bo");
    let mut got: Vec<(String, u64)> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["path"]["text"].as_str().unwrap().to_string(),
                m["line_number"].as_u64().unwrap(),
            )
        })
        .collect();
    got.sort();
    // Ignored files (node_modules, *.log) are not searched.
    assert_eq!(
        got,
        [("README.md".to_string(), 1), ("src/main.rs".to_string(), 2)]
    );
    let main = found
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["path"]["text"] == "src/main.rs")
        .unwrap();
    assert_eq!(
        main,
        &json!({"path": {"text": "src/main.rs"}, "lines": {"text": "    hello();\n"}, "line_number": 2,
            "absolute_offset": 12, "submatches": [{"match": {"text": "hello"}, "start": 4, "end": 9}]})
    );
    // At most 10 matches, as OpenCode asks ripgrep for.
    fs::write(root.join("many.txt"), "hello\n".repeat(50)).unwrap();
    assert_eq!(
        ok(&stub, "w1", "/find?pattern=hello")
            .as_array()
            .unwrap()
            .len(),
        10
    );
    let (status, body) = get(&stub, "w1", "/find?pattern=(");
    assert_eq!((status, body["name"].as_str()), (500, Some("UnknownError")));

    assert_eq!(ok(&stub, "w1", "/find/file?query=main")[0], "src/main.rs");
    assert_eq!(ok(&stub, "w1", "/find/file?query=readme")[0], "README.md");
    assert_eq!(ok(&stub, "w1", "/find/file?query=src&dirs=true")[0], "src/");
    assert_eq!(
        ok(&stub, "w1", "/find/file?query=src&type=directory"),
        json!(["src/"])
    );
    let files = ok(&stub, "w1", "/find/file?query=&dirs=false&limit=200");
    let files: Vec<&str> = files
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(files.contains(&"src/new.txt") && files.contains(&".gitignore"));
    assert!(!files
        .iter()
        .any(|f| f.ends_with('/') || f.starts_with("node_modules")));
    assert_eq!(
        ok(&stub, "w1", "/find/file?query=&limit=2"),
        json!(["/", "src/"])
    );
    let (status, body) = get(&stub, "w1", "/find/file?query=x&limit=201");
    assert_eq!((status, body["name"].as_str()), (400, Some("BadRequest")));
    assert_eq!(ok(&stub, "w1", "/find/symbol?query=main"), json!([]));
}

#[test]
fn vcs_routes_should_report_git_like_opencode() {
    let (_sb, stub, root) = setup();
    assert_eq!(
        ok(&stub, "w1", "/vcs"),
        json!({"branch": "feat", "default_branch": "main"})
    );
    assert_eq!(
        ok(&stub, "w1", "/vcs/status"),
        json!([
            {"file": "README.md", "additions": 1, "deletions": 0, "status": "modified"},
            {"file": "src/new.txt", "additions": 3, "deletions": 0, "status": "added"},
            {"file": "src/util/gone.rs", "additions": 0, "deletions": 1, "status": "deleted"},
        ])
    );
    let diff = ok(&stub, "w1", "/vcs/diff?mode=git&context=0");
    assert_eq!(diff[0]["file"], "README.md");
    assert_eq!(
        diff[0]["patch"].as_str().unwrap().lines().last(),
        Some("+more")
    );
    assert_eq!(
        diff[1]["patch"].as_str().unwrap(),
        "diff --git a/src/new.txt b/src/new.txt\nnew file mode 100644\nindex 0000000..1c943a9\n--- /dev/null\n+++ b/src/new.txt\n@@ -0,0 +1,3 @@\n+a\n+b\n+c\n\\ No newline at end of file\n"
    );
    let branch = ok(&stub, "w1", "/vcs/diff?mode=branch");
    let files: Vec<&str> = branch
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["file"].as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        [
            "feature.txt",
            "README.md",
            "src/new.txt",
            "src/util/gone.rs"
        ]
    );

    let path = "/v1/workspaces/w1/oc/vcs/diff/raw";
    let (status, raw) = call_raw(&stub.socket, Some(&stub.token), "GET", path, None);
    assert_eq!(status, 200);
    let raw = String::from_utf8(raw).unwrap();
    assert!(
        raw.starts_with("diff --git a/README.md b/README.md\n"),
        "{raw}"
    );
    assert!(
        raw.contains("\ndiff --git a/src/new.txt b/src/new.txt\n"),
        "{raw}"
    );

    // The raw patch applies back once the tree is reset.
    git(&root, &["stash", "-u", "-q"]);
    let apply = |patch: &str| {
        stub.call(
            "POST",
            "/v1/workspaces/w1/oc/vcs/apply",
            Some(&json!({ "patch": patch })),
        )
    };
    assert_eq!(apply(&raw), (200, json!({"applied": true})));
    assert!(root.join("src/new.txt").is_file());
    assert_eq!(
        apply("garbage"),
        (
            400,
            json!({"name": "VcsApplyError", "data": {"message": "Patch can't be applied", "reason": "not-clean"}})
        )
    );
    let (status, body) = stub.call("POST", "/v1/workspaces/w1/oc/vcs/apply", Some(&json!({})));
    assert_eq!(
        (status, body["data"]["kind"].as_str()),
        (400, Some("Payload"))
    );
}

#[test]
fn vcs_routes_should_answer_like_opencode_outside_git() {
    let sb = Sandbox::new();
    let stub = sb.start();
    let root = sb.path().join("plain");
    fs::create_dir_all(&root).unwrap();
    fs::write(root.join("a.txt"), "x\n").unwrap();
    stub.register("p", &root);
    assert_eq!(
        ok(&stub, "p", "/vcs"),
        json!({"branch": null, "default_branch": null})
    );
    assert_eq!(ok(&stub, "p", "/vcs/status"), json!([]));
    assert_eq!(ok(&stub, "p", "/vcs/diff?mode=git"), json!([]));
    assert_eq!(ok(&stub, "p", "/vcs/diff?mode=branch"), json!([]));
    let path = "/v1/workspaces/p/oc/vcs/diff/raw";
    let (status, raw) = call_raw(&stub.socket, Some(&stub.token), "GET", path, None);
    assert_eq!((status, raw.len()), (200, 0));
    let (status, body) = stub.call(
        "POST",
        "/v1/workspaces/p/oc/vcs/apply",
        Some(&json!({"patch": "x"})),
    );
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"name": "VcsApplyError", "data": {"message": "Patch can't be applied because the project is not git-based", "reason": "non-git"}})
    );
    // Outside git, find and file routes still work.
    assert_eq!(ok(&stub, "p", "/find/file?query=a")[0], "a.txt");
}
