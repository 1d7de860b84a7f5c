//! Per-fingerprint statement statistics (filled in by the collector).

/// Statistics of every statement shape seen, bounded in memory.
pub struct Statistics {
    max_fingerprints: usize,
}

impl Statistics {
    /// An empty store keeping at most `max_fingerprints` shapes.
    pub fn new(max_fingerprints: usize) -> Statistics {
        Statistics { max_fingerprints }
    }

    /// The most shapes kept.
    pub fn capacity(&self) -> usize {
        self.max_fingerprints
    }
}
