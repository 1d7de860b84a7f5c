//! Extended-protocol messages on a sharded database.
//!
//! Parse only records the statement (it is prepared on demand wherever a
//! Bind sends it, under its content-derived name). Bind routes: the bind
//! values are what finds the sharding key of `WHERE key = $1`. A portal on
//! one shard lives on that shard's server; a portal that fans out is run by
//! the proxy when it is described or executed, and its merged rows are
//! handed out by Execute, honouring row limits.

use bytes::Bytes;

use super::fanout::{Extended, FanoutPortal};
use super::simple::{Target, aborted_transaction, route_target};
use super::{BindValues, Portal, message};
use crate::frontend::pipeline::{Expect, Synthetic};
use crate::frontend::session::{Session, SessionEnd};
use crate::frontend::statements::StatementDef;
use crate::net::messages::{
    PgError, backend_tag as bt, bind_parts, parse_parts, put_cstr, put_message, split_cstr, tag,
    target_parts,
};
use crate::router::StatementKind;
use crate::router::readwrite::Access;

impl Session {
    /// Parse: remembers the statement; routing waits for Bind.
    pub(crate) async fn sharded_parse(&mut self, body: &[u8]) -> Result<(), SessionEnd> {
        let Some((name, content)) = parse_parts(body) else {
            return Err(PgError::fatal("08P01", "malformed Parse message").into());
        };
        if !name.is_empty() && self.statements.contains(name) {
            self.reply_error(
                PgError::error(
                    "42P05",
                    format!(
                        "prepared statement \"{}\" already exists",
                        String::from_utf8_lossy(name)
                    ),
                ),
                false,
            );
            return Ok(());
        }
        let sql = statement_sql(content);
        let analysis = {
            let st = self.shard_state_ref();
            st.router.analyze(&sql, &st.map)
        };
        if analysis.statements.len() > 1 {
            self.reply_error(
                PgError::error(
                    "42601",
                    "cannot insert multiple commands into a prepared statement",
                ),
                false,
            );
            return Ok(());
        }
        self.statements.insert(name, StatementDef::new(content));
        if !name.is_empty() {
            self.note_parsed(name);
        }
        self.pipeline.reply(Synthetic::ParseComplete);
        Ok(())
    }

    /// Bind: routes the statement with its values.
    pub(crate) async fn sharded_bind(&mut self, body: &[u8]) -> Result<(), SessionEnd> {
        let Some((portal, statement_name, rest)) = bind_parts(body) else {
            return Err(PgError::fatal("08P01", "malformed Bind message").into());
        };
        let Some(def) = self.statements.get(statement_name).cloned() else {
            self.reply_error(missing_statement(statement_name), false);
            return Ok(());
        };
        let Some(values) = BindValues::parse(rest) else {
            return Err(PgError::fatal("08P01", "malformed Bind message").into());
        };
        let sql = statement_sql(&def.content);
        let analysis = {
            let st = self.shard_state_ref();
            st.router.analyze(&sql, &st.map)
        };
        self.shard_state().role_hint = analysis.role_hint;
        let portal_name = Bytes::copy_from_slice(portal);
        let Some(statement) = analysis.statements.first() else {
            // An empty statement: any shard answers EmptyQueryResponse.
            let shard = self.shard_state_ref().map.default_shard;
            return self
                .bind_on_shard(shard, Access::Write, portal_name, statement_name, rest)
                .await;
        };
        if statement.kind == StatementKind::Copy {
            match self.copy_plan(statement, analysis.hint.as_ref()) {
                Err(e) => {
                    self.reply_error(e, false);
                    return Ok(());
                }
                Ok(super::copy::CopyPlan::Single(shard)) => {
                    return self
                        .bind_on_shard(shard, Access::Write, portal_name, statement_name, rest)
                        .await;
                }
                Ok(_) => {}
            }
        }
        if self.proxy_handles(&statement.kind) || statement.kind == StatementKind::Copy {
            self.shard_state()
                .portals
                .insert(portal_name, Portal::Command(sql));
            self.reply_raw(message(bt::BIND_COMPLETE, |_| {}));
            return Ok(());
        }
        if self.transaction_failed() {
            self.reply_error(aborted_transaction(), false);
            return Ok(());
        }
        if statement.kind == StatementKind::Set && super::simple::resets_everything(&statement.sql)
        {
            self.shard_state().reset_settings();
        }
        let route = match self
            .route_learning(statement, analysis.hint.as_ref(), Some(&values))
            .await?
        {
            Ok(route) => route,
            Err(e) => {
                self.reply_error(e, false);
                return Ok(());
            }
        };
        match route_target(route, statement) {
            Ok(Target::Shard(shard)) => {
                self.bind_on_shard(shard, statement.access, portal_name, statement_name, rest)
                    .await?;
                self.note_if_setting(statement);
                Ok(())
            }
            Ok(Target::Fanout(fanout)) => {
                let param_types = param_types(&def.content);
                let portal = FanoutPortal {
                    fanout,
                    extended: Extended {
                        param_types,
                        bind: Bytes::copy_from_slice(rest),
                    },
                    result: None,
                };
                self.shard_state()
                    .portals
                    .insert(portal_name, Portal::Fanout(Box::new(portal)));
                self.reply_raw(message(bt::BIND_COMPLETE, |_| {}));
                Ok(())
            }
            Err(e) => {
                self.reply_error(e, false);
                Ok(())
            }
        }
    }

