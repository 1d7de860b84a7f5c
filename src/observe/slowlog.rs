//! The slow-query log: recent slow statements in memory and in a rotated
//! JSON-lines file.

use crate::config::ObserveSettings;

/// Slow statements with their plans.
pub struct SlowLog {
    ring_entries: usize,
}

impl SlowLog {
    /// An empty log configured by `settings`.
    pub fn new(settings: &ObserveSettings) -> SlowLog {
        SlowLog {
            ring_entries: settings.slow_ring_entries,
        }
    }

    /// Entries kept in memory.
    pub fn capacity(&self) -> usize {
        self.ring_entries
    }
}
