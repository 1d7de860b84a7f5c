//! What boolean conditions say about keys: `key = value`, `key IN (...)`
//! and key equalities between tables, combined through AND and OR, with
//! column references resolved through the scopes' bindings.

use sqlparser::ast::{BinaryOperator, Expr, InTarget};

use super::{Binding, RefId, Walker, fold};
use crate::router::keys::{KeyConstraint, KeySource, both, either, key_source};
use crate::sharding::map::normalize_table_name;

/// Conditions found in one boolean expression.
#[derive(Default)]
pub(super) struct Cond {
    keys: Vec<(RefId, KeyConstraint)>,
    edges: Vec<(RefId, RefId)>,
}

/// Which parts of a condition restrict the scope's rows.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum CondUse {
    /// WHERE, or ON of inner joins in a scope without outer joins.
    KeysAndEdges,
    /// ON of a scope with outer joins: only key equalities count.
    EdgesOnly,
}

impl Walker<'_> {
    /// Records what a boolean expression says about the keys of the
    /// innermost scope's references.
    pub(super) fn condition(&mut self, expr: &Expr, usage: CondUse) {
        let found = self.cond(expr);
        if usage == CondUse::KeysAndEdges {
            let depth = self.depth();
            for (id, constraint) in found.keys {
                let table_ref = &mut self.facts.refs[id];
                if table_ref.depth == depth {
                    table_ref.constraint = Some(match table_ref.constraint.take() {
                        Some(existing) => both(existing, constraint),
                        None => constraint,
                    });
                }
            }
        }
        self.record_edges(found.edges);
    }

    /// Files key equalities as same-scope edges or correlations; pairs of
    /// different co-location groups are no co-location at all.
    pub(super) fn record_edges(&mut self, edges: Vec<(RefId, RefId)>) {
        let depth = self.depth();
        for (a, b) in edges {
            let (Some(ta), Some(tb)) = (self.sharded(a), self.sharded(b)) else {
                continue;
            };
            if ta.group != tb.group || a == b {
                continue;
            }
            let (da, db) = (self.facts.refs[a].depth, self.facts.refs[b].depth);
            if da == depth && db == depth {
                self.facts.edges.push((a, b));
            } else if db == depth && da < depth {
                self.facts.correlations.push((a, b));
            } else if da == depth && db < depth {
                self.facts.correlations.push((b, a));
            }
        }
    }

    pub(super) fn cond(&self, expr: &Expr) -> Cond {
        match expr {
            Expr::Nested(inner) => self.cond(inner),
            Expr::BinaryOp {
                left,
                op: BinaryOperator::And,
                right,
            } => conjunction(self.cond(left), self.cond(right)),
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Or,
                right,
            } => disjunction(self.cond(left), self.cond(right)),
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            } => self.equality(left, right),
            Expr::In {
                expr,
                target: InTarget::List(list),
                negated: false,
                ..
            } => {
                let sources: Option<Vec<KeySource>> = list.iter().map(key_source).collect();
                let mut cond = Cond::default();
                if let Some(sources) = sources {
                    cond.keys = self
                        .key_refs(expr)
                        .into_iter()
                        .map(|id| (id, KeyConstraint::OneOf(sources.clone())))
                        .collect();
                }
                cond
            }
            _ => Cond::default(),
        }
    }

    pub(super) fn equality(&self, left: &Expr, right: &Expr) -> Cond {
        let (lrefs, rrefs) = (self.key_refs(left), self.key_refs(right));
        let mut cond = Cond::default();
        for &l in &lrefs {
            cond.edges.extend(rrefs.iter().map(|&r| (l, r)));
        }
        for (refs, other) in [(&lrefs, right), (&rrefs, left)] {
            if let Some(source) = key_source(other) {
                cond.keys.extend(
                    refs.iter()
                        .map(|&id| (id, KeyConstraint::OneOf(vec![source.clone()]))),
                );
            }
        }
        cond
    }

    /// The references whose key column `expr` denotes: qualified names
    /// resolve through every scope, innermost first (the first binding of
    /// that name wins, even if it is not a table); unqualified names only
    /// in the innermost scope, where every table keyed by that column
    /// matches (tables joined `USING` it share the name).
    pub(super) fn key_refs(&self, expr: &Expr) -> Vec<RefId> {
        match expr {
            Expr::Nested(inner) => self.key_refs(inner),
            Expr::Identifier(ident) => {
                let column = fold(ident);
                self.scopes
                    .last()
                    .map(|scope| {
                        scope
                            .bindings
                            .iter()
                            .filter_map(|b| b.target)
                            .filter(|&id| self.key_column_of(id) == Some(column.as_str()))
                            .collect()
                    })
                    .unwrap_or_default()
            }
            Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                let folded: Vec<String> = parts.iter().map(fold).collect();
                let Some((column, qualifier)) = folded.split_last() else {
                    return Vec::new();
                };
                self.resolve_qualifier(qualifier)
                    .filter(|&id| self.key_column_of(id) == Some(column.as_str()))
                    .into_iter()
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    /// The table reference a column qualifier (`t` or `schema.t`) names.
    pub(super) fn resolve_qualifier(&self, qualifier: &[String]) -> Option<RefId> {
        let matches = |b: &Binding| match qualifier {
            [name] => b.name == *name,
            [..] => b.qualified.as_deref() == Some(normalize_table_name(qualifier).as_str()),
        };
        self.scopes
            .iter()
            .rev()
            .find_map(|scope| scope.bindings.iter().find(|b| matches(b)))
            .and_then(|b| b.target)
    }
}

/// Both conditions hold: each reference's constraints combine with AND.
fn conjunction(mut a: Cond, b: Cond) -> Cond {
    for (id, constraint) in b.keys {
        match a.keys.iter_mut().find(|(existing, _)| *existing == id) {
            Some((_, existing)) => {
                let previous = std::mem::replace(existing, KeyConstraint::All(Vec::new()));
                *existing = both(previous, constraint);
            }
            None => a.keys.push((id, constraint)),
        }
    }
    a.edges.extend(b.edges);
    a
}

/// Either condition holds: only references constrained on both sides stay
/// constrained (by the union), and no equality is certain.
fn disjunction(a: Cond, b: Cond) -> Cond {
    let mut keys = Vec::new();
    for (id, left) in a.keys {
        if let Some((_, right)) = b.keys.iter().find(|(other, _)| *other == id) {
            keys.push((id, either(left, right.clone())));
        }
    }
    Cond {
        keys,
        edges: Vec::new(),
    }
}
