//! Which server takes writes, decided from one probe round.
//!
//! Normally exactly one server is out of recovery. After a promotion the
//! old primary may come back out of recovery too (split brain); the server
//! on the newest timeline is the one replicas can follow, so it wins. With
//! no server out of recovery the current choice stays: writes then fail
//! with a connection or read-only error, which says what is wrong.

use crate::backend::topology::ServerStatus;

/// How clear the choice was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Situation {
    /// Exactly one server is out of recovery.
    Single,
    /// Several servers are out of recovery.
    SplitBrain,
    /// No server answered out of recovery.
    NoPrimary,
}

/// The server that takes writes after a probe round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PrimaryChoice {
    /// Index of the server.
    pub(super) primary: usize,
    /// How it was chosen.
    pub(super) situation: Situation,
}

/// Chooses the primary among `statuses` (`None`: no answer), `current`
/// being the primary so far: the only server out of recovery; among
/// several, those on the highest timeline, preferring `current`, then the
/// first; none: `current`.
pub(super) fn choose_primary(current: usize, statuses: &[Option<ServerStatus>]) -> PrimaryChoice {
    let writable: Vec<(usize, Option<u32>)> = statuses
        .iter()
        .enumerate()
        .filter_map(|(i, status)| status.filter(|s| !s.in_recovery).map(|s| (i, s.timeline)))
        .collect();
    let Some(newest) = writable.iter().map(|&(_, timeline)| timeline).max() else {
        return PrimaryChoice {
            primary: current,
            situation: Situation::NoPrimary,
        };
    };
    let on_newest: Vec<usize> = writable
        .iter()
        .filter(|&&(_, timeline)| timeline == newest)
        .map(|&(i, _)| i)
        .collect();
    let primary = if on_newest.contains(&current) {
        current
    } else {
        on_newest[0]
    };
    let situation = if writable.len() == 1 {
        Situation::Single
    } else {
        Situation::SplitBrain
    };
    PrimaryChoice { primary, situation }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn primary(timeline: u32) -> Option<ServerStatus> {
        Some(ServerStatus {
            in_recovery: false,
            position: 100,
            timeline: Some(timeline),
        })
    }

    fn replica() -> Option<ServerStatus> {
        Some(ServerStatus {
            in_recovery: true,
            position: 100,
            timeline: None,
        })
    }

    fn choice(primary: usize, situation: Situation) -> PrimaryChoice {
        PrimaryChoice { primary, situation }
    }

    #[test]
    fn the_only_server_out_of_recovery_is_the_primary() {
        assert_eq!(
            choose_primary(0, &[primary(1), replica(), replica()]),
            choice(0, Situation::Single)
        );
        // Server 1 was promoted while the old primary is down.
        assert_eq!(
            choose_primary(0, &[None, primary(2), replica()]),
            choice(1, Situation::Single)
        );
    }

    #[test]
    fn without_a_server_out_of_recovery_the_current_primary_stays() {
        assert_eq!(
            choose_primary(1, &[None, None, replica()]),
            choice(1, Situation::NoPrimary)
        );
        assert_eq!(choose_primary(0, &[]), choice(0, Situation::NoPrimary));
    }

    #[test]
    fn in_a_split_brain_the_newest_timeline_wins() {
        // The old primary restarted after server 1's promotion.
        assert_eq!(
            choose_primary(1, &[primary(1), primary(2)]),
            choice(1, Situation::SplitBrain)
        );
        // The probe sees the promotion and the restart in the same round.
        assert_eq!(
            choose_primary(0, &[primary(1), primary(2)]),
            choice(1, Situation::SplitBrain)
        );
    }

    #[test]
    fn in_a_split_brain_on_one_timeline_the_current_primary_stays_else_the_first() {
        assert_eq!(
            choose_primary(2, &[replica(), primary(3), primary(3)]),
            choice(2, Situation::SplitBrain)
        );
        assert_eq!(
            choose_primary(0, &[None, primary(3), primary(3)]),
            choice(1, Situation::SplitBrain)
        );
        assert_eq!(
            choose_primary(0, &[primary(2), primary(3), primary(3)]),
            choice(1, Situation::SplitBrain)
        );
    }
}
