//! OpenCode's own routes, served from the host. In a workspace, the addon's router forwards the
//! TUI's `/file*`, `/find*`, `/vcs*`, `/pty*` and `/path` requests here as
//! `/v1/workspaces/{ws}/oc<path>` (see `routes::opencode`), with OpenCode 1.18.33's query parameters,
//! bodies and answers, so the router passes them through untouched and the TUI sees the host.
//! Each family of routes has its own module; every path is confined to the workspace root.

pub mod pty;

use std::sync::Arc;

use axum::Router;

use crate::server::App;

/// Every OpenCode route the stub serves, with full paths under `routes::OPENCODE_PREFIX`.
pub fn routes() -> Router<Arc<App>> {
    Router::new().merge(pty::routes())
}
