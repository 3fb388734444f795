//! The stub's wire types, shared by the addon (client) and the stub (server) so they cannot drift.
//!
//! Everything here is plain data: serde structs with camelCase JSON names, route paths and the
//! layout of the stub's home directory. The stub speaks HTTP/1.1 on a Unix socket inside its private
//! (0700) run directory, [`paths::SOCKET_FILE`], and nowhere else; the addon reaches it through SSH
//! stream-local forwarding (`direct-streamlocal@openssh.com`). Another user on the host can neither
//! connect to that socket nor bind one in its place. Every route, including `/global/health`, needs
//! `Authorization: Bearer <token>`.
//!
//! # Routes
//! | method | path | body | answer |
//! |---|---|---|---|
//! | GET | [`routes::HEALTH`] | – | [`Health`] |
//! | GET | [`routes::WORKSPACES`] | – | `Vec<`[`WorkspaceInfo`]`>` |
//! | POST | [`routes::WORKSPACES`] | [`RegisterWorkspace`] | [`WorkspaceInfo`] |
//! | GET, DELETE | `/v1/workspaces/{ws}` | – | [`WorkspaceInfo`] |
//! | POST | `/v1/workspaces/{ws}/fs/read` | [`ReadRequest`] | [`ReadResponse`] |
//! | POST | `/v1/workspaces/{ws}/fs/write` | [`WriteRequest`] | [`WriteResponse`] |
//! | POST | `/v1/workspaces/{ws}/fs/stat` | [`StatRequest`] | [`StatResponse`] |
//! | POST | `/v1/workspaces/{ws}/fs/list` | [`ListRequest`] | [`ListResponse`] |
//! | POST | `/v1/workspaces/{ws}/fs/remove` | [`RemoveRequest`] | [`RemoveResponse`] |
//! | POST | `/v1/workspaces/{ws}/fs/rename` | [`RenameRequest`] | [`RenameResponse`] |
//! | POST | `/v1/workspaces/{ws}/glob` | [`GlobRequest`] | [`GlobResponse`] |
//! | POST | `/v1/workspaces/{ws}/grep` | [`GrepRequest`] | [`GrepResponse`] |
//! | POST | `/v1/workspaces/{ws}/exec` | [`ExecRequest`] | NDJSON stream of [`ExecEvent`] |
//! | POST | `/v1/workspaces/{ws}/exec/{execId}/cancel` | – | [`CancelResponse`] |
//! | GET | `/v1/workspaces/{ws}/permissions` | – | [`PermissionsInfo`] |
//! | POST | `/v1/workspaces/{ws}/permissions/reply` | [`PermissionReply`] | [`PermissionReplyResponse`] |
//!
//! Errors are [`ApiError`] bodies. A path outside the workspace root and its approvals is refused
//! with 403 and an [`ErrorKind::PermissionRequired`] error that carries a [`PermissionRequest`].

#![warn(missing_docs)]

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Version of this protocol; the stub reports it in its health answer. Bump it on any change a
/// client of the previous version would misread.
///
/// 2: the stub listens on a Unix socket ([`StubInfo::socket`]) instead of a loopback TCP port.
pub const PROTOCOL_VERSION: u32 = 2;

/// Name of the stub binary; release files are `<name>-<version>-<arch>-linux`.
pub const STUB_BINARY_NAME: &str = "opencode-remote-stub";

/// Exit code of `opencode-remote-stub status` when no stub is running (or the recorded one does not
/// answer). Fixed, so a client can tell "not running" from a crash (Zed's proxy uses the same code).
pub const EXIT_NOT_RUNNING: i32 = 90;

/// Exit code of `opencode-remote-stub attach` when the running stub refused to register the
/// workspace; its [`ApiError`] is on stdout.
pub const EXIT_ATTACH_REFUSED: i32 = 3;

/// Exit code of `opencode-remote-stub serve` when another stub already holds the home's lock.
pub const EXIT_ALREADY_RUNNING: i32 = 91;

/// Exit code of `opencode-remote-stub status` and `attach` when the recorded stub is one of ours
/// (this user's process, a binary from our home) but speaks an older [`PROTOCOL_VERSION`]: it is not
/// talked to, and a client stops it (by its recorded pid) before starting the current one.
pub const EXIT_OUTDATED: i32 = 92;

/// Longest socket path a Unix socket address holds (`sun_path` is 108 bytes on Linux, with its NUL).
pub const MAX_SOCKET_PATH_BYTES: usize = 107;

/// Prefix of the `Authorization` header value; the token follows it.
pub const BEARER_PREFIX: &str = "Bearer ";

/// Shortest token the stub accepts from its token file, in bytes.
pub const MIN_TOKEN_LEN: usize = 16;

