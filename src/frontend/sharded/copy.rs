//! `COPY` on a sharded database.
//!
//! `COPY t FROM STDIN` into a sharded table is split row by row: each row's
//! key field is read as it streams by and the row goes to its shard's own
//! `COPY`, all inside one transaction per shard, committed together (two-
//! phase) when the client ends the COPY. Into a reference table every shard
//! gets every row. `COPY t TO STDOUT` of a sharded table gathers the rows of
//! every shard into one COPY stream.

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;

use super::exchange::{Until, exchange, exchange_all, read_answer};
use super::fanout::sum_tags;
use super::{Role, command_complete, message};
use crate::backend::pool::Lease;
use crate::frontend::params::quote_literal;
use crate::frontend::pipeline::Synthetic;
use crate::frontend::session::{Session, SessionEnd};
use crate::net::messages::{PgError, backend_tag as bt, put_empty, put_message, put_query, tag};
use crate::router::{CopyFormat, CopyTarget, Hint, Route, StatementAnalysis};
use crate::sharding::copy::{CopyFormat as SplitFormat, CopyOptions, RowSplitter};
use crate::sharding::map::{KeyInput, ShardedTable, TableClass};

/// Buffered COPY data per shard before it is written out.
const SHARD_FLUSH_BYTES: usize = 64 * 1024;

/// A COPY FROM STDIN being split across shards.
pub struct CopySplit {
    /// Each target shard's server, in COPY IN mode.
    leases: Vec<(usize, Lease)>,
    /// Finds rows and their keys; `None` for a reference table (every row
    /// goes everywhere).
    splitter: Option<RowSplitter>,
    /// The sharded table rows route by.
    table: Option<ShardedTable>,
    /// The first row is a CSV header every shard's COPY skips itself.
    header_pending: bool,
    /// The proxy opened the shards' transactions and commits them.
    implicit: bool,
    /// The COPY came as a simple Query (ReadyForQuery follows its end).
    simple: bool,
    /// The first error; the rest of the client's data is then ignored.
    failed: Option<PgError>,
}

/// Where a COPY runs.
pub enum CopyPlan {
    /// On one shard, like any statement.
    Single(usize),
    /// Rows into a sharded table, split by key.
    Split(ShardedTable),
    /// Rows into a reference table, to every shard.
    Broadcast,
    /// Rows out of a sharded table, from every shard that may hold some.
    Gather(Vec<usize>),
}

impl Session {
    /// Decides where a COPY runs, from the router's decision.
    pub(crate) fn copy_plan(
        &self,
        statement: &StatementAnalysis,
        hint: Option<&Hint>,
    ) -> Result<CopyPlan, PgError> {
        let st = self.shard_state_ref();
        Ok(match self.route_statement(statement, hint, None)? {
            Route::Single(shard) => CopyPlan::Single(shard),
            Route::Concat { shards } | Route::Scatter { shards, .. } => CopyPlan::Gather(shards),
            Route::AllShards { .. } => CopyPlan::Broadcast,
            Route::SplitCopy { .. } => {
                let target = crate::router::copy_target(statement).ok_or_else(|| {
                    PgError::error("0A000", "this COPY cannot be split across shards")
                })?;
                match st.map.table(&target.table) {
                    TableClass::Sharded(t) => CopyPlan::Split(t.clone()),
                    _ => CopyPlan::Single(st.map.default_shard),
                }
            }
            Route::SplitInsert { .. } | Route::NeedsKeyPosition { .. } => {
                return Err(PgError::error("XX000", "unexpected route for COPY"));
            }
        })
    }

