//! OpenCode's `file` routes: `GET /file?path=` (file.list), `GET /file/content?path=`
//! (file.read) and `GET /file/status` (file.status), answered from the workspace root on the host
//! with OpenCode 1.18.33's shapes (`FileNode`, `FileContent`, `File`).

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use ignore::gitignore::Gitignore;
use opencode_remote_protocol::limits;
use rustix::fs::{FileType, OFlags};
use serde::Serialize;

use super::{at, blocking, confine, locale_cmp, relative, OcErr, Query};
use crate::nofollow::{self, read_flags, stat_at, Opener};
use crate::search::walk::{matcher, read_small};
use crate::server::App;

pub fn routes(router: Router<Arc<App>>) -> Router<Arc<App>> {
    router
        .route(&at("/file"), get(list))
        .route(&at("/file/content"), get(content))
        .route(&at("/file/status"), get(status))
}

async fn list(
    State(app): State<Arc<App>>,
    UrlPath(ws): UrlPath<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<FileNode>>, OcErr> {
    let query = Query::parse(query.as_deref());
    let path = query.require("path")?.to_string();
    blocking(move || list_dir(&app.state, &ws, &path))
        .await
        .map(Json)
}

async fn content(
    State(app): State<Arc<App>>,
    UrlPath(ws): UrlPath<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<FileContent>, OcErr> {
    let query = Query::parse(query.as_deref());
    let path = query.require("path")?.to_string();
    blocking(move || read(&app.state, &ws, &path))
        .await
        .map(Json)
}

/// OpenCode 1.18.33's `file.status` answers `[]` whatever the tree holds (its handler is a stub;
/// the TUI takes changed files from `/vcs/status` and `/vcs/diff`), so this does too, once the
/// workspace is known.
async fn status(
    State(app): State<Arc<App>>,
    UrlPath(ws): UrlPath<String>,
) -> Result<Json<[(); 0]>, OcErr> {
    app.state.root(&ws)?;
    Ok(Json([]))
}

/// OpenCode's `FileNode`.
#[derive(Serialize)]
struct FileNode {
    name: String,
    path: String,
    absolute: String,
    #[serde(rename = "type")]
    kind: &'static str,
    ignored: bool,
}

/// OpenCode's `FileContent` (without `diff` and `patch`, which its handler never sets).
#[derive(Serialize)]
struct FileContent {
    #[serde(rename = "type")]
    kind: &'static str,
    content: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    encoding: Option<&'static str>,
    #[serde(rename = "mimeType", skip_serializing_if = "Option::is_none")]
    mime_type: Option<&'static str>,
}

impl FileContent {
    fn text(content: String) -> FileContent {
        FileContent {
            kind: "text",
            content,
            encoding: None,
            mime_type: None,
        }
    }
}

/// The directory's files and directories (symlinks, sockets and the like are left out, as
/// OpenCode does), directories first, each by `localeCompare`. `path` is relative to the root with
/// a trailing `/` for a directory; `ignored` is what the root's `.gitignore` and `.ignore` say.
fn list_dir(state: &crate::state::State, ws: &str, input: &str) -> Result<Vec<FileNode>, OcErr> {
    let c = confine(state, ws, input)?;
    let opener = Opener::new();
    let dir = opener
        .open(&c.root, &c.real, OFlags::RDONLY | OFlags::DIRECTORY)
        .map_err(|e| failed(e, input, "listing the directory"))?;
    let names = nofollow::entries(dir.as_fd()).map_err(|e| failed(e, input, "listing"))?;
    let rules = RootIgnores::load(opener, &c.root);
    let mut nodes = Vec::new();
    for (name, file_type) in names.into_iter().take(limits::LIST_MAX) {
        let file_type = match file_type {
            FileType::Unknown => match stat_at(dir.as_fd(), &name) {
                Ok(m) => m.file_type,
                Err(_) => continue,
            },
            t => t,
        };
        let is_dir = match file_type {
            FileType::Directory => true,
            FileType::RegularFile => false,
            _ => continue,
        };
        let absolute = c.lexical.join(&name);
        let mut path = relative(&c.root, &absolute);
        if is_dir {
            path.push('/');
        }
        nodes.push((is_dir, path, name, absolute));
    }
    nodes.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| locale_cmp(&a.1, &b.1)));
    Ok(nodes
        .into_iter()
        .map(|(is_dir, path, name, absolute)| FileNode {
            name: name.to_string_lossy().into_owned(),
            path,
            ignored: rules.ignored(&absolute, is_dir),
            absolute: absolute.to_string_lossy().into_owned(),
            kind: if is_dir { "directory" } else { "file" },
        })
        .collect())
}

