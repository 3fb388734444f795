//! Terminals on the host: a real pseudo-terminal per session, its process the leader of a session
//! of its own with the terminal as controlling tty, as a terminal emulator starts a shell.
//! [`session`] keeps them the way OpenCode's `Pty` service does; [`shell`] picks and lists shells.

pub mod replay;
pub mod session;
pub mod shell;

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Between SIGHUP and SIGKILL to a terminal's processes (OpenCode's `Shell.killTree` waits 200 ms
/// between SIGTERM and SIGKILL).
pub const KILL_GRACE: Duration = Duration::from_millis(200);

/// A started terminal process and the master side of its terminal.
pub struct Spawned {
    pub child: tokio::process::Child,
    pub pid: u32,
    /// Non-blocking, close-on-exec.
    pub master: OwnedFd,
}

/// The terminal's size, as `TIOCSWINSZ` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub rows: u16,
    pub cols: u16,
}

/// bun-pty's default when OpenCode creates a terminal (it never passes a size).
pub const DEFAULT_SIZE: Size = Size { rows: 24, cols: 80 };

/// Opens a pseudo-terminal and starts `command args…` on it, in the directory `dir` (opened without
/// following symlinks; it must stay open until this returns) with exactly `env`.
pub fn spawn(
    command: &str,
    args: &[String],
    cwd: &Path,
    dir: &OwnedFd,
    env: &HashMap<String, String>,
    size: Size,
) -> io::Result<Spawned> {
    let (master, slave) = open_pty(size)?;
    let mut cmd = std::process::Command::new(command);
    cmd.args(args)
        .env_clear()
        .envs(env)
        .env("PWD", cwd)
        .stdin(Stdio::from(slave.try_clone()?))
        .stdout(Stdio::from(slave.try_clone()?))
        .stderr(Stdio::from(slave));
    let dir_fd = dir.as_raw_fd();
    // SAFETY: setsid, ioctl and fchdir are async-signal-safe and touch no memory of the parent; the
    // closure runs in the forked child before exec, where fd 0 is already the terminal's slave side
    // and `dir_fd` (inherited, close-on-exec) still open.
    unsafe {
        cmd.pre_exec(move || {
            // A session of its own whose controlling terminal is this one: job control works, and
            // the kernel hangs the session up when the master closes.
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::fchdir(dir_fd) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(false);
    let child = cmd.spawn()?;
    let pid = child.id().unwrap_or(0);
    Ok(Spawned { child, pid, master })
}

/// `openpty` with the initial size; the master non-blocking, both close-on-exec.
fn open_pty(size: Size) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut master: libc::c_int = -1;
    let mut slave: libc::c_int = -1;
    let winsize = winsize(size);
    // SAFETY: openpty writes two descriptors into the given ints; name and termios may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &winsize,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openpty succeeded, so both are open descriptors that nothing else owns.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    for fd in [&master, &slave] {
        set_fd_flag(fd.as_fd(), libc::F_GETFD, libc::F_SETFD, libc::FD_CLOEXEC)?;
    }
    set_fd_flag(
        master.as_fd(),
        libc::F_GETFL,
        libc::F_SETFL,
        libc::O_NONBLOCK,
    )?;
    Ok((master, slave))
}

fn set_fd_flag(fd: BorrowedFd<'_>, get: i32, set: i32, flag: i32) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we hold, with integer arguments only.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), get);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), set, flags | flag) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn winsize(size: Size) -> libc::winsize {
    libc::winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// Sets the terminal's size; the kernel sends SIGWINCH to its foreground process group.
pub fn set_size(master: BorrowedFd<'_>, size: Size) -> io::Result<()> {
    let winsize = winsize(size);
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer, which outlives the call.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ as _, &winsize) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Every live process of session `sid` (the terminal's leader pid): the shell, its jobs (each in a
/// process group of its own under job control) and their children. A process that started a
/// session of its own (a daemon) has left the terminal on purpose and is not included.
pub fn session_members(sid: u32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| proc_session(*pid) == Some(sid as i32))
        .collect()
}

/// The session id in `/proc/<pid>/stat` (field 6, after the parenthesised command name, which
/// may itself contain spaces and parentheses).
fn proc_session(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    // state ppid pgrp session
    rest.split_whitespace().nth(3)?.parse().ok()
}

/// Signals every process of the terminal's session. `leader_alive`: the leader has not been reaped
/// yet, so its pid (and process group id) cannot have been reused; once reaped, only the other
/// members of the session are signalled.
pub fn signal_session(sid: u32, signal: i32, leader_alive: bool) {
    if sid == 0 {
        return;
    }
    if leader_alive {
        // SAFETY: kill(2) with a negative pid signals the process group; no memory involved.
        unsafe { libc::kill(-(sid as i32), signal) };
    }
    for pid in session_members(sid) {
        if pid == sid as i32 && !leader_alive {
            continue;
        }
        // SAFETY: as above, for one process of the session.
        unsafe { libc::kill(pid, signal) };
    }
}

/// Hangs the terminal's session up (SIGHUP, as closing a terminal window does), then SIGKILLs
/// what is left after [`KILL_GRACE`]. `reaped` turns true once the leader has been waited for.
/// Returns at once; the rest runs on the runtime.
pub fn kill_session(sid: u32, reaped: Arc<AtomicBool>) {
    let alive = || !reaped.load(Ordering::SeqCst);
    signal_session(sid, libc::SIGHUP, alive());
    signal_session(sid, libc::SIGCONT, alive());
    tokio::spawn(async move {
        tokio::time::sleep(KILL_GRACE).await;
        signal_session(sid, libc::SIGKILL, !reaped.load(Ordering::SeqCst));
    });
}
