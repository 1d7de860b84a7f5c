//! The PAUSE / RESUME switch shared by every pool: while paused, checkouts
//! wait (within their checkout timeout) instead of lending a server
//! connection, so an operator can drain the servers (for a restart or a
//! failover) without disconnecting clients.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

/// Whether checkouts may proceed. The lend path reads one atomic; only a
/// checkout that finds the gate closed subscribes to be woken.
#[derive(Debug)]
pub struct PauseGate {
    paused: AtomicBool,
    changes: watch::Sender<bool>,
}

impl Default for PauseGate {
    fn default() -> Self {
        PauseGate {
            paused: AtomicBool::new(false),
            changes: watch::channel(false).0,
        }
    }
}

impl PauseGate {
    /// Whether checkouts wait right now.
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    /// Makes new checkouts wait; idempotent.
    pub fn pause(&self) {
        self.paused.store(true, Ordering::Release);
        self.changes.send_replace(true);
    }

    /// Lets waiting and new checkouts proceed; idempotent.
    pub fn resume(&self) {
        self.paused.store(false, Ordering::Release);
        self.changes.send_replace(false);
    }

    /// Resolves once the gate is open (at once when it is).
    pub async fn opened(&self) {
        let mut changes = self.changes.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = changes.wait_for(|paused| !paused).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn waiters_pass_once_resumed() {
        let gate = Arc::new(PauseGate::default());
        gate.opened().await;
        gate.pause();
        gate.pause();
        assert!(gate.is_paused());
        let waiter = tokio::spawn({
            let gate = Arc::clone(&gate);
            async move { gate.opened().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        gate.resume();
        waiter.await.expect("the waiter finishes");
        assert!(!gate.is_paused());
    }
}
