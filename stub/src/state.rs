//! Workspaces and their approvals: the permission-first check every path goes through.
//!
//! One stub serves every workspace of its user. Each workspace has its own root and its own
//! approvals file (`state/approvals/<id>.json`, 0600), holding the `always` patterns, the pending
//! requests and the unused `once` grants, so all three survive a restart and no workspace ever
//! sees another's.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use opencode_remote_protocol::{
    is_valid_workspace_id, paths as layout, ErrorKind, Operation, PermissionKind,
    PermissionRequest, PermissionsInfo, Reply, WorkspaceInfo,
};
use serde::{Deserialize, Serialize};

use crate::error::ApiErr;
use crate::paths::{absolute, pattern_covers, pattern_for, resolve, resolve_parent};
use crate::util::{atomic_write, log, now_ms, random_id};

/// A pending request is forgotten after this long without a reply (ms).
const PENDING_TTL_MS: u64 = 24 * 60 * 60 * 1000;
/// A `once` grant is good for this long (ms).
const GRANT_TTL_MS: u64 = 60 * 60 * 1000;
/// Pending requests kept per workspace; the oldest go first.
const MAX_PENDING: usize = 256;
/// Unused grants kept per workspace; the oldest go first.
const MAX_GRANTS: usize = 256;
/// Version of the files under `state/`.
const STATE_FILE_VERSION: u32 = 1;

/// How a path is used, which decides what an approval pattern for it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// A file: the pattern is its parent directory.
    File,
    /// A directory: the pattern is the directory itself.
    Dir,
    /// Whatever the path turns out to be.
    Any,
    /// The entry itself, not a symlink's target (remove, rename): resolved up to its parent.
    Entry,
}

/// A path a request names, before resolution.
pub struct Target<'a> {
    pub input: &'a str,
    pub usage: Use,
}

