//! OpenCode's `find` routes: `GET /find?pattern=` (find.text), `GET /find/file?query=` (find.files,
//! the TUI's `@` picker) and `GET /find/symbol` (find.symbols), over the workspace root with the
//! walk of glob and grep ([`crate::search::walk`]: ripgrep's ignore rules, hidden files included,
//! `.git` and symlinks not entered).

use std::collections::BTreeSet;
use std::io::BufReader;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use opencode_remote_protocol::limits;
use rustix::fs::{FileType, OFlags};
use serde::Serialize;

use super::{at, blocking, locale_cmp, OcErr, Query};
use crate::fsops::{looks_binary, read_line_raw, MAX_LINE_BYTES};
use crate::nofollow::Opener;
use crate::search::walk::{self, Flow};
use crate::server::App;
use crate::state::State as Workspaces;

/// Matches find.text returns: OpenCode asks ripgrep for 10.
const TEXT_LIMIT: usize = 10;
/// Submatches kept per line, as OpenCode keeps.
const MAX_SUBMATCHES: usize = 100;
/// A matched line longer than this (characters) is cut and ends with `...`, as in OpenCode.
const MAX_LINE_CHARS: usize = 2000;
/// Entries find.files looks at, at most (OpenCode's ripgrep file index stops at 100 000 too).
const FILES_MAX_ENTRIES: usize = 100_000;
/// find.files' default and largest `limit`.
const FILES_DEFAULT_LIMIT: usize = 10;
const FILES_MAX_LIMIT: usize = 200;

pub fn routes(router: Router<Arc<App>>) -> Router<Arc<App>> {
    router
        .route(&at("/find"), get(text))
        .route(&at("/find/file"), get(files))
        .route(&at("/find/symbol"), get(symbols))
}

