//! OpenCode's own routes, served from the host. In a workspace, the addon's router forwards the
//! TUI's `/file*`, `/find*`, `/vcs*`, `/pty*` and `/path` requests here as
//! `/v1/workspaces/{ws}/oc<path>` (see `routes::opencode`), with OpenCode 1.18.33's query parameters,
//! bodies and answers, so the router passes them through untouched and the TUI sees the host.
//! Each family of routes has its own module; every path is confined to the workspace root.
//!
//! These are the TUI's own reads (the `@` picker, the file viewer, the branch and diff panes), not
//! tool calls of the model: nobody is asked for permission here, and a path outside the workspace
//! root is simply refused (400, OpenCode's `BadRequest` shape). Errors use OpenCode's shapes
//! (`{"name": ..., "data": {"message": ...}}`), so the TUI handles them as it does OpenCode's.
//!
//! Where the answers knowingly differ from OpenCode 1.18.33 (`__test__/oc-routes.test.mjs` compares
//! everything else with a real `opencode serve`):
//! - a path outside the root is a 400 `BadRequest` (OpenCode dies: 500 `UnknownError`);
//! - a text file that is not UTF-8 is answered as binary (OpenCode's decoder throws: 500);
//! - messages of 500s say what failed (OpenCode's say "Unexpected server error" with a log ref);
//! - find.text lists matches in the walk's order (ripgrep's, in OpenCode, is unspecified too);
//! - find.files ranks with a small fzf-like scorer, not OpenCode's native finder (fff): the same
//!   best match first, but only real subsequence matches, and equal ranks by length then name;
//! - every answer is bounded (file content, walked entries, changed files, patch bytes).

mod collate;
mod file;
mod find;
mod git;
mod path;
pub mod pty;
mod vcs;

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use opencode_remote_protocol::routes;
use serde::Serialize;

use crate::error::ApiErr;
use crate::paths::resolve;
use crate::server::App;
use crate::state::State;

pub use collate::locale_cmp;

/// Every OpenCode route the stub serves, with full paths under `routes::OPENCODE_PREFIX`.
pub fn routes() -> Router<Arc<App>> {
    let router = Router::new().route(&at("/path"), get(path::get));
    let router = file::routes(router);
    let router = find::routes(router);
    vcs::routes(router).merge(pty::routes())
}

/// The stub's route for OpenCode's `path`.
fn at(path: &str) -> String {
    format!("{}{path}", routes::OPENCODE_PREFIX)
}

/// An error answered in OpenCode's shape.
#[derive(Debug)]
pub struct OcErr {
    status: StatusCode,
    body: ErrBody,
}

/// `{"name": ..., "data": {"message": ..., ...}}`, fields in OpenCode's order.
#[derive(Debug, Serialize)]
struct ErrBody {
    name: &'static str,
    data: ErrData,
}

#[derive(Debug, Serialize)]
struct ErrData {
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

impl ErrBody {
    fn new(name: &'static str, message: String) -> ErrBody {
        ErrBody {
            name,
            data: ErrData {
                message,
                kind: None,
                reason: None,
            },
        }
    }
}

impl OcErr {
    /// OpenCode's schema error for a bad query parameter or body (`kind`: `Query`, `Payload`).
    pub fn bad_request(kind: &'static str, message: impl Into<String>) -> OcErr {
        let mut body = ErrBody::new("BadRequest", message.into());
        body.data.kind = Some(kind);
        OcErr {
            status: StatusCode::BAD_REQUEST,
            body,
        }
    }

    /// A required query parameter is missing, worded as OpenCode words it.
    pub fn missing(key: &str) -> OcErr {
        OcErr::bad_request("Query", format!("Missing key\n  at [\"{key}\"]"))
    }

    /// What OpenCode answers as an "unexpected server error" (500): a missing directory, a
    /// directory where a file was expected, a bad regex. Ours says what went wrong.
    pub fn unknown(message: impl Into<String>) -> OcErr {
        OcErr {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            body: ErrBody::new("UnknownError", message.into()),
        }
    }