/// The stub's home directory, relative to `$HOME`, and the files under it.
pub mod paths {
    /// `$HOME/<this>` is the default stub home.
    pub const HOME_DIR: &str = ".opencode-remote";
    /// Installed binaries: `bin/<version>/opencode-remote-stub`.
    pub const BIN_DIR: &str = "bin";
    /// Runtime files of the running stub (token, address, lock).
    pub const RUN_DIR: &str = "run";
    /// Logs (`log/stub.log`).
    pub const LOG_DIR: &str = "log";
    /// Persistent state.
    pub const STATE_DIR: &str = "state";
    /// One JSON file per registered workspace: `state/workspaces/<id>.json`.
    pub const WORKSPACES_DIR: &str = "state/workspaces";
    /// One JSON file of approvals per workspace: `state/approvals/<id>.json` (0600).
    pub const APPROVALS_DIR: &str = "state/approvals";
    /// Reserved for remote_login's session hand-over.
    pub const SESSIONS_DIR: &str = "state/sessions";
    /// The Bearer token, 0600, one line; read once when the stub starts.
    pub const TOKEN_FILE: &str = "run/stub.token";
    /// Written atomically once the stub listens: a [`crate::StubInfo`].
    pub const INFO_FILE: &str = "run/stub.json";
    /// Held with `flock` for the life of the stub: one stub per home.
    pub const LOCK_FILE: &str = "run/stub.lock";
    /// The stub's listening Unix socket (0600, in the 0700 [`RUN_DIR`]).
    pub const SOCKET_FILE: &str = "run/stub.sock";
    /// The stub's second socket, for [`crate::routes::ATTACH`] alone (0600, in the 0700
    /// [`RUN_DIR`]). Only the remote user reaches it, through SSH: the workspace tunnel forwards to
    /// [`SOCKET_FILE`], never here, so no local user behind that tunnel does.
    pub const ATTACH_SOCKET_FILE: &str = "run/attach.sock";
    /// JSON lines, one per request; never tokens or file contents.
    pub const LOG_FILE: &str = "log/stub.log";
    /// Every directory the stub creates under its home (0700).
    pub const ALL_DIRS: [&str; 8] = [
        BIN_DIR,
        RUN_DIR,
        LOG_DIR,
        STATE_DIR,
        WORKSPACES_DIR,
        APPROVALS_DIR,
        SESSIONS_DIR,
        "state/tmp",
    ];
}

/// Route paths. Workspace routes take the workspace id as the first path parameter.
pub mod routes {
    /// `GET`: [`crate::Health`]. Same path and `healthy`/`version` fields as OpenCode's server.
    pub const HEALTH: &str = "/global/health";
    /// `GET`: all workspaces; `POST` [`crate::RegisterWorkspace`]: register or update one.
    pub const WORKSPACES: &str = "/v1/workspaces";
    /// `POST` [`crate::RegisterWorkspace`] on the attach socket, without a token: registers the
    /// workspace and answers [`crate::Attached`] (the stub and its token). A warm workspace create
    /// needs no exec on the host (no session, no shell): one channel to that socket.
    pub const ATTACH: &str = "/v1/attach";

    /// `/v1/workspaces/{ws}`: `GET` one workspace, `DELETE` forgets it and its approvals.
    pub fn workspace(ws: &str) -> String {
        format!("/v1/workspaces/{ws}")
    }
    /// `/v1/workspaces/{ws}/<op>`, e.g. `op = "fs/read"`, `"glob"`, `"exec"`, `"permissions/reply"`.
    pub fn workspace_op(ws: &str, op: &str) -> String {
        format!("/v1/workspaces/{ws}/{op}")
    }
    /// `/v1/workspaces/{ws}/oc<path>`: an OpenCode server route (`path` = `/file/content`, `/vcs`,
    /// `/pty/{id}/connect`, …) served from the host with OpenCode's own request and response shapes.
    /// The addon's workspace router forwards the TUI's requests here unchanged but for this prefix.
    pub fn opencode(ws: &str, path: &str) -> String {
        format!("/v1/workspaces/{ws}/oc{path}")
    }
    /// `GET /v1/workspaces/{ws}/pty-events`: NDJSON, one OpenCode bus event per line, as the
    /// workspace's terminals change: `{"type":"pty.created"|"pty.updated","properties":{"info":Pty}}`,
    /// `{"type":"pty.exited","properties":{"id","exitCode"}}`, `{"type":"pty.deleted","properties":{"id"}}`.
    /// OpenCode publishes these on its bus (the TUI closes a terminal's tab on `pty.exited`); the
    /// stub cannot reach the control plane's bus, so the router republishes them.
    pub fn pty_events(ws: &str) -> String {
        format!("/v1/workspaces/{ws}/pty-events")
    }
    /// The route template of [`pty_events`].
    pub const PTY_EVENTS: &str = "/v1/workspaces/{ws}/pty-events";
    /// The route template of [`opencode`] in the stub's router, before the OpenCode path.
    pub const OPENCODE_PREFIX: &str = "/v1/workspaces/{ws}/oc";
    /// `POST /v1/workspaces/{ws}/exec/{exec_id}/cancel`.
    pub fn exec_cancel(ws: &str, exec_id: &str) -> String {
        format!("/v1/workspaces/{ws}/exec/{exec_id}/cancel")
    }
}

