//! A directory walk by descriptor for glob and grep.
//!
//! Why not `ignore::Walk`: it walks by path name, so a directory swapped for a symlink between
//! reading its parent and descending into it would be followed, leaking names, times and (for grep)
//! content from outside the checked directory. Here every directory is opened from its parent's
//! descriptor with `O_NOFOLLOW | O_DIRECTORY`, every file with `O_NOFOLLOW`, and every entry's
//! metadata is `fstatat(AT_SYMLINK_NOFOLLOW)` on the parent's descriptor: a swap makes the open fail
//! and the entry is skipped.
//!
//! The ignore rules are ripgrep's (OpenCode's own glob and grep use it), built from the `ignore`
//! crate's gitignore matcher: `.ignore` anywhere; `.gitignore`, `.git/info/exclude` and the global
//! git excludes file only inside a git (or jj) repository; deeper files win; ignore files of the
//! base's parent directories count too. Ignore files are read through descriptors as well.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::Match;
use rustix::fs::{openat, FileType, Mode, OFlags};

use super::PathGlob;
use crate::nofollow::{self, Meta, Opener};

/// An ignore file larger than this is not read (no real one comes near).
const MAX_IGNORE_FILE_BYTES: u64 = 1024 * 1024;

/// One entry met by the walk.
pub struct Entry<'a> {
    /// The directory holding it (shared, so a [`FileRef`] can keep it open).
    dir: &'a Arc<OwnedFd>,
    name: &'a OsStr,
    /// From the directory listing; a symlink is a symlink, never what it points to.
    pub file_type: FileType,
    /// Relative to the walk's base.
    pub rel: &'a Path,
    /// Absolute, for answers.
    pub path: &'a Path,
}

impl Entry<'_> {
    /// The entry's own metadata (a symlink's, not its target's).
    pub fn meta(&self) -> io::Result<Meta> {
        nofollow::stat_at(self.dir.as_fd(), self.name)
    }

    /// The entry opened for reading, when it is (still) a regular file.
    pub fn open_regular(&self) -> io::Result<Option<(File, std::fs::Metadata)>> {
        nofollow::open_regular_at(self.dir.as_fd(), self.name)
    }

    /// The entry, to be opened later, maybe on another thread.
    pub fn file_ref(&self) -> FileRef {
        FileRef {
            dir: self.dir.clone(),
            name: self.name.to_owned(),
            path: self.path.to_path_buf(),
        }
    }
}

/// An entry of the walk to open later. It holds its directory's descriptor, so it is opened
/// relative to the directory that was listed, without following, as [`Entry::open_regular`] does.
pub struct FileRef {
    dir: Arc<OwnedFd>,
    name: OsString,
    /// Absolute, for answers.
    pub path: PathBuf,
}

impl FileRef {
    /// The entry opened for reading, when it is (still) a regular file.
    pub fn open_regular(&self) -> io::Result<Option<(File, std::fs::Metadata)>> {
        nofollow::open_regular_at(self.dir.as_fd(), &self.name)
    }

    /// Whether both were listed in the same directory (and so keep the same descriptor open).
    pub fn same_dir(&self, other: &FileRef) -> bool {
        Arc::ptr_eq(&self.dir, &other.dir)
    }
}

/// Whether the walk goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// The ignore files of one directory.
struct Rules {
    dot_ignore: Gitignore,
    git_ignore: Gitignore,
    git_exclude: Gitignore,
    /// Holds `.git` (or `.jj`): ignore files above it are not git's.
    has_git: bool,
}

struct Walker<'a> {
    skip: &'a [PathGlob],
    /// From `/` down to the directory being read.
    rules: Vec<Rules>,
    global: Gitignore,
    visit: &'a mut dyn FnMut(&Entry<'_>) -> Flow,
}

