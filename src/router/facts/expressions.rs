//! Walking expressions for the subqueries they contain; anything not
//! understood is scanned for table names instead.

use std::fmt::Display;

use sqlparser::ast::{Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, InTarget};

use super::{Walker, mentioned_tables};
use crate::router::text;

impl Walker<'_> {
    /// Something the walk does not look into: every sharded or reference
    /// table its text names becomes an unconstrained nested reference.
    pub(super) fn opaque(&mut self, node: &dyn Display) {
        let identifiers = text::identifiers(&node.to_string());
        let depth = self.scopes.len();
        for name in mentioned_tables(self.map, &identifiers) {
            self.add_ref(&name, depth, false);
        }
    }

    /// Walks an expression for the subqueries it contains.
    pub(super) fn expr(&mut self, expr: &Expr) {
        match expr {
            Expr::Subquery(query)
            | Expr::Exists {
                subquery: query, ..
            } => self.query(query, false),
            Expr::In { expr, target, .. } => {
                self.expr(expr);
                match target {
                    InTarget::List(list) => list.iter().for_each(|e| self.expr(e)),
                    InTarget::Subquery(query) => self.query(query, false),
                    InTarget::Unnest(e) => self.expr(e),
                    other => self.opaque(other),
                }
            }
            Expr::BinaryOp { left, right, .. }
            | Expr::AnyOp { left, right, .. }
            | Expr::AllOp { left, right, .. }
            | Expr::IsDistinctFrom(left, right)
            | Expr::IsNotDistinctFrom(left, right)
            | Expr::AtTimeZone {
                timestamp: left,
                time_zone: right,
            }
            | Expr::Position {
                expr: left,
                r#in: right,
            } => {
                self.expr(left);
                self.expr(right);
            }
            Expr::UnaryOp { expr, .. }
            | Expr::Nested(expr)
            | Expr::Cast { expr, .. }
            | Expr::Collate { expr, .. }
            | Expr::Extract { expr, .. }
            | Expr::Ceil { expr, .. }
            | Expr::Floor { expr, .. }
            | Expr::Named { expr, .. }
            | Expr::IsJson { expr, .. }
            | Expr::IsNormalized { expr, .. }
            | Expr::IsFalse(expr)
            | Expr::IsNotFalse(expr)
            | Expr::IsTrue(expr)
            | Expr::IsNotTrue(expr)
            | Expr::IsNull(expr)
            | Expr::IsNotNull(expr)
            | Expr::IsUnknown(expr)
            | Expr::IsNotUnknown(expr) => self.expr(expr),
            Expr::Between {
                expr, low, high, ..
            } => [expr, low, high].into_iter().for_each(|e| self.expr(e)),
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
                .for_each(|e| self.expr(e)),
            Expr::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => [Some(expr), substring_from.as_ref(), substring_for.as_ref()]
                .into_iter()
                .flatten()
                .for_each(|e| self.expr(e)),
            Expr::Trim {
                expr,
                trim_what,
                trim_characters,
                ..
            } => {
                self.expr(expr);
                trim_what.iter().for_each(|e| self.expr(e));
                trim_characters.iter().flatten().for_each(|e| self.expr(e));
            }
            Expr::Overlay {
                expr,
                overlay_what,
                overlay_from,
                overlay_for,
            } => [
                Some(expr),
                Some(overlay_what),
                Some(overlay_from),
                overlay_for.as_ref(),
            ]
            .into_iter()
            .flatten()
            .for_each(|e| self.expr(e)),
            Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                operand.iter().for_each(|e| self.expr(e));
                for when in conditions {
                    self.expr(&when.condition);
                    self.expr(&when.result);
                }
                else_result.iter().for_each(|e| self.expr(e));
            }
            Expr::Function(function) => self.function(function),
            Expr::Tuple(exprs) => exprs.iter().for_each(|e| self.expr(e)),
            Expr::Array(array) => array.elem.iter().for_each(|e| self.expr(e)),
            Expr::GroupingSets(sets) | Expr::Cube(sets) | Expr::Rollup(sets) => {
                sets.iter().flatten().for_each(|e| self.expr(e))
            }
            Expr::Identifier(_)
            | Expr::CompoundIdentifier(_)
            | Expr::Value(_)
            | Expr::TypedString(_)
            | Expr::Wildcard(_)
            | Expr::QualifiedWildcard(..) => {}
            other => self.opaque(other),
        }
    }

    pub(super) fn function(&mut self, function: &Function) {
        for arguments in [&function.parameters, &function.args] {
            match arguments {
                FunctionArguments::None => {}
                FunctionArguments::Subquery(query) => self.query(query, false),
                FunctionArguments::List(list) => {
                    list.args.iter().for_each(|a| self.function_arg(a));
                    list.clauses.iter().for_each(|c| self.opaque(c));
                }
            }
        }
        function.filter.iter().for_each(|e| self.expr(e));
        function
            .within_group
            .iter()
            .for_each(|o| self.expr(&o.expr));
        if let Some(over) = &function.over {
            self.opaque(over);
        }
    }

    pub(super) fn function_arg(&mut self, arg: &FunctionArg) {
        let (FunctionArg::Named { arg, .. }
        | FunctionArg::ExprNamed { arg, .. }
        | FunctionArg::Unnamed(arg)) = arg;
        if let FunctionArgExpr::Expr(e) = arg {
            self.expr(e);
        }
    }
}