    async fn bind_on_shard(
        &mut self,
        shard: usize,
        access: Access,
        portal: Bytes,
        statement_name: &[u8],
        rest: &[u8],
    ) -> Result<(), SessionEnd> {
        let role = self.statement_role(access);
        self.activate_for(shard, role, false).await?;
        self.note_statement(access);
        let st = self.shard_state();
        let slot = Portal::Shard(shard, st.active_role);
        st.portals.insert(portal.clone(), slot);
        self.send_with_statement(statement_name, Expect::Bind, |out, name| {
            put_message(out, tag::BIND, |b| {
                put_cstr(b, &portal);
                put_cstr(b, name);
                b.extend_from_slice(rest);
            })
        })
        .await
    }

    /// Describe of a statement (any shard can describe it) or a portal.
    pub(crate) async fn sharded_describe(
        &mut self,
        message_bytes: &[u8],
        body: &[u8],
    ) -> Result<(), SessionEnd> {
        let Some((kind, name)) = target_parts(body) else {
            return Err(PgError::fatal("08P01", "malformed Describe message").into());
        };
        if kind == b'S' {
            if self.server.is_none() {
                // Any server can describe a statement: a replica when the
                // session's reads may go there.
                let shard = self.shard_state_ref().map.default_shard;
                let role = self.statement_role(Access::Read);
                self.activate_for(shard, role, false).await?;
            }
            return self
                .send_with_statement(name, Expect::Describe, |out, name| {
                    put_message(out, tag::DESCRIBE, |b| {
                        b.extend_from_slice(b"S");
                        put_cstr(b, name);
                    })
                })
                .await;
        }
        match self.shard_state_ref().portals.get(name) {
            Some(Portal::Shard(shard, role)) => {
                let (shard, role) = (*shard, *role);
                self.activate_for(shard, role, true).await?;
                self.send_active(message_bytes, Expect::Describe);
            }
            Some(Portal::Command(_)) => self.reply_raw(message(bt::NO_DATA, |_| {})),
            Some(Portal::Fanout(_)) => {
                let name = Bytes::copy_from_slice(name);
                match self.materialize(&name).await? {
                    Ok(Some(head)) => self.reply_raw(head),
                    Ok(None) => self.reply_raw(message(bt::NO_DATA, |_| {})),
                    Err(e) => self.reply_error(e, false),
                }
            }
            None => self.reply_error(missing_portal(name), false),
        }
        Ok(())
    }

    /// Runs a fan-out portal once; returns its RowDescription, if any.
    async fn materialize(
        &mut self,
        name: &Bytes,
    ) -> Result<Result<Option<Bytes>, PgError>, SessionEnd> {
        let Some(Portal::Fanout(mut portal)) = self.shard_state().portals.remove(name) else {
            return Ok(Err(missing_portal(name)));
        };
        if portal.result.is_none() {
            let result = self
                .run_fanout(&portal.fanout, Some(&portal.extended))
                .await?;
            portal.result = Some(result);
        }
        let head = match portal.result.as_ref() {
            Some(Ok(result)) => Ok(result.row_description.clone()),
            Some(Err(e)) => Err(e.clone()),
            None => Ok(None),
        };
        self.shard_state()
            .portals
            .insert(name.clone(), Portal::Fanout(portal));
        Ok(head)
    }

