//! Prometheus metrics of the proxy.

use super::event::StatementEvent;

/// The proxy's metrics.
#[derive(Default)]
pub struct Metrics {}

impl Metrics {
    /// Counts a completed statement (called by the collector).
    pub fn on_statement(&self, _event: &StatementEvent) {}
}
