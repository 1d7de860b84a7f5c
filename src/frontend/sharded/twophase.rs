//! Two-phase commit across shards, and recovery of what a crash left.
//!
//! A transaction that wrote on several shards commits in two steps:
//! `PREPARE TRANSACTION` on every participant, then `COMMIT PREPARED`. The
//! decision between the two is made durable first, as a row in
//! `shardwire.commit_decisions` on the map's default shard, inserted only
//! if no row for that transaction exists yet. Recovery (at start-up and
//! periodically) looks for prepared transactions shardwire left behind; for
//! each one it inserts an `abort` decision the same way, then applies
//! whichever decision the table holds. Because the table's primary key
//! admits one decision per transaction, a live commit and a recovery pass
//! can never disagree: a transaction is committed on every shard or on none.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BytesMut;

use super::exchange::{Until, exchange, exchange_all};
use crate::backend::pool::Lease;
use crate::frontend::params::quote_literal;
use crate::frontend::session::Session;
use crate::net::messages::{PgError, backend_tag as bt, put_query};

/// Prefix of every global transaction id shardwire prepares.
pub const GID_PREFIX: &str = "shardwire:";

/// Creates the decision table where missing.
pub const DECISION_TABLE_DDL: &str = "CREATE SCHEMA IF NOT EXISTS shardwire; \
     CREATE TABLE IF NOT EXISTS shardwire.commit_decisions (\
     gid text PRIMARY KEY, outcome text NOT NULL CHECK (outcome IN ('commit', 'abort')), \
     decided_at timestamptz NOT NULL DEFAULT now())";

/// A point where tests make the proxy die mid-commit (`SHARDWIRE_FAULT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// After every participant prepared, before the decision is recorded.
    AfterPrepare,
    /// After the commit decision is recorded, before COMMIT PREPARED.
    AfterDecision,
}

/// The fault point configured for this process, read once.
fn fault() -> Option<Fault> {
    static FAULT: OnceLock<Option<Fault>> = OnceLock::new();
    *FAULT.get_or_init(|| match std::env::var("SHARDWIRE_FAULT").ok()?.as_str() {
        "2pc-after-prepare" => Some(Fault::AfterPrepare),
        "2pc-after-decision" => Some(Fault::AfterDecision),
        _ => None,
    })
}

fn crash_at(point: Fault) {
    if fault() == Some(point) {
        tracing::error!(?point, "SHARDWIRE_FAULT: aborting the process as asked");
        std::process::abort();
    }
}

/// A fresh global transaction id, unique across proxy processes.
fn new_gid() -> String {
    static INSTANCE: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let instance = *INSTANCE.get_or_init(rand::random::<u64>);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{GID_PREFIX}{instance:016x}:{n}")
}

/// SQL that records `outcome` for `gid` unless a decision exists, and
/// returns the decision that holds.
pub fn decide_sql(gid: &str, outcome: &str) -> String {
    let gid = quote_literal(gid);
    format!(
        "INSERT INTO shardwire.commit_decisions (gid, outcome) VALUES ({gid}, '{outcome}') \
         ON CONFLICT (gid) DO NOTHING; \
         SELECT outcome FROM shardwire.commit_decisions WHERE gid = {gid}"
    )
}

impl Session {
    /// Commits the transactions open on `leases` (two or more shards)
    /// atomically. On error every participant has been rolled back.
    pub(crate) async fn commit_two_phase(
        &mut self,
        leases: &mut [(usize, Lease)],
    ) -> Result<(), PgError> {
        let gid = new_gid();
        let prepare = query(&format!("PREPARE TRANSACTION {}", quote_literal(&gid)));
        let answers = {
            let conns = leases
                .iter_mut()
                .map(|(_, lease)| (lease.conn(), &prepare[..]))
                .collect();
            exchange_all(conns, Until::ReadyForQuery).await?
        };
        let failure = answers.iter().find_map(|a| a.error_summary());
        if let Some(error) = failure {
            let prepared: Vec<bool> = answers.iter().map(|a| a.error.is_none()).collect();
            self.finish_prepared(leases, &gid, "ROLLBACK", Some(&prepared))
                .await;
            return Err(refine_prepare_error(error));
        }
        crash_at(Fault::AfterPrepare);
        let outcome = match self.record_decision(leases, &gid).await {
            Ok(outcome) => outcome,
            Err(e) => {
                self.finish_prepared(leases, &gid, "ROLLBACK", None).await;
                return Err(e);
            }
        };
        crash_at(Fault::AfterDecision);
        if outcome == "commit" {
            // The decision row stays until every shard has committed: a
            // shard that missed COMMIT PREPARED gets it from recovery.
            if self.finish_prepared(leases, &gid, "COMMIT", None).await {
                let _ = self
                    .on_default_shard(
                        leases,
                        &format!(
                            "DELETE FROM shardwire.commit_decisions WHERE gid = {}",
                            quote_literal(&gid)
                        ),
                    )
                    .await;
            }
            Ok(())
        } else {
            self.finish_prepared(leases, &gid, "ROLLBACK", None).await;
            Err(PgError::error(
                "40001",
                "the cross-shard transaction was rolled back by shardwire's recovery",
            )
            .with_hint("it took too long between PREPARE and COMMIT; retry the transaction"))
        }
    }

