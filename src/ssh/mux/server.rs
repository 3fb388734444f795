//! The helper process: holds one SSH connection per target for every local process of this user,
//! and opens channels on it for them. It serves while it is used, and leaves when it is not.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::BufReader;
use tokio::net::{UnixListener, UnixStream};

use super::wire::{self, Answer, Request};
use super::{LOCK_FILE, SOCKET_FILE};
use crate::error::{Error, Result};
use crate::ssh::pool::Pool;
use crate::ssh::tunnel::{accept_backing_off, copy_both_ways};

/// With no stream open, the helper leaves this long after the last one closed (OpenSSH's
/// `ControlPersist` for a connection kept only for later use).
const IDLE_EXIT: Duration = Duration::from_secs(10 * 60);
/// ... and sooner when none of its connections is alive anymore: it has nothing left to share.
const IDLE_EXIT_WITHOUT_LINKS: Duration = Duration::from_secs(5);
/// How often it looks at the above, and whether its socket is still its own.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// A client names its channel within this, or is dropped.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

struct State {
    pool: Pool,
    open_streams: AtomicUsize,
    last_close: Mutex<Instant>,
}

/// Serve on `dir`'s socket until idle. Returns at once when another helper already serves there.
pub async fn serve(dir: &Path) -> Result<()> {
    let Some(_lock) = lock(dir)? else {
        return Ok(());
    };
    let socket = dir.join(SOCKET_FILE);
    // Ours now: a socket left there is a dead helper's.
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)
        .map_err(|e| Error::io(format!("listening on {}", socket.display()), e))?;
    let inode = std::fs::metadata(&socket)
        .map_err(|e| Error::io("reading the socket", e))?
        .ino();
    // Whether the socket at our path is still the one we bound (not removed, not another helper's).
    let still_ours = || std::fs::metadata(&socket).map(|m| m.ino()).ok() == Some(inode);
    let state = Arc::new(State {
        pool: Pool::default(),
        open_streams: AtomicUsize::new(0),
        last_close: Mutex::new(Instant::now()),
    });
    let mut check = tokio::time::interval(CHECK_EVERY);
    loop {
        tokio::select! {
            (stream, _) = accept_backing_off(|| listener.accept()) => {
                if !super::same_user(&stream) {
                    continue;
                }
                state.open_streams.fetch_add(1, Ordering::SeqCst);
                let state = state.clone();
                tokio::spawn(async move {
                    serve_stream(stream, &state.pool).await;
                    *state.last_close.lock().expect("last close") = Instant::now();
                    state.open_streams.fetch_sub(1, Ordering::SeqCst);
                });
            }
            _ = check.tick() => {
                if !still_ours() || idle_long_enough(&state).await {
                    break;
                }
            }
        }
    }
    // Connections close as the process exits; the socket goes unless another helper took it over.
    if still_ours() {
        let _ = std::fs::remove_file(&socket);
    }
    Ok(())
}

async fn idle_long_enough(state: &State) -> bool {
    if state.open_streams.load(Ordering::SeqCst) > 0 {
        return false;
    }
    let idle = state.last_close.lock().expect("last close").elapsed();
    idle >= IDLE_EXIT || (idle >= IDLE_EXIT_WITHOUT_LINKS && !state.pool.any_open().await)
}

/// The exclusive lock on `dir`'s lock file, held for the helper's life; `None` when another holds it.
fn lock(dir: &Path) -> Result<Option<std::fs::File>> {
    use std::os::fd::AsRawFd;
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    // SAFETY: flock on a descriptor this function owns.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    Ok(locked.then_some(file))
}

/// One client: its request, the channel, then the bytes both ways until either side closes.
async fn serve_stream(stream: UnixStream, pool: &Pool) {
    let mut stream = BufReader::new(stream);
    let request = match tokio::time::timeout(
        REQUEST_TIMEOUT,
        wire::read_line::<Request>(&mut stream),
    )
    .await
    {
        Ok(Ok(request)) => request,
        _ => return,
    };
    let (answer, channel) = open_channel(pool, &request).await;
    if wire::write_line(&mut stream, &answer).await.is_err() {
        return;
    }
    let Some(channel) = channel else { return };
    let _ = copy_both_ways(&mut stream, &mut channel.into_stream()).await;
}

/// The channel `request` names, on the pooled connection; a dead link is replaced once.
async fn open_channel(
    pool: &Pool,
    request: &Request,
) -> (Answer, Option<russh::Channel<russh::client::Msg>>) {
    let mut last_error = String::new();
    for _ in 0..2 {
        let connection = match pool.get(&request.target).await {
            Ok(connection) => connection,
            Err(error) => {
                let reason = error.to_string();
                return (Answer::Unavailable { reason }, None);
            }
        };
        match connection.open_direct_streamlocal(&request.socket).await {
            Ok(Ok(channel)) => return (Answer::Opened, Some(channel)),
            Ok(Err(failure)) => return (Answer::refused(failure), None),
            Err(error) => {
                last_error = error.to_string();
                pool.evict(&request.target).await;
            }
        }
    }
    (Answer::Unavailable { reason: last_error }, None)
}
