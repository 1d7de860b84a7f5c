//! Read/write classification: which statements a hot-standby replica may
//! run, as a pure function of the parsed statement (and, for the final
//! choice, the session's transaction state and comment hints).
//!
//! The rule is conservative: a statement goes to a replica only when it is
//! known not to write. Anything doubtful (a function not known to be
//! read-only, a locking clause, a statement that does not parse) goes to
//! the primary, where it is always correct.

mod functions;
mod query;

#[cfg(test)]
mod tests;

use std::collections::HashSet;

use sqlparser::ast::{
    ObjectName, Statement, TransactionAccessMode, TransactionIsolationLevel, TransactionMode,
};

use super::facts::fold;
use super::hint::shardwire_directive;
use super::text;

/// Where a statement may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Known not to write: a replica may run it.
    Read,
    /// Writes, locks, changes the schema, or is not known to be safe: the
    /// primary only.
    Write,
}

/// Functions a read may call and still go to a replica: Postgres'
/// built-in read-only functions plus those the config lists
/// (`replicas.read_only_functions`). The default allows the built-ins only.
#[derive(Debug, Clone, Default)]
pub struct ReadOnlyFunctions {
    /// Lowercased `name` or `schema.name` entries.
    configured: HashSet<String>,
}

impl ReadOnlyFunctions {
    /// The built-in set plus `configured` names (`name` or `schema.name`).
    pub fn new(configured: &[String]) -> ReadOnlyFunctions {
        ReadOnlyFunctions {
            configured: configured.iter().map(|n| n.to_ascii_lowercase()).collect(),
        }
    }

    /// Whether a call of the function named `name` (as the SQL wrote it)
    /// is known not to write. An unqualified name matches a built-in or a
    /// configured unqualified name; `pg_catalog.name` matches a built-in;
    /// any `schema.name` matches a configured `schema.name`. Built-ins
    /// follow Postgres' identifier folding (`"NOW"()` is not `now()`);
    /// configured names match case-insensitively.
    pub fn allows(&self, name: &ObjectName) -> bool {
        let Some(parts) = name
            .0
            .iter()
            .map(|part| part.as_ident().map(fold))
            .collect::<Option<Vec<String>>>()
        else {
            return false;
        };
        let built_in = match parts.as_slice() {
            [name] => functions::is_built_in(name),
            [schema, name] => schema == "pg_catalog" && functions::is_built_in(name),
            _ => return false,
        };
        built_in
            || self
                .configured
                .contains(&parts.join(".").to_ascii_lowercase())
    }
}

/// The access a parsed statement needs. For BEGIN / START TRANSACTION it
/// is the access of the transaction it opens: `Read` for READ ONLY (and not
/// SERIALIZABLE, which a hot standby refuses).
///
/// Read: a query (SELECT, VALUES, set operations, CTEs) without a locking
/// clause, `SELECT INTO` or data-modifying CTE at any level, whose every
/// function call `functions` allows; SHOW; EXPLAIN of a read (with or
/// without ANALYZE). Everything else is `Write`, including
/// transaction control after BEGIN, SET / RESET / DISCARD (the session
/// handles settings on every server), cursors (they live in
/// transactions) and COPY.
pub fn statement_access(statement: &Statement, functions: &ReadOnlyFunctions) -> Access {
    let reads = match statement {
        Statement::Query(query) => query::reads_only(query, functions),
        Statement::Explain { statement, .. } => return statement_access(statement, functions),
        Statement::StartTransaction {
            modes,
            modifier: None,
            statements,
            exception: None,
            ..
        } => statements.is_empty() && opens_read_only(modes),
        other => is_show(other),
    };
    if reads { Access::Read } else { Access::Write }
}

/// `READ ONLY` without `READ WRITE` or `ISOLATION LEVEL SERIALIZABLE`
/// (a hot standby refuses serializable transactions).
fn opens_read_only(modes: &[TransactionMode]) -> bool {
    let read_only = modes.contains(&TransactionMode::AccessMode(
        TransactionAccessMode::ReadOnly,
    ));
    let refused = modes.iter().any(|mode| {
        matches!(
            mode,
            TransactionMode::AccessMode(TransactionAccessMode::ReadWrite)
                | TransactionMode::IsolationLevel(TransactionIsolationLevel::Serializable)
        )
    });
    read_only && !refused
}

/// SHOW in any of the forms sqlparser knows: they only report.
fn is_show(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::ShowFunctions { .. }
            | Statement::ShowVariable { .. }
            | Statement::ShowStatus { .. }
            | Statement::ShowVariables { .. }
            | Statement::ShowCreate { .. }
            | Statement::ShowColumns { .. }
            | Statement::ShowCatalogs { .. }
            | Statement::ShowDatabases { .. }
            | Statement::ShowProcessList { .. }
            | Statement::ShowSchemas { .. }
            | Statement::ShowCharset(_)
            | Statement::ShowObjects(_)
            | Statement::ShowTables { .. }
            | Statement::ShowViews { .. }
            | Statement::ShowCollation { .. }
    )
}

/// A `/* shardwire: primary */` or `/* shardwire: replica */` comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleHint {
    /// Run on the primary whatever the statement.
    Primary,
    /// Run on a replica whatever the classification says (the caller's
    /// responsibility: a write there fails with 25006).
    Replica,
}

/// The first role hint in the comments of `sql`: a comment whose whole
/// directive is `primary` or `replica` (`/* shardwire: primary */`,
/// `-- ShardWire : replica`). Shard hints (`shardwire: shard=...`) are not
/// role hints; text in strings is not a comment.
pub fn find_role_hint(sql: &str) -> Option<RoleHint> {
    text::comments(sql)
        .iter()
        .find_map(|body| parse_role_hint(body))
}

/// Reads one comment body as a role hint.
fn parse_role_hint(body: &str) -> Option<RoleHint> {
    let directive = shardwire_directive(body)?;
    if directive.eq_ignore_ascii_case("primary") {
        Some(RoleHint::Primary)
    } else if directive.eq_ignore_ascii_case("replica") {
        Some(RoleHint::Replica)
    } else {
        None
    }
}

/// The transaction a session is in, as far as read routing cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnAccess {
    /// No explicit transaction: each statement (or extended batch) on its own.
    None,
    /// Inside `BEGIN READ ONLY`: the whole transaction on one replica.
    ReadOnly,
    /// Inside any other explicit transaction: the primary.
    ReadWrite,
}

/// Which kind of server runs a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The shard's primary.
    Primary,
    /// One of the shard's replicas (or the primary when none is usable).
    Replica,
}

/// Chooses the server kind for a statement of access `access` under
/// transaction state `txn`, with an optional comment hint. Inside an
/// explicit transaction the transaction decides, whatever the hint: a
/// read-write one stays on the primary (its snapshot and locks live
/// there), a `BEGIN READ ONLY` one on its replica. Outside, a hint wins,
/// else reads go to a replica and everything else to the primary.
pub fn choose_role(access: Access, hint: Option<RoleHint>, txn: TxnAccess) -> Role {
    match (txn, hint, access) {
        (TxnAccess::ReadWrite, _, _) => Role::Primary,
        (TxnAccess::ReadOnly, _, _) => Role::Replica,
        (TxnAccess::None, Some(RoleHint::Primary), _) => Role::Primary,
        (TxnAccess::None, Some(RoleHint::Replica), _) => Role::Replica,
        (TxnAccess::None, None, Access::Read) => Role::Replica,
        (TxnAccess::None, None, Access::Write) => Role::Primary,
    }
}