impl<'a> Target<'a> {
    pub fn new(input: &'a str, usage: Use) -> Self {
        Target { input, usage }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WorkspaceFile {
    version: u32,
    id: String,
    root: PathBuf,
    created_at: u64,
}

/// What an approval allows doing at its paths: an `always` to read is no licence to write or run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Access {
    /// read, stat, list, glob, grep
    Read,
    /// write, remove, rename
    Write,
    /// a command's working directory and the paths it names
    Exec,
}

impl From<Operation> for Access {
    fn from(operation: Operation) -> Self {
        match operation {
            Operation::Read
            | Operation::Stat
            | Operation::List
            | Operation::Glob
            | Operation::Grep => Access::Read,
            Operation::Write | Operation::Remove | Operation::Rename => Access::Write,
            Operation::Exec => Access::Exec,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AlwaysApproval {
    /// `None` in files written before approvals named their access: such an approval allows nothing
    /// (failing closed), and the user is asked again.
    #[serde(default)]
    access: Option<Access>,
    pattern: String,
    request_id: String,
    created_at: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Grant {
    id: String,
    operation: Operation,
    paths: Vec<PathBuf>,
    expires_at: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Approvals {
    version: u32,
    workspace: String,
    always: Vec<AlwaysApproval>,
    pending: Vec<PermissionRequest>,
    grants: Vec<Grant>,
}

struct Workspace {
    root: PathBuf,
    approvals: Approvals,
}

impl Workspace {
    fn allows(&self, path: &Path, access: Access) -> bool {
        path.starts_with(&self.root)
            || self
                .approvals
                .always
                .iter()
                .any(|a| a.access == Some(access) && pattern_covers(&a.pattern, path))
    }

    fn prune(&mut self, now: u64) {
        let a = &mut self.approvals;
        a.pending
            .retain(|p| p.created_at + PENDING_TTL_MS > now && p.created_at <= now);
        a.grants.retain(|g| g.expires_at > now);
        let over = a.pending.len().saturating_sub(MAX_PENDING);
        a.pending.drain(..over);
        let over = a.grants.len().saturating_sub(MAX_GRANTS);
        a.grants.drain(..over);
    }
}

/// All workspaces of this stub.
pub struct State {
    /// The stub's home (`~/.opencode-remote`).
    home: PathBuf,
    /// The user's home, for `~` in paths.
    user_home: Option<PathBuf>,
    workspaces: Mutex<HashMap<String, Workspace>>,
}

impl State {
    /// Loads every workspace recorded under `state/workspaces/`. Unreadable files are logged and
    /// skipped (a corrupt approvals file yields no approvals: failing closed).
    pub fn load(home: &Path, user_home: Option<PathBuf>) -> State {
        let mut map = HashMap::new();
        if let Ok(dir) = fs::read_dir(home.join(layout::WORKSPACES_DIR)) {
            for entry in dir.flatten() {
                let path = entry.path();
                if path.extension().and_then(|e| e.to_str()) != Some("json") {
                    continue;
                }
                let parsed = fs::read(&path).map_err(|e| e.to_string()).and_then(|b| {
                    serde_json::from_slice::<WorkspaceFile>(&b).map_err(|e| e.to_string())
                });
                match parsed {
                    Ok(ws) if is_valid_workspace_id(&ws.id) => {
                        let approvals = load_approvals(home, &ws.id);
                        map.insert(
                            ws.id.clone(),
                            Workspace {
                                root: ws.root,
                                approvals,
                            },
                        );
                    }
                    Ok(_) => {}
                    Err(e) => log(
                        "warn",
                        "skipping unreadable workspace file",
                        serde_json::json!({ "file": path, "error": e }),
                    ),
                }
            }
        }
        State {
            home: home.to_path_buf(),
            user_home,
            workspaces: Mutex::new(map),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Workspace>> {
        self.workspaces.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The user's home on this host, when known.
    pub fn user_home(&self) -> Option<&Path> {
        self.user_home.as_deref()
    }

    /// Number of registered workspaces.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// Registers a workspace or updates its root. The root is created when missing and
    /// canonicalized. Blocking.
    pub fn register(&self, id: &str, root: &str) -> Result<WorkspaceInfo, ApiErr> {
        check_id(id)?;
        let home = self.user_home.as_deref();
        if !(root.starts_with('/') || root == "~" || root.starts_with("~/")) {
            return Err(ApiErr::new(
                ErrorKind::BadRequest,
                "workspace root must be absolute (or start with ~/)",
            ));
        }
        let raw = absolute(Path::new("/"), home, root);
        fs::create_dir_all(&raw).map_err(|e| ApiErr::io(e, "creating the workspace root"))?;
        let root = fs::canonicalize(&raw).map_err(|e| ApiErr::io(e, "resolving the root"))?;
        if !root.is_dir() {
            return Err(ApiErr::new(
                ErrorKind::NotDirectory,
                "workspace root is not a directory",
            ));
        }
        let mut map = self.lock();
        let changed = map.get(id).map(|w| w.root != root).unwrap_or(true);
        if changed {
            let file = WorkspaceFile {
                version: STATE_FILE_VERSION,
                id: id.to_string(),
                root: root.clone(),
                created_at: now_ms(),
            };
            let bytes = serde_json::to_vec_pretty(&file).unwrap_or_default();
            atomic_write(&self.workspace_file(id), &bytes, Some(0o600))
                .map_err(|e| ApiErr::io(e, "saving the workspace"))?;
            let approvals = match map.remove(id) {
                Some(w) => w.approvals,
                None => load_approvals(&self.home, id),
            };
            map.insert(
                id.to_string(),
                Workspace {
                    root: root.clone(),
                    approvals,
                },
            );
        }
        let ws = &map[id];
        Ok(WorkspaceInfo {
            id: id.to_string(),
            root: root.to_string_lossy().into_owned(),
            created: changed,
            always: ws
                .approvals
                .always
                .iter()
                .map(|a| a.pattern.clone())
                .collect(),
        })
    }

    /// One workspace.
    pub fn info(&self, id: &str) -> Result<WorkspaceInfo, ApiErr> {
        let map = self.lock();
        let ws = map.get(id).ok_or_else(|| unknown_workspace(id))?;
        Ok(WorkspaceInfo {
            id: id.to_string(),
            root: ws.root.to_string_lossy().into_owned(),
            created: false,
            always: ws
                .approvals
                .always
                .iter()
                .map(|a| a.pattern.clone())
                .collect(),
        })
    }

    /// All workspaces, by id.
    pub fn list(&self) -> Vec<WorkspaceInfo> {
        let ids: Vec<String> = self.lock().keys().cloned().collect();
        let mut out: Vec<WorkspaceInfo> = ids.iter().filter_map(|id| self.info(id).ok()).collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// Forgets a workspace and its approvals (its root directory stays). Blocking.
    pub fn remove(&self, id: &str) -> Result<WorkspaceInfo, ApiErr> {
        let info = self.info(id)?;
        self.lock().remove(id);
        for file in [self.workspace_file(id), approvals_file(&self.home, id)] {
            match fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(ApiErr::io(e, "removing workspace state")),
            }
        }
        Ok(info)
    }

    /// The canonical root of a workspace.
    pub fn root(&self, id: &str) -> Result<PathBuf, ApiErr> {
        let map = self.lock();
        Ok(map
            .get(id)
            .ok_or_else(|| unknown_workspace(id))?
            .root
            .clone())
    }

    /// Resolves every target of a request and checks it against the workspace's root and
    /// approvals. Returns the resolved paths (in order) when all are allowed, or when `grant` is
    /// an unused `once` grant for this operation covering every refused path (the grant is then
    /// used up). Otherwise records a pending request and fails with 403 `permission_required`.
    /// Blocking.
    pub fn authorize(
        &self,
        ws_id: &str,
        operation: Operation,
        targets: &[Target<'_>],
        grant: Option<&str>,
    ) -> Result<Vec<PathBuf>, ApiErr> {
        let root = self.root(ws_id)?;
        let mut resolved = Vec::with_capacity(targets.len());
        let mut refused: Vec<(PathBuf, bool)> = Vec::new();
        for t in targets {
            let abs = absolute(&root, self.user_home.as_deref(), t.input);
            let path = match t.usage {
                Use::Entry => resolve_parent(&abs),
                _ => resolve(&abs),
            }
            .map_err(|e| ApiErr::new(ErrorKind::BadRequest, e.to_string()))?;
            resolved.push((path, t.usage));
        }
        let mut map = self.lock();
        let ws = map.get_mut(ws_id).ok_or_else(|| unknown_workspace(ws_id))?;
        for (path, usage) in &resolved {
            if !ws.allows(path, Access::from(operation)) {
                let is_dir = match usage {
                    Use::Dir => true,
                    Use::File | Use::Entry => false,
                    Use::Any => path.is_dir(),
                };
                refused.push((path.clone(), is_dir));
            }
        }
        let paths: Vec<PathBuf> = resolved.into_iter().map(|(p, _)| p).collect();
        if refused.is_empty() {
            return Ok(paths);
        }
        let now = now_ms();
        ws.prune(now);
        if let Some(grant) = grant {
            let pos = ws.approvals.grants.iter().position(|g| {
                g.id == grant
                    && g.operation == operation
                    && refused.iter().all(|(p, _)| g.paths.contains(p))
            });
            if let Some(pos) = pos {
                ws.approvals.grants.remove(pos);
                self.save(ws_id, ws)?;
                return Ok(paths);
            }
        }
        let refused_paths: Vec<String> = refused
            .iter()
            .map(|(p, _)| p.to_string_lossy().into_owned())
            .collect();
        let mut patterns: Vec<String> = Vec::new();
        for (p, is_dir) in &refused {
            let pattern = pattern_for(p, *is_dir);
            if !patterns.contains(&pattern) {
                patterns.push(pattern);
            }
        }
        // The same refusal again (the model retrying before the user answered) reuses its request.
        let existing = ws
            .approvals
            .pending
            .iter()
            .find(|p| p.operation == operation && p.paths == refused_paths)
            .cloned();
        let request = match existing {
            Some(r) => r,
            None => {
                let r = PermissionRequest {
                    permission: PermissionKind::ExternalDirectory,
                    request_id: random_id("per"),
                    workspace: ws_id.to_string(),
                    operation,
                    path: refused_paths[0].clone(),
                    paths: refused_paths,
                    patterns,
                    created_at: now,
                };
                ws.approvals.pending.push(r.clone());
                ws.prune(now);
                self.save(ws_id, ws)?;
                r
            }
        };
        log(
            "info",
            "permission_required",
            serde_json::json!({
                "workspace": ws_id,
                "operation": operation,
                "requestId": request.request_id,
            }),
        );
        Err(ApiErr::permission(request))
    }

    /// Records the user's answer to a pending request. Blocking.
    pub fn reply(
        &self,
        ws_id: &str,
        request_id: &str,
        reply: Reply,
    ) -> Result<(Option<String>, Vec<String>), ApiErr> {
        let mut map = self.lock();
        let ws = map.get_mut(ws_id).ok_or_else(|| unknown_workspace(ws_id))?;
        let now = now_ms();
        ws.prune(now);
        let pos = ws
            .approvals
            .pending
            .iter()
            .position(|p| p.request_id == request_id)
            .ok_or_else(|| {
                ApiErr::new(
                    ErrorKind::UnknownRequest,
                    "no such pending permission request in this workspace (answered, expired, or of another workspace)",
                )
            })?;
        let request = ws.approvals.pending.remove(pos);
        let mut grant = None;
        let mut approved = Vec::new();
        match reply {
            Reply::Once => {
                let id = random_id("grt");
                ws.approvals.grants.push(Grant {
                    id: id.clone(),
                    operation: request.operation,
                    paths: request.paths.iter().map(PathBuf::from).collect(),
                    expires_at: now + GRANT_TTL_MS,
                });
                grant = Some(id);
            }
            Reply::Always => {
                let access = Some(Access::from(request.operation));
                for pattern in &request.patterns {
                    let known = |a: &AlwaysApproval| &a.pattern == pattern && a.access == access;
                    if !ws.approvals.always.iter().any(known) {
                        ws.approvals.always.push(AlwaysApproval {
                            access,
                            pattern: pattern.clone(),
                            request_id: request.request_id.clone(),
                            created_at: now,
                        });
                    }
                }
                approved = request.patterns.clone();
            }
            Reply::Reject => {}
        }
        ws.prune(now);
        self.save(ws_id, ws)?;
        log(
            "info",
            "permission_reply",
            serde_json::json!({ "workspace": ws_id, "requestId": request_id, "reply": reply }),
        );
        Ok((grant, approved))
    }

    /// Pending requests and `always` patterns of a workspace.
    pub fn permissions(&self, ws_id: &str) -> Result<PermissionsInfo, ApiErr> {
        let mut map = self.lock();
        let ws = map.get_mut(ws_id).ok_or_else(|| unknown_workspace(ws_id))?;
        ws.prune(now_ms());
        Ok(PermissionsInfo {
            pending: ws.approvals.pending.clone(),
            always: ws
                .approvals
                .always
                .iter()
                .map(|a| a.pattern.clone())
                .collect(),
        })
    }

    fn workspace_file(&self, id: &str) -> PathBuf {
        self.home
            .join(layout::WORKSPACES_DIR)
            .join(format!("{id}.json"))
    }

    fn save(&self, id: &str, ws: &mut Workspace) -> Result<(), ApiErr> {
        ws.approvals.version = STATE_FILE_VERSION;
        ws.approvals.workspace = id.to_string();
        let bytes = serde_json::to_vec_pretty(&ws.approvals).unwrap_or_default();
        atomic_write(&approvals_file(&self.home, id), &bytes, Some(0o600))
            .map_err(|e| ApiErr::io(e, "saving approvals"))
    }
}

fn approvals_file(home: &Path, id: &str) -> PathBuf {
    home.join(layout::APPROVALS_DIR).join(format!("{id}.json"))
}

fn load_approvals(home: &Path, id: &str) -> Approvals {
    let file = approvals_file(home, id);
    match fs::read(&file) {
        Ok(bytes) => match serde_json::from_slice::<Approvals>(&bytes) {
            Ok(a) => a,
            Err(e) => {
                log(
                    "warn",
                    "ignoring unreadable approvals file",
                    serde_json::json!({ "workspace": id, "error": e.to_string() }),
                );
                Approvals::default()
            }
        },
        Err(_) => Approvals::default(),
    }
}

fn check_id(id: &str) -> Result<(), ApiErr> {
    if is_valid_workspace_id(id) {
        Ok(())
    } else {
        Err(ApiErr::new(
            ErrorKind::BadRequest,
            "workspace id must be 1-128 of [A-Za-z0-9._-], not starting with '.'",
        ))
    }
}

fn unknown_workspace(id: &str) -> ApiErr {
    ApiErr::new(
        ErrorKind::UnknownWorkspace,
        format!("unknown workspace {id:?}; register it first"),
    )
}
