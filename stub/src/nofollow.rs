//! Opening a checked path without following any symlink, so the object opened is the one the
//! permission check saw.
//!
//! Why: `State::authorize` resolves a request's path (following `..` and symlinks, which users do
//! have inside repositories) and checks the resolved path against the root and the approvals. If
//! the operation then opened that path by name, anyone able to write a directory on it could swap
//! the directory for a symlink between the check and the open, and the stub would read or write
//! outside the root without asking. So the resolved path (which has no `.`, `..` or symlink among
//! its existing components) is opened with symlinks forbidden on every component: a swap makes the
//! open fail (`ELOOP`, reported as [`changed`]) instead of following the new link. A legitimate
//! symlink still works because it was resolved, and its target re-checked, before the open.
//!
//! A path inside the root is opened relative to a descriptor of the root; one outside (approved)
//! from `/`. Operations that create, rename or remove work on the parent directory's descriptor
//! and a single name ([`Opener::open_parent`]), so nothing after the check is looked up by path.
//!
//! How: `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` where the kernel has it (Linux ≥ 5.6;
//! probed once, since seccomp filters in containers may answer `ENOSYS` or `EPERM`), otherwise a
//! walk with one `openat(O_PATH | O_DIRECTORY | O_NOFOLLOW)` per component and `O_NOFOLLOW` on the
//! last. Both refuse the same things; the tests run both. `O_PATH` descriptors are used for
//! directories on the way (a search-only directory works, as with a path lookup) and for `stat`;
//! `fstat` and `fchdir` on them need Linux >= 3.6 (CentOS 7 has 3.10).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};
use std::sync::OnceLock;

use rustix::fs::{
    openat, openat2, statat, unlinkat, AtFlags, FileType, Mode, OFlags, ResolveFlags,
};
use rustix::io::Errno;

/// `openat2` attempts answered `EAGAIN` (a concurrent rename or mount elsewhere) before falling
/// back to the walk for that call.
const OPENAT2_TRIES: usize = 3;

/// How paths are opened. [`Opener::new`] uses `openat2` when the kernel has it.
#[derive(Debug, Clone, Copy)]
pub struct Opener {
    openat2: bool,
}

impl Default for Opener {
    fn default() -> Self {
        Opener::new()
    }
}

/// The error for a path that is not what it was when it was checked: a component became a symlink.
pub fn changed(path: &Path) -> io::Error {
    io::Error::other(format!(
        "{} changed while it was being opened (a directory on the path is now a symlink); nothing was done, try again",
        path.display()
    ))
}

/// Whether `err` means a symlink was met where none may be.
pub fn is_symlink_error(err: &io::Error) -> bool {
    err.raw_os_error() == Some(libc::ELOOP)
}

impl Opener {
    /// `openat2` when the kernel has it, else the component walk.
    pub const fn new() -> Opener {
        Opener { openat2: true }
    }

    /// The component walk only, as on kernels before 5.6: tests use it to cover the fallback.
    #[cfg(test)]
    pub const fn without_openat2() -> Opener {
        Opener { openat2: false }
    }

    /// Opens `path` (absolute and resolved: no `.`, `..`, or symlink that may be followed) with
    /// `flags`, relative to `root` when it is inside it, never following a symlink. `O_NOFOLLOW`
    /// and `O_CLOEXEC` are added. `O_PATH` opens anything the caller may look at (stat, `fchdir`).
    pub fn open(&self, root: &Path, path: &Path, flags: OFlags) -> io::Result<OwnedFd> {
        let (anchor, rel) = self.anchor(root, path)?;
        self.open_at(anchor.as_fd(), rel, flags)
    }