/// Default and maximum sizes. The stub clamps requests to the maxima.
pub mod limits {
    /// Lines a text read returns when the request gives no `limit` (OpenCode's read tool default).
    pub const READ_DEFAULT_LINES: u64 = 2000;
    /// Bytes of text a read returns at most when the request gives no `maxBytes`.
    pub const READ_DEFAULT_MAX_BYTES: u64 = 256 * 1024;
    /// Largest file a `bytes` read returns, and largest request body (a write), in bytes.
    pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
    /// Entries a list returns by default.
    pub const LIST_DEFAULT: usize = 1000;
    /// Entries a list returns at most.
    pub const LIST_MAX: usize = 100_000;
    /// Paths a glob returns by default (OpenCode's glob tool shows 100).
    pub const GLOB_DEFAULT: usize = 100;
    /// Paths a glob returns at most.
    pub const GLOB_MAX: usize = 10_000;
    /// Matches a grep returns by default (OpenCode's grep tool shows 100).
    pub const GREP_DEFAULT: usize = 100;
    /// Matches a grep returns at most.
    pub const GREP_MAX: usize = 10_000;
    /// A grep stops reading files once it has collected this many times `limit` matches.
    pub const GREP_COLLECT_FACTOR: usize = 10;
    /// Characters of a matched line a grep returns by default (longer lines are cut).
    pub const GREP_LINE_CHARS: usize = 2000;
    /// Files a glob or grep walk visits at most before it stops and reports `truncated`.
    pub const WALK_MAX_ENTRIES: usize = 1_000_000;
    /// Command timeout when the request gives none (OpenCode's bash tool default), in ms.
    pub const EXEC_DEFAULT_TIMEOUT_MS: u64 = 120_000;
    /// Longest allowed command timeout, in ms (one day).
    pub const EXEC_MAX_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1000;
}

/// `GET /global/health`. `healthy` and `version` match OpenCode's own health answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// Always `true` when the stub answers.
    pub healthy: bool,
    /// The stub's version (its crate version).
    pub version: String,
    /// [`PROTOCOL_VERSION`] of the stub.
    pub protocol: u32,
    /// Process id of the stub.
    pub pid: u32,
    /// When the stub started, ms since the Unix epoch.
    pub started_at: u64,
    /// `std::env::consts::OS`, e.g. `linux`.
    pub os: String,
    /// `std::env::consts::ARCH`, e.g. `x86_64` or `aarch64`.
    pub arch: String,
    /// Number of registered workspaces.
    pub workspaces: usize,
}

/// `run/stub.json`, written atomically by a stub once it listens, so a bootstrap finds its socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StubInfo {
    /// Process id of the stub.
    pub pid: u32,
    /// Absolute path of the Unix socket it listens on ([`paths::SOCKET_FILE`] under its home).
    /// Empty in the records of protocol-1 stubs, which listened on a loopback TCP port instead.
    #[serde(default)]
    pub socket: String,
    /// Its version.
    pub version: String,
    /// Its [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// When it started, ms since the Unix epoch.
    pub started_at: u64,
}

/// `POST /v1/workspaces`: register a workspace, or update its root. Idempotent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterWorkspace {
    /// Workspace id: 1–128 of `[A-Za-z0-9._-]`, not starting with `.`.
    pub id: String,
    /// Root directory. Absolute, or `~`/`~/…` (the stub user's home). Created when missing, then
    /// canonicalized (symlinks resolved).
    pub root: String,
}

/// The answer of [`routes::ATTACH`]: what the stub's `attach` command prints, as one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Attached {
    /// What `uname -sm` says on the host.
    pub system: String,
    /// The running stub.
    pub info: StubInfo,
    /// The stub's Bearer token (for the tunnel's requests).
    pub token: String,
    /// The workspace as registered.
    pub workspace: WorkspaceInfo,
}

/// A registered workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceInfo {
    /// Workspace id.
    pub id: String,
    /// Canonical root directory.
    pub root: String,
    /// `true` when this request created the workspace (or changed its root).
    #[serde(default)]
    pub created: bool,
    /// Approved `always` patterns.
    #[serde(default)]
    pub always: Vec<String>,
}

