//! Sharding key values as a statement gives them, and the shards they name.
//!
//! Analysis (cached per SQL text) records *where* a key value comes from: a
//! literal, a bind parameter or NULL, combined by `AND`/`OR`/`IN`. Routing
//! (per execution) resolves those against the bind values and the shard map
//! into a set of shards.

use std::collections::BTreeSet;

use sqlparser::ast::{DataType, Expr, UnaryOperator, Value};

use crate::net::messages::PgError;
use crate::sharding::map::{KeyError, KeyInput, KeyType, ShardMap, ShardedTable};

use super::RouteInput;
use super::text::placeholder_number;

/// Where a key value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum KeySource {
    /// A numeric literal as written (`42`, `-7`, `4.5`).
    Number(String),
    /// A string literal's value, or a hinted / session key value.
    Text(String),
    /// Bind parameter `$n` (1-based).
    Param(usize),
    /// The NULL literal.
    Null,
}

/// What a statement's conditions say about one table reference's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum KeyConstraint {
    /// The key equals one of these (`=` or `IN`).
    OneOf(Vec<KeySource>),
    /// All of these hold.
    All(Vec<KeyConstraint>),
    /// At least one of these holds.
    Any(Vec<KeyConstraint>),
}

/// Shards holding the rows a constraint admits: `None` when unknown (every
/// shard of the table may), an empty set when no row can match.
pub(super) type ShardSet = Option<BTreeSet<usize>>;

/// A key value resolved for one table.
enum Resolved {
    /// Rows with this key are on this shard.
    Shard(usize),
    /// No row matches (NULL, or a value no shard holds).
    NoRow,
    /// The value is not known here (an unbound parameter, a non-integer
    /// number compared with an integer key).
    Unknown,
}

/// Combines two constraints on one reference with AND.
pub(super) fn both(a: KeyConstraint, b: KeyConstraint) -> KeyConstraint {
    KeyConstraint::All(vec![a, b])
}

/// Combines two constraints on one reference with OR.
pub(super) fn either(a: KeyConstraint, b: KeyConstraint) -> KeyConstraint {
    KeyConstraint::Any(vec![a, b])
}

