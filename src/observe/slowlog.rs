//! The slow-query log: recent slow statements in memory (for `SHOW SLOW`)
//! and in a JSON-lines file rotated by size.
//!
//! Entries arrive from the plan-capture task (or the collector, when that
//! task is behind); the file is written by a thread of its own, fed by a
//! bounded queue, so neither a slow disk nor a full queue ever holds up
//! the collector, let alone a client. Lines that find the queue full are
//! dropped and counted.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self as std_mpsc, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::oneshot;

use super::event::{Route, StatementEvent};
use super::explain::{ExplainTarget, PlanOutcome};
use super::fingerprint::Shape;
use super::rotate::RotatingFile;
use super::timestamp::rfc3339;
use crate::config::ObserveSettings;

/// Lines waiting for the file writer; beyond it lines are dropped.
const FILE_QUEUE: usize = 4_096;

/// One slow statement, as shown by `SHOW SLOW` and written to the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlowEntry {
    /// When the statement reached the proxy (RFC 3339, UTC).
    pub time: String,
    /// Its fingerprint, 16 lowercase hex digits.
    pub fingerprint: String,
    /// The normalized text.
    pub normalized: String,
    /// The real text, with the Bind's parameter values appended as a
    /// comment for the extended protocol.
    pub sample: String,
    /// How long it took.
    pub duration_ms: f64,
    /// Rows returned or affected.
    pub rows: u64,
    /// SQLSTATE it failed with.
    pub error: Option<String>,
    /// Client-side user.
    pub user: String,
    /// Logical database.
    pub database: String,
    /// The client's address.
    pub client: String,
    /// Shards it ran on, by name.
    pub shards: Vec<String>,
    /// Route kind: `single_shard`, `scatter` or `multi_shard`, then
    /// `primary` or `replica` (`proxy` when no shard ran it).
    pub route: String,
    /// Where the plan was captured, when one was tried.
    pub explained_on: Option<ExplainTarget>,
    /// What `EXPLAIN (FORMAT JSON)` returned (`[{"Plan": ...}]`).
    pub plan: Option<Value>,
    /// The plan in one line.
    pub plan_summary: Option<String>,
    /// Why there is no plan.
    pub reason: Option<String>,
}

impl SlowEntry {
    /// The entry for `event` of shape `shape`, with its `sample` text and
    /// the outcome of plan capture; shard `i` is named `shard_names[i]`.
    pub fn new(
        event: &StatementEvent,
        shape: &Shape,
        sample: String,
        outcome: PlanOutcome,
        shard_names: &[String],
    ) -> SlowEntry {
        let plan_summary = outcome
            .plan
            .as_ref()
            .and_then(super::plan_summary::summarize);
        SlowEntry {
            time: rfc3339(event.started),
            fingerprint: format!("{:016x}", shape.fingerprint),
            normalized: shape.normalized.clone(),
            sample,
            duration_ms: event.duration.as_secs_f64() * 1_000.0,
            rows: event.rows,
            error: event
                .error
                .map(|code| String::from_utf8_lossy(&code).into_owned()),
            user: event.session.user.clone(),
            database: event.session.database.clone(),
            client: event.session.address.clone(),
            shards: event
                .route
                .shards
                .iter()
                .map(|i| {
                    shard_names
                        .get(i)
                        .cloned()
                        .unwrap_or_else(|| format!("#{i}"))
                })
                .collect(),
            route: route_name(&event.route),
            explained_on: outcome.target,
            plan: outcome.plan,
            plan_summary,
            reason: outcome.reason,
        }
    }
}

/// `single_shard primary`, `scatter replica`, ... (`proxy`: no shard).
fn route_name(route: &Route) -> String {
    if route.shards.is_empty() {
        return "proxy".to_string();
    }
    let spread = if route.scatter {
        "scatter"
    } else if route.shards.len() == 1 {
        "single_shard"
    } else {
        "multi_shard"
    };
    let role = if route.replica { "replica" } else { "primary" };
    format!("{spread} {role}")
}

/// What the file writer thread is asked to do.
enum FileCommand {
    Line(Vec<u8>),
    /// Write out everything queued before, then answer.
    Flush(oneshot::Sender<()>),
}

/// Slow statements with their plans.
pub struct SlowLog {
    ring_entries: usize,
    ring: Mutex<VecDeque<Arc<SlowEntry>>>,
    file: Option<SyncSender<FileCommand>>,
    lines_dropped: AtomicU64,
    plans_dropped: AtomicU64,
}

impl SlowLog {
    /// An empty log configured by `settings`; starts the file writer
    /// thread when `slow_log_path` is set.
    pub fn new(settings: &ObserveSettings) -> SlowLog {
        let file = settings.slow_log_path.as_ref().and_then(|path| {
            let file = RotatingFile::new(
                path.clone(),
                settings.slow_log_max_bytes,
                settings.slow_log_files,
            );
            spawn_writer(file)
        });
        SlowLog {
            ring_entries: settings.slow_ring_entries,
            ring: Mutex::new(VecDeque::new()),
            file,
            lines_dropped: AtomicU64::new(0),
            plans_dropped: AtomicU64::new(0),
        }
    }

    /// Entries kept in memory.
    pub fn capacity(&self) -> usize {
        self.ring_entries
    }