    /// `COMMIT PREPARED` or `ROLLBACK PREPARED` on every participant (those
    /// `prepared` says were, when given). Failures are left to recovery;
    /// returns whether every participant finished.
    async fn finish_prepared(
        &mut self,
        leases: &mut [(usize, Lease)],
        gid: &str,
        verb: &str,
        prepared: Option<&[bool]>,
    ) -> bool {
        let finish = query(&format!("{verb} PREPARED {}", quote_literal(gid)));
        let conns = leases
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| prepared.is_none_or(|p| p.get(*i).copied().unwrap_or(false)))
            .map(|(_, (_, lease))| (lease.conn(), &finish[..]))
            .collect();
        match exchange_all(conns, Until::ReadyForQuery).await {
            Ok(answers) => {
                let mut all = true;
                for error in answers.iter().filter_map(|a| a.error_summary()) {
                    tracing::warn!(%gid, %error, "{verb} PREPARED failed; recovery will retry");
                    all = false;
                }
                all
            }
            Err(error) => {
                tracing::warn!(%gid, %error, "{verb} PREPARED lost a server; recovery will retry");
                false
            }
        }
    }

    /// Records the commit decision unless recovery already decided; returns
    /// the decision that holds.
    async fn record_decision(
        &mut self,
        leases: &mut [(usize, Lease)],
        gid: &str,
    ) -> Result<String, PgError> {
        let sql = decide_sql(gid, "commit");
        let answer = match self.on_default_shard(leases, &sql).await? {
            answer
                if answer
                    .error_summary()
                    .is_some_and(|e| e.code == "42P01" || e.code == "3F000") =>
            {
                self.on_default_shard(leases, DECISION_TABLE_DDL).await?;
                self.on_default_shard(leases, &sql).await?
            }
            answer => answer,
        };
        if let Some(error) = answer.error_summary() {
            return Err(PgError::error(
                error.code.as_str(),
                format!(
                    "cannot record the cross-shard commit decision: {}",
                    error.message
                ),
            ));
        }
        answer
            .messages()
            .find(|(tag, _)| *tag == bt::DATA_ROW)
            .and_then(|(_, body)| first_text_field(body))
            .ok_or_else(|| PgError::error("XX000", "the commit decision could not be read back"))
    }

    /// Runs `sql` on the default shard: on a participant's connection when
    /// one is there (idle after PREPARE), else on a borrowed one.
    async fn on_default_shard(
        &mut self,
        leases: &mut [(usize, Lease)],
        sql: &str,
    ) -> Result<super::exchange::Answer, PgError> {
        let default = self.shard_state_ref().map.default_shard;
        let request = query(sql);
        if let Some((_, lease)) = leases.iter_mut().find(|(shard, _)| *shard == default) {
            return exchange(lease.conn(), &request, Until::ReadyForQuery).await;
        }
        let mut lease = match self.checkout_role(default, super::Role::Primary).await {
            Ok((lease, _)) => lease,
            Err(
                crate::frontend::session::SessionEnd::Fatal(e)
                | crate::frontend::session::SessionEnd::StatementFailed(e),
            ) => return Err(e),
            Err(_) => return Err(PgError::error("08006", "client gone")),
        };
        let answer = exchange(lease.conn(), &request, Until::ReadyForQuery).await;
        if answer.is_ok() && lease.conn_ref().is_clean() {
            crate::backend::pool::Pool::give_back(lease);
        }
        answer
    }
}

fn query(sql: &str) -> BytesMut {
    let mut out = BytesMut::new();
    put_query(&mut out, sql);
    out
}

/// The first field of a DataRow body as text.
pub fn first_text_field(body: &[u8]) -> Option<String> {
    let len = i32::from_be_bytes(body.get(2..6)?.try_into().ok()?);
    let len = usize::try_from(len).ok()?;
    let value = body.get(6..6 + len)?;
    Some(String::from_utf8_lossy(value).into_owned())
}

/// Explains the common reason PREPARE TRANSACTION fails.
fn refine_prepare_error(error: PgError) -> PgError {
    // Postgres says "prepared transactions are disabled" when the setting
    // is 0, and names max_prepared_transactions when the slots are used up.
    if error.code == "55000"
        && (error.message.contains("prepared transactions are disabled")
            || error.message.contains("max_prepared_transactions"))
    {
        PgError::error(
            "0A000",
            "this transaction wrote on several shards, which needs two-phase commit, \
             but the shards have max_prepared_transactions = 0",
        )
        .with_hint(
            "set max_prepared_transactions > 0 on every shard, or keep each transaction's \
             writes on one shard; the transaction was rolled back",
        )
    } else {
        error
    }
}
