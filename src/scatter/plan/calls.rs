//! Finding function calls that belong to one query level.
//!
//! The planner must know whether an expression calls an aggregate or a
//! window function *of the query being planned*: a call inside a sub-select
//! is evaluated by that sub-select on each shard and does not change how
//! the shards' rows merge. [`walk_level`] reports exactly the expressions
//! of the planned level, sub-selects left out.

use std::ops::ControlFlow;

use sqlparser::ast::{Expr, Function};

use crate::sqlwalk::{LevelNode, walk_level};

/// The first function call in `expr`, outside sub-selects, for which
/// `wanted` holds (the expression itself included). A copy, for naming it
/// in a refusal: the walk lends out nodes only for the time of one call.
pub(super) fn find_call(expr: &Expr, wanted: &dyn Fn(&Function) -> bool) -> Option<Function> {
    let found = walk_level(expr, |node| match node {
        LevelNode::Expr(Expr::Function(call)) if wanted(call) => {
            ControlFlow::Break(Box::new(call.clone()))
        }
        _ => ControlFlow::Continue(()),
    });
    found.break_value().map(|call| *call)
}
