//! Is the recorded stub really ours? Before the token is sent to the port in `run/stub.json`, the
//! recorded pid must be a process of this user running a stub binary from our home, and the
//! loopback port must be a listening socket of this user held open by that very process. Without
//! these checks another user on the host could wait for our stub to die, bind its port, and
//! receive the token from the next `status`/`attach` (a pid owned by someone else used to count as
//! "running"). Linux only: it reads `/proc`.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use opencode_remote_protocol::paths as layout;

/// `Err(why)` unless `pid` is a process of ours executing this binary or one under `home/bin/`, and it holds
/// the socket listening on `127.0.0.1:port`, a socket owned by our uid.
pub fn check(home: &Path, pid: u32, port: u16) -> Result<(), String> {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let proc_dir = format!("/proc/{pid}");
    let meta = fs::metadata(&proc_dir).map_err(|_| format!("process {pid} is gone"))?;
    if meta.uid() != uid {
        return Err(format!("process {pid} belongs to another user"));
    }
    let exe = fs::read_link(format!("{proc_dir}/exe"))
        .map_err(|_| format!("process {pid} is not ours (its binary can't be read)"))?;
    let bin = home.join(layout::BIN_DIR);
    let bin = fs::canonicalize(&bin).unwrap_or(bin);
    // Our own binary (`status`/`attach` run as the installed stub) or another version of it.
    let ours = std::env::current_exe().is_ok_and(|me| me == exe);
    if !ours && !exe.starts_with(&bin) {
        return Err(format!(
            "process {pid} is not a stub from {}",
            bin.display()
        ));
    }
    let inode = listening_inode(port, uid)?;
    let holds = fs::read_dir(format!("{proc_dir}/fd"))
        .map_err(|e| format!("reading process {pid}'s descriptors: {e}"))?
        .flatten()
        .filter_map(|fd| fs::read_link(fd.path()).ok())
        .any(|target| target.as_os_str() == format!("socket:[{inode}]").as_str());
    if !holds {
        return Err(format!("port {port} is not served by process {pid}"));
    }
    Ok(())
}

/// The inode of the socket listening on `127.0.0.1:port`, if it belongs to `uid`.
fn listening_inode(port: u16, uid: u32) -> Result<u64, String> {
    let table =
        fs::read_to_string("/proc/net/tcp").map_err(|e| format!("reading /proc/net/tcp: {e}"))?;
    let wanted = format!("0100007F:{port:04X}");
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
        let [_, local, _, state, _, _, _, owner, _, inode, ..] = fields[..] else {
            continue;
        };
        if local != wanted || state != "0A" {
            continue;
        }
        if owner.parse::<u32>().ok() != Some(uid) {
            return Err(format!("port {port} is held by another user"));
        }
        return inode
            .parse()
            .map_err(|_| format!("bad /proc/net/tcp line for port {port}"));
    }
    Err(format!("nothing listens on port {port}"))
}
