//! Path resolution for permission checks: every path a request names is made absolute and resolved
//! through `.`, `..` and symlinks before it is compared with the workspace root and the approvals,
//! and the operation then opens the resolved path without following symlinks
//! ([`crate::nofollow`]).

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{fstat, openat, readlinkat, FileType, Mode, OFlags, CWD};

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
///
/// The walk holds a descriptor of each resolved directory and looks at the next component through
/// it (`openat(O_PATH | O_NOFOLLOW)`, then `fstat` and `readlinkat` on that same descriptor), so a
/// directory swapped for a symlink meanwhile is read as the link it now is, never looked through by
/// name. The operation then opens the result without following anything ([`crate::nofollow`]): a
/// symlink inside the root keeps working because it is resolved here and its target checked.
pub fn resolve(path: &Path) -> io::Result<PathBuf> {
    let mut queue: VecDeque<OsString> = VecDeque::new();
    let mut out = PathBuf::from("/");
    push_components(&mut queue, path);
    let slash = || {
        openat(
            CWD,
            "/",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
    };
    // Descriptors of the directories of `out`, `/` first.
    let mut dirs: Vec<OwnedFd> = vec![slash()?];
    // Components of `out` past one that is missing or not a directory: they are appended as they
    // are, and a `..` among them goes back lexically.
    let mut lexical = 0usize;
    let mut links = 0;
    while let Some(part) = queue.pop_front() {
        if part == "/" {
            out = PathBuf::from("/");
            dirs.truncate(1);
            lexical = 0;
            continue;
        }
        if part == ".." {
            out.pop();
            if lexical > 0 {
                lexical -= 1;
            } else if dirs.len() > 1 {
                dirs.pop();
            }
            continue;
        }
        let next = out.join(&part);
        if lexical > 0 {
            out = next;
            lexical += 1;
            continue;
        }
        let at = dirs.last().expect("`/` is never popped");
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let opened = openat(at, &part, flags, Mode::empty())
            .and_then(|fd| Ok((FileType::from_raw_mode(fstat(&fd)?.st_mode as _), fd)));
        match opened {
            Ok((FileType::Symlink, link)) => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(io::Error::other(format!(
                        "too many levels of symbolic links: {}",
                        path.display()
                    )));
                }
                // The empty path reads the link the descriptor is on (Linux >= 2.6.39).
                let target = readlinkat(&link, "", Vec::new())?;
                let mut front = VecDeque::new();
                push_components(&mut front, Path::new(OsStr::from_bytes(target.as_bytes())));
                // A relative link target is relative to the link's directory, which `out` still is.
                while let Some(c) = front.pop_back() {
                    queue.push_front(c);
                }
            }
            Ok((FileType::Directory, dir)) => {
                dirs.push(dir);
                out = next;
            }
            // A file, or missing, or unreadable: nothing to follow, keep the name.
            _ => {
                out = next;
                lexical = 1;
            }
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

/// The approval pattern for a refused path: exactly what the prompt shows and an `always` reply
/// approves. A directory operation (listing, a command's working directory) asks for the directory's
/// subtree, `<dir>/*`; anything else for the path itself. Reading `/etc/hostname` never approves
/// `/etc/*`, let alone `/*`.
pub fn pattern_for(path: &Path, is_dir: bool) -> String {
    let text = path.to_string_lossy();
    if !is_dir {
        text.into_owned()
    } else if text == "/" {
        "/*".to_string()
    } else {
        format!("{text}/*")
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
    use std::fs;
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
        assert_eq!(pattern_for(Path::new("/etc/passwd"), false), "/etc/passwd");
        assert_eq!(pattern_for(Path::new("/etc"), true), "/etc/*");
        assert_eq!(pattern_for(Path::new("/"), true), "/*");
        assert_eq!(pattern_for(Path::new("/x"), false), "/x");
        assert!(pattern_covers("/etc/*", Path::new("/etc")));
        assert!(pattern_covers("/etc/*", Path::new("/etc/ssh/sshd_config")));
        assert!(!pattern_covers("/etc/*", Path::new("/etcetera/x")));
        assert!(pattern_covers("/*", Path::new("/anything")));
        assert!(pattern_covers("/etc/hosts", Path::new("/etc/hosts")));
        assert!(!pattern_covers("/etc/hosts", Path::new("/etc/hosts2")));
    }

    /// Resolution against the kernel's view, on random trees of directories, files and symlinks
    /// (relative, absolute, dangling, chained and looping) and random paths with `..`, `.`, `//` and
    /// trailing slashes. The oracle is GNU `realpath -m`, which walks the real filesystem the same way.
    mod properties {
        use super::*;
        use proptest::prelude::*;
        use std::process::Command;

        const NAMES: [&str; 12] = [
            "..", ".", "", "a", "b", "f", "root", "out", "o", "l1", "l2", "l3",
        ];
        /// Where the random symlinks go (relative to the temp dir).
        const LINKS: [&str; 6] = [
            "root/l1",
            "root/l2",
            "root/a/l3",
            "out/l1",
            "root/a/l2",
            "l3",
        ];

        fn components(max: usize) -> impl Strategy<Value = Vec<&'static str>> {
            prop::collection::vec(prop::sample::select(NAMES.to_vec()), 0..max)
        }

        /// (link index, absolute?, target components)
        fn layout() -> impl Strategy<Value = Vec<(usize, bool, Vec<&'static str>)>> {
            prop::collection::vec((0..LINKS.len(), any::<bool>(), components(4)), 0..6)
        }

        /// `realpath -m`: `Ok(None)` when it refuses (a symlink loop), `Err` when it had to be stopped.
        /// coreutils 9.1 never ends on a link that grows through a missing component, such as
        /// `l1 -> l1/b/l2` (each round is a new name, so its loop check never fires; the kernel and
        /// `resolve` stop after 40 links).
        fn oracle(path: &Path) -> Result<Option<PathBuf>, ()> {
            let output = Command::new("timeout")
                .args(["0.5", "realpath", "-m", "-z", "--"])
                .arg(path)
                .output()
                .expect("GNU timeout and realpath");
            if output.status.code() == Some(124) {
                return Err(());
            }
            let mut out = output.stdout;
            Ok((output.status.success() && out.pop() == Some(0))
                .then(|| PathBuf::from(String::from_utf8(out).unwrap())))
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

            #[test]
            fn resolve_should_agree_with_the_kernel_on_random_symlink_trees(
                links in layout(),
                queries in prop::collection::vec((components(7), any::<bool>(), any::<bool>()), 1..5),
            ) {
                static ONCE: std::sync::Once = std::sync::Once::new();
                ONCE.call_once(|| {
                    use std::io::Write;
                    let test = std::thread::current().name().unwrap_or("?").to_string();
                    let _ = writeln!(std::io::stderr(), "proptest: {test}: 96 cases");
                });
                let d = tempdir();
                for dir in ["root/a/b", "out/o"] {
                    fs::create_dir_all(d.join(dir)).unwrap();
                }
                fs::write(d.join("root/f"), "").unwrap();
                for (at, absolute, target) in &links {
                    let target = target.join("/");
                    let target = if *absolute { format!("{}/{target}", d.display()) } else { target };
                    let _ = symlink(&target, d.join(LINKS[*at]));
                }
                let root = d.join("root");
                for (parts, double_slash, trailing) in &queries {
                    let sep = if *double_slash { "//" } else { "/" };
                    let mut text = format!("{}{sep}{}", root.display(), parts.join(sep));
                    if *trailing {
                        text.push('/');
                    }
                    let path = Path::new(&text);
                    match (resolve(path), oracle(path)) {
                        (Ok(ours), Ok(Some(kernel))) => {
                            prop_assert_eq!(&ours, &kernel, "{:?} with links {:?}", text, links);
                            prop_assert_eq!(ours.starts_with(&root), kernel.starts_with(&root));
                        }
                        // Refusing where realpath would not is safe; only a symlink storm may do it.
                        (Err(e), Ok(Some(_))) => prop_assert!(e.to_string().contains("too many levels"), "{}", e),
                        (Ok(ours), _) => prop_assert!(false, "{:?} resolved to {:?}, realpath refused or hung", text, ours),
                        (Err(_), _) => {}
                    }
                }
                fs::remove_dir_all(&d).unwrap();
            }
        }
    }
}
