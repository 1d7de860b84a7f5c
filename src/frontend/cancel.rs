//! Routing of CancelRequests: the proxy gives each client its own cancel key
//! and remembers which server connections are running that client's query
//! (one, or every shard of a cross-shard statement), so a cancel reaches
//! exactly those backends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

use crate::backend::conn::CancelTarget;

/// The servers a client's statements run on right now, if any.
#[derive(Default)]
pub struct CancelSlot {
    targets: Mutex<Vec<CancelTarget>>,
}

impl CancelSlot {
    /// Records the server connection now serving the client (None: none).
    pub fn set(&self, target: Option<CancelTarget>) {
        self.set_all(target);
    }

    /// Records every server connection running the client's statement (a
    /// statement fanned out to several shards).
    pub fn set_all(&self, targets: impl IntoIterator<Item = CancelTarget>) {
        let mut slot = self.targets.lock().unwrap_or_else(|e| e.into_inner());
        slot.clear();
        slot.extend(targets);
    }

    fn get(&self) -> Vec<CancelTarget> {
        self.targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

struct Entry {
    secret: i32,
    slot: Arc<CancelSlot>,
}

/// Every live client's cancel key.
#[derive(Default)]
pub struct CancelRegistry {
    entries: Mutex<HashMap<i32, Entry>>,
}

/// Removes a client's key when its session ends.
pub struct CancelKey {
    registry: Arc<CancelRegistry>,
    /// The pid the client was told.
    pub pid: i32,
    /// The secret the client was told.
    pub secret: i32,
    /// Where its statements run.
    pub slot: Arc<CancelSlot>,
}

impl Drop for CancelKey {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.pid);
    }
}

impl CancelRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Issues a fresh random key for a new client.
    pub fn register(self: &Arc<Self>) -> CancelKey {
        let slot = Arc::new(CancelSlot::default());
        let mut entries = self.lock();
        loop {
            let pid: i32 = rand::random::<i32>() & 0x7fff_ffff;
            if pid == 0 || entries.contains_key(&pid) {
                continue;
            }
            let secret: i32 = rand::random();
            entries.insert(
                pid,
                Entry {
                    secret,
                    slot: Arc::clone(&slot),
                },
            );
            return CancelKey {
                registry: Arc::clone(self),
                pid,
                secret,
                slot,
            };
        }
    }

    /// Passes a client's CancelRequest to the servers running its query.
    /// Unknown keys and idle clients are ignored, as Postgres does.
    pub async fn cancel(&self, pid: i32, secret: i32) {
        let targets = {
            let entries = self.lock();
            match entries.get(&pid) {
                Some(entry) if entry.secret == secret => entry.slot.get(),
                _ => Vec::new(),
            }
        };
        futures::future::join_all(targets.iter().map(send_cancel)).await;
    }
}

/// Sends one CancelRequest to one server.
pub(crate) async fn send_cancel(target: &CancelTarget) {
    let mut packet = BytesMut::new();
    postgres_protocol::message::frontend::cancel_request(target.pid, target.secret, &mut packet);
    match tokio::net::TcpStream::connect(&*target.address).await {
        Ok(mut stream) => {
            if let Err(e) = stream.write_all(&packet).await {
                tracing::warn!(server = %target.address, error = %e, "cancel request not delivered");
            }
        }
        Err(e) => {
            tracing::warn!(server = %target.address, error = %e, "cancel request not delivered")
        }
    }
}
