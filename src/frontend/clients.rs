//! The registry of connected clients, for `SHOW CLIENTS`, log spans and
//! per-client traffic counters.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::observe::event::SessionInfo;

/// One logged-in client.
#[derive(Debug)]
pub struct ClientEntry {
    /// Who it is (shared with its statement events).
    pub info: Arc<SessionInfo>,
    /// When it logged in.
    pub connected_at: SystemTime,
    /// Whether its connection is TLS.
    pub tls: bool,
    /// Statements it completed.
    pub statements: AtomicU64,
    /// Bytes received from it.
    pub bytes_in: AtomicU64,
    /// Bytes sent to it.
    pub bytes_out: AtomicU64,
}

/// Every logged-in client, by id, plus the traffic of those gone (so
/// byte totals never go backwards when a client leaves).
#[derive(Debug, Default)]
pub struct ClientRegistry {
    next_id: AtomicU64,
    clients: Mutex<BTreeMap<u64, Arc<ClientEntry>>>,
    departed_bytes_in: AtomicU64,
    departed_bytes_out: AtomicU64,
}

/// Keeps a client registered; dropping it unregisters the client.
#[derive(Debug)]
pub struct Registration {
    registry: Arc<ClientRegistry>,
    /// The registered entry.
    pub entry: Arc<ClientEntry>,
}

impl ClientRegistry {
    /// A fresh id for a client connection (ids are never reused, so log
    /// lines of different clients never share one).
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Registers a logged-in client.
    pub fn register(self: &Arc<Self>, info: SessionInfo, tls: bool) -> Registration {
        let entry = Arc::new(ClientEntry {
            info: Arc::new(info),
            connected_at: SystemTime::now(),
            tls,
            statements: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
        });
        self.lock().insert(entry.info.client_id, Arc::clone(&entry));
        Registration {
            registry: Arc::clone(self),
            entry,
        }
    }

    /// The clients connected now, by id.
    pub fn snapshot(&self) -> Vec<Arc<ClientEntry>> {
        self.lock().values().cloned().collect()
    }

    /// Bytes received from and sent to all clients since the proxy started.
    pub fn total_bytes(&self) -> (u64, u64) {
        let clients = self.lock();
        let live = |pick: fn(&ClientEntry) -> &AtomicU64| {
            clients
                .values()
                .map(|c| pick(c).load(Ordering::Relaxed))
                .sum::<u64>()
        };
        (
            self.departed_bytes_in.load(Ordering::Relaxed) + live(|c| &c.bytes_in),
            self.departed_bytes_out.load(Ordering::Relaxed) + live(|c| &c.bytes_out),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<ClientEntry>>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut clients = self.registry.lock();
        clients.remove(&self.entry.info.client_id);
        // Moved under the same lock, so a total never counts them twice.
        self.registry.departed_bytes_in.fetch_add(
            self.entry.bytes_in.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        self.registry.departed_bytes_out.fetch_add(
            self.entry.bytes_out.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(registry: &ClientRegistry) -> SessionInfo {
        SessionInfo {
            client_id: registry.next_id(),
            user: "u".into(),
            database: "d".into(),
            address: "127.0.0.1:1".into(),
        }
    }

    #[test]
    fn byte_totals_survive_departures() {
        let registry = Arc::new(ClientRegistry::default());
        let a = registry.register(info(&registry), false);
        let b = registry.register(info(&registry), false);
        a.entry.bytes_in.fetch_add(10, Ordering::Relaxed);
        b.entry.bytes_out.fetch_add(7, Ordering::Relaxed);
        assert_eq!(registry.snapshot().len(), 2);
        drop(a);
        assert_eq!(registry.snapshot().len(), 1);
        assert_eq!(registry.total_bytes(), (10, 7));
        drop(b);
        assert!(registry.snapshot().is_empty());
        assert_eq!(registry.total_bytes(), (10, 7));
    }
}
