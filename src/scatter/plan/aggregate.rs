//! Recognizing aggregate calls and deciding which ones merge across shards.
//!
//! COUNT, SUM, MIN and MAX of partial groups combine exactly (sum of
//! counts, sum of sums, least of minimums, greatest of maximums), and AVG
//! does once rewritten to SUM plus a hidden COUNT. Everything else that
//! aggregates (DISTINCT, FILTER, ordered input, statistics, array and string
//! aggregates) cannot be rebuilt from per-shard results and is refused.

use sqlparser::ast::{DuplicateTreatment, Function, FunctionArguments, ObjectName};

use super::{ONE_SHARD, ident_name, unsupported};

/// An aggregate whose per-shard results combine into the exact answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mergeable {
    /// `count(*)`, `count(x)`.
    Count,
    /// `sum(x)`.
    Sum,
    /// `min(x)`.
    Min,
    /// `max(x)`.
    Max,
    /// `avg(x)`: each shard returns `sum(x)` and `count(x)`.
    Avg,
}

/// Postgres' built-in aggregates other than the mergeable ones; a call to
/// one of them is an aggregate the proxy must refuse, never a plain
/// function it may pass through as a group key.
const OTHER_AGGREGATES: &[&str] = &[
    "any_value",
    "array_agg",
    "bit_and",
    "bit_or",
    "bit_xor",
    "bool_and",
    "bool_or",
    "corr",
    "covar_pop",
    "covar_samp",
    "cume_dist",
    "dense_rank",
    "every",
    "grouping",
    "json_agg",
    "json_agg_strict",
    "json_arrayagg",
    "json_object_agg",
    "json_object_agg_strict",
    "json_object_agg_unique",
    "json_object_agg_unique_strict",
    "json_objectagg",
    "jsonb_agg",
    "jsonb_agg_strict",
    "jsonb_object_agg",
    "jsonb_object_agg_strict",
    "jsonb_object_agg_unique",
    "jsonb_object_agg_unique_strict",
    "mode",
    "percent_rank",
    "percentile_cont",
    "percentile_disc",
    "range_agg",
    "range_intersect_agg",
    "rank",
    "regr_avgx",
    "regr_avgy",
    "regr_count",
    "regr_intercept",
    "regr_r2",
    "regr_slope",
    "regr_sxx",
    "regr_sxy",
    "regr_syy",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "string_agg",
    "var_pop",
    "var_samp",
    "variance",
    "xmlagg",
];

/// Whether `call` aggregates rows of the query it appears in: a built-in
/// aggregate name called without OVER, or any call using syntax only
/// aggregates accept (FILTER, WITHIN GROUP, DISTINCT or ORDER BY inside
/// the parentheses), which also catches user-defined aggregates written
/// that way.
pub(super) fn is_aggregate(call: &Function) -> bool {
    if call.over.is_some() {
        return false;
    }
    let aggregate_syntax = call.filter.is_some()
        || !call.within_group.is_empty()
        || matches!(&call.args, FunctionArguments::List(list)
            if list.duplicate_treatment == Some(DuplicateTreatment::Distinct)
                || !list.clauses.is_empty());
    aggregate_syntax
        || builtin_name(&call.name).is_some_and(|name| {
            mergeable_by_name(&name).is_some() || OTHER_AGGREGATES.contains(&name.as_str())
        })
}

/// Whether `call` is a window function call (`... OVER (...)`).
pub(super) fn is_window(call: &Function) -> bool {
    call.over.is_some()
}

/// How an aggregate call (see [`is_aggregate`]) merges, or the error text
/// naming what cannot be merged and what to write instead.
pub(super) fn mergeable(call: &Function) -> Result<Mergeable, String> {
    let shown = builtin_name(&call.name).unwrap_or_else(|| call.name.to_string());
    let Some(kind) = builtin_name(&call.name).and_then(|name| mergeable_by_name(&name)) else {
        return Err(unsupported(
            &format!("aggregate {shown}()"),
            &format!("{ONE_SHARD}, or compute it in the application from plain rows"),
        ));
    };
    if call.filter.is_some() {
        let rewrite = if kind == Mergeable::Count {
            format!("{shown}(CASE WHEN <condition> THEN 1 END)")
        } else {
            format!("{shown}(CASE WHEN <condition> THEN <value> END)")
        };
        return Err(unsupported(
            &format!("aggregate {shown}() with FILTER"),
            &format!("write {rewrite} instead, or {ONE_SHARD}"),
        ));
    }
    if !call.within_group.is_empty() {
        return Err(unsupported(
            &format!("aggregate {shown}() WITHIN GROUP"),
            ONE_SHARD,
        ));
    }
    if call.null_treatment.is_some() || !matches!(call.parameters, FunctionArguments::None) {
        return Err(unsupported(&format!("this form of {shown}()"), ONE_SHARD));
    }
    if let FunctionArguments::List(list) = &call.args {
        if list.duplicate_treatment == Some(DuplicateTreatment::Distinct) {
            return Err(unsupported(
                &format!("{shown}(DISTINCT ...)"),
                &format!(
                    "per-shard distinct values overlap, so {ONE_SHARD}, or select the distinct \
                     values and aggregate them in the application"
                ),
            ));
        }
        if !list.clauses.is_empty() {
            return Err(unsupported(
                &format!("aggregate {shown}() with ORDER BY or other clauses inside the call"),
                &format!("drop the clause (it does not change {shown}()), or {ONE_SHARD}"),
            ));
        }
    }
    Ok(kind)
}

/// The aggregate's name for `count`, `sum`, ... including the
/// `pg_catalog.` spelling; a function in any other schema is the user's
/// own and keeps its qualified name out of this lookup.
fn builtin_name(name: &ObjectName) -> Option<String> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|part| part.as_ident().map(ident_name))
        .collect::<Option<_>>()?;
    match parts.as_slice() {
        [name] => Some(name.clone()),
        [schema, name] if schema == "pg_catalog" => Some(name.clone()),
        _ => None,
    }
}

/// The mergeable aggregate called `name` (lower case), if any.
fn mergeable_by_name(name: &str) -> Option<Mergeable> {
    match name {
        "count" => Some(Mergeable::Count),
        "sum" => Some(Mergeable::Sum),
        "min" => Some(Mergeable::Min),
        "max" => Some(Mergeable::Max),
        "avg" => Some(Mergeable::Avg),
        _ => None,
    }
}
