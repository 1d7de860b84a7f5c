//! Walking queries: CTEs, set operations, SELECT scopes, FROM lists and
//! joins (which bind the names columns resolve through).

use sqlparser::ast::{
    Distinct, Expr, GroupByExpr, JoinConstraint, JoinOperator, LimitClause, ObjectName,
    OrderByKind, Query, Select, SelectItem, SetExpr, Statement, TableFactor, TableWithJoins,
};

use super::conditions::CondUse;
use super::{RefClass, RefId, Walker, fold, fold_name};

impl Walker<'_> {
    /// Walks a top-level DML statement (query, INSERT, UPDATE, DELETE,
    /// MERGE); other statements are scanned for table names.
    pub(in crate::router) fn statement(&mut self, statement: &Statement) {
        match statement {
            Statement::Query(query) => self.query(query, true),
            Statement::Insert(insert) => self.insert(insert),
            Statement::Update(update) => self.update(update),
            Statement::Delete(delete) => self.delete(delete),
            Statement::Merge(merge) => self.merge(merge),
            other => self.opaque(other),
        }
    }

    /// Walks a query; `top_level` when it is the statement itself.
    pub(super) fn query(&mut self, query: &Query, top_level: bool) {
        self.queries += 1;
        let visible_ctes = self.ctes.len();
        if let Some(with) = &query.with {
            if with.recursive {
                self.ctes
                    .extend(with.cte_tables.iter().map(|cte| fold(&cte.alias.name)));
            }
            for cte in &with.cte_tables {
                self.query(&cte.query, false);
                if !with.recursive {
                    self.ctes.push(fold(&cte.alias.name));
                }
            }
        }
        let mut trailing: Vec<&Expr> = Vec::new();
        if let Some(order_by) = &query.order_by
            && let OrderByKind::Expressions(exprs) = &order_by.kind
        {
            trailing.extend(exprs.iter().map(|e| &e.expr));
        }
        match &query.limit_clause {
            Some(LimitClause::LimitOffset {
                limit,
                offset,
                limit_by,
            }) => {
                trailing.extend(limit);
                trailing.extend(offset.iter().map(|o| &o.value));
                trailing.extend(limit_by);
            }
            Some(LimitClause::OffsetCommaLimit { offset, limit }) => {
                trailing.extend([offset, limit]);
            }
            None => {}
        }
        trailing.extend(query.fetch.iter().filter_map(|f| f.quantity.as_ref()));
        self.set_expr(&query.body, top_level, &trailing);
        self.ctes.truncate(visible_ctes);
        self.queries -= 1;
    }

    /// Walks a query body; `trailing` are ORDER BY / LIMIT expressions,
    /// which see the select list's tables.
    pub(super) fn set_expr(&mut self, body: &SetExpr, top_level: bool, trailing: &[&Expr]) {
        match body {
            SetExpr::Select(select) => {
                self.select(select, top_level, trailing);
                return;
            }
            SetExpr::Query(query) => self.query(query, top_level),
            SetExpr::SetOperation { left, right, .. } => {
                self.set_expr(left, false, &[]);
                self.set_expr(right, false, &[]);
            }
            SetExpr::Values(values) => {
                for row in &values.rows {
                    row.content.iter().for_each(|e| self.expr(e));
                }
            }
            SetExpr::Insert(statement)
            | SetExpr::Update(statement)
            | SetExpr::Delete(statement)
            | SetExpr::Merge(statement) => self.statement(statement),
            SetExpr::Table(table) => self.opaque(table),
        }
        self.in_scope(false, false, |walker| {
            trailing.iter().for_each(|&e| walker.expr(e))
        });
    }

    pub(super) fn select(&mut self, select: &Select, top_level: bool, trailing: &[&Expr]) {
        self.in_scope(top_level, has_outer_join(&select.from), |walker| {
            select.from.iter().for_each(|item| walker.join_tree(item));
            if let Some(selection) = &select.selection {
                walker.condition(selection, CondUse::KeysAndEdges);
                walker.expr(selection);
            }
            select
                .projection
                .iter()
                .for_each(|item| walker.select_item(item));
            if let Some(Distinct::On(exprs)) = &select.distinct {
                exprs.iter().for_each(|e| walker.expr(e));
            }
            if let GroupByExpr::Expressions(exprs, _) = &select.group_by {
                exprs.iter().for_each(|e| walker.expr(e));
            }
            select.having.iter().for_each(|e| walker.expr(e));
            select.qualify.iter().for_each(|e| walker.expr(e));
            select.named_window.iter().for_each(|w| walker.opaque(w));
            trailing.iter().for_each(|&e| walker.expr(e));
        });
        if select.into.is_some() {
            self.facts.creates_table = true;
        }
    }

    pub(super) fn select_item(&mut self, item: &SelectItem) {
        match item {
            SelectItem::UnnamedExpr(e)
            | SelectItem::ExprWithAlias { expr: e, .. }
            | SelectItem::ExprWithAliases { expr: e, .. } => self.expr(e),
            SelectItem::QualifiedWildcard(..) | SelectItem::Wildcard(_) => {}
        }
    }

    pub(super) fn join_tree(&mut self, item: &TableWithJoins) {
        let tree = self.scope().bindings.len();
        self.factor(&item.relation);
        for join in &item.joins {
            let left = self.scope().bindings.len();
            self.factor(&join.relation);
            self.check_preserved_sides(&join.join_operator, tree, left);
            match join_constraint(&join.join_operator) {
                Some(JoinConstraint::On(on)) => {
                    let restricts = !is_outer(&join.join_operator) && !self.scope().outer_joins;
                    let usage = if restricts {
                        CondUse::KeysAndEdges
                    } else {
                        CondUse::EdgesOnly
                    };
                    self.condition(on, usage);
                    self.expr(on);
                }
                Some(JoinConstraint::Using(columns)) => self.using_edges(columns, tree, left),
                _ => {}
            }
        }
    }

    /// Notes an outer join that keeps unmatched rows of a side without
    /// sharded tables (bindings `tree..split` on the left, from `split` on
    /// the right) while the other side has some: run on several shards, it
    /// would return those rows once per shard.
    pub(super) fn check_preserved_sides(
        &mut self,
        operator: &JoinOperator,
        tree: usize,
        split: usize,
    ) {
        let (left_kept, right_kept) = match operator {
            JoinOperator::Left(_) | JoinOperator::LeftOuter(_) => (true, false),
            JoinOperator::Right(_) | JoinOperator::RightOuter(_) => (false, true),
            other if is_outer(other) => (true, true),
            _ => (false, false),
        };
        let bindings = &self.scopes.last().map_or(&[][..], |s| &s.bindings[..]);
        let sharded = |range: &[super::Binding]| {
            range
                .iter()
                .filter_map(|b| b.target)
                .any(|id| self.facts.refs[id].class == RefClass::Sharded)
        };
        let split = split.min(bindings.len());
        let (left, right) = (
            sharded(&bindings[tree.min(split)..split]),
            sharded(&bindings[split..]),
        );
        if (left_kept && !left && right) || (right_kept && !right && left) {
            self.facts.outer_join_repeats = true;
        }
    }

    /// `USING (k)`: references keyed by `k` on the left side (bindings
    /// `tree..split` of this join tree) and in the joined relation
    /// (bindings from `split`) are joined on their keys.
    pub(super) fn using_edges(&mut self, columns: &[ObjectName], tree: usize, split: usize) {
        let bindings: Vec<Option<RefId>> = self.scope().bindings.iter().map(|b| b.target).collect();
        let split = split.min(bindings.len());
        let (left, right) = (&bindings[tree.min(split)..split], &bindings[split..]);
        let mut edges = Vec::new();
        for column in columns.iter().filter_map(|c| fold_name(c).pop()) {
            let keyed = |side: &[Option<RefId>]| -> Vec<RefId> {
                side.iter()
                    .flatten()
                    .copied()
                    .filter(|&r| self.key_column_of(r) == Some(column.as_str()))
                    .collect()
            };
            for l in keyed(left) {
                edges.extend(keyed(right).into_iter().map(|r| (l, r)));
            }
        }
        self.record_edges(edges);
    }

    pub(super) fn factor(&mut self, factor: &TableFactor) {
        match factor {
            TableFactor::Table {
                name, alias, args, ..
            } => match args {
                Some(args) => {
                    self.expr(&args.args);
                    let label = alias.as_ref().map_or_else(
                        || fold_name(name).pop().unwrap_or_default(),
                        |a| fold(&a.name),
                    );
                    self.bind_opaque(label);
                }
                None => {
                    self.bind_table(name, alias.as_ref().map(|a| &a.name));
                }
            },
            TableFactor::Derived {
                subquery, alias, ..
            } => {
                self.query(subquery, false);
                self.bind_alias(alias.as_ref().map(|a| &a.name));
            }
            TableFactor::TableFunction { expr, alias } => {
                self.expr(expr);
                self.bind_alias(alias.as_ref().map(|a| &a.name));
            }
            TableFactor::Function { args, alias, .. } => {
                self.expr(args);
                self.bind_alias(alias.as_ref().map(|a| &a.name));
            }
            TableFactor::UNNEST {
                alias, array_exprs, ..
            } => {
                array_exprs.iter().for_each(|e| self.expr(e));
                self.bind_alias(alias.as_ref().map(|a| &a.name));
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => {
                self.join_tree(table_with_joins);
                self.bind_alias(alias.as_ref().map(|a| &a.name));
            }
            other => self.opaque(other),
        }
    }
}

