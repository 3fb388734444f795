//! `GET /v1/workspaces/{ws}/oc/path`: OpenCode's `Path`, with the host's home and the workspace
//! root, so the TUI shows the host's paths.

mod common;

use common::Sandbox;
use opencode_remote_protocol::routes;

#[test]
fn path_should_be_the_hosts_home_and_the_workspace_root() {
    let sb = Sandbox::new();
    let stub = sb.start();
    let root = sb.path().join("proj");
    stub.register("w1", &root);
    let (status, path) = stub.call("GET", &routes::opencode("w1", "/path"), None);
    assert_eq!(status, 200, "{path}");
    let home = sb.user_home();
    assert_eq!(path["home"], home.to_str().unwrap());
    assert_eq!(path["worktree"], root.to_str().unwrap());
    assert_eq!(path["directory"], root.to_str().unwrap());
    assert_eq!(
        path["config"],
        home.join(".config/opencode").to_str().unwrap()
    );
    assert_eq!(
        path["state"],
        home.join(".local/state/opencode").to_str().unwrap()
    );

    let (status, answer) = stub.call("GET", &routes::opencode("nope", "/path"), None);
    assert_eq!(status, 404, "{answer}");
}
