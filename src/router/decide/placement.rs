//! Where each table reference's rows can be: its own key constraint,
//! shared across tables joined on their keys (co-location components),
//! narrowed by outer references a subquery is correlated with, and the
//! session or hinted key for references nothing constrains.

use crate::net::messages::PgError;
use crate::router::facts::{Facts, RefClass, RefId, TableRef};
use crate::router::keys::{KeyConstraint, KeySource, ShardSet, intersect, shards_of_constraint};

use super::Router;

/// The effective shard set of every reference and the co-location
/// components (by root reference).
pub(super) struct Placement {
    pub(super) sets: Vec<ShardSet>,
    pub(super) root: Vec<RefId>,
    correlations: Vec<(RefId, RefId)>,
}

impl Placement {
    /// Whether `id` sees only rows on the shard of `target`'s rows: same
    /// co-location component, or a subquery correlated on the key with it
    /// (through any chain of such subqueries).
    pub(super) fn bound_to(&self, id: RefId, target: RefId) -> bool {
        let mut reached = vec![self.root[target]];
        let mut grew = true;
        while grew {
            grew = false;
            for &(outer, inner) in &self.correlations {
                let (outer, inner) = (self.root[outer], self.root[inner]);
                if reached.contains(&outer) && !reached.contains(&inner) {
                    reached.push(inner);
                    grew = true;
                }
            }
        }
        reached.contains(&self.root[id])
    }
}

impl Router<'_> {
    /// Resolves every reference's shard set: its own constraint, joined
    /// with its co-location component's, narrowed by outer references it
    /// is correlated with; unconstrained components take the session or
    /// hinted key.
    pub(super) fn placement(&self, facts: &Facts) -> Result<Placement, PgError> {
        let count = facts.refs.len();
        let mut root: Vec<RefId> = (0..count).collect();
        fn find(root: &mut [RefId], mut id: RefId) -> RefId {
            while root[id] != id {
                root[id] = root[root[id]];
                id = root[id];
            }
            id
        }
        for &(a, b) in &facts.edges {
            let (ra, rb) = (find(&mut root, a), find(&mut root, b));
            root[ra.max(rb)] = ra.min(rb);
        }
        for id in 0..count {
            root[id] = find(&mut root, id);
        }
        let mut sets: Vec<ShardSet> = vec![None; count];
        for (id, table_ref) in facts.refs.iter().enumerate() {
            if let (RefClass::Sharded, Some(constraint)) = (table_ref.class, &table_ref.constraint)
            {
                let own = self.constraint_shards(table_ref, constraint)?;
                sets[root[id]] = intersect(sets[root[id]].take(), own);
            }
        }
        for _ in 0..=facts.correlations.len() {
            let mut changed = false;
            for &(outer, inner) in &facts.correlations {
                let narrowed = intersect(sets[root[inner]].clone(), sets[root[outer]].clone());
                if narrowed != sets[root[inner]] {
                    sets[root[inner]] = narrowed;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        if let Some(key) = self.key {
            let hinted = KeyConstraint::OneOf(vec![KeySource::Text(key.to_string())]);
            for (id, table_ref) in facts.refs.iter().enumerate() {
                if table_ref.class == RefClass::Sharded && sets[root[id]].is_none() {
                    sets[root[id]] = self.constraint_shards(table_ref, &hinted)?;
                }
            }
        }
        let sets = (0..count).map(|id| sets[root[id]].clone()).collect();
        Ok(Placement {
            sets,
            root,
            correlations: facts.correlations.clone(),
        })
    }

    pub(super) fn constraint_shards(
        &self,
        table_ref: &TableRef,
        constraint: &KeyConstraint,
    ) -> Result<ShardSet, PgError> {
        let table = self.sharded(table_ref)?;
        shards_of_constraint(constraint, table, self.input, self.map)
    }
}
