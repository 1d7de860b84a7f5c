//! Finding function calls that belong to one query level.
//!
//! The planner must know whether an expression calls an aggregate or a
//! window function *of the query being planned*: a call inside a sub-select
//! is evaluated by that sub-select on each shard and does not change how
//! the shards' rows merge. sqlparser's visitor is a non-default feature, so
//! this module lists an expression's direct sub-expressions itself; the
//! match over [`Expr`] is exhaustive so a new variant in a sqlparser upgrade
//! fails to compile instead of hiding an aggregate.

use sqlparser::ast::{
    AccessExpr, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentClause,
    FunctionArguments, InTarget, JsonPathElem, Subscript, WindowType,
};

/// The first function call in `expr`, outside sub-selects, for which
/// `wanted` holds (the expression itself included).
pub(super) fn find_call<'a>(
    expr: &'a Expr,
    wanted: &dyn Fn(&Function) -> bool,
) -> Option<&'a Function> {
    if let Expr::Function(call) = expr
        && wanted(call)
    {
        return Some(call);
    }
    sub_expressions(expr)
        .into_iter()
        .find_map(|child| find_call(child, wanted))
}

/// The direct sub-expressions of `expr` evaluated at its own query level
/// (sub-selects and `EXISTS`/`IN (SELECT ...)` bodies are left out).
fn sub_expressions(expr: &Expr) -> Vec<&Expr> {
    match expr {
        Expr::Identifier(_)
        | Expr::CompoundIdentifier(_)
        | Expr::Value(_)
        | Expr::TypedString(_)
        | Expr::Wildcard(_)
        | Expr::QualifiedWildcard(..)
        | Expr::MatchAgainst { .. }
        | Expr::Exists { .. }
        | Expr::Subquery(_) => Vec::new(),
        Expr::IsFalse(inner)
        | Expr::IsNotFalse(inner)
        | Expr::IsTrue(inner)
        | Expr::IsNotTrue(inner)
        | Expr::IsNull(inner)
        | Expr::IsNotNull(inner)
        | Expr::IsUnknown(inner)
        | Expr::IsNotUnknown(inner)
        | Expr::Nested(inner)
        | Expr::OuterJoin(inner)
        | Expr::Prior(inner)
        | Expr::IsJson { expr: inner, .. }
        | Expr::IsNormalized { expr: inner, .. }
        | Expr::UnaryOp { expr: inner, .. }
        | Expr::Cast { expr: inner, .. }
        | Expr::Extract { expr: inner, .. }
        | Expr::Ceil { expr: inner, .. }
        | Expr::Floor { expr: inner, .. }
        | Expr::Collate { expr: inner, .. }
        | Expr::Prefixed { value: inner, .. }
        | Expr::Named { expr: inner, .. } => vec![inner],
        Expr::IsDistinctFrom(left, right)
        | Expr::IsNotDistinctFrom(left, right)
        | Expr::BinaryOp { left, right, .. }
        | Expr::AnyOp { left, right, .. }
        | Expr::AllOp { left, right, .. }
        | Expr::RLike {
            expr: left,
            pattern: right,
            ..
        }
        | Expr::AtTimeZone {
            timestamp: left,
            time_zone: right,
        }
        | Expr::Position {
            expr: left,
            r#in: right,
        } => vec![left, right],
        Expr::Like {
            expr,
            pattern,
            escape_char,
            ..
        }
        | Expr::ILike {
            expr,
            pattern,
            escape_char,
            ..
        }
        | Expr::SimilarTo {
            expr,
            pattern,
            escape_char,
            ..
        } => [Some(expr), Some(pattern), escape_char.as_ref()]
            .into_iter()
            .flatten()
            .map(AsRef::as_ref)
            .collect(),
        Expr::Between {
            expr, low, high, ..
        } => vec![expr, low, high],
        Expr::In { expr, target, .. } => {
            let mut children: Vec<&Expr> = vec![expr];
            match target {
                InTarget::List(list) => children.extend(list),
                InTarget::Unnest(array) => children.push(array),
                InTarget::Subquery(_) | InTarget::Table { .. } => {}
            }
            children
        }
        Expr::CompoundFieldAccess { root, access_chain } => {
            let mut children: Vec<&Expr> = vec![root];
            for access in access_chain {
                match access {
                    AccessExpr::Dot(field) => children.push(field),
                    AccessExpr::Subscript(subscript) => children.extend(subscript_parts(subscript)),
                }
            }
            children
        }
        Expr::JsonAccess { value, path } => {
            let mut children: Vec<&Expr> = vec![value];
            for element in &path.path {
                if let JsonPathElem::Bracket { key } = element {
                    children.push(key);
                }
            }
            children
        }
        Expr::Convert { expr, styles, .. } => {
            let mut children: Vec<&Expr> = vec![expr];
            children.extend(styles);
            children
        }
        Expr::Substring {
            expr,
            substring_from,
            substring_for,
            ..
        } => [Some(expr), substring_from.as_ref(), substring_for.as_ref()]
            .into_iter()
            .flatten()
            .map(AsRef::as_ref)
            .collect(),
        Expr::Trim {
            expr,
            trim_what,
            trim_characters,
            ..
        } => {
            let mut children: Vec<&Expr> = vec![expr];
            children.extend(trim_what.as_deref());
            children.extend(trim_characters.iter().flatten());
            children
        }
        Expr::Overlay {
            expr,
            overlay_what,
            overlay_from,
            overlay_for,
        } => {
            let mut children: Vec<&Expr> = vec![expr, overlay_what, overlay_from];
            children.extend(overlay_for.as_deref());
            children
        }
        Expr::Function(call) => call_arguments(call),
        Expr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            let mut children: Vec<&Expr> = operand.as_deref().into_iter().collect();
            for when in conditions {
                children.push(&when.condition);
                children.push(&when.result);
            }
            children.extend(else_result.as_deref());
            children
        }
        Expr::GroupingSets(sets) | Expr::Cube(sets) | Expr::Rollup(sets) => {
            sets.iter().flatten().collect()
        }
        Expr::Tuple(items) | Expr::Struct { values: items, .. } => items.iter().collect(),
        Expr::Array(array) => array.elem.iter().collect(),
        Expr::Dictionary(fields) => fields.iter().map(|field| field.value.as_ref()).collect(),
        Expr::Map(map) => map
            .entries
            .iter()
            .flat_map(|entry| [entry.key.as_ref(), entry.value.as_ref()])
            .collect(),
        Expr::Interval(interval) => vec![&interval.value],
        Expr::Lambda(lambda) => vec![&lambda.body],
        Expr::MemberOf(member) => vec![&member.value, &member.array],
    }
}

