//! glob and grep over a directory tree, honouring ignore files the way ripgrep (and so OpenCode's
//! own glob and grep tools) does: `.gitignore` inside a git repository, `.git/info/exclude`, the
//! global git excludes file, and `.ignore` files anywhere. Hidden files are searched, `.git` is
//! not, and symlinks are not followed (a followed link could lead outside the checked directory):
//! the walk goes by directory descriptor ([`walk`]). Output is bounded: a result limit, a cap on
//! collected grep matches and on visited entries.

mod prefilter;
pub mod walk;

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};
use opencode_remote_protocol::{
    limits, ErrorKind, GlobRequest, GlobResponse, GrepMatch, GrepRequest, GrepResponse, Operation,
};
use rustix::fs::{FileType, OFlags};

use crate::error::ApiErr;
use crate::fsops::{
    cut_chars, looks_binary, open_failed, read_line_capped, BINARY_SNIFF_BYTES, MAX_LINE_BYTES,
};
use crate::nofollow::{read_flags, Opener};
use crate::state::{State, Target, Use};
use crate::util::time_ms;
use prefilter::Prefilter;
use walk::Flow;

/// A glob with gitignore-style anchoring, as ripgrep's `--glob`: a pattern without `/` matches
/// the file name at any depth, one with `/` matches the whole path relative to the search root.
/// `*` never crosses `/`; `**` does.
pub struct PathGlob {
    matcher: GlobMatcher,
    name_only: bool,
}

impl PathGlob {
    pub fn new(pattern: &str) -> Result<PathGlob, ApiErr> {
        let trimmed = pattern.trim_start_matches("./");
        let anchored = trimmed.strip_prefix('/').unwrap_or(trimmed);
        let anchored = anchored.strip_suffix('/').unwrap_or(anchored);
        let name_only = !trimmed.trim_end_matches('/').contains('/');
        let glob = GlobBuilder::new(anchored)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| ApiErr::new(ErrorKind::BadRequest, format!("bad glob: {e}")))?;
        Ok(PathGlob {
            matcher: glob.compile_matcher(),
            name_only,
        })
    }

    /// Whether `rel` (relative to the search root) matches.
    pub fn matches(&self, rel: &Path) -> bool {
        if self.name_only {
            rel.file_name().is_some_and(|n| self.matcher.is_match(n))
        } else {
            self.matcher.is_match(rel)
        }
    }
}

fn compile_all(patterns: &[String]) -> Result<Vec<PathGlob>, ApiErr> {
    patterns.iter().map(|p| PathGlob::new(p)).collect()
}

/// Newest first; equal times by path, so the order is stable.
fn newest_first<T>(items: &mut [(u64, PathBuf, T)]) {
    items.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
}

pub fn glob(
    state: &State,
    open: Opener,
    ws: &str,
    req: GlobRequest,
) -> Result<GlobResponse, ApiErr> {
    let base = state
        .authorize(
            ws,
            Operation::Glob,
            &[Target::new(&req.path, Use::Dir)],
            req.grant.as_deref(),
        )?
        .remove(0);
    let root = state.root(ws)?;
    let base_fd = match open.open(&root, &base, OFlags::RDONLY | OFlags::DIRECTORY) {
        Ok(fd) => fd,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
            return Err(ApiErr::new(
                ErrorKind::NotDirectory,
                format!("{} is not a directory", base.display()),
            ))
        }
        Err(e) => return Err(open_failed(e, &base, "opening the directory")),
    };
    let pattern = PathGlob::new(&req.pattern)?;
    let ignores = compile_all(&req.ignore)?;
    let limit = req
        .limit
        .unwrap_or(limits::GLOB_DEFAULT)
        .clamp(1, limits::GLOB_MAX);
    let mut found: Vec<(u64, PathBuf, ())> = Vec::new();
    let mut matched = 0usize;
    let mut truncated = false;
    let mut visited = 0usize;
    let mut visit = |entry: &walk::Entry<'_>| {
        visited += 1;
        if visited >= limits::WALK_MAX_ENTRIES {
            truncated = true;
            return Flow::Stop;
        }
        if entry.file_type == FileType::Directory && !req.include_dirs {
            return Flow::Continue;
        }
        if !pattern.matches(entry.rel) {
            return Flow::Continue;
        }
        matched += 1;
        let mtime = entry.meta().map(|m| m.mtime_ms).unwrap_or(0);
        found.push((mtime, entry.path.to_path_buf(), ()));
        // Keep memory bounded on huge trees: only the newest `limit` can be returned anyway.
        if found.len() >= limit * 4 + 1024 {
            newest_first(&mut found);
            found.truncate(limit);
        }
        Flow::Continue
    };
    walk::walk(open, &root, &base, base_fd, &ignores, &mut visit)
        .map_err(|e| ApiErr::io(e, "reading the directory"))?;
    newest_first(&mut found);
    truncated |= matched > limit;
    found.truncate(limit);
    Ok(GlobResponse {
        path: base.to_string_lossy().into_owned(),
        files: found
            .into_iter()
            .map(|(_, p, _)| p.to_string_lossy().into_owned())
            .collect(),
        truncated,
    })
}