    /// Execute: on the portal's shard, from a fanned-out portal's buffered
    /// rows, or a proxy command.
    pub(crate) async fn sharded_execute(
        &mut self,
        message_bytes: &[u8],
        body: &[u8],
    ) -> Result<(), SessionEnd> {
        let Some((name, rest)) = split_cstr(body) else {
            return Err(PgError::fatal("08P01", "malformed Execute message").into());
        };
        let max_rows = rest
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, i32::from_be_bytes);
        let name = Bytes::copy_from_slice(name);
        match self.shard_state_ref().portals.get(&name) {
            Some(Portal::Shard(shard, role)) => {
                let (shard, role) = (*shard, *role);
                self.activate_for(shard, role, true).await?;
                self.send_active(message_bytes, Expect::Execute);
            }
            Some(Portal::Command(sql)) => {
                let sql = sql.clone();
                self.execute_command(&sql).await?;
            }
            Some(Portal::Fanout(_)) => {
                if let Err(e) = self.materialize(&name).await? {
                    self.reply_error(e, false);
                    return Ok(());
                }
                if let Some(Portal::Fanout(portal)) = self.shard_state().portals.get_mut(&name)
                    && let Some(Ok(result)) = portal.result.as_mut()
                {
                    let rows = result.take_rows(max_rows);
                    self.reply_raw(rows);
                }
            }
            None => self.reply_error(missing_portal(&name), false),
        }
        Ok(())
    }

    /// Executes a transaction-control, `SET shardwire.*` or COPY portal.
    async fn execute_command(&mut self, sql: &str) -> Result<(), SessionEnd> {
        let analysis = {
            let st = self.shard_state_ref();
            st.router.analyze(sql, &st.map)
        };
        let Some(statement) = analysis.statements.first() else {
            return Ok(());
        };
        if statement.kind == StatementKind::Copy {
            let answer = match self.copy_plan(statement, analysis.hint.as_ref()) {
                Ok(plan) => self.start_copy(statement, plan, false).await?,
                Err(e) => Err(e),
            };
            if let Err(e) = answer {
                self.reply_error(e, false);
            }
            return Ok(());
        }
        match self.run_command(statement).await? {
            Ok(bytes) => self.reply_raw(bytes),
            Err(e) => self.reply_error(e, false),
        }
        Ok(())
    }

    /// Close of a portal (a statement is only forgotten: see `on_close`).
    pub(crate) async fn sharded_close(
        &mut self,
        message_bytes: &[u8],
        body: &[u8],
    ) -> Result<(), SessionEnd> {
        let Some((kind, name)) = target_parts(body) else {
            return Err(PgError::fatal("08P01", "malformed Close message").into());
        };
        if kind == b'S' {
            self.statements.remove(name);
            self.pipeline.reply(Synthetic::CloseComplete);
            return Ok(());
        }
        match self.shard_state().portals.remove(name) {
            Some(Portal::Shard(shard, role)) => {
                self.activate_for(shard, role, true).await?;
                self.send_active(message_bytes, Expect::Close);
            }
            _ => self.pipeline.reply(Synthetic::CloseComplete),
        }
        Ok(())
    }

    /// Sync: every server with an unsynced batch gets one; the client gets
    /// one ReadyForQuery with the status of the whole transaction.
    pub(crate) async fn sharded_sync(&mut self, message_bytes: &[u8]) -> Result<(), SessionEnd> {
        self.skip_until_sync = false;
        if self.shard_state_ref().copy_in.is_some() {
            // A server in COPY IN ignores Sync; so does the proxy's split COPY.
            return Ok(());
        }
        if self.shard_state_ref().parked.iter().any(|p| p.unsynced) {
            // A batch over several shards: it commits (or fails) as one, so
            // the active shard's outcome decides what the others do.
            let failed = match self.drain_active().await {
                Err(SessionEnd::BatchFailed) => true,
                Err(end) => return Err(end),
                Ok(()) => self.pipeline.failed(),
            };
            self.skip_until_sync = false;
            self.sync_parked(failed).await?;
        }
        if !self.in_transaction() {
            self.shard_state()
                .portals
                .retain(|_, p| matches!(p, Portal::Shard(..)));
        }
        if self.server.is_some() {
            self.send_active(message_bytes, Expect::Sync);
        } else {
            let status = self.client_status();
            self.pipeline.reply(Synthetic::ReadyForQuery(status));
        }
        Ok(())
    }

    /// Sends Sync to parked servers with an unsynced batch (their answers
    /// were all delivered when they were parked). When the batch failed on
    /// another shard, each first gets a statement that cannot parse: the
    /// error aborts its part of the batch's implicit transaction, which Sync
    /// then ends, so no shard commits a part of a failed batch.
    async fn sync_parked(&mut self, batch_failed: bool) -> Result<(), SessionEnd> {
        let mut request = bytes::BytesMut::new();
        if batch_failed {
            put_message(&mut request, tag::PARSE, |b| {
                put_cstr(b, b"");
                put_cstr(b, b"shardwire aborts this batch: another shard failed");
                b.extend_from_slice(&0i16.to_be_bytes());
            });
        }
        crate::net::messages::put_empty(&mut request, tag::SYNC);
        let st = self.shard_state();
        for parked in st.parked.iter_mut().filter(|p| p.unsynced) {
            super::exchange::exchange(
                parked.lease.conn(),
                &request,
                super::exchange::Until::ReadyForQuery,
            )
            .await?;
            parked.lease.conn().prepared.unnamed = None;
            parked.unsynced = false;
        }
        Ok(())
    }
}

/// The SQL text of a Parse body's content (before the parameter types).
pub fn statement_sql(content: &[u8]) -> String {
    let text = split_cstr(content).map_or(content, |(sql, _)| sql);
    String::from_utf8_lossy(text).into_owned()
}

/// The parameter-type part of a Parse body's content.
fn param_types(content: &[u8]) -> Bytes {
    let types = split_cstr(content).map_or(&[][..], |(_, rest)| rest);
    if types.len() < 2 {
        Bytes::from_static(&[0, 0])
    } else {
        Bytes::copy_from_slice(types)
    }
}

fn missing_statement(name: &[u8]) -> PgError {
    PgError::error(
        "26000",
        format!(
            "prepared statement \"{}\" does not exist",
            String::from_utf8_lossy(name)
        ),
    )
}

fn missing_portal(name: &[u8]) -> PgError {
    PgError::error(
        "34000",
        format!(
            "portal \"{}\" does not exist",
            String::from_utf8_lossy(name)
        ),
    )
}