    /// Opens the directory that holds `path` and returns it with the last name, for the `*at`
    /// calls that create, rename or remove that name. With `create`, missing directories are made
    /// (`mkdirat`, one component at a time, each opened without following symlinks).
    pub fn open_parent(
        &self,
        root: &Path,
        path: &Path,
        create: bool,
    ) -> io::Result<(OwnedFd, OsString)> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} has no parent directory", path.display()),
            ));
        };
        let (anchor, rel) = self.anchor(root, parent)?;
        let dir_flags = OFlags::PATH | OFlags::DIRECTORY;
        let dir = match self.open_at(anchor.as_fd(), rel, dir_flags) {
            Err(e) if create && e.kind() == io::ErrorKind::NotFound => {
                make_dirs(anchor.as_fd(), rel)?
            }
            other => other?,
        };
        Ok((dir, name.to_os_string()))
    }

    /// The descriptor `path` is opened relative to, and the rest of the path: the root's when
    /// `path` is inside it, otherwise `/`'s.
    fn anchor<'p>(&self, root: &Path, path: &'p Path) -> io::Result<(OwnedFd, &'p Path)> {
        if !path.is_absolute() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not absolute", path.display()),
            ));
        }
        let slash = openat(
            rustix::fs::CWD,
            "/",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        match path.strip_prefix(root) {
            Ok(rel) if root.is_absolute() => {
                let root_rel = root.strip_prefix("/").unwrap_or(root);
                let dir =
                    self.open_at(slash.as_fd(), root_rel, OFlags::PATH | OFlags::DIRECTORY)?;
                Ok((dir, rel))
            }
            _ => Ok((slash, path.strip_prefix("/").unwrap_or(path))),
        }
    }

    /// Opens `rel` (plain names only) beneath `dir` without following symlinks.
    fn open_at(&self, dir: BorrowedFd<'_>, rel: &Path, flags: OFlags) -> io::Result<OwnedFd> {
        let names = names(rel)?;
        let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        if self.openat2 && openat2_works() {
            let rel = if names.is_empty() {
                Path::new(".")
            } else {
                rel
            };
            // Without O_NOFOLLOW: `O_PATH | O_NOFOLLOW` would open a trailing symlink itself;
            // RESOLVE_NO_SYMLINKS alone refuses it.
            let flags = flags & !OFlags::NOFOLLOW;
            for _ in 0..OPENAT2_TRIES {
                match openat2(dir, rel, flags, Mode::empty(), resolve_flags()) {
                    Err(Errno::AGAIN) => continue,
                    other => return other.map_err(io::Error::from),
                }
            }
        }
        walk(dir, &names, flags)
    }
}

/// `RESOLVE_BENEATH`: nothing above the anchor (there is no `..` in a resolved path; this makes
/// sure). `RESOLVE_NO_SYMLINKS` (implies no magic links): no symlink on any component.
fn resolve_flags() -> ResolveFlags {
    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS
}

/// Whether `openat2` with our resolve flags works here; probed once on `/` and remembered. Any
/// failure (`ENOSYS` before 5.6, `EPERM` or `ENOSYS` from a seccomp filter, `EINVAL` for unknown
/// flags) means the walk is used.
fn openat2_works() -> bool {
    static WORKS: OnceLock<bool> = OnceLock::new();
    *WORKS.get_or_init(|| {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        // Relative to a descriptor, as every real call is: an absolute path is never "beneath".
        openat(rustix::fs::CWD, "/", flags, Mode::empty())
            .and_then(|slash| openat2(slash, ".", flags, Mode::empty(), resolve_flags()))
            .is_ok()
    })
}

/// The names of a relative path; anything else (`..`, a root) is refused, as a resolved path has
/// none.
fn names(rel: &Path) -> io::Result<Vec<&OsStr>> {
    rel.components()
        .filter(|c| *c != Component::CurDir)
        .map(|c| match c {
            Component::Normal(n) => Ok(n),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a resolved relative path", rel.display()),
            )),
        })
        .collect()
}

