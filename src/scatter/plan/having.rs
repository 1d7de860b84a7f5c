//! HAVING as a [`Filter`] the proxy evaluates on merged groups.
//!
//! A shard sees only part of each group, so it cannot decide HAVING; the
//! shards return every partial group and the proxy tests the merged one.
//! The proxy can test comparisons of an aggregate or group key with a
//! number or string constant, combined with AND, OR and NOT.

use sqlparser::ast::{BinaryOperator, Expr, UnaryOperator, Value};

use crate::scatter::{CompareOp, Filter};

use super::{Clause, ONE_SHARD, Planner, unsupported};

/// The filter for HAVING `condition`, appending hidden columns for the
/// aggregates and keys it tests that the select list lacks.
pub(super) fn filter(planner: &mut Planner, condition: &Expr) -> Result<Filter, String> {
    match condition {
        Expr::Nested(inner) => filter(planner, inner),
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => Ok(Filter::Not(Box::new(filter(planner, expr)?))),
        Expr::BinaryOp { left, op, right } => match op {
            BinaryOperator::And => Ok(Filter::And(
                Box::new(filter(planner, left)?),
                Box::new(filter(planner, right)?),
            )),
            BinaryOperator::Or => Ok(Filter::Or(
                Box::new(filter(planner, left)?),
                Box::new(filter(planner, right)?),
            )),
            _ => comparison(planner, condition, left, op, right),
        },
        _ => Err(refusal(condition)),
    }
}

/// `operand <op> constant` or `constant <op> operand` as a comparison of a
/// merged column with the constant.
fn comparison(
    planner: &mut Planner,
    condition: &Expr,
    left: &Expr,
    op: &BinaryOperator,
    right: &Expr,
) -> Result<Filter, String> {
    let op = compare_op(op).ok_or_else(|| refusal(condition))?;
    let (operand, op, literal) = match (constant(left), constant(right)) {
        (None, Some(literal)) => (left, op, literal),
        (Some(literal), None) => (right, flipped(op), literal),
        _ => return Err(refusal(condition)),
    };
    Ok(Filter::Compare {
        column: planner.column_for(operand, Clause::Having)?,
        op,
        literal,
    })
}

/// The error for a HAVING condition outside the supported forms.
fn refusal(condition: &Expr) -> String {
    unsupported(
        &format!("HAVING condition {condition}"),
        &format!(
            "compare an aggregate or group key with a number or string constant (combined with \
             AND, OR, NOT), filter the rows in the application, or {ONE_SHARD}"
        ),
    )
}

/// The filter operator for a SQL comparison operator.
fn compare_op(op: &BinaryOperator) -> Option<CompareOp> {
    match op {
        BinaryOperator::Eq => Some(CompareOp::Eq),
        BinaryOperator::NotEq => Some(CompareOp::NotEq),
        BinaryOperator::Lt => Some(CompareOp::Lt),
        BinaryOperator::LtEq => Some(CompareOp::LtEq),
        BinaryOperator::Gt => Some(CompareOp::Gt),
        BinaryOperator::GtEq => Some(CompareOp::GtEq),
        _ => None,
    }
}

/// The operator with its operands swapped: `5 < x` is `x > 5`.
fn flipped(op: CompareOp) -> CompareOp {
    match op {
        CompareOp::Lt => CompareOp::Gt,
        CompareOp::LtEq => CompareOp::GtEq,
        CompareOp::Gt => CompareOp::Lt,
        CompareOp::GtEq => CompareOp::LtEq,
        CompareOp::Eq | CompareOp::NotEq => op,
    }
}

/// A number or string constant as SQL text (`10`, `-2.5`, `'abc'` with
/// quotes doubled inside).
fn constant(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Value(value) => match &value.value {
            Value::Number(..) | Value::SingleQuotedString(_) => Some(value.value.to_string()),
            _ => None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match expr.as_ref() {
            Expr::Value(value) if matches!(value.value, Value::Number(..)) => {
                Some(format!("-{}", value.value))
            }
            _ => None,
        },
        _ => None,
    }
}
