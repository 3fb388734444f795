//! The one route table of a workspace's router: which upstream answers an OpenCode request that
//! the control plane forwarded to the workspace. Files, search, version control, terminals and
//! paths are the host's (the stub answers them); undo and `!` shell commands would act on this
//! machine, so they are refused; everything else is the workspace's local `opencode serve`.

use hyper::Method;

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The workspace's local `opencode serve`, unchanged.
    Server,
    /// The stub on the host, at `routes::opencode(ws, path)`.
    Host,
    /// Answered by the router with an error that says why.
    Refused(Refusal),
    /// `POST /pty/{id}/connect-token`: the router issues the terminal's WebSocket ticket itself.
    ConnectToken,
}

/// A request the router refuses, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `POST /session/{id}/revert` and `/unrevert`: OpenCode's snapshots are of this machine.
    Revert,
    /// `POST /session/{id}/shell` (the TUI's `!`): OpenCode would run it on this machine.
    Shell,
}

/// OpenCode paths the host answers exactly as written (query strings do not take part).
const HOST_PATHS: &[&str] = &[
    "/file",
    "/file/content",
    "/file/status",
    "/find",
    "/find/file",
    "/find/symbol",
    "/path",
];

/// OpenCode paths the host answers, with every path under them.
const HOST_TREES: &[&str] = &["/vcs", "/pty"];

/// The session actions refused, as the last segment of `POST /session/{id}/<action>`.
const REFUSED_SESSION_ACTIONS: &[(&str, Refusal)] = &[
    ("revert", Refusal::Revert),
    ("unrevert", Refusal::Revert),
    ("shell", Refusal::Shell),
];

/// The upstream of a request. `GET /session/{id}/diff` stays with the server: the control plane
/// answers every `GET /session…` from its own replica and never forwards it anyway.
pub fn route(method: &Method, path: &str) -> Route {
    if method == Method::POST && pty_action(path, "connect-token").is_some() {
        return Route::ConnectToken;
    }
    if HOST_PATHS.contains(&path) || HOST_TREES.iter().any(|tree| is_under(path, tree)) {
        return Route::Host;
    }
    if method == Method::POST {
        if let Some(refusal) = refused_session_action(path) {
            return Route::Refused(refusal);
        }
    }
    Route::Server
}

/// `tree` itself or a path below it (`/vcs`, `/vcs/diff`; not `/vcsx`).
fn is_under(path: &str, tree: &str) -> bool {
    path.strip_prefix(tree)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// `/session/{id}/<action>` with a refused action.
fn refused_session_action(path: &str) -> Option<Refusal> {
    let mut segments = path.strip_prefix("/session/")?.split('/');
    let (Some(id), Some(action), None) = (segments.next(), segments.next(), segments.next()) else {
        return None;
    };
    if id.is_empty() {
        return None;
    }
    REFUSED_SESSION_ACTIONS
        .iter()
        .find(|(name, _)| *name == action)
        .map(|(_, refusal)| *refusal)
}

/// The terminal id of `/pty/{id}/<action>`.
pub fn pty_action<'a>(path: &'a str, action: &str) -> Option<&'a str> {
    let (id, rest) = path.strip_prefix("/pty/")?.split_once('/')?;
    (!id.is_empty() && rest == action).then_some(id)
}

/// The stub's URL path (and query) for a host request: the OpenCode path under the workspace's
/// prefix, with the original query.
pub fn host_path(workspace: &str, path: &str, query: Option<&str>) -> String {
    let base = opencode_remote_protocol::routes::opencode(workspace, path);
    match query {
        Some(query) if !query.is_empty() => format!("{base}?{query}"),
        _ => base,
    }
}

