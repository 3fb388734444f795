//! The connection-sharing helper (see `opencode_remote::ssh::mux`). Started by the addon as
//! `opencode-remote-mux serve <dir>`: it detaches at once (the caller only waits for that), then
//! serves on `<dir>/mux.sock` until it is idle.

#[cfg(not(unix))]
fn main() {
    eprintln!("opencode-remote-mux: connection sharing needs Unix sockets");
    std::process::exit(2);
}

#[cfg(unix)]
fn main() {
    use std::path::PathBuf;

    let args: Vec<String> = std::env::args().collect();
    let [_, command, dir] = args.as_slice() else {
        eprintln!("usage: opencode-remote-mux serve <dir>");
        std::process::exit(2);
    };
    if command != "serve" {
        eprintln!("usage: opencode-remote-mux serve <dir>");
        std::process::exit(2);
    }
    detach();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if runtime
        .block_on(opencode_remote::ssh::mux::serve(&PathBuf::from(dir)))
        .is_err()
    {
        std::process::exit(1);
    }
}

#[cfg(unix)]
/// Fork into a new session, so the caller's wait ends and no terminal or process group of the caller
/// reaches the helper; then drop every descriptor the caller may have let it inherit (a listening
/// port of the caller must not outlive the caller here). Runs before any thread exists.
fn detach() {
    // SAFETY: single-threaded at this point; the parent only exits.
    unsafe {
        match libc::fork() {
            -1 => std::process::exit(1),
            0 => {}
            _ => libc::_exit(0),
        }
        libc::setsid();
    }
    let _ = std::env::set_current_dir("/");
    close_inherited_descriptors();
}

#[cfg(unix)]
fn close_inherited_descriptors() {
    let open: Vec<i32> = match std::fs::read_dir("/proc/self/fd") {
        Ok(entries) => entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
        Err(_) => (3..1024).collect(),
    };
    for fd in open.into_iter().filter(|&fd| fd > 2) {
        // SAFETY: closing descriptors nothing in this process uses yet (read_dir's own is closed).
        unsafe {
            libc::close(fd);
        }
    }
}
