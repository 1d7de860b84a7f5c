//! Read/write classification: which statements a hot-standby replica may
//! run, as a pure function of the parsed statement (and, for the final
//! choice, the session's transaction state and comment hints).
//!
//! The rule is conservative: a statement goes to a replica only when it is
//! known not to write. Anything doubtful (a function not known to be
//! read-only, a locking clause, a statement that does not parse) goes to
//! the primary, where it is always correct.

use std::collections::HashSet;

use sqlparser::ast::Statement;

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
/// built-in read-only functions plus those the config lists.
#[derive(Debug, Clone, Default)]
pub struct ReadOnlyFunctions {
    configured: HashSet<String>,
}

impl ReadOnlyFunctions {
    /// The built-in set plus `configured` names (`name` or `schema.name`).
    pub fn new(configured: &[String]) -> ReadOnlyFunctions {
        ReadOnlyFunctions {
            configured: configured.iter().map(|n| n.to_ascii_lowercase()).collect(),
        }
    }
}

/// The access a parsed statement needs. For BEGIN / START TRANSACTION it
/// is the access of the transaction it opens: `Read` for READ ONLY (and not
/// SERIALIZABLE, which a hot standby refuses).
pub fn statement_access(statement: &Statement, functions: &ReadOnlyFunctions) -> Access {
    let _ = (statement, functions);
    todo!("helper: readwrite")
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

/// The first role hint in the comments of `sql`.
pub fn find_role_hint(sql: &str) -> Option<RoleHint> {
    let _ = sql;
    todo!("helper: readwrite")
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
/// transaction state `txn`, with an optional comment hint. A hint wins
/// outside explicit read-write transactions; inside one, everything stays
/// on the primary (the transaction's snapshot and locks live there).
pub fn choose_role(access: Access, hint: Option<RoleHint>, txn: TxnAccess) -> Role {
    let _ = (access, hint, txn);
    todo!("helper: readwrite")
}
