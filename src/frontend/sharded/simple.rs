//! Simple-query handling on a sharded database, and the statements the
//! proxy answers itself in either protocol (transaction control,
//! `SET shardwire.*`).

use bytes::BytesMut;

use super::fanout::{Fanout, WritePart};
use super::{Portal, Role, command_complete};
use crate::frontend::pipeline::{Expect, Synthetic};
use crate::frontend::session::{Session, SessionEnd};
use crate::net::messages::{PgError, query_text};
use crate::router::readwrite::Access;
use crate::router::{Hint, Route, RouteInput, StatementAnalysis, StatementKind};

/// The error Postgres gives for statements in a failed transaction block.
pub fn aborted_transaction() -> PgError {
    PgError::error(
        "25P02",
        "current transaction is aborted, commands ignored until end of transaction block",
    )
}

impl Session {
    /// A simple Query on a sharded database.
    pub(crate) async fn sharded_query(
        &mut self,
        message: &[u8],
        body: &[u8],
    ) -> Result<(), SessionEnd> {
        self.statements.unnamed = None;
        let Ok(sql) = std::str::from_utf8(query_text(body)) else {
            self.reply_error(
                PgError::error("22021", "invalid byte sequence for encoding \"UTF8\""),
                true,
            );
            return Ok(());
        };
        let analysis = {
            let st = self.shard_state_ref();
            st.router.analyze(sql, &st.map)
        };
        self.shard_state().role_hint = analysis.role_hint;
        match analysis.statements.as_slice() {
            [] => {
                let shard = self.shard_for_unrouted(analysis.hint.as_ref())?;
                self.activate(shard).await?;
                self.send_active(message, Expect::ReadyForQuery);
                Ok(())
            }
            [statement] => {
                self.simple_statement(message, statement, analysis.hint.as_ref(), true)
                    .await
            }
            many => {
                self.multi_statement(message, many, analysis.hint.as_ref())
                    .await
            }
        }
    }

    /// The shard for something with no statement to route (an empty query,
    /// a function call): a hint's, the session's, the active or the default.
    fn shard_for_unrouted(&self, hint: Option<&Hint>) -> Result<usize, SessionEnd> {
        let st = self.shard_state_ref();
        if let Some(Hint::Shard(name)) = hint {
            return Ok(st.resolve_shard(name)?);
        }
        Ok(st.session_shard.unwrap_or(if self.server.is_some() {
            st.active
        } else {
            st.map.default_shard
        }))
    }

    /// Sends a client message to the active server and expects its answer.
    pub(crate) fn send_active(&mut self, message: &[u8], expect: Expect) {
        let conn = self
            .server
            .as_mut()
            .expect("activate() attaches a server")
            .conn();
        conn.outbox.extend_from_slice(message);
        self.pipeline.expect(expect, true, None);
    }

    /// Routes one statement of a simple Query. `alone`: it is the whole
    /// query string, so its answer ends with ReadyForQuery; otherwise the
    /// caller ends the string's answer.
    async fn simple_statement(
        &mut self,
        message: &[u8],
        statement: &StatementAnalysis,
        hint: Option<&Hint>,
        alone: bool,
    ) -> Result<(), SessionEnd> {
        let forwarded = if alone {
            Expect::ReadyForQuery
        } else {
            Expect::Statement
        };
        if self.proxy_handles(&statement.kind) {
            let answer = self.run_command(statement).await?;
            self.finish_simple(answer, alone);
            return Ok(());
        }
        if self.transaction_failed() {
            self.finish_simple(Err(aborted_transaction()), alone);
            return Ok(());
        }
        if statement.kind == StatementKind::Set && resets_everything(&statement.sql) {
            self.shard_state().reset_settings();
        }
        if let StatementKind::Copy = statement.kind {
            match self.copy_plan(statement, hint) {
                Err(e) => self.finish_simple(Err(e), alone),
                Ok(super::copy::CopyPlan::Single(shard)) => {
                    self.activate(shard).await?;
                    self.send_active(message, forwarded);
                }
                Ok(_) if !alone => self.finish_simple(
                    Err(PgError::error(
                        "0A000",
                        "a COPY that spans shards must be a query of its own",
                    )),
                    alone,
                ),
                Ok(plan) => {
                    if let Err(e) = self.start_copy(statement, plan, true).await? {
                        self.finish_simple(Err(e), alone);
                    }
                }
            }
            return Ok(());
        }
        let route = match self.route_learning(statement, hint, None).await? {
            Ok(route) => route,
            Err(e) => {
                self.finish_simple(Err(e), alone);
                return Ok(());
            }
        };
        match route_target(route, statement) {
            Ok(Target::Shard(shard)) => {
                let role = self.statement_role(statement.access);
                self.activate_for(shard, role, false).await?;
                self.note_statement(statement.access);
                self.send_active(message, forwarded);
                self.note_if_setting(statement);
            }
            Ok(Target::Fanout(fanout)) => {
                let result = self.run_fanout(&fanout, None).await?;
                self.finish_simple(result.map(|r| r.into_simple_answer()), alone);
            }
            Err(e) => self.finish_simple(Err(e), alone),
        }
        Ok(())
    }

