//! Is the recorded stub really ours? Before the token is sent to the socket in `run/stub.json`, the
//! recorded pid must be a process of this user running a stub binary from our home, and the socket
//! must be the one in our run directory, listening, and held open by that very process.
//!
//! The socket lives in a directory only we can enter (see `socket.rs`), so another user can neither
//! connect to it nor bind one in its place; these checks are what is left: a stale record naming a
//! pid that now belongs to another of our own processes. Linux only: it reads `/proc`.
//!
//! Under qemu-user (an emulated host, e.g. an arm64 container through binfmt_misc, or the release
//! build's own checks) `/proc/<pid>/exe` is the emulator; the program it runs is the file it has
//! mapped, so for a process whose executable is a `qemu-*` binary the mapped files are checked instead.
//! The uid check is the same for both.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use opencode_remote_protocol::paths as layout;

/// `Err(why)` unless `pid` is a process of ours executing this binary or one under `home/bin/`.
pub fn check_process(home: &Path, pid: u32) -> Result<(), String> {
    let uid = current_uid();
    let proc_dir = format!("/proc/{pid}");
    let meta = fs::metadata(&proc_dir).map_err(|_| format!("process {pid} is gone"))?;
    if meta.uid() != uid {
        return Err(format!("process {pid} belongs to another user"));
    }
    let programs = programs(pid)
        .ok_or_else(|| format!("process {pid} is not ours (its binary can't be read)"))?;
    let bin = home.join(layout::BIN_DIR);
    let bin = fs::canonicalize(&bin).unwrap_or(bin);
    let me = std::env::current_exe().ok();
    // Our own binary (`status`/`attach` run as the installed stub) or another version of it.
    let stub = |exe: &PathBuf| me.as_ref() == Some(exe) || exe.starts_with(&bin);
    if !programs.iter().any(stub) {
        return Err(format!(
            "process {pid} is not a stub from {}",
            bin.display()
        ));
    }
    Ok(())
}

/// `Err(why)` unless [`check_process`] holds and `pid` holds the socket listening at `socket`, a
/// socket file owned by our uid.
pub fn check(home: &Path, pid: u32, socket: &Path) -> Result<(), String> {
    check_process(home, pid)?;
    let meta =
        fs::symlink_metadata(socket).map_err(|_| format!("no socket at {}", socket.display()))?;
    if meta.uid() != current_uid() {
        return Err(format!("{} belongs to another user", socket.display()));
    }
    let table =
        fs::read_to_string("/proc/net/unix").map_err(|e| format!("reading /proc/net/unix: {e}"))?;
    let inode = listening_inode(&table, &socket.to_string_lossy())
        .ok_or_else(|| format!("nothing listens on {}", socket.display()))?;
    let holds = fs::read_dir(format!("/proc/{pid}/fd"))
        .map_err(|e| format!("reading process {pid}'s descriptors: {e}"))?
        .flatten()
        .filter_map(|fd| fs::read_link(fd.path()).ok())
        .any(|target| target.as_os_str() == format!("socket:[{inode}]").as_str());
    if !holds {
        return Err(format!(
            "{} is not served by process {pid}",
            socket.display()
        ));
    }
    Ok(())
}

/// The program `pid` runs: its `/proc/<pid>/exe`, or, when that is a qemu-user emulator, the files the
/// emulator has mapped (among them the emulated binary). `None` when `/proc` does not tell.
pub fn programs(pid: u32) -> Option<Vec<PathBuf>> {
    let exe = fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    if !is_emulator(&exe) {
        return Some(vec![exe]);
    }
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    Some(
        mapped_files(&maps)
            .into_iter()
            .filter(|f| *f != exe)
            .collect(),
    )
}

/// qemu-user's binaries: `qemu-aarch64`, `qemu-arm-static`, …
fn is_emulator(exe: &Path) -> bool {
    exe.file_name()
        .is_some_and(|name| name.to_string_lossy().starts_with("qemu-"))
}