pub fn grep(
    state: &State,
    open: Opener,
    ws: &str,
    req: GrepRequest,
) -> Result<GrepResponse, ApiErr> {
    let base = state
        .authorize(
            ws,
            Operation::Grep,
            &[Target::new(&req.path, Use::Any)],
            req.grant.as_deref(),
        )?
        .remove(0);
    let regex = regex::bytes::RegexBuilder::new(&req.pattern)
        .case_insensitive(req.case_insensitive)
        .build()
        .map_err(|e| ApiErr::new(ErrorKind::BadRequest, format!("bad regex: {e}")))?;
    let include = req.include.as_deref().map(PathGlob::new).transpose()?;
    let ignores = compile_all(&req.ignore)?;
    let limit = req
        .limit
        .unwrap_or(limits::GREP_DEFAULT)
        .clamp(1, limits::GREP_MAX);
    let max_chars = req.max_line_chars.unwrap_or(limits::GREP_LINE_CHARS);
    let collect_cap = limit * limits::GREP_COLLECT_FACTOR;
    let mut files: Vec<(u64, PathBuf, Vec<GrepMatch>)> = Vec::new();
    let mut total = 0usize;
    let mut truncated = false;

    let prefilter = Prefilter::new(&req.pattern, req.case_insensitive, MAX_LINE_BYTES);
    let mut whole = Vec::new();
    let mut search = |file: File, meta: std::fs::Metadata, path: &Path, total: &mut usize| {
        let mtime = time_ms(meta.modified());
        let lines = LineSearch {
            regex: &regex,
            shown: path.to_string_lossy(),
            max_chars,
            collect_cap,
        };
        let matches = match &prefilter {
            // A file small enough is read whole and skipped when the buffer has no match.
            Some(prefilter) if meta.len() <= PREFILTER_MAX_BYTES => {
                whole.clear();
                let read = (&file).take(PREFILTER_MAX_BYTES).read_to_end(&mut whole);
                let sniff = whole.len().min(BINARY_SNIFF_BYTES);
                if read.is_err() || whole[..sniff].contains(&0) || !prefilter.may_match(&whole) {
                    return;
                }
                lines.run(&mut whole.as_slice(), total)
            }
            _ => {
                let mut reader = BufReader::with_capacity(64 * 1024, file);
                if looks_binary(&mut reader).unwrap_or(true) {
                    return;
                }
                lines.run(&mut reader, total)
            }
        };
        if !matches.is_empty() {
            files.push((mtime, path.to_path_buf(), matches));
        }
    };

    // Not O_DIRECTORY: the base may be a file. O_NONBLOCK: nor may a FIFO block this worker.
    let root = state.root(ws)?;
    let not_found = || {
        ApiErr::new(
            ErrorKind::NotFound,
            format!("{} does not exist", base.display()),
        )
    };
    let opened = match open.open(&root, &base, read_flags()) {
        Ok(fd) => File::from(fd),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found()),
        Err(e) => return Err(open_failed(e, &base, "opening the path")),
    };
    let meta = opened
        .metadata()
        .map_err(|e| ApiErr::io(e, "opening the path"))?;
    if meta.is_file() {
        search(opened, meta, &base, &mut total);
    } else if meta.is_dir() {
        let mut visited = 0usize;
        let mut visit = |entry: &walk::Entry<'_>| {
            visited += 1;
            if visited >= limits::WALK_MAX_ENTRIES || total >= collect_cap {
                truncated = true;
                return Flow::Stop;
            }
            if entry.file_type != FileType::RegularFile {
                return Flow::Continue;
            }
            if include.as_ref().is_some_and(|g| !g.matches(entry.rel)) {
                return Flow::Continue;
            }
            // Opened by name in its directory's descriptor, without following: a file swapped for
            // a symlink since the listing is skipped.
            if let Ok(Some((file, meta))) = entry.open_regular() {
                search(file, meta, entry.path, &mut total);
            }
            Flow::Continue
        };
        walk::walk(
            open,
            &root,
            &base,
            OwnedFd::from(opened),
            &ignores,
            &mut visit,
        )
        .map_err(|e| ApiErr::io(e, "reading the directory"))?;
    } else {
        return Err(not_found());
    }
    newest_first(&mut files);
    truncated |= total > limit;
    let matches: Vec<GrepMatch> = files
        .into_iter()
        .flat_map(|(_, _, m)| m)
        .take(limit)
        .collect();
    Ok(GrepResponse {
        path: base.to_string_lossy().into_owned(),
        matches,
        truncated,
    })
}

