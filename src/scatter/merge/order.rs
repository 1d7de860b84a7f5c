//! ORDER BY across shards: comparing rows by their sort keys, merging the
//! shards' already-sorted streams, and sorting merged groups.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::rows::{RowRef, RowStore};
use crate::net::messages::PgError;
use crate::scatter::SortKey;
use crate::scatter::value::{ColumnType, Value};

/// The decoded sort keys of one row (`None` for NULL).
pub(super) type Keys<'a> = Vec<Option<Value<'a>>>;

/// One ORDER BY key with the type of its column.
#[derive(Debug, Clone, Copy)]
struct SortColumn {
    key: SortKey,
    column_type: ColumnType,
}

/// How rows are ordered.
#[derive(Debug, Clone, Default)]
pub(super) struct SortSpec {
    columns: Vec<SortColumn>,
}

impl SortSpec {
    /// The ordering by `keys` over columns of `types`; refuses types that
    /// cannot be ordered across shards.
    pub fn new(keys: &[SortKey], types: &[ColumnType]) -> Result<SortSpec, PgError> {
        let columns = keys
            .iter()
            .map(|&key| {
                let column_type = *types
                    .get(key.column)
                    .ok_or_else(|| super::plan_error("an ORDER BY key column does not exist"))?;
                if !column_type.has_ordering() {
                    return Err(column_type.unsupported("sorting"));
                }
                Ok(SortColumn { key, column_type })
            })
            .collect::<Result<_, PgError>>()?;
        Ok(SortSpec { columns })
    }

    /// Whether there is nothing to sort by.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// Decodes the sort keys of `row`.
    pub fn keys<'a>(&self, row: RowRef<'a>) -> Result<Keys<'a>, PgError> {
        self.columns
            .iter()
            .map(|c| {
                row.field(c.key.column)
                    .map(|raw| c.column_type.decode(raw))
                    .transpose()
            })
            .collect()
    }

    /// Compares two rows' keys in output order: each key ascending or
    /// descending, NULLs first or last as the key says.
    pub fn compare(&self, a: &Keys<'_>, b: &Keys<'_>) -> Ordering {
        for (column, (a, b)) in self.columns.iter().zip(a.iter().zip(b)) {
            let order = match (a, b) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) if column.key.nulls_first => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) if column.key.nulls_first => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) if column.key.descending => b.compare(a),
                (Some(a), Some(b)) => a.compare(b),
            };
            if order != Ordering::Equal {
                return order;
            }
        }
        Ordering::Equal
    }

    /// Sorts the rows of `store` (stable: equal rows keep their order).
    pub fn sort<'a>(&self, store: &'a RowStore) -> Result<Vec<RowRef<'a>>, PgError> {
        let mut keyed = store
            .rows()
            .map(|row| Ok((self.keys(row)?, row)))
            .collect::<Result<Vec<_>, PgError>>()?;
        keyed.sort_by(|(a, _), (b, _)| self.compare(a, b));
        Ok(keyed.into_iter().map(|(_, row)| row).collect())
    }
}

/// The current first row of one shard's stream, as held in the heap.
struct Head<'a> {
    spec: &'a SortSpec,
    keys: Keys<'a>,
    shard: usize,
    index: usize,
}

impl Ord for Head<'_> {
    /// Reversed, so that the max-heap yields the least row; among equal
    /// rows, the lowest shard first.
    fn cmp(&self, other: &Self) -> Ordering {
        self.spec
            .compare(&self.keys, &other.keys)
            .then(self.shard.cmp(&other.shard))
            .reverse()
    }
}

impl PartialOrd for Head<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Head<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Head<'_> {}

/// A k-way merge of shards whose rows each arrived sorted by `spec`: yields
/// all rows in order, one heap step per row, decoding each row's keys once.
pub(super) struct KWayMerge<'a> {
    spec: &'a SortSpec,
    shards: &'a [RowStore],
    heap: BinaryHeap<Head<'a>>,
    /// Set by the first decoding error, which ends the stream.
    failed: Option<PgError>,
}

impl<'a> KWayMerge<'a> {
    /// Starts the merge at each shard's first row.
    pub fn new(spec: &'a SortSpec, shards: &'a [RowStore]) -> KWayMerge<'a> {
        let mut merge = KWayMerge {
            spec,
            shards,
            heap: BinaryHeap::with_capacity(shards.len()),
            failed: None,
        };
        for shard in 0..shards.len() {
            merge.enter(shard, 0);
        }
        merge
    }

    /// Puts row `index` of `shard` into the heap, if it exists.
    fn enter(&mut self, shard: usize, index: usize) {
        let store = &self.shards[shard];
        if index >= store.len() {
            return;
        }
        match self.spec.keys(store.row(index)) {
            Ok(keys) => self.heap.push(Head {
                spec: self.spec,
                keys,
                shard,
                index,
            }),
            Err(e) => self.failed = Some(e),
        }
    }
}