/// The fallback: one `openat` per component, each refusing a symlink.
fn walk(dir: BorrowedFd<'_>, names: &[&OsStr], flags: OFlags) -> io::Result<OwnedFd> {
    let Some((last, dirs)) = names.split_last() else {
        return Ok(openat(dir, ".", flags & !OFlags::NOFOLLOW, Mode::empty())?);
    };
    let mut held: Option<OwnedFd> = None;
    for name in dirs {
        let at = held.as_ref().map_or(dir, |f| f.as_fd());
        let next = open_dir_component(at, name)?;
        held = Some(next);
    }
    let at = held.as_ref().map_or(dir, |f| f.as_fd());
    let fd = openat(at, *last, flags, Mode::empty()).map_err(|e| symlink_or(at, last, e))?;
    // `O_PATH | O_NOFOLLOW` opens a symlink itself rather than failing; refuse it like openat2.
    if flags.contains(OFlags::PATH)
        && FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode as _) == FileType::Symlink
    {
        return Err(Errno::LOOP.into());
    }
    Ok(fd)
}

/// Opens one directory component (`O_PATH`, so a search-only directory works too) without
/// following it.
fn open_dir_component(at: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    openat(at, name, flags, Mode::empty()).map_err(|e| symlink_or(at, name, e))
}

/// `O_DIRECTORY | O_NOFOLLOW` on a symlink answers `ENOTDIR`; report it as the symlink it is.
fn symlink_or(at: BorrowedFd<'_>, name: &OsStr, err: Errno) -> io::Error {
    if err == Errno::NOTDIR
        && statat(at, name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|s| FileType::from_raw_mode(s.st_mode as _) == FileType::Symlink)
    {
        return Errno::LOOP.into();
    }
    err.into()
}

/// `mkdir -p` below `dir`, one component at a time, never following a symlink.
fn make_dirs(dir: BorrowedFd<'_>, rel: &Path) -> io::Result<OwnedFd> {
    let mut held: Option<OwnedFd> = None;
    for name in names(rel)? {
        let at = held.as_ref().map_or(dir, |f| f.as_fd());
        let next = match open_dir_component(at, name) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match rustix::fs::mkdirat(at, name, Mode::from_raw_mode(0o777)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                open_dir_component(at, name)?
            }
            other => other?,
        };
        held = Some(next);
    }
    match held {
        Some(fd) => Ok(fd),
        None => Ok(openat(
            dir,
            ".",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?),
    }
}

/// What the stub reports about a directory entry, from `fstatat(AT_SYMLINK_NOFOLLOW)`.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    pub file_type: FileType,
    pub size: u64,
    pub mode: u32,
    pub mtime_ms: u64,
}

/// The entry `name` in `dir` itself (a symlink is reported as one, not followed).
pub fn stat_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Meta> {
    let st = statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    let mtime_ms = (st.st_mtime as i128 * 1000 + st.st_mtime_nsec as i128 / 1_000_000).max(0);
    Ok(Meta {
        file_type: FileType::from_raw_mode(st.st_mode as _),
        size: st.st_size.max(0) as u64,
        mode: st.st_mode as u32 & 0o7777,
        mtime_ms: mtime_ms as u64,
    })
}

/// Opens the regular file `name` in `dir` for reading without following a symlink and without
/// blocking on a FIFO (`O_NONBLOCK`). `Ok(None)` when it is not a regular file.
pub fn open_regular_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
) -> io::Result<Option<(File, std::fs::Metadata)>> {
    let fd = openat(dir, name, read_flags(), Mode::empty())?;
    let file = File::from(fd);
    let meta = file.metadata()?;
    Ok(meta.is_file().then_some((file, meta)))
}

/// Flags for reading a file that may turn out to be a FIFO or a device: never block, never make
/// it the controlling terminal, never follow a symlink.
pub fn read_flags() -> OFlags {
    OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// Whether `error` says the process (or the system) has no descriptor left. That is no property of
/// the file: a walk that skipped it and went on would answer as if it had seen everything.
pub fn out_of_descriptors(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// The entries of the directory `dir` (readable, not `O_PATH`) without `.` and `..`, with the type
/// the listing gives (`Unknown` on some filesystems: ask [`stat_at`]).
pub fn entries(dir: BorrowedFd<'_>) -> io::Result<Vec<(OsString, FileType)>> {
    let mut out = Vec::new();
    // `read_from` reads through its own descriptor of the same directory (`openat(dir, ".")`).
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            out.push((OsStr::from_bytes(name).to_os_string(), entry.file_type()));
        }
    }
    Ok(out)
}

