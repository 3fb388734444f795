//! The accept loop: at most [`MAX_CONNECTIONS`] connections at once, a deadline for each request's
//! headers (which also closes idle keep-alive connections), and no busy loop when the process runs
//! out of file descriptors. `axum::serve` has none of these: a client that opens connections and
//! sends nothing could otherwise hold the stub's descriptors and memory for good.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::net::UnixListener;
use tokio::sync::Semaphore;

use crate::util::log;

/// Connections served at once; the next waits in the kernel's backlog until one closes. The addon
/// needs a few per concurrent tool call or command stream, far below this.
pub const MAX_CONNECTIONS: usize = 128;
/// Time a client has to send a request's headers, counted from when the connection is ready for
/// the next request; an idle keep-alive connection is closed after it too.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after an accept error (EMFILE, ENFILE, ENOBUFS), so the loop does not spin on it.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(200);

/// Serve `router` on `listener` until the future is dropped.
pub async fn serve(listener: UnixListener, router: Router) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        // Taken before accepting: while all slots are used, new connections wait unaccepted.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                log(
                    "warn",
                    "accept failed",
                    json!({ "error": error.to_string() }),
                );
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                // A terminal's WebSocket (`/pty/{id}/connect`) is an HTTP/1.1 upgrade.
                .with_upgrades();
            let _ = connection.await;
            drop(permit);
        });
    }
}