    /// Queues a proxy-made simple-query answer (or its error), and the
    /// ReadyForQuery that ends it when the statement was the whole query.
    fn finish_simple(&mut self, answer: Result<bytes::Bytes, PgError>, alone: bool) {
        match answer {
            Ok(bytes) => self.reply_raw(bytes),
            Err(e) => self.pipeline.reply(Synthetic::Error(e)),
        }
        if alone {
            let status = self.client_status();
            self.pipeline.reply(Synthetic::ReadyForQuery(status));
        }
    }

    /// Routes a statement with the session's hints and the bind values,
    /// learning from a shard where the key of a table sits when an INSERT
    /// without a column list needs it. DDL forgets what was learned.
    pub(crate) async fn route_learning(
        &mut self,
        statement: &StatementAnalysis,
        hint: Option<&Hint>,
        bind: Option<&super::BindValues<'_>>,
    ) -> Result<Result<Route, PgError>, SessionEnd> {
        if statement.kind == StatementKind::Ddl {
            self.shard_state_ref().router.forget_key_positions();
        }
        if hint.is_none()
            && let Some(route) = self.shard_state_ref().cursors.route_of(&statement.sql)
        {
            return Ok(Ok(route));
        }
        let route = self.route_statement(statement, hint, bind);
        if let Ok(route) = &route {
            self.shard_state().cursors.note(&statement.sql, route);
        }
        let Ok(Route::NeedsKeyPosition { table }) = route else {
            return Ok(route);
        };
        if let Err(e) = self.learn_key_position(&table).await? {
            return Ok(Err(e));
        }
        Ok(match self.route_statement(statement, hint, bind) {
            Ok(Route::NeedsKeyPosition { table }) => Err(PgError::error(
                "XX000",
                format!("the sharding key position of {table} could not be learned"),
            )),
            other => other,
        })
    }

    async fn learn_key_position(&mut self, table: &str) -> Result<Result<(), PgError>, SessionEnd> {
        let (default, rule) = {
            let st = self.shard_state_ref();
            let crate::sharding::map::TableClass::Sharded(rule) = st.map.table(table) else {
                return Ok(Err(PgError::error(
                    "XX000",
                    format!("{table} is not sharded"),
                )));
            };
            (st.map.default_shard, rule.clone())
        };
        let mut leases = self.take_leases(&[default], Role::Primary).await?;
        let found = super::copy::key_position(&mut leases[0].1, &rule, false).await;
        self.return_leases(leases);
        Ok(found.map(|position| {
            self.shard_state_ref()
                .router
                .learn_key_position(table, position)
        }))
    }

    /// Routes a statement with the session's hints and the bind values.
    pub(crate) fn route_statement(
        &self,
        statement: &StatementAnalysis,
        hint: Option<&Hint>,
        bind: Option<&super::BindValues<'_>>,
    ) -> Result<Route, PgError> {
        let st = self.shard_state_ref();
        let positions = st.router.key_positions();
        let (params, formats) = match bind {
            Some(b) => (b.values.as_slice(), b.param_formats.as_slice()),
            None => (&[][..], &[][..]),
        };
        let input = RouteInput {
            params,
            param_formats: formats,
            session_shard: st.session_shard,
            session_key: st.session_key.as_deref(),
            shard_names: &st.shard_names,
            key_positions: Some(&positions),
        };
        crate::router::route(statement, hint, &input, &st.map)
    }