/// Removes `name` in `dir` and, when it is a directory, everything below it, by descriptor: a
/// directory swapped for a symlink meanwhile is unlinked as the link, never followed (unlike
/// `std::fs::remove_dir_all`, which takes a path and so resolves its parents by name).
pub fn remove_tree_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let sub = match openat(dir, name, flags, Mode::empty()) {
        Ok(sub) => sub,
        // Not (or no longer) a directory: remove the entry itself.
        Err(Errno::NOTDIR | Errno::LOOP) => return Ok(unlinkat(dir, name, AtFlags::empty())?),
        Err(e) => return Err(e.into()),
    };
    for (child, file_type) in entries(sub.as_fd())? {
        let result = if file_type == FileType::Directory {
            remove_tree_at(sub.as_fd(), &child)
        } else {
            match unlinkat(sub.as_fd(), &child, AtFlags::empty()) {
                Err(Errno::ISDIR) => remove_tree_at(sub.as_fd(), &child),
                other => other.map_err(io::Error::from),
            }
        };
        match result {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    Ok(unlinkat(dir, name, AtFlags::REMOVEDIR)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn both() -> [Opener; 2] {
        [Opener::new(), Opener::without_openat2()]
    }

    fn tree() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let base = fs::canonicalize(dir.path()).unwrap();
        fs::create_dir_all(base.join("root/a/b")).unwrap();
        fs::create_dir_all(base.join("out")).unwrap();
        fs::write(base.join("root/a/b/f.txt"), "in").unwrap();
        fs::write(base.join("out/f.txt"), "out").unwrap();
        symlink(base.join("out"), base.join("root/a/link")).unwrap();
        symlink("b/f.txt", base.join("root/a/flink")).unwrap();
        (dir, base)
    }

    #[test]
    fn open_should_refuse_a_symlink_on_any_component() {
        let (_d, base) = tree();
        let root = base.join("root");
        for opener in both() {
            let fd = opener
                .open(&root, &root.join("a/b/f.txt"), read_flags())
                .unwrap();
            assert_eq!(std::io::read_to_string(File::from(fd)).unwrap(), "in");
            for p in ["a/link/f.txt", "a/flink", "a/link"] {
                for flags in [read_flags(), OFlags::PATH, OFlags::PATH | OFlags::DIRECTORY] {
                    let err = opener.open(&root, &root.join(p), flags).unwrap_err();
                    assert!(is_symlink_error(&err), "{opener:?} {p} {flags:?}: {err}");
                }
            }
            // Outside the root (an approved path) is opened from `/`, still without symlinks.
            let fd = opener
                .open(&root, &base.join("out/f.txt"), read_flags())
                .unwrap();
            assert_eq!(std::io::read_to_string(File::from(fd)).unwrap(), "out");
            assert!(opener
                .open(&root, &root.join("a/../a/b/f.txt"), read_flags())
                .is_err());
        }
    }

    #[test]
    fn open_parent_should_make_missing_directories_but_not_through_a_symlink() {
        let (_d, base) = tree();
        let root = base.join("root");
        for (i, opener) in both().into_iter().enumerate() {
            let path = root.join(format!("new{i}/deeper/x.txt"));
            assert!(opener.open_parent(&root, &path, false).is_err());
            let (dir, name) = opener.open_parent(&root, &path, true).unwrap();
            assert_eq!(name, "x.txt");
            assert!(
                stat_at(dir.as_fd(), OsStr::new(".")).unwrap().file_type == FileType::Directory
            );
            assert!(root.join(format!("new{i}/deeper")).is_dir());
            let err = opener
                .open_parent(&root, &root.join("a/link/new/x.txt"), true)
                .unwrap_err();
            assert!(is_symlink_error(&err), "{err}");
            assert!(!base.join("out/new").exists());
        }
    }
}
