//! OpenCode's `vcs` routes: `GET /vcs` (branch and default branch), `GET /vcs/status`,
//! `GET /vcs/diff?mode=git|branch&context=`, `GET /vcs/diff/raw` and `POST /vcs/apply`, answered by
//! running `git` in the workspace root ([`super::git`]) with the same commands, parsing, ordering
//! and caps as OpenCode 1.18.33's Vcs service. Outside a git work tree (or without git) every
//! route gives OpenCode's answer for a project that is not git-based.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rustix::fs::FileType;
use serde::Serialize;
use serde_json::Value;

use super::git::{self, Output, DEFAULT_MAX_OUTPUT};
use super::{at, blocking, locale_cmp, OcErr, Query};
use crate::fsops::looks_binary;
use crate::nofollow::{open_regular_at, stat_at, Opener};
use crate::server::App;

/// OpenCode's whole-file context when a diff asks for none.
const FULL_CONTEXT: u64 = 2_147_483_647;
/// Bytes of patches one diff answer holds before the rest are empty headers (OpenCode's `w`).
const MAX_PATCH_BYTES: usize = 10_000_000;
/// Bytes of one file's patch (OpenCode's `m`).
const MAX_FILE_PATCH_BYTES: usize = 10_000_000;
/// Changed files one answer lists at most (OpenCode lists all; this bounds the answer).
const MAX_FILES: usize = 20_000;

pub fn routes(router: Router<Arc<App>>) -> Router<Arc<App>> {
    router
        .route(&at("/vcs"), get(info))
        .route(&at("/vcs/status"), get(status))
        .route(&at("/vcs/diff"), get(diff))
        .route(&at("/vcs/diff/raw"), get(diff_raw))
        .route(&at("/vcs/apply"), post(apply))
}

/// The workspace's git work tree, or `None` when it is not in one (or git is missing).
struct Repo {
    root: PathBuf,
    /// The work tree's top directory: `git status` paths are relative to it.
    top: PathBuf,
}

impl Repo {
    fn open(app: &App, ws: &str) -> Result<Option<Repo>, OcErr> {
        let root = app.state.root(ws)?;
        let out = git::run(&root, &["rev-parse", "--show-toplevel"], None, 64 * 1024);
        if !out.ok() || out.trimmed().is_empty() {
            return Ok(None);
        }
        let top = PathBuf::from(out.trimmed());
        Ok(Some(Repo { root, top }))
    }

    fn git(&self, args: &[&str]) -> Output {
        git::run(&self.root, args, None, DEFAULT_MAX_OUTPUT)
    }

    fn git_capped(&self, args: &[&str], cap: usize) -> Output {
        git::run(&self.root, args, None, cap)
    }

    fn branch(&self) -> Option<String> {
        let out = self.git(&["symbolic-ref", "--quiet", "--short", "HEAD"]);
        Some(out.trimmed()).filter(|b| out.ok() && !b.is_empty())
    }

    /// `(name, ref)` of the default branch: the remote's HEAD, else `init.defaultBranch`, `main`
    /// or `master` when such a local branch exists.
    fn default_branch(&self) -> Option<(String, String)> {
        let remotes = self.git(&["remote"]).lines();
        let remote = if remotes.iter().any(|r| r == "origin") {
            Some("origin".to_string())
        } else if remotes.len() == 1 {
            Some(remotes[0].clone())
        } else if remotes.iter().any(|r| r == "upstream") {
            Some("upstream".to_string())
        } else {
            remotes.first().cloned()
        };
        if let Some(remote) = remote {
            let out = self.git(&["symbolic-ref", &format!("refs/remotes/{remote}/HEAD")]);
            if out.ok() {
                let full = out.trimmed();
                let full = full
                    .strip_prefix("refs/remotes/")
                    .unwrap_or(&full)
                    .to_string();
                let name = full.strip_prefix(&format!("{remote}/")).unwrap_or("");
                if !name.is_empty() {
                    return Some((name.to_string(), full.clone()));
                }
            }
        }
        let heads = self
            .git(&["for-each-ref", "--format=%(refname:short)", "refs/heads"])
            .lines();
        let configured = self.git(&["config", "init.defaultBranch"]).trimmed();
        if !configured.is_empty() && heads.contains(&configured) {
            return Some((configured.clone(), configured));
        }
        ["main", "master"]
            .into_iter()
            .find(|b| heads.iter().any(|h| h == b))
            .map(|b| (b.to_string(), b.to_string()))
    }

