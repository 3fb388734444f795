//! One multiplexed connection per host, shared by every call: a second `remote_login` to the same host
//! costs a channel, not a handshake. Dead connections are replaced on the next request.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use tokio::sync::Mutex;

use super::config::SshTarget;
use super::connect::{connect, Connection};
use crate::error::Result;

/// The pooled connection for one key; the async lock is held while connecting.
type Slot = Arc<Mutex<Option<Arc<Connection>>>>;

#[derive(Default)]
pub struct Pool {
    /// One lock per key, so two callers for the same host share a single handshake while other hosts
    /// connect in parallel.
    slots: std::sync::Mutex<HashMap<String, Slot>>,
}

/// The process-wide pool the napi functions use.
pub static POOL: LazyLock<Pool> = LazyLock::new(Pool::default);

impl Pool {
    /// A live connection to `target`, reusing the pooled one when it is still open.
    pub async fn get(&self, target: &SshTarget) -> Result<Arc<Connection>> {
        let slot = self.slot(target);
        let mut guard = slot.lock().await;
        if let Some(connection) = guard.as_ref().filter(|c| !c.is_closed()) {
            return Ok(connection.clone());
        }
        let connection = Arc::new(connect(target).await?);
        *guard = Some(connection.clone());
        Ok(connection)
    }

    /// The pooled connection for `target`, if any, without connecting.
    pub async fn peek(&self, target: &SshTarget) -> Option<Arc<Connection>> {
        self.slot(target).lock().await.clone()
    }

    /// Drop the pooled connection for `target` (after an error that suggests it is broken).
    pub async fn evict(&self, target: &SshTarget) {
        let slot = self.slot(target);
        let connection = slot.lock().await.take();
        if let Some(connection) = connection {
            connection.close().await;
        }
    }

    /// Whether this pool holds an open connection to `target`: a channel should then use it rather
    /// than the sharing helper's (one connection per process and host, not two).
    pub async fn is_live(&self, target: &SshTarget) -> bool {
        self.peek(target).await.is_some_and(|c| !c.is_closed())
    }

    /// Whether any pooled connection is still open.
    pub async fn any_open(&self) -> bool {
        let slots: Vec<Slot> = self
            .slots
            .lock()
            .expect("pool lock")
            .values()
            .cloned()
            .collect();
        for slot in slots {
            if slot.lock().await.as_ref().is_some_and(|c| !c.is_closed()) {
                return true;
            }
        }
        false
    }

    fn slot(&self, target: &SshTarget) -> Slot {
        let mut slots = self.slots.lock().expect("pool lock");
        slots.entry(pool_key(target)).or_default().clone()
    }
}

/// The whole target is the key, so an edited config gets a new connection (and the sharing helper
/// never hands one process's connection to another that configured the host differently).
fn pool_key(target: &SshTarget) -> String {
    serde_json::to_string(target).expect("a target serializes")
}