    /// Several statements in one Query. When they all go to one shard the
    /// string is sent as it is. Otherwise they run one by one, stopping at
    /// the first error as Postgres does; statements not inside an explicit
    /// BEGIN form one implicit transaction in Postgres, so the proxy wraps
    /// them in one (committed with two-phase commit when it spans shards).
    async fn multi_statement(
        &mut self,
        message: &[u8],
        statements: &[StatementAnalysis],
        hint: Option<&Hint>,
    ) -> Result<(), SessionEnd> {
        if let Some(shard) = self.one_shard_for_all(statements, hint) {
            // Ending or marking a transaction decides nothing: BEGIN READ
            // ONLY ... COMMIT is a read.
            let ends_or_marks = |kind: &StatementKind| {
                matches!(
                    kind,
                    StatementKind::Commit
                        | StatementKind::Rollback
                        | StatementKind::Savepoint
                        | StatementKind::ReleaseSavepoint
                        | StatementKind::RollbackToSavepoint
                )
            };
            let access = if statements
                .iter()
                .all(|s| s.access == Access::Read || ends_or_marks(&s.kind))
            {
                Access::Read
            } else {
                Access::Write
            };
            let role = self.statement_role(access);
            self.activate_for(shard, role, false).await?;
            self.note_statement(access);
            self.send_active(message, Expect::ReadyForQuery);
            for statement in statements {
                self.note_if_setting(statement);
            }
            return Ok(());
        }
        // Statements before the string's first BEGIN, COMMIT or ROLLBACK
        // form one implicit transaction (a COMMIT or ROLLBACK in the string
        // ends it), unless the string starts with BEGIN.
        let opens_with_begin = statements
            .iter()
            .find(|s| is_transaction_control(&s.kind))
            .is_some_and(|s| s.kind == StatementKind::Begin);
        let implicit = !self.in_transaction() && !opens_with_begin;
        if implicit {
            let st = self.shard_state();
            st.txn.open = true;
            st.txn.begin_sql = "BEGIN".to_string();
        }
        let mut failed = false;
        for statement in statements {
            let errors = self.pipeline.errors_seen();
            let mut single = BytesMut::new();
            crate::net::messages::put_query(&mut single, &statement.sql);
            match self.simple_statement(&single, statement, hint, false).await {
                Err(SessionEnd::StatementFailed(error)) => {
                    self.pipeline.reply(Synthetic::Error(error));
                    failed = true;
                    break;
                }
                other => other?,
            }
            self.drain_active().await?;
            if self.pipeline.errors_seen() > errors {
                failed = true;
                break;
            }
        }
        if implicit && let Err(e) = self.end_transaction(!failed).await? {
            self.pipeline.reply(Synthetic::Error(e));
        }
        let status = self.client_status();
        self.pipeline.reply(Synthetic::ReadyForQuery(status));
        Ok(())
    }

    /// The shard every statement of a string goes to, when it is one
    /// (transaction control goes with the others).
    fn one_shard_for_all(
        &self,
        statements: &[StatementAnalysis],
        hint: Option<&Hint>,
    ) -> Option<usize> {
        if self.transaction_failed() || self.shard_state_ref().txn.open && self.server.is_none() {
            return None;
        }
        let mut target = None;
        for statement in statements {
            if matches!(
                statement.kind,
                StatementKind::SetShardwire { .. } | StatementKind::Copy
            ) {
                return None;
            }
            if is_transaction_control(&statement.kind) {
                continue;
            }
            match (self.route_statement(statement, hint, None), target) {
                (Ok(Route::Single(shard)), None) => target = Some(shard),
                (Ok(Route::Single(shard)), Some(t)) if shard == t => {}
                _ => return None,
            }
        }
        // A transaction already open elsewhere must not be bypassed.
        let st = self.shard_state_ref();
        let elsewhere = st.parked.iter().any(|p| Some(p.shard) != target);
        if elsewhere {
            return None;
        }
        target.or_else(|| self.shard_for_unrouted(hint).ok())
    }

    /// Whether the proxy answers this statement itself.
    pub(crate) fn proxy_handles(&self, kind: &StatementKind) -> bool {
        is_transaction_control(kind)
            || matches!(
                kind,
                StatementKind::SetShardwire { .. } | StatementKind::PrepareTransaction
            )
    }

