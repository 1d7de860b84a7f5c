//! The plan-capture task: takes slow statements from the collector through
//! a bounded queue, captures their plans ([`super::explain`]) and logs
//! them ([`super::slowlog`]). The collector never waits for it: when the
//! queue is full, the statement is logged at once without a plan.

use std::borrow::Cow;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::bind::{self, Param};
use super::event::StatementEvent;
use super::explain::{Explainer, PlanOutcome};
use super::fingerprint::Shape;
use super::slowlog::{SlowEntry, SlowLog};

/// Slow statements waiting for their plans.
const CAPTURE_QUEUE: usize = 256;

/// A slow statement and its shape.
pub struct SlowStatement {
    /// The statement.
    pub event: StatementEvent,
    /// Its shape.
    pub shape: Arc<Shape>,
}

/// What the capture task is asked to do.
pub enum Request {
    /// Capture a plan and log the statement.
    Capture(SlowStatement),
    /// Answer once everything asked before is logged.
    Flush(oneshot::Sender<()>),
}

/// The collector's side of the capture task.
pub struct CaptureQueue {
    requests: mpsc::Sender<Request>,
    slow_log: Arc<SlowLog>,
    shard_names: Arc<[String]>,
}

impl CaptureQueue {
    /// Starts the capture task with `explainer`, logging to `slow_log`.
    pub fn start(
        explainer: Explainer,
        slow_log: Arc<SlowLog>,
        shard_names: Arc<[String]>,
    ) -> CaptureQueue {
        let (requests, receiver) = mpsc::channel(CAPTURE_QUEUE);
        tokio::spawn(run(
            receiver,
            explainer,
            Arc::clone(&slow_log),
            Arc::clone(&shard_names),
        ));
        CaptureQueue {
            requests,
            slow_log,
            shard_names,
        }
    }

    /// Hands `statement` to the capture task without waiting; when it is
    /// behind, logs the statement now, without a plan.
    pub fn submit(&self, statement: SlowStatement) {
        let (rejected, reason) = match self.requests.try_send(Request::Capture(statement)) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(request)) => {
                (request, "not explained: the plan capture queue was full")
            }
            Err(mpsc::error::TrySendError::Closed(request)) => {
                (request, "not explained: plan capture has stopped")
            }
        };
        if let Request::Capture(statement) = rejected {
            self.slow_log.note_plan_dropped();
            let (sample, _) = sample_and_params(&statement.event);
            self.slow_log.push(SlowEntry::new(
                &statement.event,
                &statement.shape,
                sample,
                PlanOutcome::skipped(reason),
                &self.shard_names,
            ));
        }
    }

    /// Waits until every statement submitted before is logged.
    pub async fn flush(&self) {
        let (done, logged) = oneshot::channel();
        if self.requests.send(Request::Flush(done)).await.is_ok() {
            let _ = logged.await;
        }
    }
}

async fn run(
    mut requests: mpsc::Receiver<Request>,
    mut explainer: Explainer,
    slow_log: Arc<SlowLog>,
    shard_names: Arc<[String]>,
) {
    while let Some(request) = requests.recv().await {
        match request {
            Request::Capture(statement) => {
                let event = &statement.event;
                let (sample, params) = sample_and_params(event);
                let outcome = match params {
                    Ok(params) => {
                        let text = text_of(event);
                        explainer
                            .plan(event, statement.shape.fingerprint, &text, &params)
                            .await
                    }
                    Err(unreadable) => PlanOutcome::skipped(unreadable.to_string()),
                };
                slow_log.push(SlowEntry::new(
                    event,
                    &statement.shape,
                    sample,
                    outcome,
                    &shard_names,
                ));
            }
            Request::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// The statement text (invalid UTF-8 read lossily).
fn text_of(event: &StatementEvent) -> Cow<'_, str> {
    String::from_utf8_lossy(&event.text)
}

/// The slow log's sample of `event` and its parameters (none for the
/// simple protocol).
fn sample_and_params(event: &StatementEvent) -> (String, Result<Vec<Param>, bind::BindError>) {
    let text = text_of(event);
    match event.bind.as_ref().map(bind::decode).transpose() {
        Ok(params) => {
            let params = params.unwrap_or_default();
            (bind::render_sample(&text, &params), Ok(params))
        }
        Err(unreadable) => (format!("{text} -- params: ({unreadable})"), Err(unreadable)),
    }
}