/// What a checked request was about to do; shown in the permission prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Operation {
    /// `fs/read`.
    Read,
    /// `fs/write`.
    Write,
    /// `fs/stat`.
    Stat,
    /// `fs/list`.
    List,
    /// `fs/remove`.
    Remove,
    /// `fs/rename`.
    Rename,
    /// `glob`.
    Glob,
    /// `grep`.
    Grep,
    /// `exec` (its `cwd` and `paths`).
    Exec,
}

impl Operation {
    /// Every operation a tool may call through `POST /v1/workspaces/{ws}/<route>`.
    pub const ALL: [Operation; 9] = [
        Operation::Read,
        Operation::Write,
        Operation::Stat,
        Operation::List,
        Operation::Remove,
        Operation::Rename,
        Operation::Glob,
        Operation::Grep,
        Operation::Exec,
    ];

    /// The route of this operation under a workspace: `fs/read`, `glob`, `exec`, ….
    pub const fn route(self) -> &'static str {
        match self {
            Operation::Read => "fs/read",
            Operation::Write => "fs/write",
            Operation::Stat => "fs/stat",
            Operation::List => "fs/list",
            Operation::Remove => "fs/remove",
            Operation::Rename => "fs/rename",
            Operation::Glob => "glob",
            Operation::Grep => "grep",
            Operation::Exec => "exec",
        }
    }

    /// The operation whose route is `route`.
    pub fn from_route(route: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|op| op.route() == route)
    }

    /// The stub's route template, `/v1/workspaces/{ws}/<route>`.
    pub fn route_template(self) -> String {
        routes::workspace_op("{ws}", self.route())
    }
}

/// A file or search request as a tool sends it, checked against the protocol's types before it
/// leaves this machine: a misspelt or extra field is refused here with its name, not on the host.
/// `exec` has its own streaming call and is not one of these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ToolRequest {
    /// `fs/read`.
    Read(ReadRequest),
    /// `fs/write`.
    Write(WriteRequest),
    /// `fs/stat`.
    Stat(StatRequest),
    /// `fs/list`.
    List(ListRequest),
    /// `fs/remove`.
    Remove(RemoveRequest),
    /// `fs/rename`.
    Rename(RenameRequest),
    /// `glob`.
    Glob(GlobRequest),
    /// `grep`.
    Grep(GrepRequest),
}

impl ToolRequest {
    /// Parses `body` as the request of the operation at `route`. The error names the route and,
    /// for a bad body, the field serde found wrong.
    pub fn parse(route: &str, body: serde_json::Value) -> Result<ToolRequest, String> {
        use serde_json::from_value;
        let op = Operation::from_route(route)
            .filter(|op| *op != Operation::Exec)
            .ok_or_else(|| format!("unknown operation `{route}`"))?;
        let bad = |e: serde_json::Error| format!("bad `{route}` request: {e}");
        Ok(match op {
            Operation::Read => ToolRequest::Read(from_value(body).map_err(bad)?),
            Operation::Write => ToolRequest::Write(from_value(body).map_err(bad)?),
            Operation::Stat => ToolRequest::Stat(from_value(body).map_err(bad)?),
            Operation::List => ToolRequest::List(from_value(body).map_err(bad)?),
            Operation::Remove => ToolRequest::Remove(from_value(body).map_err(bad)?),
            Operation::Rename => ToolRequest::Rename(from_value(body).map_err(bad)?),
            Operation::Glob => ToolRequest::Glob(from_value(body).map_err(bad)?),
            Operation::Grep => ToolRequest::Grep(from_value(body).map_err(bad)?),
            Operation::Exec => unreachable!("filtered above"),
        })
    }

    /// Which operation this is.
    pub fn operation(&self) -> Operation {
        match self {
            ToolRequest::Read(_) => Operation::Read,
            ToolRequest::Write(_) => Operation::Write,
            ToolRequest::Stat(_) => Operation::Stat,
            ToolRequest::List(_) => Operation::List,
            ToolRequest::Remove(_) => Operation::Remove,
            ToolRequest::Rename(_) => Operation::Rename,
            ToolRequest::Glob(_) => Operation::Glob,
            ToolRequest::Grep(_) => Operation::Grep,
        }
    }
}

/// Kind of permission a request needs. Same name as OpenCode's own permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PermissionKind {
    /// A path outside the workspace root, like OpenCode's own `external_directory`.
    ExternalDirectory,
}

/// A refused request, waiting for a [`PermissionReply`]. Carried by a 403
/// [`ErrorKind::PermissionRequired`] and listed by `GET …/permissions`. Persisted, so a reply
/// still works after a stub restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionRequest {
    /// Always [`PermissionKind::ExternalDirectory`].
    pub permission: PermissionKind,
    /// Random id to reply to.
    pub request_id: String,
    /// The workspace the request belongs to.
    pub workspace: String,
    /// What the request was about to do.
    pub operation: Operation,
    /// The first refused path, resolved (absolute, `..` and symlinks resolved).
    pub path: String,
    /// Every refused path of the request, resolved.
    pub paths: Vec<String>,
    /// What an `always` reply approves, for this request's kind of access only (read: read, stat,
    /// list, glob, grep; write: write, remove, rename; exec): each refused path itself, or `<dir>/*`
    /// for a directory operation (a listing, a command's working directory), which approves `<dir>`
    /// and everything below it.
    pub patterns: Vec<String>,
    /// When it was created, ms since the Unix epoch.
    pub created_at: u64,
}