impl Refusal {
    /// OpenCode's error name for the refusal.
    pub fn name(self) -> &'static str {
        "BadRequest"
    }

    /// Why, and what to do instead; `host` is the workspace's host.
    pub fn message(self, host: &str) -> String {
        match self {
            Refusal::Revert => format!(
                "Undo and revert are not available in an SSH workspace yet: the snapshots are of this \
                 machine, not of {host}. Use git on the host (the bash tool) to restore files."
            ),
            Refusal::Shell => format!(
                "`!` shell commands are not available in an SSH workspace yet; ask the agent to run it \
                 (its bash tool runs on {host})."
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Route {
        route(&Method::GET, path)
    }

    #[test]
    fn files_search_vcs_pty_and_path_should_go_to_the_host() {
        for path in [
            "/file",
            "/file/content",
            "/file/status",
            "/find",
            "/find/file",
            "/find/symbol",
            "/path",
            "/vcs",
            "/vcs/status",
            "/vcs/diff",
            "/vcs/diff/raw",
            "/pty",
            "/pty/shells",
            "/pty/pty_1",
            "/pty/pty_1/connect",
            "/pty/pty_1/connect-token",
        ] {
            assert_eq!(get(path), Route::Host, "{path}");
        }
        assert_eq!(route(&Method::POST, "/vcs/apply"), Route::Host);
        assert_eq!(
            route(&Method::POST, "/pty/pty_1/connect-token"),
            Route::ConnectToken
        );
        assert_eq!(route(&Method::POST, "/pty"), Route::Host);
        assert_eq!(route(&Method::PUT, "/pty/pty_1"), Route::Host);
        assert_eq!(route(&Method::DELETE, "/pty/pty_1"), Route::Host);
    }

    #[test]
    fn lookalike_paths_should_stay_with_the_server() {
        for path in [
            "/files",
            "/file/other",
            "/find/files",
            "/vcsx",
            "/ptyx/1",
            "/paths",
            "/path/x",
            "/api/fs/find",
            "/api/pty",
            "/experimental/worktree",
        ] {
            assert_eq!(get(path), Route::Server, "{path}");
        }
    }

    #[test]
    fn revert_unrevert_and_shell_posts_should_be_refused() {
        let post = |path| route(&Method::POST, path);
        assert_eq!(
            post("/session/ses_1/revert"),
            Route::Refused(Refusal::Revert)
        );
        assert_eq!(
            post("/session/ses_1/unrevert"),
            Route::Refused(Refusal::Revert)
        );
        assert_eq!(post("/session/ses_1/shell"), Route::Refused(Refusal::Shell));
    }

    #[test]
    fn other_session_routes_should_stay_with_the_server() {
        assert_eq!(get("/session/ses_1/revert"), Route::Server);
        assert_eq!(get("/session/ses_1/diff"), Route::Server);
        for path in [
            "/session",
            "/session/ses_1/message",
            "/session/ses_1/prompt_async",
            "/session/ses_1/abort",
            "/session/ses_1/revert/x",
            "/session//revert",
            "/session/revert",
            "/event",
            "/global/event",
            "/sync/history",
        ] {
            assert_eq!(route(&Method::POST, path), Route::Server, "{path}");
        }
    }

    #[test]
    fn pty_actions_should_name_their_terminal() {
        assert_eq!(pty_action("/pty/pty_1/connect", "connect"), Some("pty_1"));
        assert_eq!(pty_action("/pty/pty_1/connect-token", "connect"), None);
        assert_eq!(pty_action("/pty//connect", "connect"), None);
        assert_eq!(pty_action("/pty/pty_1/connect/x", "connect"), None);
        assert_eq!(pty_action("/vcs/pty_1/connect", "connect"), None);
    }

    #[test]
    fn a_host_path_should_be_the_stubs_opencode_route_with_the_query() {
        assert_eq!(
            host_path("wrk_1", "/file/content", Some("path=src%2Fa.rs")),
            "/v1/workspaces/wrk_1/oc/file/content?path=src%2Fa.rs"
        );
        assert_eq!(
            host_path("wrk_1", "/pty/pty_9/connect", Some("cursor=3&ticket=t")),
            "/v1/workspaces/wrk_1/oc/pty/pty_9/connect?cursor=3&ticket=t"
        );
        assert_eq!(
            host_path("wrk_1", "/vcs", None),
            "/v1/workspaces/wrk_1/oc/vcs"
        );
        assert_eq!(
            host_path("wrk_1", "/path", Some("")),
            "/v1/workspaces/wrk_1/oc/path"
        );
    }

    #[test]
    fn refusals_should_name_the_host_and_what_to_do() {
        let revert = Refusal::Revert.message("build-box");
        assert!(revert.contains("not of build-box"), "{revert}");
        assert!(revert.contains("git on the host"), "{revert}");
        let shell = Refusal::Shell.message("build-box");
        assert!(shell.contains("runs on build-box"), "{shell}");
    }
}