    /// Runs a statement the proxy answers itself; returns its messages
    /// (CommandComplete) or the error.
    pub(crate) async fn run_command(
        &mut self,
        statement: &StatementAnalysis,
    ) -> Result<Result<bytes::Bytes, PgError>, SessionEnd> {
        let failed = self.transaction_failed();
        Ok(match &statement.kind {
            StatementKind::Begin => {
                let st = self.shard_state();
                if !st.txn.open {
                    st.txn.open = true;
                    st.txn.begin_sql = statement.sql.clone();
                    st.txn.read_only = statement.access == Access::Read;
                    st.txn.savepoints.clear();
                }
                Ok(command_complete("BEGIN"))
            }
            StatementKind::Commit | StatementKind::Rollback => {
                let commit = statement.kind == StatementKind::Commit && !failed;
                let (begin_sql, read_only) = {
                    let txn = &self.shard_state_ref().txn;
                    (txn.begin_sql.clone(), txn.read_only)
                };
                let ended = self.end_transaction(commit).await?;
                if chains(&statement.sql) {
                    // `AND CHAIN`: a new transaction with the same options.
                    let st = self.shard_state();
                    st.txn.open = true;
                    st.txn.begin_sql = begin_sql;
                    st.txn.read_only = read_only;
                }
                ended
            }
            StatementKind::Savepoint
            | StatementKind::ReleaseSavepoint
            | StatementKind::RollbackToSavepoint => self.savepoint(statement).await?,
            StatementKind::PrepareTransaction => Err(PgError::error(
                "0A000",
                "PREPARE TRANSACTION is not supported through shardwire",
            )
            .with_hint("shardwire runs two-phase commit itself for transactions that span shards")),
            StatementKind::SetShardwire { name, value, local } => {
                self.set_shardwire(name, value.as_deref(), *local)
            }
            _ => Err(PgError::error("XX000", "statement is not a proxy command")),
        })
    }

    /// `SET [LOCAL] shardwire.shard / sharding_key` and their RESET. A
    /// LOCAL setting lasts until the transaction ends (outside one it has
    /// no effect, as in Postgres).
    fn set_shardwire(
        &mut self,
        name: &str,
        value: Option<&str>,
        local: bool,
    ) -> Result<bytes::Bytes, PgError> {
        let in_transaction = self.in_transaction();
        let st = self.shard_state();
        if local {
            if !in_transaction {
                return Ok(command_complete("SET"));
            }
            if st.txn.saved_settings.is_none() {
                st.txn.saved_settings = Some((st.session_shard, st.session_key.clone()));
            }
        }
        match name {
            "shard" => st.session_shard = value.map(|v| st.resolve_shard(v)).transpose()?,
            "sharding_key" => st.session_key = value.map(str::to_string),
            other => {
                return Err(PgError::error(
                    "42704",
                    format!("unrecognized configuration parameter \"shardwire.{other}\""),
                )
                .with_hint("shardwire knows shardwire.shard and shardwire.sharding_key"));
            }
        }
        Ok(command_complete(if value.is_some() {
            "SET"
        } else {
            "RESET"
        }))
    }

    /// COMMIT (`commit`) or ROLLBACK of the client's transaction on every
    /// participant: two-phase commit when it spans several shards.
    async fn end_transaction(
        &mut self,
        commit: bool,
    ) -> Result<Result<bytes::Bytes, PgError>, SessionEnd> {
        self.drain_active().await?;
        self.park_active();
        let st = self.shard_state();
        let was_open = st.txn.open;
        // A read-only transaction has nothing to make atomic (and a hot
        // standby refuses PREPARE TRANSACTION): plain COMMIT everywhere.
        let read_only = st.txn.read_only;
        st.end_transaction_block();
        st.portals.retain(|_, p| matches!(p, Portal::Shard(..)));
        let shards: Vec<usize> = st
            .parked
            .iter()
            .filter(|p| p.lease.conn_ref().status != b'I')
            .map(|p| p.shard)
            .collect();
        let tag = if commit { "COMMIT" } else { "ROLLBACK" };
        if shards.is_empty() {
            let _ = was_open;
            return Ok(Ok(command_complete(tag)));
        }
        let mut leases = self.take_leases(&shards, Role::Primary).await?;
        let outcome = if commit && leases.len() > 1 && !read_only {
            self.commit_two_phase(&mut leases).await
        } else {
            let mut outcome = Ok(());
            for (_, lease) in &mut leases {
                if let Err(e) = Box::pin(lease.conn().run_maintenance(tag)).await
                    && outcome.is_ok()
                {
                    outcome = Err(e);
                }
            }
            outcome
        };
        self.rollback_leases(&mut leases).await;
        self.return_leases(leases);
        self.release_parked_if_idle();
        Ok(outcome.map(|()| command_complete(tag)))
    }