/// The user's answer to a permission request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Reply {
    /// Allow exactly one retry of the same request: the reply returns a single-use grant.
    Once,
    /// Approve the request's patterns for this workspace, persisted across restarts.
    Always,
    /// Refuse; the request is dropped.
    Reject,
}

/// `POST …/permissions/reply`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PermissionReply {
    /// [`PermissionRequest::request_id`].
    pub request_id: String,
    /// The answer.
    pub reply: Reply,
}

/// Answer to a [`PermissionReply`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionReplyResponse {
    /// The request replied to.
    pub request_id: String,
    /// The answer recorded.
    pub reply: Reply,
    /// For `once`: pass this as `grant` on the retry. Good for one request with the same operation
    /// and paths, within an hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
    /// For `always`: the patterns now approved.
    #[serde(default)]
    pub patterns: Vec<String>,
}

/// `GET …/permissions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionsInfo {
    /// Requests waiting for a reply, oldest first.
    pub pending: Vec<PermissionRequest>,
    /// Approved `always` patterns.
    pub always: Vec<String>,
}

/// `POST …/fs/read`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReadRequest {
    /// File to read: absolute, relative to the workspace root, or `~/…`.
    pub path: String,
    /// `text` (default): lines. `bytes`: the whole file, base64.
    #[serde(default)]
    pub mode: ReadMode,
    /// Text: first line to return, 0-based.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Text: lines to return at most (default [`limits::READ_DEFAULT_LINES`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Text: bytes of line text to return at most (default [`limits::READ_DEFAULT_MAX_BYTES`]);
    /// bytes: the largest file accepted (at most [`limits::MAX_FILE_BYTES`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// Text: characters per line at most; longer lines are cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_line_chars: Option<usize>,
    /// A single-use grant from a `once` reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
}

/// How to read a file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ReadMode {
    /// Lines, paged with `offset` and `limit`.
    #[default]
    Text,
    /// The whole file, base64.
    Bytes,
}

/// Answer to a [`ReadRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadResponse {
    /// The resolved path read.
    pub path: String,
    /// File size in bytes.
    pub size: u64,
    /// Modification time, ms since the Unix epoch.
    pub mtime_ms: u64,
    /// Text: the file looks binary (a NUL byte in its first 8 KiB); `lines` is then empty.
    #[serde(default)]
    pub binary: bool,
    /// Text: the returned lines, without their line ends, invalid UTF-8 replaced.
    #[serde(default)]
    pub lines: Vec<String>,
    /// Text: 0-based index of the first returned line.
    #[serde(default)]
    pub offset: u64,
    /// Text: lines in the whole file.
    #[serde(default)]
    pub total_lines: u64,
    /// Text: lines exist after the returned ones (cut by `limit` or `maxBytes`).
    #[serde(default)]
    pub truncated: bool,
    /// Bytes: the whole file, base64 (standard alphabet, padded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
}

/// `POST …/fs/write`: replace a file atomically (temp file in the same directory, fsync, rename),
/// keeping an existing file's mode.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WriteRequest {
    /// File to write.
    pub path: String,
    /// New content as text. Exactly one of `content` and `base64` must be given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// New content as base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
    /// Mode for a new file (default 0644 less the umask); an existing file keeps its mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// Create missing parent directories (default `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_dirs: Option<bool>,
    /// A single-use grant from a `once` reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
}

/// Answer to a [`WriteRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteResponse {
    /// The resolved path written.
    pub path: String,
    /// Bytes written.
    pub size: u64,
    /// `true` when the file did not exist before.
    pub created: bool,
}

/// `POST …/fs/stat`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatRequest {
    /// Path to look at.
    pub path: String,
    /// A single-use grant from a `once` reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
}

/// Kind of a directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (only in listings, which do not follow links).
    Symlink,
    /// A device, socket or pipe.
    Other,
}

/// Answer to a [`StatRequest`]. A missing path is not an error: `exists` is `false`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatResponse {
    /// The resolved path (symlinks followed).
    pub path: String,
    /// Whether it exists.
    pub exists: bool,
    /// What it is (of the resolved path, so never `symlink`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<FileKind>,
    /// Size in bytes.
    #[serde(default)]
    pub size: u64,
    /// Permission bits, e.g. `0o644`.
    #[serde(default)]
    pub mode: u32,
    /// Modification time, ms since the Unix epoch.
    #[serde(default)]
    pub mtime_ms: u64,
}

