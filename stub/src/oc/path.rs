//! `GET /path`: OpenCode's `Path` of the workspace, as the host sees it. The TUI shows paths
//! relative to `directory` and `~` for `home`, so these must be the host's, not this machine's.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;

use crate::error::ApiErr;
use crate::server::App;

/// OpenCode 1.18.33's `Path` (`{home, state, config, worktree, directory}`).
#[derive(Debug, Serialize)]
pub struct OpencodePath {
    pub home: String,
    /// Where an OpenCode run on the host would keep its state and config (its XDG defaults).
    pub state: String,
    pub config: String,
    /// The workspace root: a workspace is its own worktree.
    pub worktree: String,
    pub directory: String,
}

pub async fn get(
    State(app): State<Arc<App>>,
    Path(ws): Path<String>,
) -> Result<Json<OpencodePath>, ApiErr> {
    let root = app.state.root(&ws)?;
    let home = app.state.user_home().map(FsPath::to_path_buf);
    Ok(Json(path_of(&root, home.as_deref())))
}

fn path_of(root: &FsPath, home: Option<&FsPath>) -> OpencodePath {
    let text = |p: PathBuf| p.to_string_lossy().into_owned();
    // Without a home (no `$HOME`), the root stands in: the TUI then shows paths in full.
    let home = home.unwrap_or(root);
    OpencodePath {
        home: text(home.to_path_buf()),
        state: text(home.join(".local/state/opencode")),
        config: text(home.join(".config/opencode")),
        worktree: text(root.to_path_buf()),
        directory: text(root.to_path_buf()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_should_be_the_hosts_home_and_the_workspace_root() {
        let path = path_of(FsPath::new("/srv/ws"), Some(FsPath::new("/home/u")));
        let json = serde_json::to_value(&path).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "home": "/home/u",
                "state": "/home/u/.local/state/opencode",
                "config": "/home/u/.config/opencode",
                "worktree": "/srv/ws",
                "directory": "/srv/ws",
            })
        );
    }
}
