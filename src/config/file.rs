//! Reading a small file named by config without trusting what it is.
//!
//! Config comes partly from cloned repositories, so a path in it may name `/dev/zero` (never ends), a
//! FIFO (`open` blocks until a writer appears) or a multi-gigabyte log. Files are opened non-blocking,
//! must be regular files, and are read only up to a limit.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The bytes of the regular file at `path`, at most `max_bytes` of them. `NotFound` passes through; a
/// non-regular file is `InvalidInput`, a larger one `FileTooLarge`.
pub fn read_regular(path: &Path, max_bytes: u64) -> io::Result<Vec<u8>> {
    let file = open_regular(path)?;
    let mut bytes = Vec::new();
    file.take(max_bytes + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("larger than {max_bytes} bytes"),
        ));
    }
    Ok(bytes)
}

/// Opens without blocking on a FIFO and refuses anything but a regular file (after symlinks).
fn open_regular(path: &Path) -> io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_regular_should_refuse_devices_fifos_and_big_files_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let kind = |p: &Path, max| read_regular(p, max).unwrap_err().kind();
        assert_eq!(kind(&fifo, 10), io::ErrorKind::InvalidInput);
        assert_eq!(
            kind(Path::new("/dev/zero"), 10),
            io::ErrorKind::InvalidInput
        );
        let big = dir.path().join("big");
        std::fs::write(&big, [b'x'; 11]).unwrap();
        assert_eq!(kind(&big, 10), io::ErrorKind::FileTooLarge);
        assert_eq!(read_regular(&big, 11).unwrap().len(), 11);
        assert_eq!(kind(&dir.path().join("none"), 10), io::ErrorKind::NotFound);
    }
}
