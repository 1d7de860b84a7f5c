//! Running one statement on several shards and composing one answer.
//!
//! Reads fan out and merge by their scatter plan; writes (to every shard of
//! a reference table, a split multi-row INSERT, DDL) run as one atomic unit:
//! inside the client's transaction they join it, outside one the proxy opens
//! a transaction on each shard and commits them together with two-phase
//! commit. An error from any shard aborts the whole statement: the client
//! sees that error and no partial result.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use super::exchange::{Answer, Until, exchange_all};
use super::{BindValues, Role, command_complete, message};
use crate::backend::pool::Lease;
use crate::frontend::session::{Session, SessionEnd};
use crate::net::messages::{PgError, backend_tag as bt, put_cstr, put_message, put_query, tag};
use crate::router::readwrite::Access;
use crate::scatter::{Merger, ScatterPlan};

/// What runs where.
#[derive(Debug, Clone)]
pub enum Fanout {
    /// A read on several shards, merged by `plan`.
    Scatter {
        /// How the shards' rows merge.
        plan: Arc<ScatterPlan>,
        /// Shards that may hold rows.
        shards: Vec<usize>,
        /// Whether the read may run on replicas.
        access: Access,
    },
    /// A write on several shards, atomically.
    Write {
        /// One statement per shard.
        parts: Vec<WritePart>,
        /// RETURNING rows are put back in the order of the original VALUES
        /// rows (a split INSERT).
        reorder: bool,
        /// Every shard holds a copy (reference tables, DDL): the client
        /// gets one shard's rows and count instead of their sum.
        replicated: bool,
    },
}

/// One shard's share of a write.
#[derive(Debug, Clone)]
pub struct WritePart {
    /// The shard.
    pub shard: usize,
    /// Its statement.
    pub sql: String,
    /// Bind parameters it takes, as original 1-based numbers (split INSERT
    /// renumbers them); `None`: all, unchanged.
    pub params: Option<Vec<usize>>,
    /// Original VALUES rows it inserts, ascending (split INSERT only).
    pub rows: Vec<usize>,
}

/// The extended-protocol context of a fanned-out statement.
#[derive(Debug, Clone)]
pub struct Extended {
    /// Parameter type OIDs from the client's Parse (count + OIDs).
    pub param_types: Bytes,
    /// The Bind message's parameters and result formats.
    pub bind: Bytes,
}

/// A composed answer waiting for the client.
#[derive(Debug, Default)]
pub struct FanoutResult {
    /// RowDescription message, when the statement returns rows.
    pub row_description: Option<Bytes>,
    /// DataRow messages.
    pub rows: Bytes,
    /// Rows already sent (a portal executed with a row limit).
    pub sent_bytes: usize,
    /// CommandComplete tag.
    pub tag: String,
}

/// A fanned-out statement bound to a portal (extended protocol).
#[derive(Debug)]
pub struct FanoutPortal {
    /// What to run.
    pub fanout: Fanout,
    /// Its parameters.
    pub extended: Extended,
    /// The answer once run (at Describe or the first Execute).
    pub result: Option<Result<FanoutResult, PgError>>,
}

