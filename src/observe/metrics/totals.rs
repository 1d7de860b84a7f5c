//! Monotonic counters from totals kept by replaceable sources.
//!
//! A pool or a parse cache counts its own hits, waits and connections, and
//! RELOAD may swap it for a fresh one whose totals start at zero (a retired
//! pool even lives on next to its successor while its connections drain).
//! Setting a counter to such a total would make it jump backwards, or (the
//! recorder keeps the maximum) stall. Instead each refresh adds what every
//! source gained since the previous refresh, all of a new source's total
//! the first time it is seen.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Weak};

use metrics::Key;

/// The last total read from one source for one series.
struct Seen {
    /// Keeps the source's allocation, so its address cannot be reused by
    /// another source while it is tracked here.
    _source: Weak<dyn Any + Send + Sync>,
    total: u64,
    /// The refresh that last read it.
    refresh: u64,
}

/// The totals read at the previous refresh, per series and source.
#[derive(Default)]
pub struct SourceTotals {
    seen: HashMap<(Key, usize), Seen>,
    refresh: u64,
}

impl SourceTotals {
    /// Starts a refresh.
    pub fn begin(&mut self) {
        self.refresh += 1;
    }

    /// What `source` gained under `key` since the previous refresh, now
    /// that its total is `total`.
    pub fn gained<T: Any + Send + Sync>(&mut self, key: &Key, source: &Arc<T>, total: u64) -> u64 {
        let address = Arc::as_ptr(source).cast::<()>() as usize;
        let refresh = self.refresh;
        match self.seen.get_mut(&(key.clone(), address)) {
            Some(seen) => {
                let gained = total.saturating_sub(seen.total);
                seen.total = total;
                seen.refresh = refresh;
                gained
            }
            None => {
                let seen = Seen {
                    _source: Arc::downgrade(source) as Weak<dyn Any + Send + Sync>,
                    total,
                    refresh,
                };
                self.seen.insert((key.clone(), address), seen);
                total
            }
        }
    }

    /// Ends a refresh: forgets the sources it did not read (gone for good).
    pub fn finish(&mut self) {
        let refresh = self.refresh;
        self.seen.retain(|_, seen| seen.refresh == refresh);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaced_and_parallel_sources_add_up_without_going_backwards() {
        let key = Key::from_name("hits");
        let mut totals = SourceTotals::default();
        let (old, new) = (Arc::new(1u8), Arc::new(2u8));
        totals.begin();
        assert_eq!(totals.gained(&key, &old, 10), 10);
        totals.finish();
        totals.begin();
        assert_eq!(totals.gained(&key, &old, 15), 5);
        // A successor under the same series, the old one still draining.
        assert_eq!(totals.gained(&key, &new, 3), 3);
        totals.finish();
        totals.begin();
        assert_eq!(totals.gained(&key, &old, 15), 0);
        assert_eq!(totals.gained(&key, &new, 4), 1);
        totals.finish();
        // The old source is gone: forgotten, so it holds nothing.
        totals.begin();
        assert_eq!(totals.gained(&key, &new, 4), 0);
        totals.finish();
        assert_eq!(totals.seen.len(), 1);
        assert_eq!(Arc::weak_count(&old), 0);
        assert_eq!(Arc::weak_count(&new), 1);
    }
}
