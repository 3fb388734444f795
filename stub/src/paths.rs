//! Path resolution for permission checks: every path a request names is made absolute and resolved
//! through `.`, `..` and symlinks before it is compared with the workspace root and the approvals,
//! and the operation then uses the resolved path.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Symlinks followed at most while resolving one path (Linux's own limit is 40).
const MAX_SYMLINKS: usize = 40;

/// Makes `input` absolute: `~` and `~/…` are under `home`, a relative path is under `base`.
pub fn absolute(base: &Path, home: Option<&Path>, input: &str) -> PathBuf {
    if input.is_empty() {
        return base.to_path_buf();
    }
    if let Some(home) = home {
        if input == "~" {
            return home.to_path_buf();
        }
        if let Some(rest) = input.strip_prefix("~/") {
            return home.join(rest);
        }
    }
    base.join(input)
}

/// Resolves an absolute path like `realpath -m`: every existing component is checked for a symlink
/// and the link followed, `..` pops a component of the already-resolved (symlink-free) prefix, and
/// components that do not exist yet are appended as they are. The result is absolute and contains
/// no `.`, `..` or symlink among its existing components.
///
/// Walking component by component (rather than canonicalizing the deepest existing ancestor and
/// appending the rest lexically) matters for `missing/../link/x`: the lexical tail would hide that
/// `link` is a symlink.
pub fn resolve(path: &Path) -> io::Result<PathBuf> {
    let mut queue: VecDeque<OsString> = VecDeque::new();
    let mut out = PathBuf::from("/");
    push_components(&mut queue, path);
    let mut links = 0;
    while let Some(part) = queue.pop_front() {
        if part == "/" {
            out = PathBuf::from("/");
            continue;
        }
        if part == ".." {
            out.pop();
            continue;
        }
        let next = out.join(&part);
        match fs::symlink_metadata(&next) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(io::Error::other(format!(
                        "too many levels of symbolic links: {}",
                        path.display()
                    )));
                }
                let target = fs::read_link(&next)?;
                let mut front = VecDeque::new();
                push_components(&mut front, &target);
                // A relative link target is relative to the link's directory, which `out` still is.
                while let Some(c) = front.pop_back() {
                    queue.push_front(c);
                }
            }
            // Missing (or unreadable, or under a non-directory): nothing to follow, keep the name.
            _ => out = next,
        }
    }
    Ok(out)
}

/// Like [`resolve`], but the last component is kept as it is, not followed: for operations on a
/// symlink itself (remove, rename).
pub fn resolve_parent(path: &Path) -> io::Result<PathBuf> {
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => Ok(resolve(parent)?.join(name)),
        _ => resolve(path),
    }
}

fn push_components(queue: &mut VecDeque<OsString>, path: &Path) {
    for c in path.components() {
        match c {
            Component::RootDir => queue.push_back("/".into()),
            Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => queue.push_back("..".into()),
            Component::Normal(n) => queue.push_back(n.to_os_string()),
        }
    }
}

/// The approval pattern for a refused path: `<dir>/*`, where `<dir>` is the path itself for a
/// directory operation and its parent otherwise. Same shape as OpenCode's own `external_directory`
/// patterns.
pub fn pattern_for(path: &Path, is_dir: bool) -> String {
    let dir = if is_dir {
        path
    } else {
        path.parent().unwrap_or(Path::new("/"))
    };
    let dir = dir.to_string_lossy();
    if dir == "/" {
        "/*".to_string()
    } else {
        format!("{dir}/*")
    }
}

/// Whether an approval pattern covers `path`: `<dir>/*` covers `<dir>` and everything below it
/// (component-wise, so `/etc/*` does not cover `/etcetera`); any other pattern covers exactly that
/// path.
pub fn pattern_covers(pattern: &str, path: &Path) -> bool {
    match pattern.strip_suffix("/*") {
        Some("") => true,
        Some(dir) => path.starts_with(dir),
        None => path == Path::new(pattern),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tempdir() -> PathBuf {
        let d = std::env::temp_dir().join(crate::util::random_id("pathtest"));
        fs::create_dir_all(&d).unwrap();
        fs::canonicalize(d).unwrap()
    }

    #[test]
    fn resolve_should_follow_symlinks_and_dotdot() {
        let d = tempdir();
        fs::create_dir_all(d.join("root/sub")).unwrap();
        fs::create_dir_all(d.join("out")).unwrap();
        symlink(d.join("out"), d.join("root/link")).unwrap();
        symlink("../sub", d.join("root/sub/rel")).unwrap();
        assert_eq!(
            resolve(&d.join("root/link/x")).unwrap(),
            d.join("out/x"),
            "absolute link"
        );
        assert_eq!(
            resolve(&d.join("root/sub/rel")).unwrap(),
            d.join("root/sub")
        );
        assert_eq!(
            resolve(&d.join("root/sub/../../out")).unwrap(),
            d.join("out")
        );
        // A missing component followed by `..` must not hide the symlink after it.
        assert_eq!(
            resolve(&d.join("root/missing/../link/y")).unwrap(),
            d.join("out/y")
        );
        assert_eq!(
            resolve(&d.join("root/new/file")).unwrap(),
            d.join("root/new/file")
        );
        // `..` above a symlinked directory leaves the link's target, as the kernel does.
        assert_eq!(resolve(&d.join("root/link/..")).unwrap(), d.clone());
        assert_eq!(
            resolve_parent(&d.join("root/link")).unwrap(),
            d.join("root/link")
        );
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn resolve_should_stop_symlink_loops() {
        let d = tempdir();
        symlink(d.join("b"), d.join("a")).unwrap();
        symlink(d.join("a"), d.join("b")).unwrap();
        assert!(resolve(&d.join("a/x")).is_err());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn absolute_should_expand_home_and_relative() {
        let base = Path::new("/w");
        let home = Some(Path::new("/home/u"));
        assert_eq!(absolute(base, home, "a/b"), Path::new("/w/a/b"));
        assert_eq!(absolute(base, home, "/x"), Path::new("/x"));
        assert_eq!(absolute(base, home, "~/x"), Path::new("/home/u/x"));
        assert_eq!(absolute(base, home, "~"), Path::new("/home/u"));
        assert_eq!(absolute(base, home, ""), Path::new("/w"));
        assert_eq!(absolute(base, home, "~user"), Path::new("/w/~user"));
    }

    #[test]
    fn patterns_should_cover_dir_and_below_only() {
        assert_eq!(pattern_for(Path::new("/etc/passwd"), false), "/etc/*");
        assert_eq!(pattern_for(Path::new("/etc"), true), "/etc/*");
        assert_eq!(pattern_for(Path::new("/x"), false), "/*");
        assert!(pattern_covers("/etc/*", Path::new("/etc")));
        assert!(pattern_covers("/etc/*", Path::new("/etc/ssh/sshd_config")));
        assert!(!pattern_covers("/etc/*", Path::new("/etcetera/x")));
        assert!(pattern_covers("/*", Path::new("/anything")));
        assert!(pattern_covers("/etc/hosts", Path::new("/etc/hosts")));
        assert!(!pattern_covers("/etc/hosts", Path::new("/etc/hosts2")));
    }
}
