//! Routing reads: one shard when every sharded table is confined to it,
//! else a scatter of a top-level co-located join, else an error saying
//! what to change.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::net::messages::PgError;
use crate::router::analysis::Dml;
use crate::router::facts::{RefClass, RefId, TableRef};

use super::placement::Placement;
use super::{PICK_A_SHARD, Route, Router, unsupported};

impl Router<'_> {
    /// The one shard every sharded reference is confined to, if any
    /// (`Some(None)`: none of them can match a row).
    pub(super) fn common_shard(
        &self,
        sharded: &[RefId],
        placement: &Placement,
    ) -> Option<Option<usize>> {
        let mut common = None;
        for &id in sharded {
            let set = placement.sets[id].as_ref()?;
            match (set.len(), common) {
                (0, _) => {}
                (1, None) => common = set.first().copied(),
                (1, Some(shard)) if set.first() == Some(&shard) => {}
                _ => return None,
            }
        }
        Some(common)
    }

    pub(super) fn read(&self, dml: &Dml, placement: &Placement) -> Result<Route, PgError> {
        let refs = &dml.facts.refs;
        let sharded: Vec<RefId> = (0..refs.len())
            .filter(|&id| refs[id].class == RefClass::Sharded)
            .collect();
        let unsharded = refs.iter().find(|r| r.class == RefClass::Unsharded);
        let Some(&first) = sharded.first() else {
            return Ok(Route::Single(match unsharded {
                Some(_) => self.map.default_shard,
                None => self.tableless_shard(),
            }));
        };
        if let Some(shard) = self.common_shard(&sharded, placement) {
            let shard = shard.unwrap_or(self.map.default_shard);
            return match unsharded {
                Some(local) if shard != self.map.default_shard => {
                    Err(self.unsharded_join(&refs[first], local))
                }
                _ => Ok(Route::Single(shard)),
            };
        }
        if let Some(local) = unsharded {
            return Err(self.unsharded_join(&refs[first], local));
        }
        self.not_co_located(refs, &sharded, placement)?;
        if let Some(&nested) = sharded.iter().find(|&&id| !refs[id].top_level) {
            let table = self.sharded(&refs[nested])?;
            return Err(unsupported(format!(
                "a subquery on sharded table {} would need rows from several shards",
                table.name
            ))
            .with_hint(format!(
                "constrain {} to one shard ({} = ...), or {PICK_A_SHARD}",
                table.name, table.key_column
            )));
        }
        if dml.facts.outer_join_repeats {
            return Err(unsupported(
                "an outer join keeping unmatched rows of a table that is not sharded cannot run across shards: each shard would return them",
            )
            .with_hint(format!(
                "keep the sharded table on the preserved side of the join, constrain its sharding key to one shard, or {PICK_A_SHARD}"
            )));
        }
        let shards = match &placement.sets[first] {
            Some(set) => set.iter().copied().collect(),
            None => self.shards_of_refs(refs, &sharded)?,
        };
        if let [shard] = shards.as_slice() {
            return Ok(Route::Single(*shard));
        }
        match &dml.plan {
            Some(Ok(plan)) => Ok(Route::Scatter {
                shards,
                plan: Arc::clone(plan),
            }),
            Some(Err(reason)) => Err(unsupported(reason.clone())),
            None => {
                Err(unsupported("this statement cannot run across shards").with_hint(PICK_A_SHARD))
            }
        }
    }

    /// Every shard that may hold rows of the given references.
    pub(super) fn shards_of_refs(
        &self,
        refs: &[TableRef],
        ids: &[RefId],
    ) -> Result<Vec<usize>, PgError> {
        let mut shards = BTreeSet::new();
        for &id in ids {
            shards.extend(self.map.shards_of(self.sharded(&refs[id])?));
        }
        Ok(shards.into_iter().collect())
    }

    /// Fails when two top-level sharded references are not joined on
    /// their keys (both would need every shard's rows).
    pub(super) fn not_co_located(
        &self,
        refs: &[TableRef],
        sharded: &[RefId],
        placement: &Placement,
    ) -> Result<(), PgError> {
        let top: Vec<RefId> = sharded
            .iter()
            .copied()
            .filter(|&id| refs[id].top_level)
            .collect();
        let Some(&first) = top.first() else {
            return Ok(());
        };
        let Some(&other) = top
            .iter()
            .find(|&&id| placement.root[id] != placement.root[first])
        else {
            return Ok(());
        };
        let (a, b) = (self.sharded(&refs[first])?, self.sharded(&refs[other])?);
        let hint = if a.group == b.group {
            format!(
                "add key equality ({}.{} = {}.{})",
                a.name, a.key_column, b.name, b.key_column
            )
        } else {
            format!(
                "they are in different co-location groups ({} and {}): put them in one group, or constrain both keys to one shard",
                a.group, b.group
            )
        };
        Err(unsupported(format!(
            "join of tables that are not co-located: {} and {}",
            a.name, b.name
        ))
        .with_hint(hint))
    }

    pub(super) fn unsharded_join(&self, sharded: &TableRef, local: &TableRef) -> PgError {
        let hint = match self.sharded(sharded) {
            Ok(table) => format!(
                "constrain {}.{} to keys of the default shard, or declare {} a reference table",
                table.name, table.key_column, local.name
            ),
            Err(error) => error.message,
        };
        unsupported(format!(
            "sharded table {} is used with table {}, which lives only on the default shard",
            sharded.name, local.name
        ))
        .with_hint(hint)
    }
}
