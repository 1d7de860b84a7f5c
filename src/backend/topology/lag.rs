//! How far behind its primary a replica is, in time.
//!
//! Postgres offers no clock for this (`pg_last_xact_replay_timestamp()` stands
//! still on an idle primary, so replicas would look later and later while
//! being perfectly current). Instead the probe remembers when the primary
//! first reported each new WAL position; a replica is as late as the oldest
//! of those positions it has not replayed yet, and not late at all once it
//! has replayed the latest one, however long ago that write was.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::Lsn;

/// Samples kept: new positions only, so an idle primary adds none; at the
/// default probe interval this is minutes of a busy primary, far beyond any
/// sensible lag limit.
const MAX_SAMPLES: usize = 256;

/// When the primary first reported each of its recent WAL positions.
#[derive(Debug, Default)]
pub(super) struct PrimaryHistory {
    /// `(first seen, position)`, positions strictly increasing.
    samples: VecDeque<(Instant, Lsn)>,
}

impl PrimaryHistory {
    /// Records the primary's position as seen at `at`. A position seen
    /// before keeps its first instant; a position going backwards (a
    /// different server, a restored backup) starts the history afresh.
    pub(super) fn record(&mut self, at: Instant, position: Lsn) {
        match self.latest() {
            Some(last) if position == last => return,
            Some(last) if position < last => self.samples.clear(),
            _ => {}
        }
        if self.samples.len() == MAX_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back((at, position));
    }

    /// Forgets everything: the primary changed.
    pub(super) fn clear(&mut self) {
        self.samples.clear();
    }

    /// The primary's last reported position.
    pub(super) fn latest(&self) -> Option<Lsn> {
        self.samples.back().map(|&(_, position)| position)
    }

    /// How late a replica that replayed up to `replayed` is at `now`.
    pub(super) fn lag(&self, replayed: Lsn, now: Instant) -> Duration {
        time_behind(&self.samples, replayed, now)
    }
}

/// How long ago the primary first reported a position beyond `replayed`
/// (zero when `replayed` is at or past every sample). When the history no
/// longer reaches back that far, the oldest sample gives a lower bound.
fn time_behind(samples: &VecDeque<(Instant, Lsn)>, replayed: Lsn, now: Instant) -> Duration {
    samples
        .iter()
        .find(|&&(_, position)| position > replayed)
        .map_or(Duration::ZERO, |&(at, _)| now.saturating_duration_since(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// A history with positions 100, 200, 300 first seen at t0, t0+1 s, t0+2 s.
    fn history(t0: Instant) -> PrimaryHistory {
        let mut h = PrimaryHistory::default();
        h.record(t0, 100);
        h.record(t0 + secs(1), 200);
        h.record(t0 + secs(2), 300);
        h
    }

    #[test]
    fn a_replica_is_as_late_as_the_first_position_it_has_not_replayed() {
        let t0 = Instant::now();
        let h = history(t0);
        let now = t0 + secs(10);
        assert_eq!(h.lag(50, now), secs(10));
        assert_eq!(h.lag(100, now), secs(9));
        assert_eq!(h.lag(250, now), secs(8));
        assert_eq!(h.lag(300, now), Duration::ZERO);
        assert_eq!(h.lag(400, now), Duration::ZERO);
    }

    #[test]
    fn an_idle_primary_does_not_make_a_current_replica_late() {
        let t0 = Instant::now();
        let mut h = history(t0);
        // The primary reports the same position for a long time.
        for s in 3..100 {
            h.record(t0 + secs(s), 300);
        }
        assert_eq!(h.lag(300, t0 + secs(100)), Duration::ZERO);
        // A replica stuck before the last write is late since that write
        // was first seen, not since the latest sample.
        assert_eq!(h.lag(299, t0 + secs(100)), secs(98));
    }

    #[test]
    fn a_position_going_backwards_restarts_the_history() {
        let t0 = Instant::now();
        let mut h = history(t0);
        h.record(t0 + secs(5), 150);
        assert_eq!(h.latest(), Some(150));
        assert_eq!(h.lag(120, t0 + secs(6)), secs(1));
        h.clear();
        assert_eq!(h.latest(), None);
        assert_eq!(h.lag(0, t0 + secs(6)), Duration::ZERO);
    }

    #[test]
    fn the_history_is_bounded_and_the_oldest_sample_bounds_the_lag() {
        let t0 = Instant::now();
        let mut h = PrimaryHistory::default();
        for i in 0..(MAX_SAMPLES as u64 + 10) {
            h.record(t0 + secs(i), 1000 + i);
        }
        assert_eq!(h.samples.len(), MAX_SAMPLES);
        let now = t0 + secs(1000);
        // Samples 0..10 were dropped: the oldest kept one is at t0 + 10 s.
        assert_eq!(h.lag(0, now), secs(990));
    }

    #[test]
    fn a_clock_reading_before_a_sample_gives_no_lag() {
        let t0 = Instant::now();
        let h = history(t0 + secs(5));
        assert_eq!(h.lag(0, t0), Duration::ZERO);
    }
}
