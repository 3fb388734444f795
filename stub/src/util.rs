//! Small helpers: random ids, clocks, atomic file writes, JSON-lines logging.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::{openat, renameat, unlinkat, AtFlags, Mode, OFlags};

/// A random id: `<prefix>_` and 32 hex digits (128 bits from the OS). Never time-based, so two
/// requests in the same millisecond cannot collide (the seed's `perm_<ms>` did).
pub fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    // getrandom falls back to /dev/urandom on kernels without the getrandom syscall (< 3.17, e.g.
    // CentOS 7), so this only fails when the OS has no randomness at all.
    getrandom::fill(&mut bytes).expect("no OS randomness");
    let mut id = String::with_capacity(prefix.len() + 33);
    id.push_str(prefix);
    id.push('_');
    for b in bytes {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch of a file time (0 when unknown).
pub fn time_ms(t: io::Result<SystemTime>) -> u64 {
    t.ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The temp name an atomic write of `name` uses: hidden, same directory, random.
pub fn temp_name(name: &OsStr) -> OsString {
    let rand = random_id("t");
    format!(".{}.{}.ocr-tmp", name.to_string_lossy(), &rand[2..14]).into()
}

/// Replaces `target` with `data` atomically (see [`atomic_write_at`]). For the stub's own files;
/// request paths go through [`atomic_write_at`] on a directory opened without following symlinks.
pub fn atomic_write(target: &Path, data: &[u8], mode: Option<u32>) -> io::Result<()> {
    let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} names no file", target.display()),
        ));
    };
    let dir = File::open(dir)?;
    atomic_write_at(dir.as_fd(), name, data, mode)
}

/// Replaces `name` in directory `dir` with `data` atomically: a temp file in the same directory
/// (created with `O_EXCL | O_NOFOLLOW`), written, chmod'ed to `mode`, fsynced, renamed over `name`
/// (`renameat`, which replaces a symlink rather than following it), then the directory fsynced. A
/// reader sees the old or the new content, never a mix, and a crash leaves at worst a stray temp
/// file.
pub fn atomic_write_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    data: &[u8],
    mode: Option<u32>,
) -> io::Result<()> {
    let tmp = temp_name(name);
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut file = File::from(openat(dir, &tmp, flags, Mode::from_raw_mode(0o666))?);
    let result = (|| {
        if let Some(mode) = mode {
            file.set_permissions(fs::Permissions::from_mode(mode & 0o7777))?;
        }
        file.write_all(data)?;
        file.sync_all()?;
        Ok(renameat(dir, &tmp, dir, name)?)
    })();
    if result.is_err() {
        let _ = unlinkat(dir, &tmp, AtFlags::empty());
        return result;
    }
    // Makes the rename itself durable; some filesystems refuse fsync on a directory.
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    if let Ok(d) = openat(dir, ".", dir_flags, Mode::empty()) {
        let _ = File::from(d).sync_all();
    }
    Ok(())
}

/// Where log lines go: `log/stub.log` (when opened) and stderr.
struct Logger {
    file: Mutex<Option<File>>,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// A log file larger than this is moved to `stub.log.1` when the stub starts.
const LOG_ROTATE_BYTES: u64 = 10 * 1024 * 1024;

/// Opens the log file (0600, append). Before this, lines go to stderr only.
pub fn init_log(path: &Path) -> io::Result<()> {
    if fs::metadata(path)
        .map(|m| m.len() > LOG_ROTATE_BYTES)
        .unwrap_or(false)
    {
        let _ = fs::rename(path, path.with_extension("log.1"));
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let logger = LOGGER.get_or_init(|| Logger {
        file: Mutex::new(None),
    });
    *logger.file.lock().unwrap_or_else(|e| e.into_inner()) = Some(file);
    Ok(())
}

/// Logs one JSON line: `{"ts", "level", "msg", ...fields}`. Callers never pass tokens or file
/// contents.
pub fn log(level: &str, msg: &str, fields: serde_json::Value) {
    let mut line = serde_json::Map::new();
    line.insert("ts".into(), now_ms().into());
    line.insert("level".into(), level.into());
    line.insert("msg".into(), msg.into());
    if let serde_json::Value::Object(fields) = fields {
        line.extend(fields);
    }
    let mut text = serde_json::Value::Object(line).to_string();
    text.push('\n');
    let _ = io::stderr().write_all(text.as_bytes());
    if let Some(logger) = LOGGER.get() {
        if let Some(file) = logger
            .file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            // One write per line on an O_APPEND file: lines from concurrent requests never interleave.
            let _ = file.write_all(text.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_id_should_be_prefixed_hex_and_unique() {
        let a = random_id("per");
        let b = random_id("per");
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 32);
        assert!(a[4..].bytes().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn atomic_write_should_replace_and_leave_no_temp() {
        let dir = std::env::temp_dir().join(random_id("utiltest"));
        fs::create_dir_all(&dir).unwrap();
        let f = dir.join("a.txt");
        atomic_write(&f, b"one", Some(0o640)).unwrap();
        atomic_write(&f, b"two", Some(0o640)).unwrap();
        assert_eq!(fs::read(&f).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }
}
