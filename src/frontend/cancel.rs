//! Routing of CancelRequests: the proxy gives each client its own cancel key
//! and remembers which server connection is running that client's query, so
//! a cancel reaches exactly that backend.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

use crate::backend::conn::CancelTarget;

/// The server a client's statements run on right now, if any.
#[derive(Default)]
pub struct CancelSlot {
    target: Mutex<Option<CancelTarget>>,
}

impl CancelSlot {
    /// Records the server connection now serving the client (None: none).
    pub fn set(&self, target: Option<CancelTarget>) {
        *self.target.lock().unwrap_or_else(|e| e.into_inner()) = target;
    }

    fn get(&self) -> Option<CancelTarget> {
        self.target
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

    /// Passes a client's CancelRequest to the server running its query.
    /// Unknown keys and idle clients are ignored, as Postgres does.
    pub async fn cancel(&self, pid: i32, secret: i32) {
        let target = {
            let entries = self.lock();
            match entries.get(&pid) {
                Some(entry) if entry.secret == secret => entry.slot.get(),
                _ => None,
            }
        };
        let Some(target) = target else {
            return;
        };
        let mut packet = BytesMut::new();
        postgres_protocol::message::frontend::cancel_request(
            target.pid,
            target.secret,
            &mut packet,
        );
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
}