    /// Starts a COPY the proxy runs across shards (`simple`: it came as a
    /// simple Query). Single-shard COPYs are forwarded by the caller.
    pub(crate) async fn start_copy(
        &mut self,
        statement: &StatementAnalysis,
        plan: CopyPlan,
        simple: bool,
    ) -> Result<Result<(), PgError>, SessionEnd> {
        let target = crate::router::copy_target(statement);
        let header = target.as_ref().is_some_and(|t| t.header);
        if let (None, CopyPlan::Split(_) | CopyPlan::Broadcast) = (&target, &plan) {
            return Ok(Err(PgError::error(
                "0A000",
                "only COPY of a table FROM STDIN can be split across shards",
            )));
        }
        match plan {
            CopyPlan::Single(_) => Ok(Err(PgError::error(
                "XX000",
                "single-shard COPY is forwarded",
            ))),
            CopyPlan::Gather(shards) => {
                let answer = self
                    .gather_copy_out(&statement.sql, &shards, header)
                    .await?;
                match answer {
                    Ok(bytes) => {
                        self.reply_raw(bytes);
                        if simple {
                            let status = self.client_status();
                            self.pipeline.reply(Synthetic::ReadyForQuery(status));
                        }
                        Ok(Ok(()))
                    }
                    Err(e) => Ok(Err(e)),
                }
            }
            CopyPlan::Split(table) => {
                let target = target.expect("checked above");
                self.begin_copy_in(statement, &target, Some(table), simple)
                    .await
            }
            CopyPlan::Broadcast => {
                let target = target.expect("checked above");
                self.begin_copy_in(statement, &target, None, simple).await
            }
        }
    }

    async fn begin_copy_in(
        &mut self,
        statement: &StatementAnalysis,
        target: &CopyTarget,
        table: Option<ShardedTable>,
        simple: bool,
    ) -> Result<Result<(), PgError>, SessionEnd> {
        if target.format == CopyFormat::Binary {
            return Ok(Err(PgError::error(
                "0A000",
                "binary COPY into a sharded or reference table is not supported",
            )
            .with_hint(
                "use FORMAT text or csv; shardwire reads each row's sharding key",
            )));
        }
        let shards = match &table {
            Some(t) => self.shard_state_ref().map.shards_of(t),
            None => self.shard_state_ref().map.shards.clone(),
        };
        let implicit = !self.in_transaction() && shards.len() > 1;
        let mut leases = self.take_leases(&shards, Role::Primary).await?;
        self.note_fanout(&mut leases, true);
        let started = async {
            let splitter = match &table {
                Some(t) => {
                    let key_field = key_field(&mut leases[0].1, target, t).await?;
                    Some(RowSplitter::new(copy_options(target)?, key_field))
                }
                None => None,
            };
            if implicit {
                for (_, lease) in &mut leases {
                    Box::pin(lease.conn().run_maintenance("BEGIN")).await?;
                }
            }
            let mut request = BytesMut::new();
            put_query(&mut request, &statement.sql);
            let answers = {
                let conns = leases
                    .iter_mut()
                    .map(|(_, l)| (l.conn(), &request[..]))
                    .collect();
                exchange_all(conns, Until::CopyIn).await?
            };
            if let Some(error) = answers.iter().find_map(|a| a.error_summary()) {
                return Err(error);
            }
            let response = answers
                .first()
                .and_then(|a| a.messages().find(|(tag, _)| *tag == bt::COPY_IN))
                .map(|(_, body)| message(bt::COPY_IN, |b| b.extend_from_slice(body)))
                .ok_or_else(|| PgError::error("XX000", "a shard did not start the COPY"))?;
            Ok((splitter, response))
        };
        match started.await {
            Ok((splitter, response)) => {
                self.reply_raw(response);
                self.shard_state().copy_in = Some(Box::new(CopySplit {
                    leases,
                    splitter,
                    table,
                    header_pending: target.header,
                    implicit,
                    simple,
                    failed: None,
                }));
                Ok(Ok(()))
            }
            Err(e) => {
                self.abandon_copy(&mut leases).await;
                self.return_leases(leases);
                Ok(Err(e))
            }
        }
    }

