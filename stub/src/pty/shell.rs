//! Shells on the host, chosen and listed as OpenCode's `Shell` module does (`Shell.preferred`,
//! `Shell.login`, `Shell.list`), from the host's `/etc/shells`, `$PATH` and the user's login shell.

use std::ffi::CStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Shells OpenCode starts with `-l` (a login shell reads the profile, as a terminal window does).
const LOGIN: [&str; 6] = ["bash", "dash", "fish", "ksh", "sh", "zsh"];
/// Shells OpenCode marks not acceptable (not POSIX-like enough for its tools).
const DENIED: [&str; 2] = ["fish", "nu"];
/// OpenCode's list when `/etc/shells` is missing or empty.
const FALLBACK: [&str; 3] = ["/bin/bash", "/bin/zsh", "/bin/sh"];

/// One entry of `GET /pty/shells`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShellEntry {
    pub path: String,
    pub name: String,
    pub acceptable: bool,
}

/// The lower-cased file name, which OpenCode's shell tables are keyed by.
fn name(shell: &str) -> String {
    Path::new(shell)
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default()
}

/// Whether OpenCode appends `-l` to the arguments of `command`.
pub fn is_login(command: &str) -> bool {
    LOGIN.contains(&name(command).as_str())
}

fn is_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
}

/// `which`: the first executable file called `command` on `$PATH` (or `command` itself when it
/// names a path).
pub fn which(command: &str) -> Option<PathBuf> {
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if command.is_empty() {
        return None;
    }
    if command.contains('/') {
        let p = PathBuf::from(command);
        return executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(command))
        .find(|p| executable(p))
}

/// OpenCode's `resolve`: an absolute path that is a file, or a name found on `$PATH`.
fn resolve(shell: &str) -> Option<String> {
    if shell.starts_with('/') {
        return is_file(Path::new(shell)).then(|| shell.to_string());
    }
    which(shell).map(|p| p.to_string_lossy().into_owned())
}

/// The shell a terminal starts when the request names no command: the user's login shell
/// (`$SHELL`, which sshd sets from the password database, or that database itself), else `bash`
/// on `$PATH`, else `/bin/sh`, as OpenCode's `Shell.preferred` without a configured shell.
pub fn preferred() -> String {
    let login = std::env::var("SHELL")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(passwd_shell);
    login
        .as_deref()
        .and_then(resolve)
        .or_else(|| which("bash").map(|p| p.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "/bin/sh".to_string())
}

/// This user's shell from the password database.
fn passwd_shell() -> Option<String> {
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0u8; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwuid_r fills `pwd` with pointers into `buf`, both outliving their use below.
    let rc = unsafe {
        libc::getpwuid_r(
            libc::getuid(),
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() || pwd.pw_shell.is_null() {
        return None;
    }
    // SAFETY: pw_shell points to a NUL-terminated string in `buf`.
    let shell = unsafe { CStr::from_ptr(pwd.pw_shell) };
    Some(shell.to_string_lossy().into_owned()).filter(|s| !s.is_empty())
}

/// `GET /pty/shells`: the shells of `/etc/shells` that exist, in file order without repeats, each
/// named by its file name when that name is on `$PATH` (else by its path).
pub fn list() -> Vec<ShellEntry> {
    list_from(&std::fs::read_to_string("/etc/shells").unwrap_or_default())
}

fn list_from(etc_shells: &str) -> Vec<ShellEntry> {
    let mut candidates: Vec<&str> = Vec::new();
    if etc_shells.is_empty() {
        candidates.extend(FALLBACK);
    } else {
        // As OpenCode: lines are not trimmed, only blank ones and comments dropped.
        for line in etc_shells.split('\n') {
            if !line.trim().is_empty() && !line.starts_with('#') && !candidates.contains(&line) {
                candidates.push(line);
            }
        }
    }
    candidates
        .into_iter()
        .filter(|shell| resolve(shell).is_some())
        .map(|shell| {
            let base = name(shell);
            ShellEntry {
                path: shell.to_string(),
                name: if resolve(&base).is_some() {
                    base.clone()
                } else {
                    shell.to_string()
                },
                acceptable: !DENIED.contains(&base.as_str()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_should_follow_opencodes_table() {
        assert!(is_login("/bin/bash"));
        assert!(is_login("/usr/bin/ZSH"));
        assert!(is_login("sh"));
        assert!(!is_login("/usr/bin/python3"));
        assert!(!is_login("/usr/bin/nu"));
    }

    #[test]
    fn list_should_keep_existing_shells_in_order_without_repeats() {
        let list = list_from("# comment\n/bin/sh\n\n/bin/sh\n/no/such/shell\n/bin/sh \n");
        assert_eq!(
            list,
            vec![ShellEntry {
                path: "/bin/sh".into(),
                name: "sh".into(),
                acceptable: true
            }]
        );
    }

    #[test]
    fn list_should_fall_back_when_etc_shells_is_empty() {
        let list = list_from("");
        assert!(list.iter().any(|s| s.path == "/bin/sh"));
    }

    #[test]
    fn preferred_should_name_an_existing_shell() {
        assert!(is_file(Path::new(&preferred())));
    }
}
