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
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};

use globset::{GlobBuilder, GlobMatcher};
use opencode_remote_protocol::{
    limits, ErrorKind, GlobRequest, GlobResponse, GrepMatch, GrepRequest, GrepResponse, Operation,
};
use rustix::fs::{FileType, OFlags};

use crate::error::ApiErr;
use crate::fsops::{
    cut_chars, looks_binary, open_failed, read_line_capped, BINARY_SNIFF_BYTES, MAX_LINE_BYTES,
};
use crate::nofollow::{out_of_descriptors, read_flags, Opener};
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
    let search = FileSearch {
        matchers: Matchers {
            regex,
            prefilter: Prefilter::new(&req.pattern, req.case_insensitive, MAX_LINE_BYTES),
        },
        max_chars: req.max_line_chars.unwrap_or(limits::GREP_LINE_CHARS),
        collect_cap: limit * limits::GREP_COLLECT_FACTOR,
        total: AtomicUsize::new(0),
        threads: search_threads(),
        failed: AtomicI32::new(0),
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
    let (mut files, walk_stopped) = if meta.is_file() {
        let found = search.file(&search.matchers, opened, meta, &base, &mut Vec::new());
        (found.into_iter().collect(), false)
    } else if meta.is_dir() {
        search_tree(
            open,
            &root,
            &base,
            opened,
            &ignores,
            include.as_ref(),
            &search,
        )
        .map_err(|e| ApiErr::io(e, "reading the directory"))?
    } else {
        return Err(not_found());
    };
    newest_first(&mut files);
    let truncated = walk_stopped || search.total.load(Ordering::Relaxed) > limit;
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
/// Threads that open, read and search files while the walk lists them (ripgrep, the local
/// baseline, uses every CPU as well).
const MAX_SEARCH_THREADS: usize = 4;
/// Files handed to a search thread at once. One file at a time cost more in thread wake-ups than
/// the search itself (a grep over 10k small files switched threads ~1,800 times).
const FILES_PER_BATCH: usize = 64;
/// Directories a batch may draw from: each keeps its directory's descriptor open until searched.
const DIRS_PER_BATCH: usize = 4;
/// Batches waiting for a search thread. With the batches in the threads' hands and the walker's
/// own, this bounds the directory descriptors a grep holds beyond the walk's path:
/// `(QUEUED_BATCHES + MAX_SEARCH_THREADS + 1) * DIRS_PER_BATCH`.
const QUEUED_BATCHES: usize = 2;

/// The files one search thread takes at once.
#[derive(Default)]
struct Batch {
    files: Vec<walk::FileRef>,
    dirs: usize,
}

impl Batch {
    /// Adds `file`; true when the batch is full (by files or by directories).
    fn push(&mut self, file: walk::FileRef) -> bool {
        if !self.files.last().is_some_and(|last| last.same_dir(&file)) {
            self.dirs += 1;
        }
        self.files.push(file);
        self.files.len() == FILES_PER_BATCH || self.dirs == DIRS_PER_BATCH
    }
}

fn search_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_SEARCH_THREADS)
}

/// A file with matches: its mtime (for newest first), its path and the matching lines.
type FileMatches = (u64, PathBuf, Vec<GrepMatch>);