/// Files up to this size are read whole and go through the [`Prefilter`] first.
const PREFILTER_MAX_BYTES: u64 = 4 * 1024 * 1024;

/// The exact, per-line part of grep.
struct LineSearch<'a> {
    regex: &'a regex::bytes::Regex,
    shown: Cow<'a, str>,
    max_chars: usize,
    collect_cap: usize,
}

impl LineSearch<'_> {
    /// The matching lines of `reader`, counting each into `total` and stopping at the cap.
    fn run(&self, reader: &mut impl BufRead, total: &mut usize) -> Vec<GrepMatch> {
        let mut line = Vec::new();
        let mut number = 0u64;
        let mut matches = Vec::new();
        while let Ok(true) = read_line_capped(reader, &mut line, MAX_LINE_BYTES) {
            number += 1;
            if self.regex.is_match(&line) {
                matches.push(GrepMatch {
                    path: self.shown.to_string(),
                    line: number,
                    text: cut_chars(String::from_utf8_lossy(&line).into_owned(), self.max_chars),
                });
                *total += 1;
                if *total >= self.collect_cap {
                    break;
                }
            }
        }
        matches
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_without_slash_should_match_names_at_any_depth() {
        let g = PathGlob::new("*.rs").unwrap();
        assert!(g.matches(Path::new("a.rs")));
        assert!(g.matches(Path::new("src/deep/a.rs")));
        assert!(!g.matches(Path::new("a.rsx")));
        let g = PathGlob::new("*.{ts,tsx}").unwrap();
        assert!(g.matches(Path::new("x/y.tsx")));
    }

    #[test]
    fn glob_with_slash_should_match_relative_paths() {
        let g = PathGlob::new("src/*.rs").unwrap();
        assert!(g.matches(Path::new("src/a.rs")));
        assert!(!g.matches(Path::new("src/deep/a.rs")));
        assert!(!g.matches(Path::new("other/src/a.rs")));
        let g = PathGlob::new("**/*.rs").unwrap();
        assert!(g.matches(Path::new("a.rs")));
        assert!(g.matches(Path::new("src/deep/a.rs")));
        let g = PathGlob::new("./src/**").unwrap();
        assert!(g.matches(Path::new("src/deep/a.rs")));
    }
}
