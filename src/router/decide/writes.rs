//! Routing writes: the shards of the written table's rows (by WHERE, by
//! inserted row, or by hint), and checks that everything else the
//! statement reads is on those shards.

use std::collections::BTreeMap;

use crate::net::messages::PgError;
use crate::router::facts::{Facts, InsertRows, MissingKey, RefClass, RefId, Write, WriteKind};
use crate::router::insert::split_insert;
use crate::router::keys::{KeySource, row_shard};
use crate::sharding::map::ShardedTable;

use super::placement::Placement;
use super::{PICK_A_SHARD, Route, Router, everywhere, on, unsupported};

impl Router<'_> {
    pub(super) fn write(
        &self,
        facts: &Facts,
        writes: &[Write],
        placement: &Placement,
    ) -> Result<Route, PgError> {
        let mut routes = Vec::new();
        for write in writes {
            routes.push(self.write_route(facts, write, placement)?);
        }
        let shards = |route: &Route| -> Vec<usize> {
            match route {
                Route::Single(shard) => vec![*shard],
                Route::AllShards { shards, .. } => shards.clone(),
                Route::SplitInsert { parts } => parts.iter().map(|p| p.shard).collect(),
                _ => Vec::new(),
            }
        };
        let Some(first) = routes.first() else {
            return Ok(Route::Single(self.map.default_shard));
        };
        let target = shards(first);
        if routes.len() > 1
            && !routes
                .iter()
                .all(|r| matches!(r, Route::Single(_)) && shards(r) == target)
        {
            let names: Vec<&str> = writes
                .iter()
                .map(|w| facts.refs[w.target].name.as_str())
                .collect();
            return Err(unsupported(format!(
                "statement writes {} on different shards or on several shards each",
                names.join(" and ")
            ))
            .with_hint("split it into one statement per table"));
        }
        let written: Vec<RefId> = writes.iter().map(|w| w.target).collect();
        for (id, table_ref) in facts.refs.iter().enumerate() {
            if written.contains(&id) {
                continue;
            }
            let confined = match table_ref.class {
                RefClass::Reference => true,
                RefClass::Unsharded => target == [self.map.default_shard],
                RefClass::Sharded => {
                    written.iter().any(|&w| {
                        facts.refs[w].class == RefClass::Sharded && placement.bound_to(id, w)
                    }) || placement.sets[id].as_ref().is_some_and(|set| {
                        set.is_empty() || (target.len() == 1 && set.iter().eq(target.iter()))
                    })
                }
            };
            if !confined {
                let written = &facts.refs[written[0]].name;
                return Err(unsupported(format!(
                    "writing {written} on shard(s) {target:?} reads table {}, whose rows are elsewhere",
                    table_ref.name
                ))
                .with_hint(match table_ref.class {
                    RefClass::Unsharded => format!("{} lives only on the default shard", table_ref.name),
                    _ => format!(
                        "constrain {}'s sharding key to the written shard, or join it on the key",
                        table_ref.name
                    ),
                }));
            }
        }
        Ok(routes.swap_remove(0))
    }

    pub(super) fn write_route(
        &self,
        facts: &Facts,
        write: &Write,
        placement: &Placement,
    ) -> Result<Route, PgError> {
        let table_ref = &facts.refs[write.target];
        match table_ref.class {
            RefClass::Reference => return Ok(everywhere(self.map)),
            RefClass::Unsharded => return Ok(Route::Single(self.map.default_shard)),
            RefClass::Sharded => {}
        }
        let table = self.sharded(table_ref)?;
        match &write.kind {
            WriteKind::Filtered { verb, updates_key } => {
                if *updates_key {
                    return Err(unsupported(format!(
                        "updating the sharding key {} of {} is not supported: the row could belong to another shard",
                        table.key_column, table.name
                    ))
                    .with_hint("delete the row and insert it with its new key"));
                }
                match &placement.sets[write.target] {
                    Some(set) if set.is_empty() => Ok(Route::Single(
                        self.map.shards_of(table).first().copied().unwrap_or(self.map.default_shard),
                    )),
                    Some(set) => Ok(on(set.iter().copied().collect())),
                    None if self.map.allow_keyless_writes => Ok(on(self.map.shards_of(table))),
                    None => Err(unsupported(format!(
                        "{verb} on sharded table {} without its sharding key {}",
                        table.name, table.key_column
                    ))
                    .with_hint(format!(
                        "add {} = ... to the WHERE clause, or {PICK_A_SHARD}, or set allow_keyless_writes in the shard map",
                        table.key_column
                    ))),
                }
            }
            WriteKind::Rows(rows) => self.insert(table, rows),
            WriteKind::FromQuery { verb } => match self.hinted_row_shard(table)? {
                Some(shard) => Ok(Route::Single(shard)),
                None => Err(unsupported(format!(
                    "{verb} into sharded table {} needs its rows' shard fixed",
                    table.name
                ))
                .with_hint(format!(
                    "SET shardwire.sharding_key, or add a /* shardwire: sharding_key=... */ comment, or {PICK_A_SHARD}"
                ))),
            },
        }
    }

    /// The shard of the session or hinted key for rows of `table`.
    pub(super) fn hinted_row_shard(&self, table: &ShardedTable) -> Result<Option<usize>, PgError> {
        match self.key {
            Some(key) => row_shard(
                &KeySource::Text(key.to_string()),
                table,
                self.input,
                self.map,
            ),
            None => Ok(None),
        }
    }

    pub(super) fn insert(&self, table: &ShardedTable, rows: &InsertRows) -> Result<Route, PgError> {
        if rows.conflict_updates_key {
            return Err(unsupported(format!(
                "ON CONFLICT DO UPDATE may set the sharding key {} of {} only to EXCLUDED.{}",
                table.key_column, table.name, table.key_column
            )));
        }
        let learned;
        let keys = match rows.missing {
            Some(MissingKey::NoColumnList) if self.hinted_row_shard(table)?.is_none() => {
                let Some(&at) = self.input.key_positions.and_then(|p| p.get(&table.name)) else {
                    return Ok(Route::NeedsKeyPosition {
                        table: table.name.clone(),
                    });
                };
                learned = rows
                    .positional
                    .iter()
                    .map(|row| row.get(at).cloned().flatten())
                    .collect::<Vec<_>>();
                &learned
            }
            _ => &rows.keys,
        };
        let mut by_shard: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (row, key) in keys.iter().enumerate() {
            let shard = match key {
                Some(source) => row_shard(source, table, self.input, self.map)?,
                None => None,
            };
            let shard = match shard {
                Some(shard) => shard,
                None => self
                    .hinted_row_shard(table)?
                    .ok_or_else(|| missing_key(table, rows.missing))?,
            };
            by_shard.entry(shard).or_default().push(row);
        }
        if by_shard.len() <= 1 {
            let shard = by_shard
                .keys()
                .next()
                .copied()
                .unwrap_or(self.map.default_shard);
            return Ok(Route::Single(shard));
        }
        let Some(statement) = &rows.statement else {
            return Err(unsupported(format!(
                "INSERT into {} inside a WITH query with rows for several shards is not supported",
                table.name
            ))
            .with_hint("insert the rows of each shard separately, or without the WITH clause"));
        };
        let parts = by_shard
            .into_iter()
            .map(|(shard, rows)| split_insert(statement, shard, rows))
            .collect();
        Ok(Route::SplitInsert { parts })
    }
}

/// The error for inserted rows whose key the text does not give.
fn missing_key(table: &ShardedTable, missing: Option<MissingKey>) -> PgError {
    let (name, key) = (&table.name, &table.key_column);
    let message = match missing {
        Some(MissingKey::NoColumnList) => {
            format!(
                "INSERT into sharded table {name} needs a column list naming its sharding key {key}"
            )
        }
        Some(MissingKey::NotListed | MissingKey::DefaultValues) => {
            format!("INSERT into sharded table {name} must give its sharding key {key}")
        }
        None => format!(
            "the sharding key {key} of every row inserted into {name} must be a literal or a bind parameter"
        ),
    };
    unsupported(message).with_hint(format!(
        "write INSERT INTO {name} ({key}, ...) VALUES (<key>, ...), or SET shardwire.sharding_key"
    ))
}