/// The root's `.gitignore` and `.ignore` only (not nested ones, not git's excludes), as OpenCode's
/// listing marks entries; a rule of `.ignore` wins over `.gitignore`, and an ignored directory
/// ignores everything in it.
struct RootIgnores {
    gitignore: Gitignore,
    ignore: Gitignore,
}

impl RootIgnores {
    fn load(opener: Opener, root: &Path) -> RootIgnores {
        let file = |name: &str| {
            let text = opener
                .open(root, root, OFlags::PATH | OFlags::DIRECTORY)
                .ok()
                .and_then(|dir| read_small(dir.as_fd(), name.as_ref()));
            matcher(root, name, text)
        };
        RootIgnores {
            gitignore: file(".gitignore"),
            ignore: file(".ignore"),
        }
    }

    fn ignored(&self, path: &Path, is_dir: bool) -> bool {
        let m = self.ignore.matched_path_or_any_parents(path, is_dir);
        if m.is_none() {
            self.gitignore
                .matched_path_or_any_parents(path, is_dir)
                .is_ignore()
        } else {
            m.is_ignore()
        }
    }
}

/// A file's content as OpenCode's `file.read` gives it: `text` (UTF-8 without NUL, trimmed like
/// JavaScript's `trim()`), or `binary` in base64 with a MIME type from the extension. A missing
/// file is empty text; a directory is an error. Files above [`limits::MAX_FILE_BYTES`] are refused.
fn read(state: &crate::state::State, ws: &str, input: &str) -> Result<FileContent, OcErr> {
    let c = confine(state, ws, input)?;
    let fd = match Opener::new().open(&c.root, &c.real, read_flags()) {
        Ok(fd) => fd,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(FileContent::text(String::new()))
        }
        Err(e) => return Err(failed(e, input, "opening the file")),
    };
    let file = File::from(fd);
    let meta = file
        .metadata()
        .map_err(|e| failed(e, input, "opening the file"))?;
    if !meta.is_file() {
        return Err(OcErr::unknown(format!("{input:?} is not a file")));
    }
    if meta.len() > limits::MAX_FILE_BYTES {
        return Err(too_large(input, meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limits::MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| failed(e, input, "reading the file"))?;
    if bytes.len() as u64 > limits::MAX_FILE_BYTES {
        return Err(too_large(input, bytes.len() as u64));
    }
    if !bytes.contains(&0) {
        if let Ok(text) = std::str::from_utf8(&bytes) {
            return Ok(FileContent::text(text.trim_matches(js_space).to_string()));
        }
    }
    Ok(FileContent {
        kind: "binary",
        content: base64::engine::general_purpose::STANDARD.encode(&bytes),
        encoding: Some("base64"),
        mime_type: Some(mime_type(&c.real)),
    })
}

fn too_large(input: &str, size: u64) -> OcErr {
    OcErr::bad_request(
        "Query",
        format!(
            "{input:?} is {size} bytes, more than the {} bytes a file view may hold",
            limits::MAX_FILE_BYTES
        ),
    )
}

/// An I/O failure, which OpenCode answers as a server error.
fn failed(err: io::Error, input: &str, what: &str) -> OcErr {
    if nofollow::is_symlink_error(&err) {
        return OcErr::unknown(format!("{input:?} changed while it was opened; try again"));
    }
    let detail = match err.kind() {
        io::ErrorKind::NotFound => "does not exist".to_string(),
        io::ErrorKind::NotADirectory => "is not a directory".to_string(),
        _ => err.to_string(),
    };
    OcErr::unknown(format!("{what}: {input:?} {detail}"))
}

/// JavaScript's `String.prototype.trim` whitespace (not quite Rust's: U+FEFF yes, U+0085 no).
fn js_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
    )
}

/// The MIME type of a binary file by its extension, for the formats a file view shows or names;
/// anything else is `application/octet-stream`, as in OpenCode.
fn mime_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "bmp" => "image/bmp",
        "ico" => "image/vnd.microsoft.icon",
        "svg" => "image/svg+xml",
        "tif" | "tiff" => "image/tiff",
        "avif" => "image/avif",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "tar" => "application/x-tar",
        "wasm" => "application/wasm",
        "json" => "application/json",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "ogg" => "audio/ogg",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "txt" => "text/plain",
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "js" | "mjs" => "text/javascript",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn js_space_should_trim_like_javascript() {
        let text = "\u{feff}\u{a0} body \u{85}\n\u{3000}";
        assert_eq!(text.trim_matches(js_space), "body \u{85}");
    }

    #[test]
    fn mime_type_should_follow_the_extension() {
        assert_eq!(mime_type(Path::new("/r/a.PNG")), "image/png");
        assert_eq!(mime_type(Path::new("/r/a.dat")), "application/octet-stream");
        assert_eq!(
            mime_type(Path::new("/r/Makefile")),
            "application/octet-stream"
        );
    }
}