    /// Ends the shards' COPY and rolls back what the proxy opened.
    async fn abandon_copy(&mut self, leases: &mut [(usize, Lease)]) {
        let mut fail = BytesMut::new();
        put_message(&mut fail, tag::COPY_FAIL, |b| {
            crate::net::messages::put_cstr(b, b"COPY abandoned by shardwire")
        });
        for (_, lease) in leases.iter_mut() {
            if lease.conn_ref().status == b'I' || lease.conn_ref().status == b'T' {
                let conn = lease.conn();
                if conn.writer.write_all(&fail).await.is_ok() {
                    let _ = read_answer(conn, Until::ReadyForQuery).await;
                }
            }
        }
        self.rollback_leases(leases).await;
    }

    /// CopyData, CopyDone or CopyFail of a split COPY.
    pub(crate) async fn sharded_copy_message(
        &mut self,
        tag_byte: u8,
        body: &[u8],
    ) -> Result<(), SessionEnd> {
        let Some(mut copy) = self.shard_state().copy_in.take() else {
            return Ok(());
        };
        match tag_byte {
            tag::COPY_DATA => {
                if copy.failed.is_none() {
                    if let Err(e) = self.route_copy_rows(&mut copy, body, false) {
                        copy.failed = Some(e);
                    } else if let Err(e) = flush_shards(&mut copy, SHARD_FLUSH_BYTES).await {
                        return Err(SessionEnd::Fatal(e));
                    }
                }
                self.shard_state().copy_in = Some(copy);
                Ok(())
            }
            tag::COPY_DONE => {
                if copy.failed.is_none()
                    && let Err(e) = self.route_copy_rows(&mut copy, &[], true)
                {
                    copy.failed = Some(e);
                }
                self.finish_copy(copy).await
            }
            _ => {
                let reason =
                    String::from_utf8_lossy(body.strip_suffix(b"\0").unwrap_or(body)).into_owned();
                copy.failed.get_or_insert_with(|| {
                    PgError::error("57014", format!("COPY from stdin failed: {reason}"))
                });
                self.finish_copy(copy).await
            }
        }
    }