async fn text(
    State(app): State<Arc<App>>,
    UrlPath(ws): UrlPath<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<Match>>, OcErr> {
    let query = Query::parse(query.as_deref());
    let pattern = query.require("pattern")?.to_string();
    blocking(move || find_text(&app.state, &ws, &pattern))
        .await
        .map(Json)
}

async fn files(
    State(app): State<Arc<App>>,
    UrlPath(ws): UrlPath<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<String>>, OcErr> {
    let query = Query::parse(query.as_deref());
    let req = FilesRequest::parse(&query)?;
    blocking(move || find_files(&app.state, &ws, &req))
        .await
        .map(Json)
}

/// Without a language server OpenCode 1.18.33 answers `[]` here (its handler has no other
/// answer), and the stub runs none.
async fn symbols(
    State(app): State<Arc<App>>,
    UrlPath(ws): UrlPath<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<[(); 0]>, OcErr> {
    Query::parse(query.as_deref()).require("query")?;
    app.state.root(&ws)?;
    Ok(Json([]))
}

/// The root's readable directory descriptor, for a walk.
fn open_root(state: &Workspaces, ws: &str) -> Result<(std::path::PathBuf, OwnedFd), OcErr> {
    let root = state.root(ws)?;
    let fd = Opener::new()
        .open(&root, &root, OFlags::RDONLY | OFlags::DIRECTORY)
        .map_err(|e| OcErr::unknown(format!("opening {}: {e}", root.display())))?;
    Ok((root, fd))
}

/// The first [`TEXT_LIMIT`] lines matching the regex `pattern` (ripgrep's syntax, which is Rust's),
/// in ripgrep's `--json` match shape: the path relative to the root, the line with its newline,
/// the 1-based line number, the line's byte offset in the file, and each match's byte range in
/// the line. Binary files (a NUL in their first 8 KiB) are skipped, as ripgrep skips them. The
/// order is the walk's (ripgrep's own is unspecified too).
fn find_text(state: &Workspaces, ws: &str, pattern: &str) -> Result<Vec<Match>, OcErr> {
    let regex = regex::bytes::Regex::new(pattern)
        .map_err(|e| OcErr::unknown(format!("bad regex {pattern:?}: {e}")))?;
    let (root, fd) = open_root(state, ws)?;
    let mut found: Vec<Match> = Vec::new();
    let mut visited = 0usize;
    let mut visit = |entry: &walk::Entry<'_>| {
        visited += 1;
        if visited >= limits::WALK_MAX_ENTRIES || found.len() >= TEXT_LIMIT {
            return Flow::Stop;
        }
        if entry.file_type != FileType::RegularFile {
            return Flow::Continue;
        }
        let Ok(Some((file, _))) = entry.open_regular() else {
            return Flow::Continue;
        };
        let mut reader = BufReader::with_capacity(64 * 1024, file);
        if looks_binary(&mut reader).unwrap_or(true) {
            return Flow::Continue;
        }
        let path = entry.rel.to_string_lossy();
        let (mut line, mut number, mut offset) = (Vec::new(), 0u64, 0u64);
        while let Ok(len @ 1..) = read_line_raw(&mut reader, &mut line, MAX_LINE_BYTES) {
            number += 1;
            let content = line.strip_suffix(b"\n").unwrap_or(&line);
            let submatches: Vec<Submatch> = regex
                .find_iter(content)
                .take(MAX_SUBMATCHES)
                .map(|m| Submatch {
                    matched: Text::from(m.as_bytes()),
                    start: m.start(),
                    end: m.end(),
                })
                .collect();
            if !submatches.is_empty() {
                found.push(Match {
                    path: Text {
                        text: path.to_string(),
                    },
                    lines: Text {
                        text: cut_line(String::from_utf8_lossy(&line).into_owned()),
                    },
                    line_number: number,
                    absolute_offset: offset,
                    submatches,
                });
                if found.len() >= TEXT_LIMIT {
                    return Flow::Stop;
                }
            }
            offset += len;
        }
        Flow::Continue
    };
    walk::walk(Opener::new(), &root, &root, fd, &[], &mut visit)
        .map_err(|e| OcErr::unknown(format!("reading {}: {e}", root.display())))?;
    Ok(found)
}

/// One line of ripgrep's `--json` `match` records, as OpenCode passes them on.
#[derive(Serialize)]
struct Match {
    path: Text,
    lines: Text,
    line_number: u64,
    absolute_offset: u64,
    submatches: Vec<Submatch>,
}

#[derive(Serialize)]
struct Submatch {
    #[serde(rename = "match")]
    matched: Text,
    start: usize,
    end: usize,
}

#[derive(Serialize)]
struct Text {
    text: String,
}

impl From<&[u8]> for Text {
    fn from(bytes: &[u8]) -> Text {
        Text {
            text: String::from_utf8_lossy(bytes).into_owned(),
        }
    }
}

fn cut_line(mut text: String) -> String {
    if let Some((i, _)) = text.char_indices().nth(MAX_LINE_CHARS) {
        text.truncate(i);
        text.push_str("...");
    }
    text
}

/// What find.files looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Directory,
    Both,
}

struct FilesRequest {
    query: String,
    kind: Kind,
    limit: usize,
}

impl FilesRequest {
    /// OpenCode's parameters: `type` wins over `dirs`; `dirs=false` means files only; with
    /// neither, files and directories. Bad values are refused with OpenCode's messages.
    fn parse(q: &Query) -> Result<FilesRequest, OcErr> {
        let query = q.require("query")?.to_string();
        let dirs = match q.get("dirs") {
            None | Some("true") => true,
            Some("false") => false,
            Some(other) => return Err(expected("\"true\" | \"false\"", other, "dirs")),
        };
        let kind = match q.get("type") {
            Some("file") => Kind::File,
            Some("directory") => Kind::Directory,
            Some(other) => return Err(expected("\"file\" | \"directory\"", other, "type")),
            None if !dirs => Kind::File,
            None => Kind::Both,
        };
        let limit = match q.get("limit") {
            None => FILES_DEFAULT_LIMIT,
            Some(text) => match text.parse::<i64>() {
                Ok(n) if n < 1 => {
                    return Err(OcErr::bad_request(
                        "Query",
                        format!("Expected a value greater than or equal to 1, got {n}\n  at [\"limit\"]"),
                    ))
                }
                Ok(n) if n > FILES_MAX_LIMIT as i64 => {
                    return Err(OcErr::bad_request(
                        "Query",
                        format!("Expected a value less than or equal to {FILES_MAX_LIMIT}, got {n}\n  at [\"limit\"]"),
                    ))
                }
                Ok(n) => n as usize,
                Err(_) => return Err(expected("an integer", text, "limit")),
            },
        };
        Ok(FilesRequest { query, kind, limit })
    }
}

fn expected(what: &str, got: &str, key: &str) -> OcErr {
    OcErr::bad_request(
        "Query",
        format!("Expected {what}, got {got:?}\n  at [\"{key}\"]"),
    )
}

/// Files and directories (a trailing `/`, the root being `/`) relative to the root whose path
/// fuzzily matches the query, best first, then shortest, as OpenCode's file finder ranks them.
/// Directories are those holding a listed file, as in OpenCode's index; ignored files don't count.
fn find_files(state: &Workspaces, ws: &str, req: &FilesRequest) -> Result<Vec<String>, OcErr> {
    let (root, fd) = open_root(state, ws)?;
    let mut files: Vec<String> = Vec::new();
    let mut dirs: BTreeSet<String> = BTreeSet::new();
    let mut visited = 0usize;
    let mut visit = |entry: &walk::Entry<'_>| {
        visited += 1;
        if visited >= FILES_MAX_ENTRIES {
            return Flow::Stop;
        }
        // Symlinks are left out, as OpenCode's file index leaves them out.
        if entry.file_type == FileType::RegularFile {
            let rel = entry.rel.to_string_lossy().into_owned();
            let mut parent = Path::new(&rel).parent();
            while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
                if !dirs.insert(format!("{}/", p.to_string_lossy())) {
                    break;
                }
                parent = p.parent();
            }
            files.push(rel);
        }
        Flow::Continue
    };
    walk::walk(Opener::new(), &root, &root, fd, &[], &mut visit)
        .map_err(|e| OcErr::unknown(format!("reading {}: {e}", root.display())))?;
    let terms: Vec<Vec<char>> = req
        .query
        .split_whitespace()
        .map(|t| t.chars().flat_map(char::to_lowercase).collect())
        .collect();
    let mut candidates: Vec<String> = Vec::new();
    if req.kind != Kind::Directory {
        candidates.extend(files);
    }
    if req.kind != Kind::File {
        if terms.is_empty() {
            candidates.push("/".into());
        }
        candidates.extend(dirs);
    }
    let mut scored: Vec<(i64, String)> = candidates
        .into_iter()
        .filter_map(|path| Some((score(&terms, &path)?, path)))
        .collect();
    scored.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| a.1.len().cmp(&b.1.len()))
            .then_with(|| locale_cmp(&a.1, &b.1))
    });
    scored.truncate(req.limit);
    Ok(scored.into_iter().map(|(_, p)| p).collect())
}