impl Session {
    /// Runs `fanout` and composes the client's answer, or the error that
    /// aborted it. `Err` only when the session itself must end.
    pub(crate) async fn run_fanout(
        &mut self,
        fanout: &Fanout,
        extended: Option<&Extended>,
    ) -> Result<Result<FanoutResult, PgError>, SessionEnd> {
        let shards: Vec<usize> = match fanout {
            Fanout::Scatter { shards, .. } => shards.clone(),
            Fanout::Write { parts, .. } => parts.iter().map(|p| p.shard).collect(),
        };
        let atomic = match fanout {
            Fanout::Write { parts, .. } => {
                shards.len() > 1 && !parts.iter().any(|p| cannot_run_in_transaction(&p.sql))
            }
            Fanout::Scatter { .. } => false,
        };
        let implicit = atomic && !self.in_transaction();
        let role = match fanout {
            Fanout::Scatter { access, .. } => self.statement_role(*access),
            Fanout::Write { .. } => Role::Primary,
        };
        let mut leases = self.take_leases(&shards, role).await?;
        self.note_fanout(&mut leases, matches!(fanout, Fanout::Write { .. }));
        if implicit {
            for (_, lease) in &mut leases {
                if let Err(e) = Box::pin(lease.conn().run_maintenance("BEGIN")).await {
                    self.rollback_leases(&mut leases).await;
                    self.return_leases(leases);
                    return Ok(Err(e));
                }
            }
        }
        let requests = build_requests(fanout, extended, &shards);
        // A cancel reaches every shard the statement runs on.
        self.cancel
            .slot
            .set_all(leases.iter().map(|(_, l)| l.conn_ref().cancel.clone()));
        let answers = {
            let conns = leases
                .iter_mut()
                .zip(&requests)
                .map(|((_, lease), request)| (lease.conn(), &request[..]))
                .collect();
            exchange_all(conns, Until::ReadyForQuery).await
        };
        self.cancel.slot.set(None);
        let answers = match answers {
            Ok(answers) => answers,
            Err(e) => {
                // A lost shard: its lease is unusable; the others roll back.
                drop(leases);
                return Err(SessionEnd::Fatal(e));
            }
        };
        for answer in &answers {
            self.outbox_notices(answer);
        }
        let composed = match answers.iter().find_map(Answer::error_frame) {
            Some(error) => Err(error),
            None => match self.check_text_order(fanout, &answers, &mut leases).await {
                Ok(()) => self.compose(fanout, &answers),
                Err(e) => Err(e),
            },
        };
        if implicit {
            match &composed {
                Ok(_) => {
                    if let Err(e) = self.commit_two_phase(&mut leases).await {
                        self.return_leases(leases);
                        return Ok(Err(e));
                    }
                }
                Err(_) => self.rollback_leases(&mut leases).await,
            }
        }
        self.return_leases(leases);
        Ok(composed)
    }

    /// The merge orders text byte by byte (the `C` collation). When a
    /// merged ORDER BY, MIN or MAX is over text and the database sorts text
    /// another way, the merged answer would differ from one Postgres: the
    /// statement is refused instead.
    async fn check_text_order(
        &mut self,
        fanout: &Fanout,
        answers: &[Answer],
        leases: &mut [(usize, Lease)],
    ) -> Result<(), PgError> {
        let Fanout::Scatter { plan, .. } = fanout else {
            return Ok(());
        };
        let Some(description) = answers.iter().find_map(|a| {
            a.messages()
                .find(|(tag, _)| *tag == bt::ROW_DESCRIPTION)
                .map(|(_, body)| body)
        }) else {
            return Ok(());
        };
        let ordered = plan.merge.order_by.iter().map(|k| k.column).chain(
            plan.merge.columns.iter().enumerate().filter_map(|(i, c)| {
                matches!(
                    c,
                    crate::scatter::ColumnMerge::Min | crate::scatter::ColumnMerge::Max
                )
                .then_some(i)
            }),
        );
        let types = column_types(description);
        let text_ordered = ordered
            .into_iter()
            .any(|i| types.get(i).is_some_and(|oid| TEXT_OIDS.contains(oid)));
        if !text_ordered {
            return Ok(());
        }
        let router = std::sync::Arc::clone(&self.shard_state_ref().router);
        let byte_order = match router.text_sorts_bytewise() {
            Some(known) => known,
            None => {
                let Some((_, lease)) = leases.first_mut() else {
                    return Ok(());
                };
                let mut request = BytesMut::new();
                // ICU databases sort by ICU whatever their datcollate says.
                put_query(
                    &mut request,
                    "SELECT CASE WHEN datlocprovider = 'c' THEN datcollate ELSE 'icu' END \
                     FROM pg_database WHERE datname = current_database()",
                );
                let answer =
                    super::exchange::exchange(lease.conn(), &request, Until::ReadyForQuery).await?;
                let collation = answer
                    .messages()
                    .find(|(tag, _)| *tag == bt::DATA_ROW)
                    .and_then(|(_, body)| super::twophase::first_text_field(body))
                    .unwrap_or_default();
                let bytewise = matches!(collation.as_str(), "C" | "POSIX" | "C.UTF-8" | "C.utf8");
                router.learn_text_sorts_bytewise(bytewise);
                bytewise
            }
        };
        if byte_order {
            Ok(())
        } else {
            Err(PgError::error(
                "0A000",
                "ORDER BY, MIN or MAX on text across shards needs the C collation, and this database sorts text by another one",
            )
            .with_hint(
                "constrain the query to one shard (a condition on the sharding key), \
                 or keep sharded data in databases created with LC_COLLATE 'C'",
            ))
        }
    }

