//! What the SQL text alone says about routing: each statement's kind and
//! the facts its route depends on. This is the cached half of routing
//! (see [`super::RouterCache`]); it depends on the text and the shard map,
//! never on bind values or session settings.

use std::sync::Arc;

use sqlparser::ast::{
    CopyTarget as CopyEndpoint, Expr, Query, Reset, Set, SetExpr, Statement, UnaryOperator, Value,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use crate::scatter::ScatterPlan;
use crate::sharding::map::ShardMap;

use super::copy::{CopyStatement, copy_statement};
use super::facts::{Facts, Walker, fold, mentioned_tables};
use super::hint::{Hint, find_hint};
use super::readwrite::{Access, ReadOnlyFunctions, RoleHint, find_role_hint, statement_access};
use super::text;

/// Plans a multi-shard SELECT ([`crate::scatter::plan_select`] in the
/// proxy; tests substitute their own).
pub(super) type Planner = fn(&Query) -> Result<ScatterPlan, String>;

/// The analysis of one query string.
#[derive(Debug)]
pub struct Analysis {
    /// One entry per statement, in order.
    pub statements: Vec<StatementAnalysis>,
    /// The first `shardwire:` comment hint anywhere in the text; it applies
    /// to every statement of the string.
    pub hint: Option<Hint>,
    /// The first `shardwire: primary` / `shardwire: replica` comment
    /// anywhere in the text; like [`Analysis::hint`], it applies to every
    /// statement of the string.
    pub role_hint: Option<RoleHint>,
    /// The parser's message for the first statement it could not parse.
    /// Such statements are still listed (kind [`StatementKind::Other`]
    /// unless recognized by their leading words) and route to the default
    /// shard, where the server reports the syntax error, unless they
    /// mention sharded or reference tables (then only a hint routes them).
    pub parse_error: Option<String>,
    /// Version of the shard map the analysis was made with.
    pub map_version: u64,
}

/// One statement of a query string.
#[derive(Debug)]
pub struct StatementAnalysis {
    /// What kind of statement it is (transaction control, read, write...).
    pub kind: StatementKind,
    /// The statement's own text (without the separating `;`), as the client
    /// wrote it.
    pub sql: String,
    /// Whether a replica may run it (see [`statement_access`]); `Write`
    /// for statements the parser rejects.
    pub access: Access,
    pub(super) routing: Routing,
}

/// Statement kinds the session handles differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatementKind {
    /// SELECT / VALUES / SHOW / EXPLAIN / DECLARE CURSOR: returns rows
    /// without writing (SELECT ... FOR UPDATE included).
    Read,
    /// INSERT / UPDATE / DELETE / MERGE, a query with a data-modifying CTE,
    /// EXPLAIN ANALYZE of a write.
    Write,
    /// COPY.
    Copy,
    /// Schema and privilege changes (CREATE / ALTER / DROP / TRUNCATE /
    /// COMMENT / GRANT / REVOKE / REFRESH MATERIALIZED VIEW, SELECT INTO):
    /// run on every shard of the map.
    Ddl,
    /// BEGIN / START TRANSACTION.
    Begin,
    /// COMMIT / END.
    Commit,
    /// ROLLBACK / ABORT.
    Rollback,
    /// SAVEPOINT.
    Savepoint,
    /// `RELEASE [SAVEPOINT] name`.
    ReleaseSavepoint,
    /// `ROLLBACK TO [SAVEPOINT] name`.
    RollbackToSavepoint,
    /// PREPARE TRANSACTION / COMMIT PREPARED / ROLLBACK PREPARED: refused,
    /// shardwire runs two-phase commit itself.
    PrepareTransaction,
    /// `SET [LOCAL] shardwire.<name> = ...` or `RESET shardwire.<name>`:
    /// proxy settings, never sent to a server. Only `shard` and
    /// `sharding_key` exist; the session rejects other names.
    SetShardwire {
        /// The setting's name after `shardwire.` (folded).
        name: String,
        /// The value as written (`None` for RESET / DEFAULT).
        value: Option<String>,
        /// `SET LOCAL`: lasts until the end of the transaction.
        local: bool,
    },
    /// Other SET / RESET / DISCARD: session state the proxy replays.
    Set,
    /// Anything else: runs on the default shard (or where hints say).
    Other,
}