/// `POST …/fs/list`: the entries of one directory, sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListRequest {
    /// Directory to list (default: the workspace root).
    #[serde(default)]
    pub path: String,
    /// Entries to return at most (default [`limits::LIST_DEFAULT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// A single-use grant from a `once` reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirEntry {
    /// File name.
    pub name: String,
    /// What it is (a symlink is reported as `symlink`, not followed).
    pub kind: FileKind,
    /// Size in bytes (of the entry itself).
    pub size: u64,
    /// Modification time, ms since the Unix epoch.
    pub mtime_ms: u64,
}

/// Answer to a [`ListRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListResponse {
    /// The resolved directory.
    pub path: String,
    /// Its entries, sorted by name.
    pub entries: Vec<DirEntry>,
    /// More entries exist than were returned.
    pub truncated: bool,
}

/// `POST …/fs/remove`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoveRequest {
    /// File or directory to remove. A symlink is removed itself, not its target.
    pub path: String,
    /// Remove a non-empty directory with everything in it.
    #[serde(default)]
    pub recursive: bool,
    /// A single-use grant from a `once` reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
}

/// Answer to a [`RemoveRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoveResponse {
    /// The path removed.
    pub path: String,
    /// `false` when there was nothing to remove.
    pub removed: bool,
}

/// `POST …/fs/rename`: move a file or directory (both paths are checked).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RenameRequest {
    /// Existing path.
    pub from: String,
    /// New path; missing parent directories are created.
    pub to: String,
    /// A single-use grant from a `once` reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
}

/// Answer to a [`RenameRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenameResponse {
    /// Resolved old path.
    pub from: String,
    /// Resolved new path.
    pub to: String,
}

/// `POST …/glob`: files under a directory whose path matches a glob, honouring `.gitignore`,
/// `.ignore` and `.git/info/exclude` (also outside a git repository), newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GlobRequest {
    /// Glob, gitignore-style: without a `/` it matches file names at any depth (`*.rs`), with one
    /// it matches the path relative to `path` (`src/**/*.rs`).
    pub pattern: String,
    /// Directory to search (default: the workspace root).
    #[serde(default)]
    pub path: String,
    /// Globs to leave out (same syntax); a matching directory is not entered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<String>,
    /// Paths to return at most (default [`limits::GLOB_DEFAULT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Also match directories.
    #[serde(default)]
    pub include_dirs: bool,
    /// A single-use grant from a `once` reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
}

/// Answer to a [`GlobRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GlobResponse {
    /// The resolved directory searched.
    pub path: String,
    /// Absolute paths, newest modification first.
    pub files: Vec<String>,
    /// More files matched than were returned (or the walk hit its bound).
    pub truncated: bool,
}

/// `POST …/grep`: lines matching a regex (Rust `regex` syntax) in files under a directory,
/// honouring ignore files like [`GlobRequest`]; binary files are skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrepRequest {
    /// The regex.
    pub pattern: String,
    /// Directory or file to search (default: the workspace root).
    #[serde(default)]
    pub path: String,
    /// Only files matching this glob (same syntax as [`GlobRequest::pattern`]), e.g. `*.{ts,tsx}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<String>,
    /// Globs to leave out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<String>,
    /// Case-insensitive match.
    #[serde(default)]
    pub case_insensitive: bool,
    /// Matches to return at most (default [`limits::GREP_DEFAULT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Characters of a line to return at most (default [`limits::GREP_LINE_CHARS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_line_chars: Option<usize>,
    /// A single-use grant from a `once` reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
}

/// One matching line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrepMatch {
    /// Absolute path of the file.
    pub path: String,
    /// 1-based line number.
    pub line: u64,
    /// The line, without its line end, cut to `maxLineChars`.
    pub text: String,
}

/// Answer to a [`GrepRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrepResponse {
    /// The resolved directory or file searched.
    pub path: String,
    /// Matches, files with the newest modification first, lines in file order.
    pub matches: Vec<GrepMatch>,
    /// More matches exist than were returned (or the search stopped at its bound).
    pub truncated: bool,
}

/// `POST …/exec`: run `<shell> -c <command>` in a new process group. The answer is an NDJSON
/// stream of [`ExecEvent`]s: `start`, then `stdout`/`stderr` chunks in arrival order, then `exit`.
/// Closing the connection, the timeout or a cancel kills the whole process group (SIGTERM, then
/// SIGKILL after a grace period). Background processes left when the shell exits normally are
/// left running.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecRequest {
    /// The command line, given to the shell as one argument.
    pub command: String,
    /// Working directory (default: the workspace root). Checked like any path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Extra environment variables, on top of the stub's environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Shell to run (default `/bin/sh`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
    /// Timeout in ms (default [`limits::EXEC_DEFAULT_TIMEOUT_MS`], at most
    /// [`limits::EXEC_MAX_TIMEOUT_MS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Other paths the command will touch (e.g. found by parsing it); checked like `cwd`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// A single-use grant from a `once` reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
}