impl<'a> Iterator for KWayMerge<'a> {
    type Item = Result<RowRef<'a>, PgError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.failed.take() {
            self.heap.clear();
            return Some(Err(e));
        }
        let head = self.heap.pop()?;
        self.enter(head.shard, head.index + 1);
        Some(Ok(self.shards[head.shard].row(head.index)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::rows::scan_data_row;
    use super::super::rows::test_support::data_row;
    use super::*;
    use crate::scatter::value::{Format, oid};

    fn store(rows: &[(Option<&str>, &str)]) -> RowStore {
        let mut store = RowStore::new(2);
        let mut starts = Vec::new();
        for (key, tag) in rows {
            let body = data_row(&[key.map(str::as_bytes), Some(tag.as_bytes())]);
            scan_data_row(&body, 2, &mut starts).unwrap();
            store.push(RowRef::new(&body, &starts));
        }
        store
    }

    fn tags<'a>(rows: impl Iterator<Item = Result<RowRef<'a>, PgError>>) -> Vec<String> {
        rows.map(|r| String::from_utf8(r.unwrap().field(1).unwrap().to_vec()).unwrap())
            .collect()
    }

    fn spec(descending: bool, nulls_first: bool) -> SortSpec {
        let key = SortKey {
            column: 0,
            descending,
            nulls_first,
        };
        let types = [
            ColumnType::new(oid::INT4, Format::Text),
            ColumnType::new(oid::TEXT, Format::Text),
        ];
        SortSpec::new(&[key], &types).unwrap()
    }

    #[test]
    fn k_way_merge_keeps_shard_order_among_ties() {
        let shards = [
            store(&[(Some("1"), "a1"), (Some("2"), "a2"), (Some("10"), "a10")]),
            store(&[]),
            store(&[(Some("2"), "c2"), (Some("3"), "c3"), (None, "cnull")]),
            store(&[(Some("1"), "d1"), (None, "dnull")]),
        ];
        let ascending = spec(false, false);
        assert_eq!(
            tags(KWayMerge::new(&ascending, &shards)),
            ["a1", "d1", "a2", "c2", "c3", "a10", "cnull", "dnull"]
        );
    }

    #[test]
    fn descending_and_nulls_first() {
        let shards = [
            store(&[(None, "anull"), (Some("10"), "a10"), (Some("2"), "a2")]),
            store(&[(None, "bnull"), (Some("3"), "b3")]),
        ];
        let descending = spec(true, true);
        assert_eq!(
            tags(KWayMerge::new(&descending, &shards)),
            ["anull", "bnull", "a10", "b3", "a2"]
        );
        let shards = [
            store(&[(Some("2"), "a2"), (None, "anull")]),
            store(&[(Some("1"), "b1"), (None, "bnull")]),
        ];
        let nulls_last_desc = spec(true, false);
        assert_eq!(
            tags(KWayMerge::new(&nulls_last_desc, &shards)),
            ["a2", "b1", "anull", "bnull"]
        );
    }

    #[test]
    fn sorting_is_stable_and_errors_surface() {
        let rows = store(&[
            (Some("5"), "x"),
            (None, "n"),
            (Some("1"), "y"),
            (Some("5"), "z"),
        ]);
        let sorted = spec(false, true).sort(&rows).unwrap();
        let tags: Vec<_> = sorted.iter().map(|r| r.field(1).unwrap()).collect();
        assert_eq!(tags, [&b"n"[..], b"y", b"x", b"z"]);
        let bad = [store(&[(Some("1"), "a"), (Some("oops"), "b")])];
        let ascending = spec(false, false);
        let results: Vec<_> = KWayMerge::new(&ascending, &bad).collect();
        assert_eq!(results.len(), 2);
        assert_eq!(results[1].as_ref().unwrap_err().code, "08P01");
        let json = [ColumnType::new(oid::JSON, Format::Text)];
        let key = SortKey {
            column: 0,
            descending: false,
            nulls_first: false,
        };
        assert_eq!(SortSpec::new(&[key], &json).unwrap_err().code, "0A000");
    }
}