/// How a statement is routed; private to the router.
#[derive(Debug)]
pub(super) enum Routing {
    /// Session or transaction control, or a statement about no table: the
    /// hinted shard, else the default shard.
    Session,
    /// Runs on every shard (DDL).
    Everywhere,
    /// Never runs (the text says why).
    Refused(String),
    /// Not analyzed structurally: routable only by a hint when it mentions
    /// sharded or reference tables (their normalized names).
    Opaque(Vec<String>),
    /// A query or write, analyzed.
    Dml(Dml),
    /// EXPLAIN / DECLARE CURSOR / PREPARE of an analyzed statement, or a
    /// SELECT with a data-modifying WITH: routed like the statement, but
    /// only to a single shard (the output cannot be merged).
    SingleShardOnly {
        /// The wrapped statement.
        dml: Dml,
        /// The wrapping command, for messages.
        what: &'static str,
    },
    /// SELECT INTO / CREATE TABLE AS: a new table on every shard, filled
    /// by a query that must give every shard the same rows.
    CreatesTable(Dml),
    /// COPY of a table.
    Copy(CopyStatement),
    /// COPY (query) TO: the query's rows, concatenated from its shards.
    CopyQuery(Dml),
}

/// An analyzed query or write.
#[derive(Debug)]
pub(super) struct Dml {
    /// What its text says about tables and keys.
    pub facts: Facts,
    /// The scatter plan of a top-level SELECT reading sharded tables
    /// (`Err` with the planner's reason when it cannot be merged).
    pub plan: Option<Result<Arc<ScatterPlan>, String>>,
}

/// Analyzes `sql` against `map` with the proxy's scatter planner, counting
/// only Postgres' built-in functions as read-only.
pub fn analyze(sql: &str, map: &ShardMap) -> Analysis {
    analyze_with_functions(sql, map, &ReadOnlyFunctions::default())
}

/// Analyzes `sql` against `map` with the proxy's scatter planner and the
/// read-only functions the config adds to the built-ins.
pub fn analyze_with_functions(
    sql: &str,
    map: &ShardMap,
    functions: &ReadOnlyFunctions,
) -> Analysis {
    analyze_with(sql, map, crate::scatter::plan_select, functions)
}

/// Analyzes `sql` against `map`, planning scatters with `planner`.
pub(super) fn analyze_with(
    sql: &str,
    map: &ShardMap,
    planner: Planner,
    functions: &ReadOnlyFunctions,
) -> Analysis {
    let dialect = PostgreSqlDialect {};
    let pieces = text::split_statements(sql);
    let parsed: Vec<Result<Vec<Statement>, String>> =
        pieces.iter().map(|piece| parse(&dialect, piece)).collect();
    let mut statements = Vec::new();
    let mut parse_error = None;
    let whole = parsed
        .iter()
        .any(Result::is_err)
        .then(|| parse(&dialect, sql).ok())
        .flatten();
    if let Some(whole) = whole {
        // The splitter cut inside a statement (a `BEGIN ATOMIC ... END`
        // body): the parser's own statements are right.
        for statement in &whole {
            let sql = statement.to_string();
            statements.push(classify(statement, sql, map, planner, functions));
        }
    } else {
        for (piece, result) in pieces.iter().zip(parsed) {
            match result {
                Ok(parsed) => {
                    let single = parsed.len() == 1;
                    for statement in &parsed {
                        let sql = if single {
                            piece.to_string()
                        } else {
                            statement.to_string()
                        };
                        statements.push(classify(statement, sql, map, planner, functions));
                    }
                }
                Err(error) => {
                    parse_error.get_or_insert(error);
                    statements.push(unparsed(piece, map));
                }
            }
        }
    }
    Analysis {
        statements,
        hint: find_hint(sql),
        role_hint: find_role_hint(sql),
        parse_error,
        map_version: map.version,
    }
}

/// Longest operator chain (see [`text::longest_operator_chain`]) the
/// router parses: deeper expression trees could exhaust a thread's stack in
/// recursive tree walks. Longer statements are routed unanalyzed, like
/// statements the parser rejects.
const MAX_OPERATOR_CHAIN: usize = 1000;

/// Parses one statement's text, unless it is too deep to walk safely.
pub(crate) fn parse(dialect: &PostgreSqlDialect, sql: &str) -> Result<Vec<Statement>, String> {
    if text::longest_operator_chain(sql) > MAX_OPERATOR_CHAIN {
        return Err(format!(
            "statement has a chain of more than {MAX_OPERATOR_CHAIN} operators; shardwire routes it without analysis"
        ));
    }
    Parser::parse_sql(dialect, sql).map_err(|e| e.to_string())
}

/// A statement the parser rejected: recognized by its leading words when
/// it is one shardwire refuses, else opaque.
fn unparsed(sql: &str, map: &ShardMap) -> StatementAnalysis {
    let words = text::leading_words(sql, 2);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let refused = matches!(
        words.as_slice(),
        ["PREPARE", "TRANSACTION"] | ["COMMIT" | "ROLLBACK", "PREPARED"]
    );
    if refused {
        return StatementAnalysis {
            kind: StatementKind::PrepareTransaction,
            sql: sql.to_string(),
            access: Access::Write,
            routing: Routing::Refused(format!(
                "{} is not supported through shardwire: it runs two-phase commit across shards itself",
                words.join(" ")
            )),
        };
    }
    opaque(StatementKind::Other, sql.to_string(), Access::Write, map)
}