    fn has_head(&self) -> bool {
        self.git(&["rev-parse", "--verify", "HEAD"]).ok()
    }

    fn status(&self) -> Vec<Change> {
        let out = self.git(&[
            "status",
            "--porcelain=v1",
            "--untracked-files=all",
            "--no-renames",
            "-z",
            "--",
            ".",
        ]);
        out.fields()
            .into_iter()
            .filter_map(|entry| {
                let file = entry.get(3..).filter(|f| !f.is_empty())?.to_string();
                let code = entry.get(..2)?.to_string();
                Some(Change::new(file, code))
            })
            .take(MAX_FILES)
            .collect()
    }

    /// `git diff --name-status` against `base`.
    fn diff_names(&self, base: &str) -> Vec<Change> {
        let fields = self
            .git(&[
                "diff",
                "--no-ext-diff",
                "--no-renames",
                "--name-status",
                "-z",
                base,
                "--",
                ".",
            ])
            .fields();
        fields
            .chunks(2)
            .filter(|pair| pair.len() == 2)
            .map(|pair| Change::new(pair[1].clone(), pair[0].clone()))
            .take(MAX_FILES)
            .collect()
    }

    /// Added and deleted lines per file against `base` (`--numstat`; binary files count 0).
    fn stats(&self, base: &str) -> HashMap<String, (u64, u64)> {
        self.git(&[
            "diff",
            "--no-ext-diff",
            "--no-renames",
            "--numstat",
            "-z",
            base,
            "--",
            ".",
        ])
        .fields()
        .into_iter()
        .filter_map(|f| {
            let mut parts = f.splitn(3, '\t');
            let (added, deleted, file) = (parts.next()?, parts.next()?, parts.next()?);
            (!file.is_empty()).then(|| (file.to_string(), (count(added), count(deleted))))
        })
        .collect()
    }

    /// What `git diff --no-index --numstat /dev/null <file>` says of an untracked file: its lines
    /// as added (0 for a binary file, 1 for a symlink's target, nothing for a directory). Counted
    /// here, through the workspace's descriptor-based opener, rather than one git per file.
    fn stat_untracked(&self, file: &str) -> Option<(u64, u64)> {
        let path = self.top.join(file);
        if !path.starts_with(&self.root) {
            return None;
        }
        let (dir, name) = Opener::new().open_parent(&self.root, &path, false).ok()?;
        match stat_at(dir.as_fd(), &name).ok()?.file_type {
            FileType::Symlink => Some((1, 0)),
            FileType::RegularFile => {
                let (file, _) = open_regular_at(dir.as_fd(), &name).ok()??;
                Some((count_lines(file)?, 0))
            }
            _ => None,
        }
    }

    fn patch_args<'a>(context: &'a str, base: &'a str, path: &'a str) -> [&'a str; 8] {
        [
            "diff",
            "--patch",
            "--no-ext-diff",
            "--no-renames",
            context,
            base,
            "--",
            path,
        ]
    }

    fn patch_untracked(&self, file: &str, context: u64, cap: usize) -> Output {
        let context = format!("--unified={context}");
        self.git_capped(
            &[
                "diff",
                "--no-index",
                "--patch",
                "--no-ext-diff",
                "--no-renames",
                &context,
                "--",
                "/dev/null",
                file,
            ],
            cap,
        )
    }
}

fn count(text: &str) -> u64 {
    if text == "-" {
        0
    } else {
        text.parse().unwrap_or(0)
    }
}

/// Lines of a file as git counts them (a last line without newline counts), `Some(0)` for a
/// binary one (a NUL in the first 8000 bytes).
fn count_lines(file: File) -> Option<u64> {
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    if looks_binary(&mut reader).ok()? {
        return Some(0);
    }
    let (mut lines, mut last, mut buf) = (0u64, b'\n', vec![0u8; 64 * 1024]);
    loop {
        let n = reader.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        last = buf[n - 1];
    }
    Some(lines + u64::from(last != b'\n'))
}