    /// Adds `entry` to the ring (dropping the oldest when full) and queues
    /// its line for the file.
    pub fn push(&self, entry: SlowEntry) {
        if let Some(file) = &self.file {
            match serde_json::to_vec(&entry) {
                Ok(mut line) => {
                    line.push(b'\n');
                    if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
                        file.try_send(FileCommand::Line(line))
                    {
                        self.lines_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "slow log entry not serializable"),
            }
        }
        if self.ring_entries == 0 {
            return;
        }
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        while ring.len() >= self.ring_entries {
            ring.pop_front();
        }
        ring.push_back(Arc::new(entry));
    }

    /// The `limit` most recent entries, newest first.
    pub fn recent(&self, limit: usize) -> Vec<Arc<SlowEntry>> {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.iter().rev().take(limit).cloned().collect()
    }

    /// Waits (at most `limit`) until every line queued so far is in the
    /// file.
    pub async fn flush(&self, limit: Duration) {
        let Some(file) = self.file.clone() else {
            return;
        };
        let (done, written) = oneshot::channel();
        // A blocking send: a flush must not be lost to a full queue.
        let queued =
            tokio::task::spawn_blocking(move || file.send(FileCommand::Flush(done)).is_ok());
        if matches!(queued.await, Ok(true)) {
            let _ = tokio::time::timeout(limit, written).await;
        }
    }

    /// Lines lost because the file writer fell behind.
    pub fn lines_dropped(&self) -> u64 {
        self.lines_dropped.load(Ordering::Relaxed)
    }

    /// Counts a slow statement logged without trying a plan because the
    /// capture task was behind.
    pub fn note_plan_dropped(&self) {
        self.plans_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Slow statements logged without trying a plan because the capture
    /// task was behind.
    pub fn plans_dropped(&self) -> u64 {
        self.plans_dropped.load(Ordering::Relaxed)
    }
}

/// Starts the thread that owns the file; it ends when the log is dropped.
fn spawn_writer(mut file: RotatingFile) -> Option<SyncSender<FileCommand>> {
    let (sender, commands) = std_mpsc::sync_channel(FILE_QUEUE);
    let spawned = std::thread::Builder::new()
        .name("shardwire-slowlog".into())
        .spawn(move || {
            let mut failing = false;
            while let Ok(command) = commands.recv() {
                // Write everything queued, then flush once.
                let mut flushes = Vec::new();
                let mut result = Ok(());
                for command in std::iter::once(command).chain(commands.try_iter()) {
                    match command {
                        FileCommand::Line(line) => result = result.and(file.write_line(&line)),
                        FileCommand::Flush(done) => flushes.push(done),
                    }
                }
                result = result.and(file.flush());
                match result {
                    Err(e) if !failing => {
                        tracing::warn!(error = %e, "cannot write the slow query log file");
                        failing = true;
                    }
                    Err(_) => {}
                    Ok(()) => failing = false,
                }
                for done in flushes {
                    let _ = done.send(());
                }
            }
        });
    match spawned {
        Ok(_) => Some(sender),
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the slow query log writer; file disabled");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::observe::fingerprint::shape;
    use crate::observe::testing::{event, route};

    fn entry(millis: u64, outcome: PlanOutcome) -> SlowEntry {
        let event = event(
            "appdb",
            "SELECT pg_sleep(0.3)",
            millis,
            route(&[1], false, false),
        );
        SlowEntry::new(
            &event,
            &shape("SELECT pg_sleep(0.3)"),
            "SELECT pg_sleep(0.3)".into(),
            outcome,
            &["s0".to_string(), "s1".to_string()],
        )
    }

    fn settings(path: Option<std::path::PathBuf>, ring: usize) -> ObserveSettings {
        ObserveSettings {
            slow_log_path: path,
            slow_ring_entries: ring,
            ..ObserveSettings::default()
        }
    }

    #[test]
    fn entries_carry_the_statement_the_route_and_the_plan_summary() {
        let plan = json!([{"Plan": {"Node Type": "Result", "Startup Cost": 0.0,
            "Total Cost": 0.01, "Plan Rows": 1}}]);
        let e = entry(
            300,
            PlanOutcome {
                plan: Some(plan.clone()),
                reason: None,
                target: None,
            },
        );
        assert_eq!(e.time, "2023-11-14T22:13:20.000Z");
        assert_eq!(e.normalized, "select pg_sleep($1)");
        assert_eq!(e.shards, ["s1"]);
        assert_eq!(e.route, "single_shard primary");
        assert_eq!(e.duration_ms, 300.0);
        assert_eq!(e.plan, Some(plan));
        assert_eq!(
            e.plan_summary.as_deref(),
            Some("Result (cost=0.00..0.01 rows=1)")
        );
        let none = entry(1, PlanOutcome::skipped("rate limited"));
        assert_eq!(
            (none.plan, none.reason.as_deref()),
            (None, Some("rate limited"))
        );
    }

    #[tokio::test]
    async fn the_ring_keeps_the_newest_entries_newest_first() {
        let log = SlowLog::new(&settings(None, 2));
        for ms in [101, 102, 103] {
            log.push(entry(ms, PlanOutcome::skipped("test")));
        }
        let recent: Vec<f64> = log.recent(10).iter().map(|e| e.duration_ms).collect();
        assert_eq!(recent, [103.0, 102.0]);
        assert_eq!(log.recent(1).len(), 1);
        let nothing = SlowLog::new(&settings(None, 0));
        nothing.push(entry(101, PlanOutcome::skipped("test")));
        assert!(nothing.recent(10).is_empty());
    }

    #[tokio::test]
    async fn entries_reach_the_file_as_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slow.jsonl");
        let log = SlowLog::new(&settings(Some(path.clone()), 10));
        log.push(entry(150, PlanOutcome::skipped("test")));
        log.push(entry(250, PlanOutcome::skipped("test")));
        log.flush(Duration::from_secs(10)).await;
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<SlowEntry> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].duration_ms, 250.0);
        let raw: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(raw["plan"], serde_json::Value::Null);
        assert_eq!(log.lines_dropped(), 0);
    }
}