/// One line of an exec stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ExecEvent {
    /// First line: the id to cancel with, and the shell's pid (= its process group id).
    #[serde(rename_all = "camelCase")]
    Start {
        /// For `POST …/exec/{execId}/cancel`.
        exec_id: String,
        /// The shell's pid, which is also the process group id.
        pid: u32,
    },
    /// Output on stdout.
    Stdout {
        /// UTF-8 text; invalid sequences replaced, a character never split across chunks.
        data: String,
    },
    /// Output on stderr.
    Stderr {
        /// As for stdout.
        data: String,
    },
    /// Last line.
    #[serde(rename_all = "camelCase")]
    Exit {
        /// Exit code, when the shell exited.
        code: Option<i32>,
        /// Signal number, when a signal ended the shell (SIGTERM or SIGKILL after a timeout or
        /// cancel).
        signal: Option<i32>,
        /// The timeout killed it.
        timed_out: bool,
        /// A cancel or a closed connection killed it.
        cancelled: bool,
        /// Run time in ms, including the kill.
        duration_ms: u64,
    },
    /// Last line instead of `exit` when waiting for the command failed.
    Error {
        /// What failed.
        message: String,
    },
}

/// Answer to a cancel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelResponse {
    /// The exec id.
    pub exec_id: String,
    /// `false` when it had already finished (or never existed).
    pub cancelled: bool,
}

/// Error body of every non-2xx answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    /// Machine-readable kind.
    #[serde(rename = "type")]
    pub kind: ErrorKind,
    /// Human-readable text. Never contains the token.
    pub message: String,
    /// For [`ErrorKind::PermissionRequired`]: what to ask the user; reply with its `requestId`.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub permission: Option<PermissionRequest>,
}

/// Kinds of [`ErrorDetail`], with their HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// 401: missing or wrong Bearer token.
    Unauthorized,
    /// 403: a path outside the root and the approvals; see [`ErrorDetail::permission`].
    PermissionRequired,
    /// 400: malformed request (bad JSON, bad regex or glob, bad workspace id, …).
    BadRequest,
    /// 404: unknown workspace.
    UnknownWorkspace,
    /// 404: unknown or expired permission request.
    UnknownRequest,
    /// 404: the file or directory does not exist.
    NotFound,
    /// 400: a directory where a file is needed.
    IsDirectory,
    /// 400: a file where a directory is needed.
    NotDirectory,
    /// 413: the file or body is larger than allowed.
    TooLarge,
    /// 404: no such route.
    NoRoute,
    /// 500: any other I/O error.
    Io,
}

impl ErrorKind {
    /// The HTTP status the stub answers with.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::Unauthorized => 401,
            ErrorKind::PermissionRequired => 403,
            ErrorKind::BadRequest | ErrorKind::IsDirectory | ErrorKind::NotDirectory => 400,
            ErrorKind::UnknownWorkspace
            | ErrorKind::UnknownRequest
            | ErrorKind::NotFound
            | ErrorKind::NoRoute => 404,
            ErrorKind::TooLarge => 413,
            ErrorKind::Io => 500,
        }
    }
}

