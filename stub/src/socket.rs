//! The stub's listening socket: a Unix socket in its private run directory, `run/stub.sock`.
//!
//! A loopback TCP port could be reached by every user on the host, and squatted by one of them once
//! the stub died, to collect the token from the next client. A socket in a directory only we can
//! enter can be neither: before binding we check that the home and the run directory are ours and
//! that nobody else can write to them, close the run directory (0700), and remove a leftover socket
//! file only when it is ours too.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use opencode_remote_protocol::{paths as layout, MAX_SOCKET_PATH_BYTES};

/// The socket's absolute path for `home` (sshd connects to it from its own working directory).
/// Fails when it does not fit a socket address.
pub fn socket_path(home: &Path) -> Result<PathBuf> {
    socket_path_of(home, layout::SOCKET_FILE)
}

/// The absolute path of the socket `file` (relative to `home`).
fn socket_path_of(home: &Path, file: &str) -> Result<PathBuf> {
    let path = std::path::absolute(home.join(file))
        .with_context(|| format!("resolving {}", home.display()))?;
    if path.as_os_str().len() > MAX_SOCKET_PATH_BYTES {
        bail!(
            "the stub's socket path {} is longer than a Unix socket address allows \
             ({MAX_SOCKET_PATH_BYTES} bytes); use a shorter --home",
            path.display()
        );
    }
    Ok(path)
}

/// The bound socket's file, and what identifies it, so only that file is removed at exit.
pub struct SocketFile {
    pub path: PathBuf,
    file_id: (u64, u64),
}