/// Walk the tree under `base` here and search its files on other threads. Returns the files with
/// matches and whether the walk stopped early (entry limit or match cap).
fn search_tree(
    open: Opener,
    root: &Path,
    base: &Path,
    base_dir: File,
    ignores: &[PathGlob],
    include: Option<&PathGlob>,
    search: &FileSearch,
) -> std::io::Result<(Vec<FileMatches>, bool)> {
    let (queue, queued) = mpsc::sync_channel::<Vec<walk::FileRef>>(QUEUED_BATCHES);
    let queued = Mutex::new(queued);
    std::thread::scope(|scope| {
        // A host that refuses more threads (a low `ulimit -u`) gets the search on this one.
        let searchers: Vec<_> = (0..search.threads)
            .map_while(|_| {
                let thread = std::thread::Builder::new().name("grep".into());
                thread
                    .spawn_scoped(scope, || {
                        let matchers = search.matchers.clone();
                        let mut whole = Vec::new();
                        let mut found = Vec::new();
                        loop {
                            let next = queued.lock().unwrap_or_else(|e| e.into_inner()).recv();
                            let Ok(batch) = next else {
                                return found;
                            };
                            for file in batch {
                                found.extend(search.file_ref(&matchers, &file, &mut whole));
                            }
                        }
                    })
                    .ok()
            })
            .collect();
        let mut found_here = Vec::new();
        let mut whole = Vec::new();
        let mut batch = Batch::default();
        let mut stopped = false;
        let mut visited = 0usize;
        let mut visit = |entry: &walk::Entry<'_>| {
            visited += 1;
            if visited >= limits::WALK_MAX_ENTRIES || search.done() {
                stopped = true;
                return Flow::Stop;
            }
            if entry.file_type != FileType::RegularFile {
                return Flow::Continue;
            }
            if include.is_some_and(|g| !g.matches(entry.rel)) {
                return Flow::Continue;
            }
            if searchers.is_empty() {
                let file = entry.file_ref();
                found_here.extend(search.file_ref(&search.matchers, &file, &mut whole));
                return Flow::Continue;
            }
            if batch.push(entry.file_ref()) && queue.send(std::mem::take(&mut batch).files).is_err()
            {
                return Flow::Stop;
            }
            Flow::Continue
        };
        let walked = walk::walk(
            open,
            root,
            base,
            OwnedFd::from(base_dir),
            ignores,
            &mut visit,
        );
        if !batch.files.is_empty() {
            let _ = queue.send(batch.files);
        }
        drop(queue);
        let found = searchers
            .into_iter()
            .flat_map(|s| s.join().expect("a grep search thread panicked"))
            .chain(found_here)
            .collect();
        walked?;
        match search.failure() {
            Some(error) => Err(error),
            None => Ok((found, stopped)),
        }
    })
}

/// The regexes of one grep. Each search thread gets its own clone, so the threads do not share
/// the regexes' scratch space.
#[derive(Clone)]
struct Matchers {
    regex: regex::bytes::Regex,
    prefilter: Option<Prefilter>,
}

/// What every file of one grep is searched with.
struct FileSearch {
    matchers: Matchers,
    max_chars: usize,
    collect_cap: usize,
    /// Matches collected so far, over all threads.
    total: AtomicUsize,
    /// Threads searching files in a tree besides the walking one.
    threads: usize,
    /// The errno that made a file impossible to open for want of descriptors (0: none). The grep
    /// then fails instead of answering without that file.
    failed: AtomicI32,
}

impl FileSearch {
    fn capped(&self) -> bool {
        self.total.load(Ordering::Relaxed) >= self.collect_cap
    }

    /// Whether the walk should stop: enough matches, or a file could not be searched.
    fn done(&self) -> bool {
        self.capped() || self.failed.load(Ordering::Relaxed) != 0
    }

    /// The error that stopped the search, if one did.
    fn failure(&self) -> Option<std::io::Error> {
        match self.failed.load(Ordering::Relaxed) {
            0 => None,
            code => Some(std::io::Error::from_raw_os_error(code)),
        }
    }

    /// The matches in a file the walk met, opened here (not followed if it became a symlink).
    fn file_ref(
        &self,
        matchers: &Matchers,
        file: &walk::FileRef,
        whole: &mut Vec<u8>,
    ) -> Option<FileMatches> {
        if self.capped() {
            return None;
        }
        let (opened, meta) = match file.open_regular() {
            Ok(found) => found?,
            Err(e) if out_of_descriptors(&e) => {
                let code = e.raw_os_error().unwrap_or(libc::EMFILE);
                self.failed.store(code, Ordering::Relaxed);
                return None;
            }
            // Gone, or swapped for a symlink, since the listing.
            Err(_) => return None,
        };
        self.file(matchers, opened, meta, &file.path, whole)
    }

    /// The matches in one file, if any. `whole` is the thread's reusable read buffer.
    fn file(
        &self,
        matchers: &Matchers,
        file: File,
        meta: std::fs::Metadata,
        path: &Path,
        whole: &mut Vec<u8>,
    ) -> Option<FileMatches> {
        if self.capped() {
            return None;
        }
        let lines = LineSearch {
            regex: &matchers.regex,
            shown: path.to_string_lossy(),
            max_chars: self.max_chars,
            collect_cap: self.collect_cap,
        };
        let matches = match &matchers.prefilter {
            // A file small enough is read whole and skipped when the buffer has no match.
            Some(prefilter) if meta.len() <= PREFILTER_MAX_BYTES => {
                whole.clear();
                let read = (&file).take(PREFILTER_MAX_BYTES).read_to_end(whole);
                let sniff = whole.len().min(BINARY_SNIFF_BYTES);
                if read.is_err() || whole[..sniff].contains(&0) || !prefilter.may_match(whole) {
                    return None;
                }
                lines.run(&mut whole.as_slice(), &self.total)
            }
            _ => {
                let mut reader = BufReader::with_capacity(64 * 1024, file);
                if looks_binary(&mut reader).unwrap_or(true) {
                    return None;
                }
                lines.run(&mut reader, &self.total)
            }
        };
        (!matches.is_empty()).then(|| (time_ms(meta.modified()), path.to_path_buf(), matches))
    }
}

