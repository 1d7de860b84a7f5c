//! The server connections of a pool, for `SHOW SERVERS`: one record per
//! open connection, added when it opens and removed when it closes (the
//! only times the registry's lock is taken). Lending and returning flip
//! an atomic in the record, so the lend path takes no extra lock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// One open server connection as the console shows it.
#[derive(Debug)]
pub struct ServerRecord {
    id: u64,
    /// The server's backend process id.
    pub pid: i32,
    /// When the connection was opened (wall clock, for display).
    pub connected_at: SystemTime,
    opened: Instant,
    lent: AtomicBool,
    /// Milliseconds after `opened` at which it last became idle.
    idle_at_ms: AtomicU64,
}

impl ServerRecord {
    /// Whether a client holds the connection right now.
    pub fn is_lent(&self) -> bool {
        self.lent.load(Ordering::Relaxed)
    }

    /// How long the connection has been idle; `None` while lent.
    pub fn idle_for(&self) -> Option<Duration> {
        if self.is_lent() {
            return None;
        }
        let idle_at = Duration::from_millis(self.idle_at_ms.load(Ordering::Relaxed));
        Some(self.opened.elapsed().saturating_sub(idle_at))
    }

    /// Since when the connection is idle (wall clock); `None` while lent.
    pub fn idle_since(&self) -> Option<SystemTime> {
        self.idle_for().map(|idle| {
            SystemTime::now()
                .checked_sub(idle)
                .unwrap_or(self.connected_at)
        })
    }

    pub(super) fn mark_lent(&self) {
        self.lent.store(true, Ordering::Relaxed);
    }

    pub(super) fn mark_idle(&self) {
        let at = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.idle_at_ms.store(at, Ordering::Relaxed);
        self.lent.store(false, Ordering::Relaxed);
    }
}

/// The open connections of one pool.
#[derive(Debug, Default)]
pub struct ServerRecords {
    next_id: AtomicU64,
    records: Mutex<BTreeMap<u64, Arc<ServerRecord>>>,
}

impl ServerRecords {
    /// Records a connection just opened to backend `pid`, idle.
    pub(super) fn register(&self, pid: i32) -> Arc<ServerRecord> {
        let record = Arc::new(ServerRecord {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            pid,
            connected_at: SystemTime::now(),
            opened: Instant::now(),
            lent: AtomicBool::new(false),
            idle_at_ms: AtomicU64::new(0),
        });
        self.lock().insert(record.id, Arc::clone(&record));
        record
    }

    /// Forgets a connection that closed.
    pub(super) fn unregister(&self, record: &ServerRecord) {
        self.lock().remove(&record.id);
    }

    /// The open connections, oldest first.
    pub fn snapshot(&self) -> Vec<Arc<ServerRecord>> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<ServerRecord>>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_follow_open_lend_return_close() {
        let records = ServerRecords::default();
        let first = records.register(11);
        let second = records.register(12);
        assert_eq!(records.snapshot().len(), 2);
        assert!(first.idle_for().is_some(), "a new connection is idle");
        first.mark_lent();
        assert!(first.is_lent());
        assert_eq!(first.idle_for(), None);
        assert_eq!(first.idle_since(), None);
        first.mark_idle();
        assert!(!first.is_lent());
        assert!(first.idle_since().is_some());
        records.unregister(&first);
        let left: Vec<i32> = records.snapshot().iter().map(|r| r.pid).collect();
        assert_eq!(left, vec![second.pid]);
    }
}