    fn outbox_notices(&mut self, answer: &Answer) {
        if !answer.notices.is_empty() {
            self.reply_raw(Bytes::copy_from_slice(&answer.notices));
        }
    }

    fn compose(&self, fanout: &Fanout, answers: &[Answer]) -> Result<FanoutResult, PgError> {
        match fanout {
            Fanout::Scatter { plan, .. } => {
                merge_rows(plan, answers, self.shard_state_ref().max_result_bytes)
            }
            Fanout::Write {
                parts,
                reorder,
                replicated,
            } => Ok(if *replicated {
                let one = parts.len().min(answers.len()).min(1);
                combine_writes(&parts[..one], false, &answers[..one])
            } else {
                combine_writes(parts, *reorder, answers)
            }),
        }
    }

    /// Rolls back every lease's transaction (best effort; a server that
    /// fails it is closed when its lease drops).
    pub(crate) async fn rollback_leases(&mut self, leases: &mut [(usize, Lease)]) {
        for (_, lease) in leases.iter_mut() {
            if lease.conn_ref().status != b'I' {
                let _ = Box::pin(lease.conn().run_maintenance("ROLLBACK")).await;
            }
        }
    }
}

impl Answer {
    /// The ErrorResponse as a [`PgError`] keeping every field the proxy
    /// relays (SQLSTATE, message, hint).
    fn error_frame(&self) -> Option<PgError> {
        let frame = self.error.as_ref()?;
        let body = &frame[crate::net::HEADER_LEN..];
        let field = |code| crate::net::messages::error_field(body, code);
        let mut error = PgError::error(
            field(b'C').unwrap_or("XX000"),
            field(b'M').unwrap_or("").to_string(),
        );
        if let Some(hint) = field(b'H') {
            error = error.with_hint(hint);
        }
        Some(error)
    }
}

/// Type OIDs of text-like columns whose order depends on the collation:
/// text, varchar, bpchar.
const TEXT_OIDS: [u32; 3] = [25, 1043, 1042];

/// The type OID of each column of a RowDescription body.
fn column_types(description: &[u8]) -> Vec<u32> {
    let mut types = Vec::new();
    let mut rest = description.get(2..).unwrap_or_default();
    while let Some(end) = rest.iter().position(|&b| b == 0) {
        let Some(fields) = rest.get(end + 1..end + 19) else {
            break;
        };
        types.push(u32::from_be_bytes([
            fields[6], fields[7], fields[8], fields[9],
        ]));
        rest = &rest[end + 19..];
    }
    types
}

/// Statements Postgres refuses inside a transaction block (run on each
/// shard on its own, not atomically).
fn cannot_run_in_transaction(sql: &str) -> bool {
    let upper = sql.to_ascii_uppercase();
    upper.contains("CONCURRENTLY")
        || upper.trim_start().starts_with("VACUUM")
        || upper.contains("ALTER SYSTEM")
        || (upper.contains("ALTER TYPE") && upper.contains("ADD VALUE"))
}

/// Each shard's request: a simple Query, or Parse/Bind/Describe/Execute/Sync
/// of the unnamed statement when the client used the extended protocol.
fn build_requests(fanout: &Fanout, extended: Option<&Extended>, shards: &[usize]) -> Vec<BytesMut> {
    let request = |sql: &str, keep: Option<&[usize]>, columns: Option<usize>| {
        let mut out = BytesMut::new();
        match extended {
            None => put_query(&mut out, sql),
            Some(ext) => put_extended(&mut out, sql, ext, keep, columns),
        }
        out
    };
    match fanout {
        Fanout::Scatter { plan, .. } => {
            // With `SELECT *` the column count is known only from the shards.
            let columns = plan
                .wildcard_at
                .is_none()
                .then_some(plan.merge.columns.len());
            shards
                .iter()
                .map(|_| request(&plan.shard_sql, None, columns))
                .collect()
        }
        Fanout::Write { parts, .. } => parts
            .iter()
            .map(|p| request(&p.sql, p.params.as_deref(), None))
            .collect(),
    }
}