/// A statement routed only by the tables its text mentions.
fn opaque(kind: StatementKind, sql: String, access: Access, map: &ShardMap) -> StatementAnalysis {
    let tables = mentioned_tables(map, &text::identifiers(&sql));
    StatementAnalysis {
        kind,
        sql,
        access,
        routing: Routing::Opaque(tables),
    }
}

/// Analyzes a DML statement (or query).
fn dml(statement: &Statement, map: &ShardMap, planner: Planner) -> Dml {
    let mut walker = Walker::new(map);
    walker.statement(statement);
    let facts = walker.finish();
    let plan = match statement {
        Statement::Query(query) if facts.refs.iter().any(|r| r.top_level) => {
            Some(planner(query).map(Arc::new))
        }
        _ => None,
    };
    Dml { facts, plan }
}

fn classify(
    statement: &Statement,
    sql: String,
    map: &ShardMap,
    planner: Planner,
    functions: &ReadOnlyFunctions,
) -> StatementAnalysis {
    let access = statement_access(statement, functions);
    let (kind, routing) = match statement {
        Statement::Query(query) => {
            let dml = dml(statement, map, planner);
            if dml.facts.creates_table {
                (StatementKind::Ddl, Routing::CreatesTable(dml))
            } else if dml.facts.writes.is_empty() {
                (StatementKind::Read, Routing::Dml(dml))
            } else if matches!(
                *query.body,
                SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_)
            ) {
                (StatementKind::Write, Routing::Dml(dml))
            } else {
                // Rows of a SELECT over written data: results of several
                // shards could not be combined.
                let what = "a query with a data-modifying WITH";
                (StatementKind::Write, Routing::SingleShardOnly { dml, what })
            }
        }
        Statement::Insert(_)
        | Statement::Update(_)
        | Statement::Delete(_)
        | Statement::Merge(_) => (
            StatementKind::Write,
            Routing::Dml(dml(statement, map, planner)),
        ),
        Statement::Copy {
            source,
            to,
            target,
            options,
            legacy_options,
            ..
        } => {
            let client_side = matches!(target, CopyEndpoint::Stdin | CopyEndpoint::Stdout);
            let copy = copy_statement(source, *to, client_side, options, legacy_options);
            let routing = match (&copy, source) {
                (CopyStatement::Query, sqlparser::ast::CopySource::Query(query)) => {
                    Routing::CopyQuery(dml(&Statement::Query(query.clone()), map, planner))
                }
                _ => Routing::Copy(copy),
            };
            (StatementKind::Copy, routing)
        }
        Statement::Explain {
            analyze, statement, ..
        } => {
            let inner = classify(statement, statement.to_string(), map, planner, functions);
            let kind = if *analyze && inner.kind == StatementKind::Write {
                StatementKind::Write
            } else {
                StatementKind::Read
            };
            (kind, single_shard_only(inner.routing, "EXPLAIN"))
        }
        Statement::Declare { stmts, .. } => {
            match stmts.first().and_then(|d| d.for_query.as_ref()) {
                Some(query) => {
                    let dml = dml(&Statement::Query(query.clone()), map, planner);
                    (
                        StatementKind::Read,
                        Routing::SingleShardOnly {
                            dml,
                            what: "DECLARE CURSOR",
                        },
                    )
                }
                None => return opaque(StatementKind::Other, sql, access, map),
            }
        }
        Statement::Prepare { statement, .. } => {
            let inner = classify(statement, statement.to_string(), map, planner, functions);
            (
                StatementKind::Other,
                single_shard_only(inner.routing, "PREPARE"),
            )
        }
        Statement::CreateTable(create) => match &create.query {
            Some(query) => (
                StatementKind::Ddl,
                Routing::CreatesTable(dml(&Statement::Query(query.clone()), map, planner)),
            ),
            None => (StatementKind::Ddl, Routing::Everywhere),
        },
        Statement::StartTransaction { .. } => (StatementKind::Begin, Routing::Session),
        Statement::Commit { .. } => (StatementKind::Commit, Routing::Session),
        Statement::Rollback {
            savepoint: Some(_), ..
        } => (StatementKind::RollbackToSavepoint, Routing::Session),
        Statement::Rollback { .. } => (StatementKind::Rollback, Routing::Session),
        Statement::Savepoint { .. } => (StatementKind::Savepoint, Routing::Session),
        Statement::ReleaseSavepoint { .. } => (StatementKind::ReleaseSavepoint, Routing::Session),
        Statement::Set(set) => (set_kind(set), Routing::Session),
        Statement::Reset(reset) => (reset_kind(&reset.reset), Routing::Session),
        Statement::Discard { .. } => (StatementKind::Set, Routing::Session),
        Statement::ShowVariable { .. } | Statement::ShowVariables { .. } => {
            (StatementKind::Read, Routing::Session)
        }
        other if is_ddl(other) => (StatementKind::Ddl, Routing::Everywhere),
        _ => return opaque(StatementKind::Other, sql, access, map),
    };
    StatementAnalysis {
        kind,
        sql,
        access,
        routing,
    }
}