/// The exact, per-line part of grep.
struct LineSearch<'a> {
    regex: &'a regex::bytes::Regex,
    shown: Cow<'a, str>,
    max_chars: usize,
    collect_cap: usize,
}

impl LineSearch<'_> {
    /// The matching lines of `reader`, counting each into `total` and stopping at the cap.
    fn run(&self, reader: &mut impl BufRead, total: &AtomicUsize) -> Vec<GrepMatch> {
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
                if total.fetch_add(1, Ordering::Relaxed) + 1 >= self.collect_cap {
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
    fn a_tree_should_be_searched_alike_with_or_without_threads() {
        let dir = tempfile::tempdir().unwrap();
        for d in 0..5 {
            let sub = dir.path().join(format!("d{d}"));
            std::fs::create_dir(&sub).unwrap();
            for f in 0..40 {
                let text = if f % 3 == 0 {
                    "a\nneedle\n"
                } else {
                    "a\nhay\n"
                };
                std::fs::write(sub.join(format!("f{f}")), text).unwrap();
            }
        }
        let found_with = |threads| {
            let search = FileSearch {
                matchers: Matchers {
                    regex: regex::bytes::Regex::new("needle").unwrap(),
                    prefilter: Prefilter::new("needle", false, MAX_LINE_BYTES),
                },
                max_chars: 100,
                collect_cap: 1000,
                total: AtomicUsize::new(0),
                threads,
                failed: AtomicI32::new(0),
            };
            let base = File::open(dir.path()).unwrap();
            let (mut files, stopped) = search_tree(
                Opener::new(),
                dir.path(),
                dir.path(),
                base,
                &[],
                None,
                &search,
            )
            .unwrap();
            assert!(!stopped);
            files.sort_by(|a, b| a.1.cmp(&b.1));
            files
                .into_iter()
                .map(|(_, p, m)| (p, m.len()))
                .collect::<Vec<_>>()
        };
        // Threads 0: no thread could be started, so the walking thread searches too.
        let alone = found_with(0);
        assert_eq!(alone.len(), 5 * 14);
        assert_eq!(found_with(3), alone);
    }

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
    fn a_batch_should_end_at_its_file_or_directory_limit() {
        // Three directories of 100 files, then ten of one file each: the first fill batches by
        // files, the others by directories.
        let dir = tempfile::tempdir().unwrap();
        for (group, dirs, files) in [("big", 3, 100), ("small", 10, 1)] {
            for d in 0..dirs {
                let sub = dir.path().join(group).join(format!("d{d}"));
                std::fs::create_dir_all(&sub).unwrap();
                for f in 0..files {
                    std::fs::write(sub.join(format!("f{f}")), "x").unwrap();
                }
            }
        }
        let (mut batches, mut batch) = (Vec::new(), Batch::default());
        let mut visit = |entry: &walk::Entry<'_>| {
            if entry.file_type == FileType::RegularFile && batch.push(entry.file_ref()) {
                batches.push(std::mem::take(&mut batch));
            }
            Flow::Continue
        };
        let base = OwnedFd::from(File::open(dir.path()).unwrap());
        walk::walk(Opener::new(), dir.path(), dir.path(), base, &[], &mut visit).unwrap();
        batches.push(batch);
        let dirs_of = |b: &Batch| {
            let parents: std::collections::HashSet<_> = b
                .files
                .iter()
                .map(|f| f.path.parent().unwrap().to_owned())
                .collect();
            parents.len()
        };
        for b in &batches {
            assert!(b.files.len() <= FILES_PER_BATCH);
            assert!(dirs_of(b) <= DIRS_PER_BATCH);
        }
        assert!(batches.iter().any(|b| b.files.len() == FILES_PER_BATCH));
        assert!(batches
            .iter()
            .any(|b| dirs_of(b) == DIRS_PER_BATCH && b.files.len() < FILES_PER_BATCH));
        let mut paths: Vec<_> = batches
            .iter()
            .flat_map(|b| &b.files)
            .map(|f| &f.path)
            .collect();
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), 310, "every file once");
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
