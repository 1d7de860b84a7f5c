//! Walking INSERT, UPDATE, DELETE and MERGE: the written table, the key
//! of inserted rows, assignments to the key column.

use sqlparser::ast::{
    AssignmentTarget, Delete, Expr, FromTable, Insert, Merge, OnConflictAction, OnInsert,
    SelectItem, SetExpr, TableFactor, TableObject, TableWithJoins, Update, UpdateTableFromKind,
};

use super::conditions::CondUse;
use super::queries::has_outer_join;
use super::{InsertRows, MissingKey, RefId, Walker, Write, WriteKind, fold, fold_name};
use crate::router::keys::key_source;

impl Walker<'_> {
    pub(super) fn insert(&mut self, insert: &Insert) {
        self.in_scope(false, false, |walker| {
            let target = match &insert.table {
                TableObject::TableName(name) => {
                    walker.bind_table(name, insert.table_alias.as_ref().map(|a| &a.alias))
                }
                other => {
                    walker.opaque(other);
                    None
                }
            };
            walker.bind_opaque("excluded".to_string());
            let kind = match &insert.source {
                Some(source) => match (&*source.body, &source.with) {
                    (SetExpr::Values(values), None) => {
                        let rows: Vec<&[Expr]> =
                            values.rows.iter().map(|r| r.content.as_slice()).collect();
                        rows.iter()
                            .flat_map(|r| r.iter())
                            .for_each(|e| walker.expr(e));
                        WriteKind::Rows(walker.insert_rows(insert, target, &rows))
                    }
                    _ => {
                        walker.query(source, false);
                        WriteKind::FromQuery {
                            verb: "INSERT ... SELECT",
                        }
                    }
                },
                None => WriteKind::Rows(InsertRows {
                    keys: vec![None],
                    missing: Some(MissingKey::DefaultValues),
                    positional: Vec::new(),
                    statement: None,
                    conflict_updates_key: false,
                }),
            };
            let conflict_updates_key = walker.on_conflict(insert, target);
            walker.returning(insert.returning.as_deref());
            if let Some(target) = target {
                let kind = match kind {
                    WriteKind::Rows(mut rows) => {
                        rows.conflict_updates_key = conflict_updates_key;
                        WriteKind::Rows(rows)
                    }
                    other => other,
                };
                walker.facts.writes.push(Write { target, kind });
            }
        });
    }

    /// The key of every VALUES row of an INSERT into `target`.
    pub(super) fn insert_rows(
        &self,
        insert: &Insert,
        target: Option<RefId>,
        rows: &[&[Expr]],
    ) -> InsertRows {
        let key_column = target.and_then(|t| self.key_column_of(t));
        let position = key_column.map(|key| {
            if insert.columns.is_empty() {
                Err(MissingKey::NoColumnList)
            } else {
                insert
                    .columns
                    .iter()
                    .position(|c| fold_name(c).first().map(String::as_str) == Some(key))
                    .ok_or(MissingKey::NotListed)
            }
        });
        let positional = if matches!(position, Some(Err(MissingKey::NoColumnList))) {
            rows.iter()
                .map(|row| row.iter().map(key_source).collect())
                .collect()
        } else {
            Vec::new()
        };
        let (keys, missing) = match position {
            Some(Ok(at)) => (
                rows.iter()
                    .map(|row| row.get(at).and_then(key_source))
                    .collect(),
                None,
            ),
            Some(Err(missing)) => (vec![None; rows.len()], Some(missing)),
            None => (vec![None; rows.len()], None),
        };
        // Parts are rendered from the INSERT alone: one inside a WITH query
        // cannot be split (its rows may use the WITH's tables).
        let splittable = key_column.is_some() && rows.len() > 1 && self.queries == 0;
        let statement = splittable.then(|| Box::new(insert.clone()));
        InsertRows {
            keys,
            missing,
            positional,
            statement,
            conflict_updates_key: false,
        }
    }

    /// Walks `ON CONFLICT DO UPDATE`; true when it assigns the target's key
    /// anything but `EXCLUDED.<key>` (the row stays where it is only then).
    pub(super) fn on_conflict(&mut self, insert: &Insert, target: Option<RefId>) -> bool {
        let Some(OnInsert::OnConflict(conflict)) = &insert.on else {
            if let Some(other) = &insert.on {
                self.opaque(other);
            }
            return false;
        };
        let OnConflictAction::DoUpdate(update) = &conflict.action else {
            return false;
        };
        let key = target.and_then(|t| self.key_column_of(t));
        let mut moves_key = false;
        for assignment in &update.assignments {
            self.expr(&assignment.value);
            let keeps_key = matches!(&assignment.value, Expr::CompoundIdentifier(parts)
                if parts.iter().map(fold).collect::<Vec<_>>() == ["excluded", key.unwrap_or_default()]);
            moves_key |= assigns(&assignment.target, key) && !keeps_key;
        }
        if let Some(selection) = &update.selection {
            self.expr(selection);
        }
        moves_key
    }

    pub(super) fn returning(&mut self, returning: Option<&[SelectItem]>) {
        returning
            .into_iter()
            .flatten()
            .for_each(|item| self.select_item(item));
    }

    pub(super) fn update(&mut self, update: &Update) {
        let mut from_items: Vec<&TableWithJoins> = Vec::new();
        if let Some(UpdateTableFromKind::BeforeSet(items) | UpdateTableFromKind::AfterSet(items)) =
            &update.from
        {
            from_items.extend(items);
        }
        let outer = has_outer_join(std::slice::from_ref(&update.table))
            || from_items
                .iter()
                .any(|i| has_outer_join(std::slice::from_ref(*i)));
        self.in_scope(false, outer, |walker| {
            let target = walker.write_target(&update.table.relation);
            for join in &update.table.joins {
                walker.factor(&join.relation);
            }
            from_items.iter().for_each(|item| walker.join_tree(item));
            let key = target.and_then(|t| walker.key_column_of(t));
            let mut updates_key = false;
            for assignment in &update.assignments {
                walker.expr(&assignment.value);
                updates_key |= assigns(&assignment.target, key);
            }
            walker.filter(update.selection.as_ref());
            walker.returning(update.returning.as_deref());
            if let Some(target) = target {
                walker.facts.writes.push(Write {
                    target,
                    kind: WriteKind::Filtered {
                        verb: "UPDATE",
                        updates_key,
                    },
                });
            }
        });
    }

    pub(super) fn delete(&mut self, delete: &Delete) {
        let (FromTable::WithFromKeyword(items) | FromTable::WithoutKeyword(items)) = &delete.from;
        let using = delete.using.as_deref().unwrap_or_default();
        let outer = has_outer_join(items) || has_outer_join(using);
        self.in_scope(false, outer, |walker| {
            let mut items = items.iter();
            let target = items.next().and_then(|first| {
                let target = walker.write_target(&first.relation);
                for join in &first.joins {
                    walker.factor(&join.relation);
                }
                target
            });
            items.chain(using).for_each(|item| walker.join_tree(item));
            walker.filter(delete.selection.as_ref());
            walker.returning(delete.returning.as_deref());
            if let Some(target) = target {
                walker.facts.writes.push(Write {
                    target,
                    kind: WriteKind::Filtered {
                        verb: "DELETE",
                        updates_key: false,
                    },
                });
            }
        });
    }

    pub(super) fn merge(&mut self, merge: &Merge) {
        self.in_scope(false, true, |walker| {
            let target = walker.write_target(&merge.table);
            walker.factor(&merge.source);
            walker.expr(&merge.on);
            merge.clauses.iter().for_each(|c| walker.opaque(c));
            if let Some(target) = target {
                walker.facts.writes.push(Write {
                    target,
                    kind: WriteKind::FromQuery { verb: "MERGE" },
                });
            }
        });
    }

    /// Binds the table an UPDATE / DELETE / MERGE writes.
    pub(super) fn write_target(&mut self, factor: &TableFactor) -> Option<RefId> {
        match factor {
            TableFactor::Table {
                name,
                alias,
                args: None,
                ..
            } => self.bind_table(name, alias.as_ref().map(|a| &a.name)),
            other => {
                self.factor(other);
                None
            }
        }
    }

    /// A WHERE clause of the innermost scope.
    pub(super) fn filter(&mut self, selection: Option<&Expr>) {
        if let Some(selection) = selection {
            self.condition(selection, CondUse::KeysAndEdges);
            self.expr(selection);
        }
    }
}

/// Whether an assignment sets column `key` (or a field of it).
fn assigns(target: &AssignmentTarget, key: Option<&str>) -> bool {
    let Some(key) = key else {
        return false;
    };
    let names = match target {
        AssignmentTarget::ColumnName(name) => std::slice::from_ref(name),
        AssignmentTarget::Tuple(names) => names.as_slice(),
    };
    names
        .iter()
        .any(|name| fold_name(name).first().map(String::as_str) == Some(key))
}
