//! The sharding router: where each statement runs.
//!
//! Routing is pure (no I/O) and split in two halves:
//!
//! - [`analyze`] (cached by [`RouterCache`] per SQL text and shard map
//!   version) parses a query string with sqlparser's Postgres dialect and
//!   records, per statement, its [`StatementKind`] and what its text says
//!   about routing: the tables it touches and how the shard map classifies
//!   them, the conditions on sharded tables' keys (literals, `$n`
//!   parameters, `IN` lists, `AND` / `OR`), key equalities between
//!   co-located tables, the key of each inserted row, and the scatter plan
//!   of a multi-shard SELECT;
//! - [`route`] combines that with bind values, comment hints and session
//!   settings into a [`Route`], or a [`PgError`](crate::net::messages::PgError)
//!   saying what to change (SQLSTATE 0A000 for statements that cannot run
//!   correctly across shards, 22P02 / 22023 for bad key values). A wrong
//!   answer is never acceptable; an error is.
//!
//! [`copy_target`] describes `COPY ... FROM STDIN / TO STDOUT` for the
//! session, which moves the data itself. [`statement_keywords`] gives the
//! leading keyword of each statement (the session refuses session-only
//! commands under transaction pooling with it).
//!
//! Rules worth knowing when reading a route:
//!
//! - Hints: a comment hint beats session settings. A shard (comment
//!   `shard=<name or config index>` or `shardwire.shard`) runs anything
//!   there; a sharding key (comment or `shardwire.sharding_key`) stands in
//!   for the key of every sharded table reference the statement does not
//!   constrain itself (its own `key = ...` wins) and for inserted rows
//!   without a key. A statement touching no sharded or unsharded table goes
//!   to the key's bucket owner (the key hashed as bigint when it is an
//!   integer, else as text); DDL ignores sharding keys.
//! - Plain multi-shard SELECTs are [`Route::Scatter`]s too (the planner
//!   merges them by concatenation); [`Route::Concat`] is only for
//!   `COPY ... TO STDOUT`, which has no rows to merge.
//! - Subqueries and CTEs on sharded tables run only when they are confined
//!   to the statement's one shard (or co-located with the written table of
//!   a write); a scatter covers the top-level FROM only.
//! - Statements the parser rejects, or does not analyze (VACUUM, LOCK, DO,
//!   ...), go to the default shard unless their text names a sharded or
//!   reference table; then only a hint routes them.

mod analysis;
mod cache;
mod copy;
mod decide;
mod facts;
mod hint;
mod insert;
mod keys;
pub mod readwrite;
mod text;

#[cfg(test)]
mod tests;

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

pub use analysis::{Analysis, StatementAnalysis, StatementKind, analyze, analyze_with_functions};
pub use cache::RouterCache;
pub use copy::{CopyDirection, CopyFormat, CopyTarget};
pub use decide::{InsertPart, Route, RouteInput, route};
pub use hint::Hint;
pub use keys::key_error;

/// The client-side COPY a statement runs (`COPY table [(columns)] FROM
/// STDIN` or `TO STDOUT`), with its data format; `None` for other
/// statements, `COPY (query) TO`, and COPY to or from server-side files.
pub fn copy_target(statement: &StatementAnalysis) -> Option<CopyTarget> {
    match &statement.routing {
        analysis::Routing::Copy(copy::CopyStatement::Table {
            client_side: Some(target),
            ..
        }) => Some(target.clone()),
        _ => None,
    }
}

/// The first keyword of every statement in `sql` (statements separated by
/// `;`), skipping comments, strings and dollar-quoted bodies the way
/// Postgres' lexer does. Text that does not tokenize yields no keywords:
/// the server will report the syntax error itself.
pub fn statement_keywords(sql: &str) -> Vec<String> {
    let dialect = PostgreSqlDialect {};
    let Ok(tokens) = Tokenizer::new(&dialect, sql).tokenize() else {
        return Vec::new();
    };
    let mut keywords = Vec::new();
    let mut at_start = true;
    for token in tokens {
        match token {
            Token::Whitespace(_) => {}
            Token::SemiColon => at_start = true,
            Token::Word(word) if at_start => {
                keywords.push(word.value);
                at_start = false;
            }
            _ => at_start = false,
        }
    }
    keywords
}

/// Parses `sql` (PostgreSQL dialect) as the router does: a statement whose
/// expression tree would be too deep for recursive walks (and sqlparser's
/// own recursive `Drop`) is refused instead of parsed, so client text can
/// never exhaust a thread's stack. For control-plane users of the parser
/// (the slow log's EXPLAIN capture).
pub fn parse_guarded(sql: &str) -> Result<Vec<sqlparser::ast::Statement>, String> {
    analysis::parse(&sqlparser::dialect::PostgreSqlDialect {}, sql)
}

#[cfg(test)]
mod keyword_tests {
    use super::*;

    #[test]
    fn finds_each_statements_first_keyword() {
        assert_eq!(
            statement_keywords("select 1; LISTEN chan"),
            vec!["select", "LISTEN"]
        );
        assert_eq!(
            statement_keywords("/* listen */ -- listen\n select 'listen; x'"),
            vec!["select"]
        );
        assert_eq!(
            statement_keywords("do $$ begin perform 1; listen x; end $$"),
            vec!["do"]
        );
        assert!(statement_keywords("").is_empty());
    }
}