/// One changed file: porcelain or name-status code and OpenCode's status for it.
#[derive(Clone)]
struct Change {
    file: String,
    code: String,
    status: &'static str,
}

impl Change {
    fn new(file: String, code: String) -> Change {
        let status = if code == "??" {
            "added"
        } else if code.contains('U') {
            "modified"
        } else if code.contains('A') && !code.contains('D') {
            "added"
        } else if code.contains('D') && !code.contains('A') {
            "deleted"
        } else {
            "modified"
        };
        Change { file, code, status }
    }

    fn untracked(&self) -> bool {
        self.code == "??"
    }
}

fn sorted(mut changes: Vec<Change>) -> Vec<Change> {
    changes.sort_by(|a, b| locale_cmp(&a.file, &b.file));
    changes
}

/// OpenCode's `VcsInfo`: an unknown branch is `null` (both are, outside git), as OpenCode
/// encodes it.
#[derive(Serialize, Default)]
struct VcsInfo {
    branch: Option<String>,
    default_branch: Option<String>,
}

/// OpenCode's `VcsFileStatus`, and with `patch` its `VcsFileDiff`.
#[derive(Serialize)]
struct FileChange {
    file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    additions: u64,
    deletions: u64,
    status: &'static str,
}

#[derive(Serialize)]
struct Applied {
    applied: bool,
}

async fn info(
    State(app): State<Arc<App>>,
    UrlPath(ws): UrlPath<String>,
) -> Result<Json<VcsInfo>, OcErr> {
    blocking(move || {
        let Some(repo) = Repo::open(&app, &ws)? else {
            return Ok(VcsInfo::default());
        };
        Ok(VcsInfo {
            branch: repo.branch(),
            default_branch: repo.default_branch().map(|(name, _)| name),
        })
    })
    .await
    .map(Json)
}

/// Changed files of the work tree with their added and deleted lines against `HEAD`.
async fn status(
    State(app): State<Arc<App>>,
    UrlPath(ws): UrlPath<String>,
) -> Result<Json<Vec<FileChange>>, OcErr> {
    blocking(move || {
        let Some(repo) = Repo::open(&app, &ws)? else {
            return Ok(Vec::new());
        };
        let stats = if repo.has_head() {
            repo.stats("HEAD")
        } else {
            HashMap::new()
        };
        let files: Vec<FileChange> = sorted(repo.status())
            .into_iter()
            .map(|c| {
                let (added, deleted) = stats
                    .get(&c.file)
                    .copied()
                    .or_else(|| {
                        (c.status == "added")
                            .then(|| repo.stat_untracked(&c.file))
                            .flatten()
                    })
                    .unwrap_or((0, 0));
                FileChange {
                    file: c.file,
                    patch: None,
                    additions: added,
                    deletions: deleted,
                    status: c.status,
                }
            })
            .collect();
        Ok(files)
    })
    .await
    .map(Json)
}

async fn diff(
    State(app): State<Arc<App>>,
    UrlPath(ws): UrlPath<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<FileChange>>, OcErr> {
    let query = Query::parse(query.as_deref());
    let branch = match query.require("mode")? {
        "git" => false,
        "branch" => true,
        other => {
            return Err(OcErr::bad_request(
                "Query",
                format!("Expected \"git\" | \"branch\", got {other:?}\n  at [\"mode\"]"),
            ))
        }
    };
    let context = match query.get("context") {
        None => FULL_CONTEXT,
        Some(text) => text.parse::<u64>().map_err(|_| {
            OcErr::bad_request(
                "Query",
                format!("Expected a non-negative integer, got {text:?}\n  at [\"context\"]"),
            )
        })?,
    };
    blocking(move || {
        let Some(repo) = Repo::open(&app, &ws)? else {
            return Ok(Vec::new());
        };
        let files = if branch {
            branch_diff(&repo, context)
        } else if repo.has_head() {
            Diff::new(&repo, "HEAD", context).files()
        } else {
            Diff::without_head(&repo, context).files()
        };
        Ok(files)
    })
    .await
    .map(Json)
}

/// The diff of the work tree against where it forked from the default branch; nothing on the
/// default branch itself or without one.
fn branch_diff(repo: &Repo, context: u64) -> Vec<FileChange> {
    let Some((name, reference)) = repo.default_branch() else {
        return Vec::new();
    };
    if repo.branch().as_deref() == Some(name.as_str()) {
        return Vec::new();
    }
    let out = repo.git(&["merge-base", &reference, "HEAD"]);
    let base = out.trimmed();
    if !out.ok() || base.is_empty() {
        return Vec::new();
    }
    Diff::new(repo, &base, context).files()
}

/// One diff answer being built: OpenCode's `a`/`c`/`GU` functions.
struct Diff<'r> {
    repo: &'r Repo,
    /// `None`: a repository without commits, every change is diffed as untracked.
    base: Option<String>,
    context: u64,
    changes: Vec<Change>,
    stats: HashMap<String, (u64, u64)>,
    /// Per-file patches cut from one `git diff` of everything.
    patches: HashMap<String, String>,
    /// That `git diff` was cut short: files missing from it get an empty patch.
    capped: bool,
}