    /// Sends each complete row of `data` to its shard (`end`: the data is
    /// over, a final unterminated row counts).
    fn route_copy_rows(&self, copy: &mut CopySplit, data: &[u8], end: bool) -> Result<(), PgError> {
        let map = &self.shard_state_ref().map;
        let CopySplit {
            leases,
            splitter,
            table,
            header_pending,
            ..
        } = copy;
        let (Some(splitter), Some(table)) = (splitter.as_mut(), table.as_ref()) else {
            // Reference table: every shard gets the data as it came.
            for (_, lease) in leases.iter_mut() {
                put_message(&mut lease.conn().outbox, tag::COPY_DATA, |b| {
                    b.extend_from_slice(data)
                });
            }
            return Ok(());
        };
        let mut routing_error = None;
        let mut on_row = |row: &[u8], key: Option<std::borrow::Cow<'_, [u8]>>| {
            if routing_error.is_some() {
                return;
            }
            if std::mem::take(header_pending) {
                for (_, lease) in leases.iter_mut() {
                    put_message(&mut lease.conn().outbox, tag::COPY_DATA, |b| {
                        b.extend_from_slice(row)
                    });
                }
                return;
            }
            let input = match key.as_deref() {
                None => KeyInput::Null,
                Some(bytes) => match std::str::from_utf8(bytes) {
                    Ok(text) => KeyInput::Text(text),
                    Err(_) => {
                        routing_error =
                            Some(PgError::error("22021", "invalid UTF-8 in a COPY key field"));
                        return;
                    }
                },
            };
            match map.shard_for_input(table, input) {
                Ok(shard) => match leases.iter_mut().find(|(s, _)| *s == shard) {
                    Some((_, lease)) => {
                        put_message(&mut lease.conn().outbox, tag::COPY_DATA, |b| {
                            b.extend_from_slice(row)
                        })
                    }
                    None => {
                        routing_error = Some(PgError::error(
                            "XX000",
                            "row routed to a shard outside the COPY",
                        ))
                    }
                },
                Err(e) => routing_error = Some(crate::router::key_error(e)),
            }
        };
        let fed = if end {
            splitter.finish(&mut on_row)
        } else {
            splitter.feed(data, &mut on_row).map(drop)
        };
        if let Err(e) = fed {
            let mut error = PgError::error(e.sqlstate(), e.to_string());
            if let Some(hint) = e.hint() {
                error = error.with_hint(hint);
            }
            return Err(error);
        }
        routing_error.map_or(Ok(()), Err)
    }

    /// Ends a split COPY: the shards' counts are summed and their
    /// transactions committed together (or everything rolled back).
    async fn finish_copy(&mut self, mut copy: Box<CopySplit>) -> Result<(), SessionEnd> {
        let mut leases = std::mem::take(&mut copy.leases);
        let result = match copy.failed.take() {
            Some(error) => {
                self.abandon_copy(&mut leases).await;
                Err(error)
            }
            None => {
                let mut done = BytesMut::new();
                put_empty(&mut done, tag::COPY_DONE);
                let answers = {
                    let conns = leases
                        .iter_mut()
                        .map(|(_, l)| (l.conn(), &done[..]))
                        .collect();
                    exchange_all(conns, Until::ReadyForQuery).await?
                };
                match answers.iter().find_map(|a| a.error_summary()) {
                    Some(error) => {
                        self.rollback_leases(&mut leases).await;
                        Err(error)
                    }
                    None => {
                        let tags: Vec<&str> =
                            answers.iter().filter_map(|a| a.command_tag()).collect();
                        let total = if copy.table.is_some() {
                            sum_tags(&tags)
                        } else {
                            tags.first()
                                .map_or_else(|| "COPY 0".to_string(), |t| t.to_string())
                        };
                        let committed = if copy.implicit {
                            self.commit_two_phase(&mut leases).await
                        } else {
                            Ok(())
                        };
                        committed.map(|()| total)
                    }
                }
            }
        };
        self.return_leases(leases);
        match result {
            Ok(total) => {
                self.reply_raw(command_complete(&total));
                if copy.simple {
                    let status = self.client_status();
                    self.pipeline.reply(Synthetic::ReadyForQuery(status));
                }
            }
            Err(e) => {
                self.pipeline.reply(Synthetic::Error(e));
                if copy.simple {
                    let status = self.client_status();
                    self.pipeline.reply(Synthetic::ReadyForQuery(status));
                }
            }
        }
        Ok(())
    }

    /// COPY ... TO STDOUT of a sharded table: every shard's rows in one
    /// stream (a CSV header once).
    async fn gather_copy_out(
        &mut self,
        sql: &str,
        shards: &[usize],
        header: bool,
    ) -> Result<Result<Bytes, PgError>, SessionEnd> {
        let mut leases = self.take_leases(shards, Role::Primary).await?;
        let mut request = BytesMut::new();
        put_query(&mut request, sql);
        let answers = {
            let conns = leases
                .iter_mut()
                .map(|(_, l)| (l.conn(), &request[..]))
                .collect();
            exchange_all(conns, Until::ReadyForQuery).await
        };
        self.return_leases(leases);
        let answers = answers?;
        if let Some(error) = answers.iter().find_map(|a| a.error_summary()) {
            return Ok(Err(error));
        }
        let mut out = BytesMut::new();
        let mut tags = Vec::new();
        for (i, answer) in answers.iter().enumerate() {
            let mut first_data = true;
            for (tag_byte, body) in answer.messages() {
                match tag_byte {
                    bt::COPY_OUT if i == 0 => {
                        put_message(&mut out, bt::COPY_OUT, |b| b.extend_from_slice(body))
                    }
                    tag::COPY_DATA => {
                        let skip = header && i > 0 && std::mem::take(&mut first_data);
                        if !skip {
                            put_message(&mut out, tag::COPY_DATA, |b| b.extend_from_slice(body));
                        }
                    }
                    _ => {}
                }
            }
            tags.extend(answer.command_tag());
        }
        put_empty(&mut out, tag::COPY_DONE);
        out.extend_from_slice(&command_complete(&sum_tags(&tags)));
        Ok(Ok(out.freeze()))
    }
}