/// Wraps an inner statement's routing for EXPLAIN / PREPARE.
fn single_shard_only(inner: Routing, what: &'static str) -> Routing {
    match inner {
        Routing::Dml(dml) | Routing::CreatesTable(dml) => Routing::SingleShardOnly { dml, what },
        other => other,
    }
}

/// Schema, privilege and maintenance statements that every shard runs.
fn is_ddl(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::CreateView(_)
            | Statement::CreateIndex(_)
            | Statement::CreateRole(_)
            | Statement::CreatePolicy(_)
            | Statement::CreateExtension(_)
            | Statement::CreateSchema { .. }
            | Statement::CreateFunction(_)
            | Statement::CreateTrigger(_)
            | Statement::CreateProcedure { .. }
            | Statement::CreateSequence { .. }
            | Statement::CreateDomain(_)
            | Statement::CreateType { .. }
            | Statement::CreateCollation(_)
            | Statement::CreateOperator(_)
            | Statement::CreateOperatorFamily(_)
            | Statement::CreateOperatorClass(_)
            | Statement::CreateTextSearch(_)
            | Statement::CreateAggregate(_)
            | Statement::CreateUser(_)
            | Statement::AlterTable(_)
            | Statement::AlterSchema(_)
            | Statement::AlterIndex { .. }
            | Statement::AlterView(_)
            | Statement::AlterFunction(_)
            | Statement::AlterType(_)
            | Statement::AlterCollation(_)
            | Statement::AlterOperator(_)
            | Statement::AlterOperatorFamily(_)
            | Statement::AlterOperatorClass(_)
            | Statement::AlterTextSearch(_)
            | Statement::AlterRole { .. }
            | Statement::AlterPolicy(_)
            | Statement::AlterTrigger(_)
            | Statement::AlterUser(_)
            | Statement::AlterDefaultPrivileges(_)
            | Statement::Drop { .. }
            | Statement::DropFunction(_)
            | Statement::DropDomain(_)
            | Statement::DropProcedure { .. }
            | Statement::DropPolicy(_)
            | Statement::DropTrigger(_)
            | Statement::DropExtension(_)
            | Statement::DropOperator(_)
            | Statement::DropOperatorFamily(_)
            | Statement::DropOperatorClass(_)
            | Statement::Truncate(_)
            | Statement::Comment { .. }
            | Statement::Grant(_)
            | Statement::Revoke(_)
            | Statement::RenameTable(_)
            | Statement::RefreshMaterializedView(_)
    )
}

/// `SET shardwire.<name> = value` or another SET.
fn set_kind(set: &Set) -> StatementKind {
    let Set::SingleAssignment {
        scope,
        variable,
        values,
        ..
    } = set
    else {
        return StatementKind::Set;
    };
    let Some(name) = shardwire_setting(variable) else {
        return StatementKind::Set;
    };
    let local = matches!(scope, Some(sqlparser::ast::ContextModifier::Local));
    StatementKind::SetShardwire {
        name,
        value: values.first().and_then(setting_value),
        local,
    }
}

/// `RESET shardwire.<name>` or another RESET.
fn reset_kind(reset: &Reset) -> StatementKind {
    match reset {
        Reset::ConfigurationParameter(name) => match shardwire_setting(name) {
            Some(name) => StatementKind::SetShardwire {
                name,
                value: None,
                local: false,
            },
            None => StatementKind::Set,
        },
        _ => StatementKind::Set,
    }
}

/// The name after `shardwire.` of a setting in shardwire's namespace.
fn shardwire_setting(variable: &sqlparser::ast::ObjectName) -> Option<String> {
    let parts: Vec<String> = variable
        .0
        .iter()
        .map(|part| part.as_ident().map_or_else(|| part.to_string(), fold))
        .collect();
    match parts.as_slice() {
        [namespace, name] if namespace == "shardwire" => Some(name.clone()),
        _ => None,
    }
}

/// A SET value as written; `None` for DEFAULT.
fn setting_value(value: &Expr) -> Option<String> {
    match value {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::Number(s, _) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        },
        Expr::Identifier(ident)
            if ident.quote_style.is_none() && ident.value.eq_ignore_ascii_case("default") =>
        {
            None
        }
        Expr::Identifier(ident) => Some(fold(ident)),
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => setting_value(expr).map(|v| format!("-{v}")),
        other => Some(other.to_string()),
    }
}