impl<'r> Diff<'r> {
    fn new(repo: &'r Repo, base: &str, context: u64) -> Diff<'r> {
        let names = repo.diff_names(base);
        let stats = repo.stats(base);
        let untracked = repo.status().into_iter().filter(Change::untracked);
        let mut seen = std::collections::HashSet::new();
        let changes: Vec<Change> = names
            .iter()
            .cloned()
            .chain(untracked)
            .filter(|c| seen.insert(c.file.clone()))
            .collect();
        let mut diff = Diff {
            repo,
            base: Some(base.to_string()),
            context,
            changes,
            stats,
            patches: HashMap::new(),
            capped: false,
        };
        if !names.is_empty() {
            let unified = format!("--unified={context}");
            let out = repo.git_capped(&Repo::patch_args(&unified, base, "."), MAX_PATCH_BYTES);
            diff.capped = out.truncated;
            let text = out.text();
            let mut chunks = split_patches(&text);
            if out.truncated {
                chunks.pop();
            }
            for (i, chunk) in chunks.into_iter().enumerate() {
                let Some(file) = patch_file(chunk).or_else(|| names.get(i).map(|c| c.file.clone()))
                else {
                    continue;
                };
                diff.patches.entry(file).or_default().push_str(chunk);
            }
        }
        diff
    }

    fn without_head(repo: &'r Repo, context: u64) -> Diff<'r> {
        Diff {
            repo,
            base: None,
            context,
            changes: repo.status(),
            stats: HashMap::new(),
            patches: HashMap::new(),
            capped: false,
        }
    }

    fn files(self) -> Vec<FileChange> {
        let mut out = Vec::new();
        let mut total = 0usize;
        let mut capped = false;
        for change in sorted(self.changes.clone()) {
            let (added, deleted) = self
                .stats
                .get(&change.file)
                .copied()
                .or_else(|| {
                    (change.status == "added")
                        .then(|| self.repo.stat_untracked(&change.file))
                        .flatten()
                })
                .unwrap_or((0, 0));
            let mut patch = if capped {
                empty_patch(&change.file)
            } else {
                self.patch(&change)
            };
            if !capped {
                if total + patch.len() <= MAX_PATCH_BYTES {
                    total += patch.len();
                    capped = total >= MAX_PATCH_BYTES;
                } else {
                    patch = empty_patch(&change.file);
                    capped = true;
                }
            }
            out.push(FileChange {
                file: change.file,
                patch: Some(patch),
                additions: added,
                deletions: deleted,
                status: change.status,
            });
        }
        out
    }

    fn patch(&self, change: &Change) -> String {
        if let Some(p) = self.patches.get(&change.file) {
            return p.clone();
        }
        if !change.untracked() && self.capped {
            return empty_patch(&change.file);
        }
        let out = match &self.base {
            Some(base) if !change.untracked() => {
                let unified = format!("--unified={}", self.context);
                self.repo.git_capped(
                    &Repo::patch_args(&unified, base, &change.file),
                    MAX_FILE_PATCH_BYTES,
                )
            }
            _ => self
                .repo
                .patch_untracked(&change.file, self.context, MAX_FILE_PATCH_BYTES),
        };
        if out.truncated || out.stdout.is_empty() {
            return empty_patch(&change.file);
        }
        out.text()
    }
}

/// What OpenCode gives for a file whose patch is missing or too large: jsdiff's
/// `formatPatch(structuredPatch(file, file, "", "", "", ""))`.
fn empty_patch(file: &str) -> String {
    format!(
        "Index: {file}\n===================================================================\n--- {file}\t\n+++ {file}\t\n"
    )
}

/// `git diff` output cut at each `diff --git ` line.
fn split_patches(text: &str) -> Vec<&str> {
    let mut starts: Vec<usize> = Vec::new();
    if text.starts_with("diff --git ") {
        starts.push(0);
    }
    starts.extend(text.match_indices("\ndiff --git ").map(|(i, _)| i + 1));
    starts
        .iter()
        .enumerate()
        .map(|(k, &s)| &text[s..starts.get(k + 1).copied().unwrap_or(text.len())])
        .collect()
}

/// The file a patch is about: its `+++` name, else its `---` name, else the `diff --git` line's
/// second name (with git's C-style quoting undone and `a/`/`b/` dropped; `/dev/null` is none).
fn patch_file(patch: &str) -> Option<String> {
    let header = |prefix: &str| {
        patch
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .filter(|rest| !rest.is_empty())
    };
    if let Some(name) = header("+++ ").and_then(side_name) {
        return Some(name);
    }
    if let Some(name) = header("--- ").and_then(side_name) {
        return Some(name);
    }
    let line = header("diff --git ")?;
    if line.starts_with('"') {
        let (_, end) = unquote(line)?;
        let rest = line[end..].trim_start();
        if rest.is_empty() {
            return None;
        }
        if !rest.starts_with('"') {
            return side_name(rest);
        }
        return drop_side(&unquote(rest)?.0);
    }
    let i = line.find(" b/")?;
    side_name(&line[i + 1..])
}

/// A `---`/`+++` name: unquoted (or up to a tab), `/dev/null` is none, `a/`/`b/` dropped.
fn side_name(text: &str) -> Option<String> {
    let name = if text.starts_with('"') {
        unquote(text)
            .map(|(v, _)| v)
            .unwrap_or_else(|| text.to_string())
    } else {
        text.split('\t').next().unwrap_or("").to_string()
    };
    drop_side(&name)
}

fn drop_side(name: &str) -> Option<String> {
    if name.is_empty() || name == "/dev/null" {
        return None;
    }
    Some(
        name.strip_prefix("a/")
            .or_else(|| name.strip_prefix("b/"))
            .unwrap_or(name)
            .to_string(),
    )
}

/// A C-quoted string at the start of `text` (which starts with `"`): its value and the byte index
/// after the closing quote, as OpenCode reads it.
fn unquote(text: &str) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut chars = text.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, i + 1)),
            '\\' => match chars.next().map(|(_, c)| c) {
                Some('t') => out.push('\t'),
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some(c) => out.push(c),
                None => {}
            },
            c => out.push(c),
        }
    }
    None
}