/// Whether `id` is a valid workspace id (it names files under the stub's state directory).
pub fn is_valid_workspace_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_should_round_trip_through_its_route() {
        for op in Operation::ALL {
            assert_eq!(Operation::from_route(op.route()), Some(op));
            assert_eq!(
                op.route_template(),
                format!("/v1/workspaces/{{ws}}/{}", op.route())
            );
        }
        assert_eq!(Operation::from_route("fs/chmod"), None);
    }

    #[test]
    fn tool_request_should_refuse_an_unknown_field_by_name() {
        let err = ToolRequest::parse("fs/read", serde_json::json!({"path": "a", "offest": 3}))
            .unwrap_err();
        assert!(err.contains("fs/read") && err.contains("offest"), "{err}");
    }

    #[test]
    fn tool_request_should_refuse_unknown_operations_and_exec() {
        for route in ["fs/chmod", "exec", "permissions/reply", ""] {
            let err = ToolRequest::parse(route, serde_json::json!({})).unwrap_err();
            assert!(err.contains("unknown operation"), "{route}: {err}");
        }
    }

    #[test]
    fn tool_request_should_serialize_as_the_bare_request() {
        let parsed =
            ToolRequest::parse("grep", serde_json::json!({"pattern": "x", "path": "src"})).unwrap();
        assert_eq!(parsed.operation(), Operation::Grep);
        let sent = serde_json::to_value(&parsed).unwrap();
        assert_eq!(sent["pattern"], "x");
        assert_eq!(sent["path"], "src");
        let back: GrepRequest = serde_json::from_value(sent).unwrap();
        assert_eq!(back.pattern, "x");
    }

    #[test]
    fn permission_error_should_be_flat_like_opencode_expects() {
        let err = ApiError {
            error: ErrorDetail {
                kind: ErrorKind::PermissionRequired,
                message: "outside".into(),
                permission: Some(PermissionRequest {
                    permission: PermissionKind::ExternalDirectory,
                    request_id: "per_1".into(),
                    workspace: "w".into(),
                    operation: Operation::Read,
                    path: "/etc/passwd".into(),
                    paths: vec!["/etc/passwd".into()],
                    patterns: vec!["/etc/*".into()],
                    created_at: 1,
                }),
            },
        };
        let json = serde_json::to_value(&err).unwrap();
        assert_eq!(json["error"]["type"], "permission_required");
        assert_eq!(json["error"]["permission"], "external_directory");
        assert_eq!(json["error"]["requestId"], "per_1");
        assert_eq!(json["error"]["patterns"][0], "/etc/*");
        let back: ApiError = serde_json::from_value(json).unwrap();
        assert_eq!(back, err);
    }

    #[test]
    fn plain_error_should_round_trip_without_permission() {
        let json = r#"{"error":{"type":"not_found","message":"no such file"}}"#;
        let err: ApiError = serde_json::from_str(json).unwrap();
        assert_eq!(err.error.kind, ErrorKind::NotFound);
        assert!(err.error.permission.is_none());
        assert_eq!(serde_json::to_string(&err).unwrap(), json);
    }

    #[test]
    fn exec_events_should_be_tagged_by_type() {
        let exit = ExecEvent::Exit {
            code: Some(7),
            signal: None,
            timed_out: false,
            cancelled: false,
            duration_ms: 3,
        };
        assert_eq!(
            serde_json::to_string(&exit).unwrap(),
            r#"{"type":"exit","code":7,"signal":null,"timedOut":false,"cancelled":false,"durationMs":3}"#
        );
        let start: ExecEvent =
            serde_json::from_str(r#"{"type":"start","execId":"x","pid":5}"#).unwrap();
        assert_eq!(
            start,
            ExecEvent::Start {
                exec_id: "x".into(),
                pid: 5
            }
        );
    }

    #[test]
    fn requests_should_accept_minimal_json() {
        let r: ReadRequest = serde_json::from_str(r#"{"path":"a"}"#).unwrap();
        assert_eq!(r.mode, ReadMode::Text);
        let g: GlobRequest = serde_json::from_str(r#"{"pattern":"*.rs"}"#).unwrap();
        assert_eq!(g.path, "");
        let e: ExecRequest = serde_json::from_str(r#"{"command":"ls"}"#).unwrap();
        assert!(e.env.is_empty());
    }

    /// A protocol-1 stub's record (a TCP port, no socket) still parses, so a client of protocol 2
    /// can tell it is an older stub to stop rather than an unreadable file.
    #[test]
    fn stub_info_of_a_protocol_1_stub_should_parse_as_outdated() {
        let old: StubInfo = serde_json::from_str(
            r#"{"pid":7,"port":4100,"version":"0.1.0","protocol":1,"startedAt":1}"#,
        )
        .unwrap();
        assert_eq!((old.pid, old.protocol, old.socket.as_str()), (7, 1, ""));
        assert!(old.protocol < PROTOCOL_VERSION);
    }

    #[test]
    fn workspace_id_should_reject_path_tricks() {
        assert!(is_valid_workspace_id("wrk_01J.ab-c"));
        for bad in ["", ".", "..", "a/b", ".hidden", "a b", &"x".repeat(129)] {
            assert!(!is_valid_workspace_id(bad), "{bad:?}");
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

            /// A valid workspace id names one file under the state directory and one URL path segment:
            /// no separator, no `.`/`..`, nothing a URL would read as query, fragment or escape.
            #[test]
            fn valid_workspace_ids_should_be_one_safe_segment(id in prop_oneof![
                "[A-Za-z0-9._-]{0,130}",
                "[ -~]{0,20}",
                any::<String>(),
                Just("..".to_string()),
                Just("a/../b".to_string()),
            ]) {
                if is_valid_workspace_id(&id) {
                    prop_assert!(!id.is_empty() && id.len() <= 128);
                    prop_assert!(id != "." && id != ".." && !id.starts_with('.'));
                    prop_assert!(!id.contains(['/', '\\', '?', '#', '%', '\0', ' ']));
                    let route = routes::workspace_op(&id, "fs/read");
                    let segments: Vec<&str> = route.split('/').collect();
                    prop_assert_eq!(segments, ["", "v1", "workspaces", id.as_str(), "fs", "read"]);
                }
            }
        }
    }
}