/// Expressions inside `[...]` of an array access.
fn subscript_parts(subscript: &Subscript) -> Vec<&Expr> {
    match subscript {
        Subscript::Index { index } => vec![index],
        Subscript::Slice {
            lower_bound,
            upper_bound,
            stride,
        } => [lower_bound, upper_bound, stride]
            .into_iter()
            .flatten()
            .collect(),
    }
}

/// Every expression a function call evaluates at the caller's level:
/// arguments, in-call ORDER BY and WHERE, FILTER, WITHIN GROUP, and the
/// PARTITION BY / ORDER BY of an inline window.
fn call_arguments(call: &Function) -> Vec<&Expr> {
    let mut children = Vec::new();
    for arguments in [&call.parameters, &call.args] {
        let FunctionArguments::List(list) = arguments else {
            continue;
        };
        for argument in &list.args {
            let value = match argument {
                FunctionArg::Named { arg, .. } | FunctionArg::Unnamed(arg) => arg,
                FunctionArg::ExprNamed { name, arg, .. } => {
                    children.push(name);
                    arg
                }
            };
            if let FunctionArgExpr::Expr(value) = value {
                children.push(value);
            }
        }
        for clause in &list.clauses {
            match clause {
                FunctionArgumentClause::OrderBy(keys) => {
                    children.extend(keys.iter().map(|key| &key.expr));
                }
                FunctionArgumentClause::Where(condition)
                | FunctionArgumentClause::Limit(condition) => children.push(condition),
                _ => {}
            }
        }
    }
    children.extend(call.filter.as_deref());
    children.extend(call.within_group.iter().map(|key| &key.expr));
    if let Some(WindowType::WindowSpec(window)) = &call.over {
        children.extend(&window.partition_by);
        children.extend(window.order_by.iter().map(|key| &key.expr));
    }
    children
}