/// The patch of everything uncommitted, as `git apply` takes it: tracked changes against `HEAD`
/// (3 lines of context), then each untracked file, joined by newlines. Refused (rather than cut)
/// above [`DEFAULT_MAX_OUTPUT`].
async fn diff_raw(
    State(app): State<Arc<App>>,
    UrlPath(ws): UrlPath<String>,
) -> Result<Response, OcErr> {
    let text = blocking(move || {
        let Some(repo) = Repo::open(&app, &ws)? else {
            return Ok(String::new());
        };
        let too_large = || {
            OcErr::unknown(format!(
                "the uncommitted changes are more than {DEFAULT_MAX_OUTPUT} bytes of patch; commit or stash some first"
            ))
        };
        let mut parts: Vec<String> = Vec::new();
        let mut total = 0usize;
        if repo.has_head() {
            let out = repo.git(&Repo::patch_args("--unified=3", "HEAD", "."));
            if out.truncated {
                return Err(too_large());
            }
            total += out.stdout.len();
            parts.push(out.text());
        }
        for change in repo.status().into_iter().filter(Change::untracked) {
            let out = repo.patch_untracked(&change.file, 3, DEFAULT_MAX_OUTPUT);
            total += out.stdout.len();
            if out.truncated || total > DEFAULT_MAX_OUTPUT {
                return Err(too_large());
            }
            parts.push(out.text());
        }
        parts.retain(|p| !p.is_empty());
        Ok(parts.join("\n"))
    })
    .await?;
    Ok(([(CONTENT_TYPE, "text/x-diff; charset=utf-8")], text).into_response())
}