fn put_extended(
    out: &mut BytesMut,
    sql: &str,
    ext: &Extended,
    keep: Option<&[usize]>,
    columns: Option<usize>,
) {
    let bind = BindValues::parse(&ext.bind);
    put_message(out, tag::PARSE, |b| {
        put_cstr(b, b"");
        put_cstr(b, sql.as_bytes());
        put_param_types(b, &ext.param_types, keep);
    });
    put_message(out, tag::BIND, |b| {
        put_cstr(b, b"");
        put_cstr(b, b"");
        match &bind {
            Some(values) => values.encode(keep, columns, b),
            None => b.extend_from_slice(&ext.bind),
        }
    });
    put_message(out, tag::DESCRIBE, |b| {
        b.put_u8(b'P');
        put_cstr(b, b"");
    });
    put_message(out, tag::EXECUTE, |b| {
        put_cstr(b, b"");
        b.put_i32(0);
    });
    crate::net::messages::put_empty(out, tag::SYNC);
}

/// Writes the Parse parameter-type list, keeping only `keep` (1-based).
fn put_param_types(out: &mut BytesMut, types: &[u8], keep: Option<&[usize]>) {
    let Some(keep) = keep else {
        out.extend_from_slice(types);
        return;
    };
    let oid = |n: usize| -> u32 {
        let at = 2 + (n - 1) * 4;
        types
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_be_bytes)
    };
    out.put_i16(i16::try_from(keep.len()).unwrap_or(i16::MAX));
    for &n in keep {
        out.put_u32(if n == 0 { 0 } else { oid(n) });
    }
}

fn merge_rows(
    plan: &ScatterPlan,
    answers: &[Answer],
    max_bytes: usize,
) -> Result<FanoutResult, PgError> {
    let Some(description) = answers.iter().find_map(|a| {
        a.messages()
            .find(|(tag, _)| *tag == bt::ROW_DESCRIPTION)
            .map(|(_, body)| body)
    }) else {
        return Ok(FanoutResult {
            tag: answers
                .first()
                .and_then(Answer::command_tag)
                .unwrap_or("SELECT 0")
                .to_string(),
            ..FanoutResult::default()
        });
    };
    let columns = description
        .get(..2)
        .map_or(0, |b| usize::from(u16::from_be_bytes([b[0], b[1]])));
    let plan = plan
        .for_shard_columns(columns)
        .map_err(|message| PgError::error("0A000", message))?;
    let mut merger = Merger::new(&plan, description, answers.len(), max_bytes)?;
    for (shard, answer) in answers.iter().enumerate() {
        for (tag, body) in answer.messages() {
            if tag == bt::DATA_ROW {
                merger.push_row(shard, body)?;
            }
        }
    }
    let mut head = BytesMut::new();
    merger.write_row_description(&mut head);
    let mut rows = BytesMut::new();
    let count = merger.finish(&mut rows)?;
    Ok(FanoutResult {
        row_description: Some(head.freeze()),
        rows: rows.freeze(),
        sent_bytes: 0,
        tag: format!("SELECT {count}"),
    })
}

/// Sums the shards' command tags and gathers RETURNING rows.
fn combine_writes(parts: &[WritePart], reorder: bool, answers: &[Answer]) -> FanoutResult {
    let row_description = answers.iter().find_map(|a| {
        a.messages()
            .find(|(tag, _)| *tag == bt::ROW_DESCRIPTION)
            .map(|(_, body)| message(bt::ROW_DESCRIPTION, |b| b.extend_from_slice(body)))
    });
    let per_shard: Vec<Vec<&[u8]>> = answers
        .iter()
        .map(|a| {
            a.messages()
                .filter(|(tag, _)| *tag == bt::DATA_ROW)
                .map(|(_, body)| body)
                .collect()
        })
        .collect();
    let mut rows = BytesMut::new();
    let counts_match = parts
        .iter()
        .zip(&per_shard)
        .all(|(part, rows)| part.rows.len() == rows.len());
    if reorder && counts_match {
        let mut ordered: Vec<(usize, &[u8])> = parts
            .iter()
            .zip(&per_shard)
            .flat_map(|(part, rows)| part.rows.iter().copied().zip(rows.iter().copied()))
            .collect();
        ordered.sort_by_key(|(row, _)| *row);
        for (_, body) in ordered {
            put_message(&mut rows, bt::DATA_ROW, |b| b.extend_from_slice(body));
        }
    } else {
        for body in per_shard.iter().flatten() {
            put_message(&mut rows, bt::DATA_ROW, |b| b.extend_from_slice(body));
        }
    }
    let tags: Vec<&str> = answers.iter().filter_map(Answer::command_tag).collect();
    FanoutResult {
        row_description,
        rows: rows.freeze(),
        sent_bytes: 0,
        tag: sum_tags(&tags),
    }
}