    /// SAVEPOINT, RELEASE and ROLLBACK TO on every participant; savepoints
    /// are remembered so shards that join later get them too.
    async fn savepoint(
        &mut self,
        statement: &StatementAnalysis,
    ) -> Result<Result<bytes::Bytes, PgError>, SessionEnd> {
        if !self.in_transaction() {
            return Ok(Err(PgError::error(
                "25P01",
                format!(
                    "{} can only be used in transaction blocks",
                    statement
                        .sql
                        .split_whitespace()
                        .next()
                        .unwrap_or("SAVEPOINT")
                        .to_uppercase()
                ),
            )));
        }
        self.drain_active().await?;
        self.park_active();
        let shards: Vec<usize> = self
            .shard_state_ref()
            .parked
            .iter()
            .map(|p| p.shard)
            .collect();
        let mut leases = self.take_leases(&shards, Role::Primary).await?;
        let mut outcome = Ok(());
        for (_, lease) in &mut leases {
            if let Err(e) = Box::pin(lease.conn().run_maintenance(&statement.sql)).await
                && outcome.is_ok()
            {
                outcome = Err(e);
            }
        }
        self.return_leases(leases);
        if outcome.is_ok() && statement.kind == StatementKind::Savepoint {
            self.shard_state()
                .txn
                .savepoints
                .push(statement.sql.clone());
        }
        let tag = match statement.kind {
            StatementKind::Savepoint => "SAVEPOINT",
            StatementKind::ReleaseSavepoint => "RELEASE",
            _ => "ROLLBACK",
        };
        Ok(outcome.map(|()| command_complete(tag)))
    }
}

/// Whether an INSERT may return fewer rows than it lists (ON CONFLICT with
/// RETURNING), judged from its words: a false alarm only refuses.
fn returns_only_some_rows(sql: &str) -> bool {
    let upper = sql.to_ascii_uppercase();
    let skips = upper.contains("DO NOTHING")
        || upper
            .split("DO UPDATE")
            .nth(1)
            .is_some_and(|rest| rest.contains("WHERE"));
    skips && upper.contains("RETURNING")
}

/// Whether a COMMIT or ROLLBACK says `AND CHAIN`.
fn chains(sql: &str) -> bool {
    let words: Vec<String> = sql
        .split_whitespace()
        .map(|w| w.trim_end_matches(';').to_ascii_uppercase())
        .collect();
    words.windows(2).any(|w| w[0] == "AND" && w[1] == "CHAIN")
}

/// `RESET ALL` or `DISCARD ALL`, which also clear `shardwire.*` settings.
pub fn resets_everything(sql: &str) -> bool {
    let words: Vec<String> = sql
        .split_whitespace()
        .take(3)
        .map(|w| w.trim_end_matches(';').to_ascii_uppercase())
        .collect();
    matches!(
        words
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice(),
        ["RESET", "ALL"] | ["DISCARD", "ALL"]
    )
}

/// BEGIN, COMMIT, ROLLBACK and savepoint commands.
pub fn is_transaction_control(kind: &StatementKind) -> bool {
    matches!(
        kind,
        StatementKind::Begin
            | StatementKind::Commit
            | StatementKind::Rollback
            | StatementKind::Savepoint
            | StatementKind::ReleaseSavepoint
            | StatementKind::RollbackToSavepoint
    )
}

/// Where a routed (non-COPY) statement runs.
pub enum Target {
    /// Forwarded to one shard.
    Shard(usize),
    /// Run by the proxy on several shards.
    Fanout(Fanout),
}

/// The target of a route. COPY routes and key-position requests are
/// handled before this point; meeting one here is an internal error,
/// reported rather than answered wrongly.
pub fn route_target(route: Route, statement: &StatementAnalysis) -> Result<Target, PgError> {
    Ok(match route {
        Route::Single(shard) => Target::Shard(shard),
        Route::Scatter { shards, plan } => Target::Fanout(Fanout::Scatter {
            plan,
            shards,
            access: statement.access,
        }),
        Route::AllShards { shards, replicated } => Target::Fanout(Fanout::Write {
            parts: shards
                .into_iter()
                .map(|shard| WritePart {
                    shard,
                    sql: statement.sql.clone(),
                    params: None,
                    rows: Vec::new(),
                })
                .collect(),
            reorder: false,
            replicated,
        }),
        Route::SplitInsert { .. } if returns_only_some_rows(&statement.sql) => {
            return Err(PgError::error(
                "0A000",
                "an INSERT ... ON CONFLICT ... RETURNING whose rows go to several shards is not supported",
            )
            .with_hint(
                "skipped rows would leave RETURNING unable to keep the VALUES order: \
                 insert each shard's rows separately, or drop RETURNING",
            ));
        }
        Route::SplitInsert { parts } => Target::Fanout(Fanout::Write {
            parts: parts
                .into_iter()
                .map(|p| WritePart {
                    shard: p.shard,
                    sql: p.sql,
                    params: Some(p.params),
                    rows: p.rows,
                })
                .collect(),
            reorder: true,
            replicated: false,
        }),
        Route::Concat { .. } | Route::SplitCopy { .. } | Route::NeedsKeyPosition { .. } => {
            return Err(PgError::error(
                "XX000",
                format!("shardwire cannot run this statement here: {route:?}"),
            ));
        }
    })
}