/// The distinct files mapped in the text of `/proc/<pid>/maps`.
fn mapped_files(maps: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = Vec::new();
    for line in maps.lines() {
        // address perms offset dev inode path; the path is the rest (it may hold spaces).
        let mut rest = line;
        for _ in 0..5 {
            rest = rest.trim_start();
            rest = &rest[rest.find(char::is_whitespace).unwrap_or(rest.len())..];
        }
        let path = rest.trim_start();
        if path.starts_with('/') && !files.iter().any(|f| f.as_os_str() == path) {
            files.push(PathBuf::from(path));
        }
    }
    files
}

fn current_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// `__SO_ACCEPTCON` in `/proc/net/unix`'s Flags column: the socket is listening.
const ACCEPTING: u32 = 0x0001_0000;

/// The inode of the listening socket bound to `path`, from the text of `/proc/net/unix`.
fn listening_inode(table: &str, path: &str) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        // Num RefCount Protocol Flags Type St Inode Path; the path is the rest (it may hold spaces).
        let mut rest = line;
        let mut fields = [""; 7];
        for field in &mut fields {
            rest = rest.trim_start();
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            (*field, rest) = rest.split_at(end);
        }
        let flags = u32::from_str_radix(fields[3], 16).ok()?;
        let bound = rest.strip_prefix(' ')?;
        (bound == path && flags & ACCEPTING != 0).then(|| fields[6].parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 4242 /h/run/stub.sock
0000000000000000: 00000003 00000000 00000000 0001 03 4243 /h/run/stub.sock
0000000000000000: 00000002 00000000 00010000 0001 01 77 /other.sock
0000000000000000: 00000002 00000000 00000000 0002 01 78
0000000000000000: 00000002 00000000 00010000 0001 01 79 /my home/run/stub.sock
";

    const MAPS: &str = "00400000-00401000 r--p 00000000 00:2f 1311 /usr/bin/qemu-aarch64
5500000000-5500001000 r-xp 00000000 00:2f 99 /home/u/.opencode-remote/bin/0.1.0/opencode-remote-stub
5500001000-5500002000 rw-p 00001000 00:2f 99 /home/u/.opencode-remote/bin/0.1.0/opencode-remote-stub
7f0000000000-7f0000001000 rw-p 00000000 00:00 0 
7f0000001000-7f0000002000 r-xp 00000000 00:2f 12 /lib/x86_64-linux-gnu/libc.so.6
7ffc00000000-7ffc00001000 rw-p 00000000 00:00 0                          [stack]
7ffc00001000-7ffc00002000 r--p 00000000 00:2f 13 /my home/a file
";

    #[test]
    fn mapped_files_should_list_each_mapped_file_once() {
        assert_eq!(
            mapped_files(MAPS),
            [
                "/usr/bin/qemu-aarch64",
                "/home/u/.opencode-remote/bin/0.1.0/opencode-remote-stub",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/my home/a file",
            ]
            .map(PathBuf::from)
        );
    }

    #[test]
    fn only_qemu_user_binaries_should_count_as_emulators() {
        assert!(is_emulator(Path::new("/usr/bin/qemu-aarch64")));
        assert!(is_emulator(Path::new(
            "/usr/libexec/qemu-binfmt/qemu-arm-static"
        )));
        assert!(!is_emulator(Path::new(
            "/home/u/.opencode-remote/bin/0.1.0/opencode-remote-stub"
        )));
        assert!(!is_emulator(Path::new("/usr/bin/qemu")));
    }

    #[test]
    fn listening_inode_should_pick_the_listening_socket_at_the_path() {
        assert_eq!(listening_inode(TABLE, "/h/run/stub.sock"), Some(4242));
        assert_eq!(listening_inode(TABLE, "/other.sock"), Some(77));
        assert_eq!(listening_inode(TABLE, "/nope.sock"), None);
        assert_eq!(listening_inode(TABLE, "/my home/run/stub.sock"), Some(79));
        assert_eq!(listening_inode(TABLE, "/my"), None);
    }
}