/// The key value an expression denotes, when it is a literal, a parameter,
/// NULL, or one of those cast to a type the key comparison keeps exact
/// (integer, text or uuid types). Anything else yields `None`.
pub(super) fn key_source(expr: &Expr) -> Option<KeySource> {
    match expr {
        Expr::Nested(inner) => key_source(inner),
        Expr::Value(value) => value_source(&value.value),
        Expr::UnaryOp { op, expr } => match (op, key_source(expr)?) {
            (UnaryOperator::Minus, KeySource::Number(n)) if !n.starts_with('-') => {
                Some(KeySource::Number(format!("-{n}")))
            }
            (UnaryOperator::Plus, source @ KeySource::Number(_)) => Some(source),
            _ => None,
        },
        Expr::Cast {
            expr, data_type, ..
        } if exact_key_cast(data_type) => key_source(expr),
        Expr::TypedString(typed) if exact_key_cast(&typed.data_type) => {
            match value_source(&typed.value.value)? {
                text @ KeySource::Text(_) => Some(text),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The key value of a literal or placeholder.
fn value_source(value: &Value) -> Option<KeySource> {
    match value {
        Value::Number(n, _) => Some(KeySource::Number(n.clone())),
        Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) => {
            Some(KeySource::Text(s.clone()))
        }
        Value::DollarQuotedString(d) => Some(KeySource::Text(d.value.clone())),
        Value::Null => Some(KeySource::Null),
        Value::Placeholder(name) => placeholder_number(name).map(KeySource::Param),
        _ => None,
    }
}

/// Whether a cast to `data_type` leaves a key literal's value as the key
/// comparison sees it: integer types, `text`, `varchar` without a length,
/// and uuid. (A cast to numeric or float could round, `varchar(n)` cut and
/// `char(n)` pad, so those are not looked through.)
fn exact_key_cast(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int2(_)
            | DataType::SmallInt(_)
            | DataType::Int(_)
            | DataType::Int4(_)
            | DataType::Integer(_)
            | DataType::Int8(_)
            | DataType::BigInt(_)
            | DataType::Text
            | DataType::Varchar(None)
            | DataType::CharacterVarying(None)
            | DataType::CharVarying(None)
            | DataType::Uuid
    )
}

/// Shards of the rows `constraint` admits in `table`.
pub(super) fn shards_of_constraint(
    constraint: &KeyConstraint,
    table: &ShardedTable,
    input: &RouteInput,
    map: &ShardMap,
) -> Result<ShardSet, PgError> {
    match constraint {
        KeyConstraint::OneOf(sources) => {
            let mut shards = BTreeSet::new();
            for source in sources {
                match resolve_filter(source, table, input, map)? {
                    Resolved::Shard(shard) => {
                        shards.insert(shard);
                    }
                    Resolved::NoRow => {}
                    Resolved::Unknown => return Ok(None),
                }
            }
            Ok(Some(shards))
        }
        KeyConstraint::All(parts) => {
            let mut result: ShardSet = None;
            for part in parts {
                result = intersect(result, shards_of_constraint(part, table, input, map)?);
            }
            Ok(result)
        }
        KeyConstraint::Any(parts) => {
            let mut result = BTreeSet::new();
            for part in parts {
                match shards_of_constraint(part, table, input, map)? {
                    Some(shards) => result.extend(shards),
                    None => return Ok(None),
                }
            }
            Ok(Some(result))
        }
    }
}

/// Intersection of two shard sets, `None` meaning "unconstrained".
pub(super) fn intersect(a: ShardSet, b: ShardSet) -> ShardSet {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.intersection(&b).copied().collect()),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Resolves a value compared with the key in a filter: NULL and values no
/// shard holds match no row (the comparison is never true), bad values are
/// errors as the server would raise them.
fn resolve_filter(
    source: &KeySource,
    table: &ShardedTable,
    input: &RouteInput,
    map: &ShardMap,
) -> Result<Resolved, PgError> {
    let Some(key) = key_input(source, table, input)? else {
        return Ok(Resolved::Unknown);
    };
    if key == KeyInput::Null {
        return Ok(Resolved::NoRow);
    }
    match map.shard_for_input(table, key) {
        Ok(shard) => Ok(Resolved::Shard(shard)),
        Err(KeyError::Unmapped { .. }) => Ok(Resolved::NoRow),
        // An integer literal out of the key type's range equals no key
        // (Postgres compares it as a wider type; only text is parsed).
        Err(KeyError::Invalid { .. } | KeyError::OutOfRange { .. })
            if matches!(source, KeySource::Number(_)) =>
        {
            Ok(Resolved::NoRow)
        }
        Err(error) => Err(key_error(error)),
    }
}

/// The shard a row whose key is `source` belongs to (an inserted row):
/// `Ok(None)` when the value is not known here.
pub(super) fn row_shard(
    source: &KeySource,
    table: &ShardedTable,
    input: &RouteInput,
    map: &ShardMap,
) -> Result<Option<usize>, PgError> {
    match key_input(source, table, input)? {
        Some(key) => map.shard_for_input(table, key).map(Some).map_err(key_error),
        None => Ok(None),
    }
}

/// The key as the map parses it, or `None` when unknown.
fn key_input<'a>(
    source: &'a KeySource,
    table: &ShardedTable,
    input: &RouteInput<'a>,
) -> Result<Option<KeyInput<'a>>, PgError> {
    Ok(match source {
        KeySource::Number(n) => {
            let integer_key = matches!(table.key_type, KeyType::Bigint | KeyType::Integer);
            (!integer_key || is_integer_literal(n)).then_some(KeyInput::Text(n))
        }
        KeySource::Text(s) => Some(KeyInput::Text(s)),
        KeySource::Null => Some(KeyInput::Null),
        KeySource::Param(n) => param_input(*n, input)?,
    })
}

/// Bind parameter `$n` as the map reads it, by its format code.
fn param_input<'a>(n: usize, input: &RouteInput<'a>) -> Result<Option<KeyInput<'a>>, PgError> {
    let Some(value) = input.params.get(n - 1) else {
        return Ok(None);
    };
    let Some(bytes) = value else {
        return Ok(Some(KeyInput::Null));
    };
    let format = match input.param_formats {
        [] => 0,
        [all] => *all,
        each => each.get(n - 1).copied().unwrap_or(0),
    };
    if format == 1 {
        return Ok(Some(KeyInput::Binary(bytes)));
    }
    std::str::from_utf8(bytes)
        .map(|text| Some(KeyInput::Text(text)))
        .map_err(|_| {
            PgError::error(
                "22021",
                format!("bind parameter ${n} is not valid UTF-8 text"),
            )
        })
}

/// Whether a numeric literal is an integer (Postgres types `4.5` and `1e3`
/// as numeric: compared with an integer key they do not name one value).
fn is_integer_literal(n: &str) -> bool {
    let digits = n.strip_prefix('-').unwrap_or(n);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// A key error as the client sees it.
pub fn key_error(error: KeyError) -> PgError {
    let code = match error {
        KeyError::Invalid { .. } => "22P02",
        KeyError::OutOfRange { .. } => "22003",
        KeyError::Unmapped { .. } => "22023",
    };
    PgError::error(code, error.to_string())
}
