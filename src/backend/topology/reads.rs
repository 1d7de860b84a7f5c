//! Which server of a shard takes a read: the rotation of usable replicas,
//! lag limits, bans, load balancing and read-your-writes.

use std::sync::atomic::Ordering;

use super::{Lsn, ReadTarget, ServerRole, ShardServers};
use crate::config::LoadBalance;

impl ShardServers {
    /// Picks the server for a read. `min_lsn` is the session's last commit
    /// on this shard (read-your-writes), `load(i)` the statements in flight
    /// on server `i` (least-outstanding balancing), `exclude` servers that
    /// already failed this read.
    ///
    /// Replicas of unknown role (not probed yet) are usable, so reads work
    /// from the start, but serve a `min_lsn` read only once their position
    /// is known to have reached it. With `primary_reads` the primary is one
    /// more candidate (returned as `Server(primary)`), always up to date.
    pub fn choose_read(
        &self,
        min_lsn: Option<Lsn>,
        load: &dyn Fn(usize) -> usize,
        exclude: &[usize],
    ) -> ReadTarget {
        self.choose_read_at(self.now_ms(), min_lsn, load, exclude)
    }

    /// [`Self::choose_read`] with the ban clock at `now_ms` (tests move it).
    pub(super) fn choose_read_at(
        &self,
        now_ms: u64,
        min_lsn: Option<Lsn>,
        load: &dyn Fn(usize) -> usize,
        exclude: &[usize],
    ) -> ReadTarget {
        let primary = self.primary();
        let mut eligible = Vec::with_capacity(self.servers.len());
        // The usable replica closest to `min_lsn`, with its load.
        let mut closest: Option<(usize, Lsn, usize)> = None;
        for (i, server) in self.servers.iter().enumerate() {
            if exclude.contains(&i) || !self.in_rotation_at(i, now_ms) {
                continue;
            }
            let position = server.position();
            if i == primary || min_lsn.is_none_or(|lsn| position >= lsn) {
                eligible.push(i);
                continue;
            }
            let load = load(i);
            let closer = closest.is_none_or(|(_, best_position, best_load)| {
                (position, std::cmp::Reverse(load)) > (best_position, std::cmp::Reverse(best_load))
            });
            if closer {
                closest = Some((i, position, load));
            }
        }
        if eligible.is_empty() {
            return match closest {
                Some((i, _, _)) if !self.checks_paused(now_ms) => ReadTarget::CheckReplica(i),
                _ => ReadTarget::Primary,
            };
        }
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        let pick = match self.settings.load_balance {
            LoadBalance::RoundRobin => eligible[turn % eligible.len()],
            LoadBalance::LeastOutstanding => {
                let loads: Vec<usize> = eligible.iter().map(|&i| load(i)).collect();
                let least = loads.iter().copied().min().unwrap_or(0);
                let tied: Vec<usize> = eligible
                    .iter()
                    .zip(&loads)
                    .filter(|&(_, &l)| l == least)
                    .map(|(&i, _)| i)
                    .collect();
                tied[turn % tied.len()]
            }
        };
        ReadTarget::Server(pick)
    }

    /// Whether reads may go to `server` now: the primary when it takes
    /// reads and answers; a replica (or a server not probed yet) that is
    /// not banned and within both lag limits.
    pub(super) fn in_rotation_at(&self, server: usize, now_ms: u64) -> bool {
        let health = &self.servers[server];
        if health.banned_at(now_ms) {
            return false;
        }
        let role = health.role();
        if server == self.primary() {
            return self.settings.primary_reads && role != ServerRole::Down;
        }
        matches!(role, ServerRole::Replica | ServerRole::Unknown)
            && health.lag_bytes.load(Ordering::Acquire) <= self.settings.max_replica_lag_bytes
            && health.lag_ms.load(Ordering::Acquire) <= self.settings.max_replica_lag_ms
    }

    /// Whether every usable replica has replayed `lsn`: a session's
    /// read-your-writes position can then be forgotten.
    ///
    /// Every replica that may serve reads now or later counts (banned or
    /// lagging ones too, since they come back by themselves); only servers
    /// that are down or out of recovery do not.
    pub fn all_replayed(&self, lsn: Lsn) -> bool {
        let primary = self.primary();
        self.servers.iter().enumerate().all(|(i, server)| {
            i == primary
                || !matches!(server.role(), ServerRole::Replica | ServerRole::Unknown)
                || server.position() >= lsn
        })
    }
}
