//! File operations. Each resolves and authorizes its paths first, then opens the resolved paths
//! without following any symlink ([`crate::nofollow`]), and creates, renames and removes through
//! the parent directory's descriptor, so a path swapped after the check is refused, never followed.
//! All of them block; the server runs them on tokio's blocking pool.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::Engine as _;
use opencode_remote_protocol::{
    limits, DirEntry, ErrorKind, FileKind, ListRequest, ListResponse, Operation, ReadMode,
    ReadRequest, ReadResponse, RemoveRequest, RemoveResponse, RenameRequest, RenameResponse,
    StatRequest, StatResponse, WriteRequest, WriteResponse,
};

use rustix::fs::{renameat, unlinkat, AtFlags, FileType, OFlags};

use crate::error::ApiErr;
use crate::nofollow::{self, is_symlink_error, read_flags, stat_at, Opener};
use crate::state::{State, Target, Use};
use crate::util::{atomic_write_at, time_ms};

/// Bytes looked at to decide that a file is binary (a NUL among them), like ripgrep and git.
pub const BINARY_SNIFF_BYTES: usize = 8 * 1024;
/// Bytes of one line kept in memory at most; the rest of a longer line is skipped.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

fn display(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

pub fn kind_of(ft: fs::FileType) -> FileKind {
    if ft.is_symlink() {
        FileKind::Symlink
    } else if ft.is_dir() {
        FileKind::Dir
    } else if ft.is_file() {
        FileKind::File
    } else {
        FileKind::Other
    }
}

/// The kind of a file type from a directory listing or `fstatat`.
pub fn kind_of_type(ft: FileType) -> FileKind {
    match ft {
        FileType::Symlink => FileKind::Symlink,
        FileType::Directory => FileKind::Dir,
        FileType::RegularFile => FileKind::File,
        _ => FileKind::Other,
    }
}

/// The error for a failed open of the checked `path`: a symlink met where the check saw none means
/// the path changed in between (see [`nofollow::changed`]).
pub fn open_failed(err: io::Error, path: &Path, what: &str) -> ApiErr {
    if is_symlink_error(&err) {
        ApiErr::io(nofollow::changed(path), what)
    } else {
        ApiErr::io(err, what)
    }
}

/// Whether the start of a file has a NUL byte. Leaves the reader at its start.
pub fn looks_binary(reader: &mut BufReader<File>) -> io::Result<bool> {
    let buf = reader.fill_buf()?;
    let n = buf.len().min(BINARY_SNIFF_BYTES);
    Ok(buf[..n].contains(&0))
}

/// Reads one line into `line` (without `\n` or `\r\n`), keeping at most `cap` bytes of it and
/// skipping the rest. Returns `false` at end of file.
pub fn read_line_capped(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
    cap: usize,
) -> io::Result<bool> {
    let consumed = read_line_raw(reader, line, cap)?;
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(consumed > 0)
}

/// Reads one line into `line` with its `\n` (when there is one and it fits), keeping at most
/// `cap` bytes and skipping the rest. Returns the bytes the line takes in the file (0 at end of
/// file), so a caller can count byte offsets.
pub fn read_line_raw(reader: &mut impl BufRead, line: &mut Vec<u8>, cap: usize) -> io::Result<u64> {
    line.clear();
    let mut consumed = 0u64;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..=i], true),
            None => (buf, false),
        };
        let room = cap.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = chunk.len();
        reader.consume(used);
        consumed += used as u64;
        if done {
            break;
        }
    }
    Ok(consumed)
}

/// Cuts `text` to at most `max` characters.
pub fn cut_chars(mut text: String, max: usize) -> String {
    if let Some((i, _)) = text.char_indices().nth(max) {
        text.truncate(i);
    }
    text
}