/// How well `path` matches every term (lowercase), or `None` when one of them is not a
/// subsequence of it. The better of the whole path and the file name alone counts, the name with a
/// bonus; an exact name, stem or name prefix earns more.
fn score(terms: &[Vec<char>], path: &str) -> Option<i64> {
    let trimmed = path.trim_end_matches('/');
    let name = trimmed.rsplit('/').next().unwrap_or(trimmed);
    let full: Vec<char> = path.chars().collect();
    let base: Vec<char> = name.chars().collect();
    let lower_name = name.to_lowercase();
    let stem = lower_name.split('.').next().unwrap_or("");
    let mut total = 0;
    for term in terms {
        let whole = align(term, &full);
        let named = align(term, &base).map(|s| s + 40);
        let mut best = whole.max(named)?;
        let term: String = term.iter().collect();
        if lower_name == term {
            best += 120;
        } else if stem == term {
            best += 90;
        } else if lower_name.starts_with(&term) {
            best += 50;
        }
        total += best;
    }
    Some(total)
}

/// The best alignment score of `term` (lowercase) as a subsequence of `text`: points per matched
/// character, more at word starts (after `/`, `_`, `-`, `.`, a space, or a lower-to-upper case
/// change) and for runs, less for gaps (fzf's scheme, simplified).
fn align(term: &[char], text: &[char]) -> Option<i64> {
    const MATCH: i64 = 16;
    const RUN: i64 = 8;
    const GAP_START: i64 = 3;
    const GAP_EXTEND: i64 = 1;
    const NONE: i64 = i64::MIN / 4;
    if term.is_empty() {
        return Some(0);
    }
    let text = &text[..text.len().min(1024)];
    let lower: Vec<char> = text
        .iter()
        .map(|c| c.to_lowercase().next().unwrap_or(*c))
        .collect();
    let bonus: Vec<i64> = (0..text.len())
        .map(|i| match i.checked_sub(1).map(|p| text[p]) {
            None | Some('/') => 10,
            Some('_' | '-' | '.' | ' ') => 8,
            Some(p) if p.is_lowercase() && text[i].is_uppercase() => 7,
            _ => 0,
        })
        .collect();
    // prev[i]: best score with the previous term character matched at i.
    let mut prev: Vec<i64> = Vec::new();
    for (j, &t) in term.iter().enumerate() {
        let mut cur = vec![NONE; text.len()];
        let (mut adjacent, mut gapped) = (NONE, NONE);
        for i in 0..text.len() {
            if j > 0 {
                gapped = (gapped - GAP_EXTEND).max(adjacent - GAP_START);
                adjacent = if i > 0 { prev[i - 1] } else { NONE };
            }
            if lower[i] != t {
                continue;
            }
            cur[i] = if j == 0 {
                MATCH + bonus[i] * 2
            } else {
                (adjacent + RUN).max(gapped) + MATCH + bonus[i]
            };
        }
        prev = cur;
    }
    prev.into_iter().max().filter(|&s| s > NONE / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rank(query: &str, paths: &[&str]) -> Vec<String> {
        let terms: Vec<Vec<char>> = query
            .split_whitespace()
            .map(|t| t.chars().flat_map(char::to_lowercase).collect())
            .collect();
        let mut scored: Vec<(i64, String)> = paths
            .iter()
            .filter_map(|p| Some((score(&terms, p)?, p.to_string())))
            .collect();
        scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.len().cmp(&b.1.len())));
        scored.into_iter().map(|(_, p)| p).collect()
    }

    #[test]
    fn score_should_put_the_obvious_match_first() {
        let paths = [
            "src/main.rs",
            "docs/maintenance/index.md",
            "src/domain/model.rs",
            "README.md",
            "src/",
            "stub/src/main.rs",
            "src/util/helper.rs",
        ];
        assert_eq!(rank("main", &paths)[0], "src/main.rs");
        assert_eq!(rank("mainrs", &paths)[0], "src/main.rs");
        assert_eq!(rank("readme", &paths)[0], "README.md");
        assert_eq!(rank("helper", &paths)[0], "src/util/helper.rs");
        assert_eq!(rank("src", &paths)[0], "src/");
        assert_eq!(rank("stub main", &paths)[0], "stub/src/main.rs");
        assert!(rank("zzz", &paths).is_empty());
        assert!(!rank("hlpr", &paths).is_empty());
    }

    #[test]
    fn align_should_need_a_subsequence() {
        let text: Vec<char> = "src/main.rs".chars().collect();
        assert!(align(&['m', 'r'], &text).is_some());
        assert!(align(&['r', 'm', 'x'], &text).is_none());
        let run = align(&['m', 'a', 'i', 'n'], &text).unwrap();
        let spread = align(&['m', 'a', 'r', 's'], &text).unwrap();
        assert!(run > spread);
    }
}