/// Whether a join keeps rows without a match (or is not a plain inner or
/// cross join).
fn is_outer(operator: &JoinOperator) -> bool {
    !matches!(
        operator,
        JoinOperator::Join(_)
            | JoinOperator::Inner(_)
            | JoinOperator::CrossJoin(_)
            | JoinOperator::StraightJoin(_)
    )
}

/// The ON / USING part of a join, when it has one.
fn join_constraint(operator: &JoinOperator) -> Option<&JoinConstraint> {
    match operator {
        JoinOperator::Join(c)
        | JoinOperator::Inner(c)
        | JoinOperator::Left(c)
        | JoinOperator::LeftOuter(c)
        | JoinOperator::Right(c)
        | JoinOperator::RightOuter(c)
        | JoinOperator::FullOuter(c)
        | JoinOperator::CrossJoin(c)
        | JoinOperator::StraightJoin(c) => Some(c),
        _ => None,
    }
}

/// Whether a FROM list contains an outer join, at any nesting of
/// parenthesized joins.
pub(super) fn has_outer_join(from: &[TableWithJoins]) -> bool {
    from.iter().any(|item| {
        item.joins.iter().any(|join| is_outer(&join.join_operator))
            || std::iter::once(&item.relation)
                .chain(item.joins.iter().map(|join| &join.relation))
                .any(|factor| match factor {
                    TableFactor::NestedJoin {
                        table_with_joins, ..
                    } => has_outer_join(std::slice::from_ref(table_with_joins)),
                    _ => false,
                })
    })
}