impl SocketFile {
    /// Removes the socket file if it is still the one we bound.
    pub fn remove_file(&self) {
        if let Ok(meta) = fs::symlink_metadata(&self.path) {
            if (meta.dev(), meta.ino()) == self.file_id {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

/// Binds `run/stub.sock` under `home` (0600). The caller holds the home's lock, so no stub of ours
/// is using a socket file found there.
pub fn bind(home: &Path) -> Result<(UnixListener, SocketFile)> {
    bind_at(home, layout::SOCKET_FILE)
}

/// Binds `run/attach.sock` under `home`, as [`bind`] does.
pub fn bind_attach(home: &Path) -> Result<(UnixListener, SocketFile)> {
    bind_at(home, layout::ATTACH_SOCKET_FILE)
}

fn bind_at(home: &Path, file: &str) -> Result<(UnixListener, SocketFile)> {
    let uid = current_uid();
    let run = home.join(layout::RUN_DIR);
    for dir in [home, run.as_path()] {
        let meta = fs::symlink_metadata(dir).with_context(|| format!("{}", dir.display()))?;
        let kind = if meta.file_type().is_symlink() {
            Kind::Symlink
        } else if meta.is_dir() {
            Kind::Dir
        } else {
            Kind::Other
        };
        let tighten = dir_verdict(kind, meta.uid(), meta.mode(), uid).map_err(|problem| {
            anyhow::anyhow!("refusing to listen in {}: {problem}", dir.display())
        })?;
        // Only the run directory, which holds the socket and the token, must be ours alone.
        if tighten && dir == run {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .with_context(|| format!("chmod 700 {}", dir.display()))?;
        }
    }
    let path = socket_path_of(home, file)?;
    match fs::symlink_metadata(&path) {
        Ok(meta) => {
            let kind = if meta.file_type().is_socket() {
                Kind::Socket
            } else {
                Kind::Other
            };
            if let Some(problem) = leftover_problem(kind, meta.uid(), uid) {
                bail!("refusing to replace {}: {problem}", path.display());
            }
            fs::remove_file(&path)
                .with_context(|| format!("removing the stale socket {}", path.display()))?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("{}", path.display())),
    }
    let listener =
        UnixListener::bind(&path).with_context(|| format!("listening on {}", path.display()))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod 600 {}", path.display()))?;
    listener.set_nonblocking(true)?;
    let meta = fs::symlink_metadata(&path)?;
    let file = SocketFile {
        path,
        file_id: (meta.dev(), meta.ino()),
    };
    Ok((listener, file))
}

fn current_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// What a path is, as far as these checks care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    Socket,
    Symlink,
    Other,
}

/// Whether a directory on the socket's path may hold it: `Err(why)` unless it is a real directory
/// of `uid` that nobody else can write to (where nobody else can have planted or swapped anything);
/// `Ok(true)` when group or others may still read or enter it, so it needs a `chmod 700`.
fn dir_verdict(kind: Kind, owner: u32, mode: u32, uid: u32) -> Result<bool, String> {
    match kind {
        Kind::Dir => {}
        Kind::Symlink => return Err("it is a symlink".into()),
        _ => return Err("it is not a directory".into()),
    }
    if owner != uid {
        return Err(format!("it belongs to uid {owner}, not to us ({uid})"));
    }
    if mode & 0o022 != 0 {
        return Err(format!(
            "its mode is {:o}: group or others can write to it; check what is in it, then chmod 700 it",
            mode & 0o777
        ));
    }
    Ok(mode & 0o077 != 0)
}

/// Why a file found where the socket goes must not be removed, if it must not.
fn leftover_problem(kind: Kind, owner: u32, uid: u32) -> Option<String> {
    if kind != Kind::Socket {
        return Some("it is not a socket".into());
    }
    (owner != uid).then(|| format!("it belongs to uid {owner}, not to us ({uid})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_should_be_ours_and_unwritable_by_others() {
        assert_eq!(dir_verdict(Kind::Dir, 1000, 0o40700, 1000), Ok(false));
        assert_eq!(dir_verdict(Kind::Dir, 1000, 0o40755, 1000), Ok(true));
        let open = dir_verdict(Kind::Dir, 1000, 0o40777, 1000).unwrap_err();
        assert!(open.contains("777") && open.contains("chmod 700"), "{open}");
        assert!(dir_verdict(Kind::Dir, 1000, 0o40720, 1000).is_err());
        let foreign = dir_verdict(Kind::Dir, 1001, 0o40700, 1000).unwrap_err();
        assert!(foreign.contains("uid 1001"), "{foreign}");
        assert!(dir_verdict(Kind::Symlink, 1000, 0o777, 1000).is_err());
        assert!(dir_verdict(Kind::Other, 1000, 0o600, 1000).is_err());
    }

    #[test]
    fn leftover_should_be_removed_only_when_it_is_our_socket() {
        assert_eq!(leftover_problem(Kind::Socket, 1000, 1000), None);
        assert!(leftover_problem(Kind::Socket, 0, 1000).is_some());
        assert!(leftover_problem(Kind::Other, 1000, 1000).is_some());
        assert!(leftover_problem(Kind::Dir, 1000, 1000).is_some());
    }

    #[test]
    fn socket_path_should_be_absolute_and_fit_an_address() {
        let path = socket_path(Path::new("rel/home")).unwrap();
        assert!(path.is_absolute() && path.ends_with("rel/home/run/stub.sock"));
        let long = "/".to_string() + &"d".repeat(MAX_SOCKET_PATH_BYTES);
        let err = socket_path(Path::new(&long)).unwrap_err().to_string();
        assert!(err.contains("shorter --home"), "{err}");
    }

    #[test]
    fn bind_should_replace_our_stale_socket_and_refuse_a_writable_run_dir() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        fs::create_dir(home.join(layout::RUN_DIR)).unwrap();
        fs::set_permissions(home, fs::Permissions::from_mode(0o700)).unwrap();
        fs::set_permissions(
            home.join(layout::RUN_DIR),
            fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        let (first, _) = bind(home).unwrap();
        drop(first);
        // A crashed stub leaves its socket file: the next one replaces it.
        let (_listener, second) = bind(home).unwrap();
        assert_eq!(
            fs::metadata(&second.path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        second.remove_file();
        assert!(!second.path.exists());
        // Not a socket where the socket goes: left alone.
        fs::write(home.join(layout::SOCKET_FILE), "x").unwrap();
        let err = format!("{:#}", bind(home).err().unwrap());
        assert!(err.contains("not a socket"), "{err}");
        fs::remove_file(home.join(layout::SOCKET_FILE)).unwrap();
        // A readable run directory of ours is closed before the socket goes in.
        let run = home.join(layout::RUN_DIR);
        fs::set_permissions(&run, fs::Permissions::from_mode(0o755)).unwrap();
        bind(home).unwrap().1.remove_file();
        assert_eq!(
            fs::metadata(&run).unwrap().permissions().mode() & 0o777,
            0o700
        );
        // One others could write to is refused: anything in it may be theirs.
        fs::set_permissions(&run, fs::Permissions::from_mode(0o777)).unwrap();
        let err = format!("{:#}", bind(home).err().unwrap());
        assert!(err.contains("chmod 700"), "{err}");
    }
}