/// Writes out shards' buffered COPY data beyond `threshold` bytes.
async fn flush_shards(copy: &mut CopySplit, threshold: usize) -> Result<(), PgError> {
    for (_, lease) in &mut copy.leases {
        let conn = lease.conn();
        if conn.outbox.len() >= threshold {
            let data = std::mem::take(&mut conn.outbox);
            conn.writer
                .write_all(&data)
                .await
                .map_err(|e| PgError::fatal("08006", format!("lost a shard during COPY: {e}")))?;
            conn.outbox = data;
            conn.outbox.clear();
        }
    }
    Ok(())
}

/// Position of the key column among the COPY's columns: from its column
/// list, or from the table's column order on a shard.
async fn key_field(
    lease: &mut Lease,
    target: &CopyTarget,
    table: &ShardedTable,
) -> Result<usize, PgError> {
    match &target.columns {
        Some(columns) => columns
            .iter()
            .position(|c| *c == table.key_column)
            .ok_or_else(|| missing_key_column(table)),
        None => key_position(lease, table, true).await,
    }
}

fn missing_key_column(table: &ShardedTable) -> PgError {
    PgError::error(
        "0A000",
        format!(
            "COPY into sharded table {} must include its sharding key column {}",
            table.name, table.key_column
        ),
    )
}

/// Position of a sharded table's key in the table's column order, read
/// from the catalog of the shard behind `lease`. COPY without a column
/// list skips generated columns (`for_copy`); INSERT without one does not.
pub async fn key_position(
    lease: &mut Lease,
    table: &ShardedTable,
    for_copy: bool,
) -> Result<usize, PgError> {
    let regclass = table
        .name
        .split('.')
        .map(|part| format!("\"{}\"", part.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".");
    let sql = format!(
        "SELECT attname FROM pg_attribute WHERE attrelid = {}::regclass \
         AND attnum > 0 AND NOT attisdropped {} ORDER BY attnum",
        quote_literal(&regclass),
        if for_copy {
            "AND attgenerated = ''"
        } else {
            ""
        }
    );
    let mut request = BytesMut::new();
    put_query(&mut request, &sql);
    let answer = exchange(lease.conn(), &request, Until::ReadyForQuery).await?;
    if let Some(error) = answer.error_summary() {
        return Err(error);
    }
    answer
        .messages()
        .filter(|(tag, _)| *tag == bt::DATA_ROW)
        .position(|(_, body)| {
            super::twophase::first_text_field(body).as_deref() == Some(&table.key_column)
        })
        .ok_or_else(|| missing_key_column(table))
}

/// The splitter options matching the COPY statement's.
fn copy_options(target: &CopyTarget) -> Result<CopyOptions, PgError> {
    let mut options = match target.format {
        CopyFormat::Csv => CopyOptions::csv(),
        _ => CopyOptions::text(),
    };
    debug_assert!(matches!(
        options.format,
        SplitFormat::Text | SplitFormat::Csv
    ));
    let single_byte = |c: char, what: &str| {
        u8::try_from(u32::from(c))
            .ok()
            .filter(u8::is_ascii)
            .ok_or_else(|| {
                PgError::error(
                    "0A000",
                    format!("COPY {what} must be a single one-byte character"),
                )
            })
    };
    options.delimiter = single_byte(target.delimiter, "delimiter")?;
    options.quote = single_byte(target.quote, "quote")?;
    options.escape = single_byte(target.escape, "escape")?;
    options.null = target.null.as_bytes().to_vec();
    // The header is passed to every shard, whose own COPY skips it.
    options.header = false;
    Ok(options)
}