/// `git apply` of the body's `patch` in the workspace root. Errors are OpenCode's
/// `VcsApplyError`: `non-git` outside a work tree, `not-clean` when git refuses the patch.
async fn apply(
    State(app): State<Arc<App>>,
    UrlPath(ws): UrlPath<String>,
    body: Bytes,
) -> Result<Json<Applied>, OcErr> {
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| OcErr::bad_request("Payload", format!("the body is not JSON: {e}")))?;
    let patch = match value.get("patch") {
        Some(Value::String(p)) => p.clone(),
        Some(other) => {
            return Err(OcErr::bad_request(
                "Payload",
                format!("Expected string, got {other}\n  at [\"patch\"]"),
            ))
        }
        None => {
            return Err(OcErr::bad_request(
                "Payload",
                "Missing key\n  at [\"patch\"]",
            ))
        }
    };
    blocking(move || {
        let Some(repo) = Repo::open(&app, &ws)? else {
            return Err(OcErr::vcs_apply(
                "Patch can't be applied because the project is not git-based",
                "non-git",
            ));
        };
        let out = git::run(
            &repo.root,
            &["apply", "-"],
            Some(patch.as_bytes()),
            64 * 1024,
        );
        if !out.ok() {
            return Err(OcErr::vcs_apply("Patch can't be applied", "not-clean"));
        }
        Ok(Applied { applied: true })
    })
    .await
    .map(Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_file_should_read_the_names_git_writes() {
        let p = "diff --git a/src/a.rs b/src/a.rs\nindex 1..2 100644\n--- a/src/a.rs\n+++ b/src/a.rs\n@@ -1 +1 @@\n";
        assert_eq!(patch_file(p).as_deref(), Some("src/a.rs"));
        let deleted = "diff --git a/x b/x\ndeleted file mode 100644\n--- a/x\n+++ /dev/null\n";
        assert_eq!(patch_file(deleted).as_deref(), Some("x"));
        let binary = "diff --git a/i.png b/i.png\nBinary files a/i.png and b/i.png differ\n";
        assert_eq!(patch_file(binary).as_deref(), Some("i.png"));
        let quoted = "diff --git \"a/t\\tb\" \"b/t\\tb\"\nBinary files differ\n";
        assert_eq!(patch_file(quoted).as_deref(), Some("t\tb"));
    }

    #[test]
    fn split_patches_should_cut_at_each_file() {
        let text = "diff --git a/a b/a\n+x\ndiff --git a/b b/b\n+y\n";
        assert_eq!(
            split_patches(text),
            ["diff --git a/a b/a\n+x\n", "diff --git a/b b/b\n+y\n"]
        );
        assert!(split_patches("").is_empty());
    }

    #[test]
    fn change_should_map_codes_like_opencode() {
        let s = |c: &str| Change::new("f".into(), c.into()).status;
        assert_eq!(
            [s("??"), s(" M"), s("A "), s("D "), s("AD"), s("UU"), s("M")],
            ["added", "modified", "added", "deleted", "modified", "modified", "modified"]
        );
    }

    #[test]
    fn count_lines_should_count_like_git_numstat() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&[u8], u64); 4] = [(b"a\nb\n", 2), (b"a\nb", 2), (b"", 0), (b"a\0b\n", 0)];
        for (i, (content, want)) in cases.iter().enumerate() {
            let path = dir.path().join(format!("f{i}"));
            std::fs::write(&path, content).unwrap();
            assert_eq!(
                count_lines(File::open(&path).unwrap()),
                Some(*want),
                "{content:?}"
            );
        }
    }
}