pub fn read(
    state: &State,
    open: Opener,
    ws: &str,
    req: ReadRequest,
) -> Result<ReadResponse, ApiErr> {
    let path = state
        .authorize(
            ws,
            Operation::Read,
            &[Target::new(&req.path, Use::File)],
            req.grant.as_deref(),
        )?
        .remove(0);
    let root = state.root(ws)?;
    let file = open
        .open(&root, &path, read_flags())
        .map_err(|e| open_failed(e, &path, "opening the file"))?;
    let file = File::from(file);
    let meta = file
        .metadata()
        .map_err(|e| ApiErr::io(e, "opening the file"))?;
    match kind_of(meta.file_type()) {
        FileKind::File => {}
        FileKind::Dir => {
            return Err(ApiErr::new(
                ErrorKind::IsDirectory,
                format!("{} is a directory", path.display()),
            ))
        }
        _ => {
            return Err(ApiErr::new(
                ErrorKind::BadRequest,
                format!(
                    "{} is not a regular file (a FIFO, socket or device); only regular files can be read",
                    path.display()
                ),
            ))
        }
    }
    let mut out = ReadResponse {
        path: display(&path),
        size: meta.len(),
        mtime_ms: time_ms(meta.modified()),
        binary: false,
        lines: Vec::new(),
        offset: 0,
        total_lines: 0,
        truncated: false,
        base64: None,
    };
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    if req.mode == ReadMode::Bytes {
        let cap = req
            .max_bytes
            .unwrap_or(limits::MAX_FILE_BYTES)
            .min(limits::MAX_FILE_BYTES);
        if meta.len() > cap {
            return Err(ApiErr::new(
                ErrorKind::TooLarge,
                format!("file is {} bytes, more than {cap}", meta.len()),
            ));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        reader
            .take(cap + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| ApiErr::io(e, "reading the file"))?;
        if bytes.len() as u64 > cap {
            return Err(ApiErr::new(ErrorKind::TooLarge, "file grew past the limit"));
        }
        out.base64 = Some(base64::engine::general_purpose::STANDARD.encode(&bytes));
        return Ok(out);
    }
    if looks_binary(&mut reader).map_err(|e| ApiErr::io(e, "reading the file"))? {
        out.binary = true;
        return Ok(out);
    }
    let offset = req.offset.unwrap_or(0);
    let limit = req.limit.unwrap_or(limits::READ_DEFAULT_LINES);
    let max_bytes = req.max_bytes.unwrap_or(limits::READ_DEFAULT_MAX_BYTES);
    let line_cap = req
        .max_line_chars
        .map(|c| c.saturating_mul(4))
        .unwrap_or(MAX_LINE_BYTES)
        .min(MAX_LINE_BYTES);
    out.offset = offset;
    let mut line = Vec::new();
    let mut index = 0u64;
    let mut bytes = 0u64;
    while read_line_capped(&mut reader, &mut line, line_cap)
        .map_err(|e| ApiErr::io(e, "reading the file"))?
    {
        if index >= offset && !out.truncated {
            let mut text = String::from_utf8_lossy(&line).into_owned();
            if let Some(max) = req.max_line_chars {
                text = cut_chars(text, max);
            }
            if out.lines.len() as u64 >= limit
                || (!out.lines.is_empty() && bytes + text.len() as u64 > max_bytes)
            {
                out.truncated = true;
            } else {
                bytes += text.len() as u64 + 1;
                out.lines.push(text);
            }
        }
        index += 1;
    }
    out.total_lines = index;
    Ok(out)
}

pub fn write(
    state: &State,
    open: Opener,
    ws: &str,
    req: WriteRequest,
) -> Result<WriteResponse, ApiErr> {
    let data = match (req.content, req.base64) {
        (Some(text), None) => text.into_bytes(),
        (None, Some(b64)) => base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .map_err(|e| ApiErr::new(ErrorKind::BadRequest, format!("bad base64: {e}")))?,
        _ => {
            return Err(ApiErr::new(
                ErrorKind::BadRequest,
                "give exactly one of content and base64",
            ))
        }
    };
    let path = state
        .authorize(
            ws,
            Operation::Write,
            &[Target::new(&req.path, Use::File)],
            req.grant.as_deref(),
        )?
        .remove(0);
    let root = state.root(ws)?;
    let (dir, name) = open
        .open_parent(&root, &path, req.create_dirs.unwrap_or(true))
        .map_err(|e| open_failed(e, &path, "writing the file"))?;
    let existing = match stat_at(dir.as_fd(), &name) {
        Ok(m) if m.file_type == FileType::Directory => {
            return Err(ApiErr::new(
                ErrorKind::IsDirectory,
                format!("{} is a directory", path.display()),
            ))
        }
        // The check resolved any symlink here; one now means the path changed meanwhile.
        Ok(m) if m.file_type == FileType::Symlink => {
            return Err(open_failed(
                io::Error::from_raw_os_error(libc::ELOOP),
                &path,
                "writing the file",
            ))
        }
        Ok(m) => Some(m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(ApiErr::io(e, "looking at the file")),
    };
    let mode = match &existing {
        Some(m) => Some(m.mode),
        None => req.mode,
    };
    atomic_write_at(dir.as_fd(), &name, &data, mode)
        .map_err(|e| ApiErr::io(e, "writing the file"))?;
    Ok(WriteResponse {
        path: display(&path),
        size: data.len() as u64,
        created: existing.is_none(),
    })
}

pub fn stat(
    state: &State,
    open: Opener,
    ws: &str,
    req: StatRequest,
) -> Result<StatResponse, ApiErr> {
    let path = state
        .authorize(
            ws,
            Operation::Stat,
            &[Target::new(&req.path, Use::Any)],
            req.grant.as_deref(),
        )?
        .remove(0);
    let root = state.root(ws)?;
    let meta = open
        .open(&root, &path, OFlags::PATH)
        .and_then(|fd| File::from(fd).metadata());
    match meta {
        Ok(m) => Ok(StatResponse {
            path: display(&path),
            exists: true,
            kind: Some(kind_of(m.file_type())),
            size: m.len(),
            mode: m.permissions().mode() & 0o7777,
            mtime_ms: time_ms(m.modified()),
        }),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(StatResponse {
                path: display(&path),
                exists: false,
                kind: None,
                size: 0,
                mode: 0,
                mtime_ms: 0,
            })
        }
        Err(e) => Err(open_failed(e, &path, "looking at the path")),
    }
}

pub fn list(
    state: &State,
    open: Opener,
    ws: &str,
    req: ListRequest,
) -> Result<ListResponse, ApiErr> {
    let path = state
        .authorize(
            ws,
            Operation::List,
            &[Target::new(&req.path, Use::Dir)],
            req.grant.as_deref(),
        )?
        .remove(0);
    let limit = req
        .limit
        .unwrap_or(limits::LIST_DEFAULT)
        .min(limits::LIST_MAX);
    let root = state.root(ws)?;
    let dir = open
        .open(&root, &path, OFlags::RDONLY | OFlags::DIRECTORY)
        .map_err(|e| open_failed(e, &path, "listing the directory"))?;
    let names =
        nofollow::entries(dir.as_fd()).map_err(|e| ApiErr::io(e, "listing the directory"))?;
    let mut entries = Vec::new();
    for (name, _) in names {
        let Ok(meta) = stat_at(dir.as_fd(), &name) else {
            continue; // removed meanwhile
        };
        entries.push(DirEntry {
            name: name.to_string_lossy().into_owned(),
            kind: kind_of_type(meta.file_type),
            size: meta.size,
            mtime_ms: meta.mtime_ms,
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let truncated = entries.len() > limit;
    entries.truncate(limit);
    Ok(ListResponse {
        path: display(&path),
        entries,
        truncated,
    })
}

pub fn remove(
    state: &State,
    open: Opener,
    ws: &str,
    req: RemoveRequest,
) -> Result<RemoveResponse, ApiErr> {
    let path = state
        .authorize(
            ws,
            Operation::Remove,
            &[Target::new(&req.path, Use::Entry)],
            req.grant.as_deref(),
        )?
        .remove(0);
    let root = state.root(ws)?;
    if path == root {
        return Err(ApiErr::new(
            ErrorKind::BadRequest,
            "refusing to remove the workspace root",
        ));
    }
    let not_found = || RemoveResponse {
        path: display(&path),
        removed: false,
    };
    let (dir, name) = match open.open_parent(&root, &path, false) {
        Ok(opened) => opened,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(not_found()),
        Err(e) => return Err(open_failed(e, &path, "looking at the path")),
    };
    let meta = match stat_at(dir.as_fd(), &name) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(not_found()),
        Err(e) => return Err(ApiErr::io(e, "looking at the path")),
    };
    let result = match (meta.file_type == FileType::Directory, req.recursive) {
        (true, true) => nofollow::remove_tree_at(dir.as_fd(), &name),
        (true, false) => unlinkat(dir.as_fd(), &name, AtFlags::REMOVEDIR).map_err(io::Error::from),
        (false, _) => unlinkat(dir.as_fd(), &name, AtFlags::empty()).map_err(io::Error::from),
    };
    result.map_err(|e| ApiErr::io(e, "removing"))?;
    Ok(RemoveResponse {
        path: display(&path),
        removed: true,
    })
}

pub fn rename(
    state: &State,
    open: Opener,
    ws: &str,
    req: RenameRequest,
) -> Result<RenameResponse, ApiErr> {
    let paths = state.authorize(
        ws,
        Operation::Rename,
        &[
            Target::new(&req.from, Use::Entry),
            Target::new(&req.to, Use::Entry),
        ],
        req.grant.as_deref(),
    )?;
    let (from, to) = (&paths[0], &paths[1]);
    let root = state.root(ws)?;
    if from == &root {
        return Err(ApiErr::new(
            ErrorKind::BadRequest,
            "refusing to move the workspace root",
        ));
    }
    let (from_dir, from_name) = open
        .open_parent(&root, from, false)
        .map_err(|e| open_failed(e, from, "looking at the source"))?;
    stat_at(from_dir.as_fd(), &from_name).map_err(|e| ApiErr::io(e, "looking at the source"))?;
    let (to_dir, to_name) = open
        .open_parent(&root, to, true)
        .map_err(|e| open_failed(e, to, "creating directories"))?;
    renameat(from_dir.as_fd(), &from_name, to_dir.as_fd(), &to_name)
        .map_err(|e| ApiErr::io(e.into(), "renaming"))?;
    Ok(RenameResponse {
        from: display(from),
        to: display(to),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn read_line_capped_should_split_lines_and_cap_long_ones() {
        let mut r = Cursor::new(b"one\r\ntwo-long-line\nthree".to_vec());
        let mut line = Vec::new();
        assert!(read_line_capped(&mut r, &mut line, 100).unwrap());
        assert_eq!(line, b"one");
        assert!(read_line_capped(&mut r, &mut line, 3).unwrap());
        assert_eq!(line, b"two");
        assert!(read_line_capped(&mut r, &mut line, 100).unwrap());
        assert_eq!(line, b"three");
        assert!(!read_line_capped(&mut r, &mut line, 100).unwrap());
    }

    #[test]
    fn read_line_raw_should_keep_the_newline_and_count_skipped_bytes() {
        let mut r = Cursor::new(b"one\r\ntwo-long-line\nend".to_vec());
        let mut line = Vec::new();
        assert_eq!(read_line_raw(&mut r, &mut line, 100).unwrap(), 5);
        assert_eq!(line, b"one\r\n");
        assert_eq!(read_line_raw(&mut r, &mut line, 3).unwrap(), 14);
        assert_eq!(line, b"two");
        assert_eq!(read_line_raw(&mut r, &mut line, 100).unwrap(), 3);
        assert_eq!(line, b"end");
        assert_eq!(read_line_raw(&mut r, &mut line, 100).unwrap(), 0);
    }

    #[test]
    fn cut_chars_should_respect_char_boundaries() {
        assert_eq!(cut_chars("héllo".into(), 2), "hé");
        assert_eq!(cut_chars("hi".into(), 5), "hi");
    }
}

#[cfg(test)]
mod race_tests;