    /// OpenCode's `VcsApplyError` (400) with its `reason`.
    pub fn vcs_apply(message: &str, reason: &'static str) -> OcErr {
        let mut body = ErrBody::new("VcsApplyError", message.into());
        body.data.reason = Some(reason);
        OcErr {
            status: StatusCode::BAD_REQUEST,
            body,
        }
    }
}

impl From<ApiErr> for OcErr {
    fn from(err: ApiErr) -> OcErr {
        let message = err.0.message;
        match err.0.kind.status() {
            404 => OcErr {
                status: StatusCode::NOT_FOUND,
                body: ErrBody::new("NotFoundError", message),
            },
            400 => OcErr::bad_request("Query", message),
            _ => OcErr::unknown(message),
        }
    }
}

impl IntoResponse for OcErr {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

/// Runs `f` on tokio's blocking pool, as the stub's other handlers do.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, OcErr> + Send + 'static,
) -> Result<T, OcErr> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| OcErr::unknown(format!("worker failed: {e}")))?
}

/// The decoded query string, in order (`+` is a space, `%XX` a byte, as browsers and OpenCode's
/// SDK encode them).
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        let pairs = raw
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k), decode(v))
            })
            .collect();
        Query(pairs)
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn require(&self, key: &str) -> Result<&str, OcErr> {
        self.get(key).ok_or_else(|| OcErr::missing(key))
    }
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A path named by a request, confined to the workspace root.
pub struct Confined {
    /// The workspace root (absolute, resolved).
    pub root: PathBuf,
    /// `path.resolve(root, input)`: what OpenCode shows (relative paths are built from it).
    pub lexical: PathBuf,
    /// The same with every symlink followed: what is opened (without following anything).
    pub real: PathBuf,
}

/// Resolves `input` against the root like OpenCode's `path.resolve(directory, input)` and refuses
/// it unless both the path and its real path (symlinks followed) are inside the root, as OpenCode
/// does (`Path escapes the location`). `~` is not expanded: OpenCode doesn't either.
pub fn confine(state: &State, ws: &str, input: &str) -> Result<Confined, OcErr> {
    let root = state.root(ws)?;
    let lexical = normalize(&root.join(input));
    let outside = || {
        OcErr::bad_request(
            "Query",
            format!(
                "{input:?} is outside the workspace root {}; only paths inside it can be shown",
                root.display()
            ),
        )
    };
    if !lexical.starts_with(&root) {
        return Err(outside());
    }
    let real = resolve(&lexical).map_err(|e| OcErr::bad_request("Query", e.to_string()))?;
    if !real.starts_with(&root) {
        return Err(outside());
    }
    Ok(Confined {
        root,
        lexical,
        real,
    })
}

/// `.` and `..` removed lexically, as Node's `path.resolve` does (no symlink is looked at).
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

/// `path` relative to `root` with `/` separators, as OpenCode's answers show paths.
pub fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_should_decode_like_a_form() {
        let q = Query::parse(Some("path=src%2Fa%20b.rs&query=a+b&x&bad=%zz%4"));
        assert_eq!(q.get("path"), Some("src/a b.rs"));
        assert_eq!(q.get("query"), Some("a b"));
        assert_eq!(q.get("x"), Some(""));
        assert_eq!(q.get("bad"), Some("%zz%4"));
        assert_eq!(q.get("none"), None);
        assert_eq!(Query::parse(Some("p=%C3%A9")).get("p"), Some("é"));
    }

    #[test]
    fn normalize_should_resolve_dots_lexically() {
        assert_eq!(normalize(Path::new("/r/a/../b/./c")), Path::new("/r/b/c"));
        assert_eq!(normalize(Path::new("/r/../../x")), Path::new("/x"));
        // An absolute input replaces the root, as in `path.resolve`.
        let mut joined = PathBuf::from("/r");
        joined.push("/etc");
        assert_eq!(normalize(&joined), Path::new("/etc"));
    }
}