/// Adds up row counts of command tags (`INSERT 0 n`, `UPDATE n`, ...);
/// tags without a count (DDL) are the first shard's.
pub fn sum_tags(tags: &[&str]) -> String {
    let Some(first) = tags.first() else {
        return String::new();
    };
    let counted = [
        "INSERT", "UPDATE", "DELETE", "SELECT", "COPY", "MERGE", "MOVE", "FETCH",
    ];
    let verb = first.split(' ').next().unwrap_or("");
    if !counted.contains(&verb) {
        return first.to_string();
    }
    let total: u64 = tags
        .iter()
        .filter_map(|t| t.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    match verb {
        "INSERT" => format!("INSERT 0 {total}"),
        verb => format!("{verb} {total}"),
    }
}

impl FanoutResult {
    /// Queues the rows (up to `max_rows` when positive) and then either
    /// PortalSuspended or the CommandComplete. Returns the messages.
    pub fn take_rows(&mut self, max_rows: i32) -> Bytes {
        let mut out = BytesMut::new();
        let rest = &self.rows[self.sent_bytes..];
        let mut taken = 0usize;
        let mut count = 0i32;
        let mut offset = 0usize;
        while offset < rest.len() && (max_rows <= 0 || count < max_rows) {
            let Ok(Some(frame)) = crate::net::peek_frame(&rest[offset..], usize::MAX) else {
                break;
            };
            offset += frame.len;
            taken = offset;
            count += 1;
        }
        out.extend_from_slice(&rest[..taken]);
        self.sent_bytes += taken;
        if self.sent_bytes < self.rows.len() {
            crate::net::messages::put_empty(&mut out, bt::PORTAL_SUSPENDED);
        } else {
            out.extend_from_slice(&command_complete(&self.tag));
        }
        out.freeze()
    }

    /// The whole answer to a simple query: description, rows, completion.
    pub fn into_simple_answer(mut self) -> Bytes {
        let mut out = BytesMut::new();
        if let Some(head) = self.row_description.take() {
            out.extend_from_slice(&head);
        }
        out.extend_from_slice(&self.take_rows(0));
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_counted_tags_and_keeps_ddl_tags() {
        assert_eq!(sum_tags(&["INSERT 0 2", "INSERT 0 3"]), "INSERT 0 5");
        assert_eq!(sum_tags(&["UPDATE 1", "UPDATE 0", "UPDATE 4"]), "UPDATE 5");
        assert_eq!(sum_tags(&["CREATE TABLE", "CREATE TABLE"]), "CREATE TABLE");
        assert_eq!(sum_tags(&[]), "");
    }

    /// Tags of the whole messages in `bytes`.
    fn tags(bytes: &[u8]) -> Vec<u8> {
        super::super::exchange::Messages::new(bytes)
            .map(|(tag, _)| tag)
            .collect()
    }

    #[test]
    fn portal_rows_come_in_chunks() {
        let mut rows = BytesMut::new();
        for i in 0..5u8 {
            put_message(&mut rows, bt::DATA_ROW, |b| b.put_u8(i));
        }
        let mut result = FanoutResult {
            rows: rows.freeze(),
            tag: "SELECT 5".into(),
            ..FanoutResult::default()
        };
        let d = bt::DATA_ROW;
        assert_eq!(tags(&result.take_rows(2)), vec![d, d, bt::PORTAL_SUSPENDED]);
        assert_eq!(tags(&result.take_rows(2)), vec![d, d, bt::PORTAL_SUSPENDED]);
        assert_eq!(tags(&result.take_rows(2)), vec![d, bt::COMMAND_COMPLETE]);
        assert_eq!(tags(&result.take_rows(0)), vec![bt::COMMAND_COMPLETE]);
    }

    #[test]
    fn a_simple_answer_has_description_rows_and_completion() {
        let mut rows = BytesMut::new();
        put_message(&mut rows, bt::DATA_ROW, |b| b.put_u8(1));
        let result = FanoutResult {
            row_description: Some(message(bt::ROW_DESCRIPTION, |b| b.put_i16(0))),
            rows: rows.freeze(),
            tag: "SELECT 1".into(),
            ..FanoutResult::default()
        };
        assert_eq!(
            tags(&result.into_simple_answer()),
            vec![bt::ROW_DESCRIPTION, bt::DATA_ROW, bt::COMMAND_COMPLETE]
        );
    }
}