/// Walks the directory `base` (opened as `base_fd`, a readable directory descriptor) depth first,
/// calling `visit` for every entry below it that neither `skip` (globs relative to `base`) nor an
/// ignore file excludes. `.git` is never entered. `root` is the workspace root, for opening the
/// parents of `base` whose ignore files apply.
pub fn walk(
    opener: Opener,
    root: &Path,
    base: &Path,
    base_fd: OwnedFd,
    skip: &[PathGlob],
    visit: &mut dyn FnMut(&Entry<'_>) -> Flow,
) -> io::Result<()> {
    let mut rules = Vec::new();
    let mut parents: Vec<&Path> = base.ancestors().skip(1).collect();
    parents.reverse();
    for dir in parents {
        let loaded = opener
            .open(root, dir, OFlags::PATH | OFlags::DIRECTORY)
            .map(|fd| load_rules(fd.as_fd(), dir));
        rules.push(loaded.unwrap_or_else(|_| Rules::none()));
    }
    let mut walker = Walker {
        skip,
        rules,
        global: Gitignore::global().0,
        visit,
    };
    walker.dir(&Arc::new(base_fd), base, Path::new(""))?;
    Ok(())
}

impl Rules {
    fn none() -> Rules {
        Rules {
            dot_ignore: Gitignore::empty(),
            git_ignore: Gitignore::empty(),
            git_exclude: Gitignore::empty(),
            has_git: false,
        }
    }
}

impl Walker<'_> {
    fn dir(&mut self, fd: &Arc<OwnedFd>, path: &Path, rel: &Path) -> io::Result<Flow> {
        self.rules.push(load_rules(fd.as_fd(), path));
        let flow = self.entries(fd, path, rel);
        self.rules.pop();
        flow
    }

    fn entries(&mut self, dir: &Arc<OwnedFd>, path: &Path, rel: &Path) -> io::Result<Flow> {
        let fd = dir.as_fd();
        for (name, file_type) in nofollow::entries(fd)? {
            if name == ".git" {
                continue;
            }
            let file_type = match file_type {
                FileType::Unknown => match nofollow::stat_at(fd, &name) {
                    Ok(m) => m.file_type,
                    Err(_) => continue, // removed meanwhile
                },
                t => t,
            };
            let is_dir = file_type == FileType::Directory;
            let child_rel = rel.join(&name);
            if self.skip.iter().any(|g| g.matches(&child_rel)) {
                continue;
            }
            let child = path.join(&name);
            if self.ignored(&child, is_dir) {
                continue;
            }
            let entry = Entry {
                dir,
                name: &name,
                file_type,
                rel: &child_rel,
                path: &child,
            };
            if (self.visit)(&entry) == Flow::Stop {
                return Ok(Flow::Stop);
            }
            if is_dir {
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let sub = match openat(fd, &name, flags, Mode::empty()) {
                    Ok(sub) => sub,
                    Err(e) if nofollow::out_of_descriptors(&e.into()) => return Err(e.into()),
                    // Swapped for a symlink (or made unreadable) since the listing: skip it.
                    Err(_) => continue,
                };
                if self.dir(&Arc::new(sub), &child, &child_rel)? == Flow::Stop {
                    return Ok(Flow::Stop);
                }
            }
        }
        Ok(Flow::Continue)
    }

    /// ripgrep's precedence (`ignore::dir::Ignore::matched_ignore`): per kind, the deepest file
    /// with a match decides; then `.ignore` over `.gitignore` over `.git/info/exclude` over the
    /// global excludes. Git's files count only inside a repository, and not above its top.
    fn ignored(&self, path: &Path, is_dir: bool) -> bool {
        let any_git = self.rules.iter().any(|r| r.has_git);
        let (mut m_ignore, mut m_git, mut m_exclude) = (Match::None, Match::None, Match::None);
        let mut saw_git = false;
        for r in self.rules.iter().rev() {
            if m_ignore.is_none() {
                m_ignore = r.dot_ignore.matched(path, is_dir);
            }
            if any_git && !saw_git {
                if m_git.is_none() {
                    m_git = r.git_ignore.matched(path, is_dir);
                }
                if m_exclude.is_none() {
                    m_exclude = r.git_exclude.matched(path, is_dir);
                }
            }
            saw_git |= r.has_git;
        }
        let m_global = if any_git {
            self.global.matched(path, is_dir)
        } else {
            Match::None
        };
        m_ignore.or(m_git).or(m_exclude).or(m_global).is_ignore()
    }
}

/// The ignore files of directory `dir` (at `path`), read through its descriptor.
fn load_rules(dir: BorrowedFd<'_>, path: &Path) -> Rules {
    let git = nofollow::stat_at(dir, OsStr::new(".git")).ok();
    let jj = nofollow::stat_at(dir, OsStr::new(".jj")).ok();
    let git_exclude = match git {
        Some(m) if m.file_type == FileType::Directory => {
            let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            // One component at a time: `.git` itself may not be followed either.
            let text = openat(dir, ".git", flags, Mode::empty())
                .and_then(|git| openat(git, "info", flags, Mode::empty()))
                .ok()
                .and_then(|info| read_small(info.as_fd(), OsStr::new("exclude")));
            matcher(path, ".git/info/exclude", text)
        }
        _ => Gitignore::empty(),
    };
    Rules {
        dot_ignore: matcher(path, ".ignore", read_small(dir, OsStr::new(".ignore"))),
        git_ignore: matcher(
            path,
            ".gitignore",
            read_small(dir, OsStr::new(".gitignore")),
        ),
        git_exclude,
        has_git: git.is_some() || jj.is_some_and(|m| m.file_type == FileType::Directory),
    }
}

/// A small regular file's content, or `None`.
pub fn read_small(dir: BorrowedFd<'_>, name: &OsStr) -> Option<Vec<u8>> {
    let (file, meta) = nofollow::open_regular_at(dir, name).ok()??;
    if meta.len() > MAX_IGNORE_FILE_BYTES {
        return None;
    }
    let mut bytes = Vec::new();
    file.take(MAX_IGNORE_FILE_BYTES)
        .read_to_end(&mut bytes)
        .ok()?;
    Some(bytes)
}

/// A gitignore matcher rooted at `dir` from the text of its file `name`.
pub fn matcher(dir: &Path, name: &str, text: Option<Vec<u8>>) -> Gitignore {
    let Some(text) = text else {
        return Gitignore::empty();
    };
    let from = dir.join(name);
    let mut builder = GitignoreBuilder::new(dir);
    let text = String::from_utf8_lossy(&text);
    // Like git, a leading byte-order mark is not part of the first pattern.
    for line in text.trim_start_matches('\u{feff}').lines() {
        let _ = builder.add_line(Some(from.clone()), line);
    }
    builder.build().unwrap_or_else(|_| Gitignore::empty())
}
