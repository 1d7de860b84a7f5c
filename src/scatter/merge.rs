//! Merging the shards' rows of a fanned-out SELECT into the one result the
//! client sees, exactly as Postgres would have computed it on one server.
//!
//! The shards' rows are buffered (up to a byte limit) as they arrive:
//! plain rows per shard, grouped rows folded into their groups at once.
//! [`Merger::finish`] then produces the client's rows in the order of
//! SQL's evaluation: groups (with HAVING), ORDER BY (a k-way merge of the
//! shards' sorted streams, or a sort of the merged groups), DISTINCT,
//! OFFSET, LIMIT. Values are decoded only where a comparison or an
//! aggregate needs them; everything else is copied as the shards sent it.

mod group;
mod having;
mod order;
mod rows;
#[cfg(test)]
mod tests;

use std::collections::HashSet;

use bytes::{BufMut, BytesMut};

use self::group::Grouper;
use self::having::HavingFilter;
use self::order::{KWayMerge, SortSpec};
use self::rows::{FieldDescription, RowRef, RowStore};
use super::{ColumnMerge, ScatterPlan};
use crate::net::messages::{PgError, backend_tag, put_message};
use crate::scatter::value::{ColumnType, oid};

/// SQLSTATE program_limit_exceeded.
const LIMIT_EXCEEDED: &str = "54000";
/// SQLSTATE internal_error: the plan and the shards' columns disagree.
const INTERNAL_ERROR: &str = "XX000";

/// The error for a plan that does not fit the shards' result (a planner
/// bug, never the client's doing).
fn plan_error(message: &str) -> PgError {
    PgError::error(
        INTERNAL_ERROR,
        format!("invalid cross-shard plan: {message}"),
    )
}

/// Where the shards' rows are kept until [`Merger::finish`].
#[derive(Debug)]
enum Buffer {
    /// Not grouped: each shard's rows in arrival order, with at most
    /// `per_shard_cap` kept per shard (rows further down a shard's stream
    /// than OFFSET + LIMIT can never be returned).
    Rows {
        shards: Vec<RowStore>,
        per_shard_cap: Option<u64>,
    },
    /// Grouped: rows folded into their groups as they arrive.
    Groups(Grouper),
}

/// What happens to merged rows in their final order: HAVING, DISTINCT,
/// OFFSET, LIMIT, and writing the visible columns.
#[derive(Debug)]
struct Tail {
    /// Types of the merged columns (AVG columns retyped).
    output_types: Vec<ColumnType>,
    visible: usize,
    having: Option<HavingFilter>,
    sort: SortSpec,
    distinct: bool,
    offset: u64,
    limit: Option<u64>,
}

/// Combines the rows of a fanned-out SELECT: build it from the plan and a
/// shard's RowDescription, [`push_row`](Self::push_row) every shard's
/// DataRows, then [`finish`](Self::finish) writes the client's rows.
#[derive(Debug)]
pub struct Merger {
    fields: Vec<FieldDescription>,
    buffer: Buffer,
    tail: Tail,
    /// Bytes buffered so far, against `max_bytes`.
    used_bytes: usize,
    max_bytes: usize,
    /// Reused field offsets of the row being pushed.
    scratch: Vec<u32>,
}

impl Merger {
    /// Prepares merging for `plan`. `row_description` is the body (after
    /// the 5-byte header) of the RowDescription a shard sent for the plan's
    /// `shard_sql`: it gives every column's type and format. Rows from
    /// `shard_count` shards may follow; buffering more than `max_bytes`
    /// fails with 54000. Fails with 0A000 when a column's type does not
    /// support what the plan does with it (sorting JSON, summing money,
    /// ...), and with XX000 when the plan does not match the columns.
    pub fn new(
        plan: &ScatterPlan,
        row_description: &[u8],
        shard_count: usize,
        max_bytes: usize,
    ) -> Result<Merger, PgError> {
        let spec = &plan.merge;
        let fields = rows::parse_row_description(row_description)?;
        if spec.columns.len() != fields.len() {
            return Err(plan_error(&format!(
                "the plan describes {} columns but the shards return {}",
                spec.columns.len(),
                fields.len()
            )));
        }
        if plan.visible_columns > fields.len() {
            return Err(plan_error("more visible columns than the shards return"));
        }
        let input_types: Vec<ColumnType> = fields.iter().map(|f| f.column_type).collect();
        let output_types: Vec<ColumnType> = spec
            .columns
            .iter()
            .zip(&input_types)
            .map(|(merge, input)| output_type(*merge, *input))
            .collect();
        let buffer = if spec.grouped {
            Buffer::Groups(Grouper::new(&spec.columns, &input_types, &output_types)?)
        } else {
            if spec.columns.iter().any(|c| *c != ColumnMerge::Group) {
                return Err(plan_error(
                    "aggregate columns in a plan that is not grouped",
                ));
            }
            let unfiltered = !spec.distinct && spec.having.is_none();
            Buffer::Rows {
                shards: (0..shard_count)
                    .map(|_| RowStore::new(fields.len()))
                    .collect(),
                per_shard_cap: spec
                    .limit
                    .filter(|_| unfiltered)
                    .map(|limit| spec.offset.saturating_add(limit)),
            }
        };
        let without_equality = output_types[..plan.visible_columns]
            .iter()
            .find(|t| !t.has_equality());
        if let (true, Some(t)) = (spec.distinct, without_equality) {
            return Err(t.unsupported("removing duplicates (DISTINCT)"));
        }
        let having = spec
            .having
            .as_ref()
            .map(|filter| HavingFilter::new(filter, &output_types))
            .transpose()?;
        let tail = Tail {
            sort: SortSpec::new(&spec.order_by, &output_types)?,
            output_types,
            visible: plan.visible_columns,
            having,
            distinct: spec.distinct,
            offset: spec.offset,
            limit: spec.limit,
        };
        Ok(Merger {
            fields,
            buffer,
            tail,
            used_bytes: 0,
            max_bytes,
            scratch: Vec::new(),
        })
    }

    /// Appends the RowDescription message the client sees: the visible
    /// columns as the shards described them, except AVG columns, typed as
    /// Postgres types AVG (numeric, or double precision for float input).
    pub fn write_row_description(&self, out: &mut BytesMut) {
        put_message(out, backend_tag::ROW_DESCRIPTION, |b| {
            let tail = &self.tail;
            b.put_i16(tail.visible as i16);
            for (field, output) in self
                .fields
                .iter()
                .zip(&tail.output_types)
                .take(tail.visible)
            {
                if output.oid() == field.column_type.oid() {
                    field.write(b);
                } else {
                    field.write_retyped(output.oid(), typlen(output.oid()), b);
                }
            }
        });
    }

    /// Takes one DataRow body (after the 5-byte header) from shard `shard`,
    /// in the order that shard sent its rows. Fails with 08P01 when the row
    /// is malformed, 54000 when the buffered rows exceed the byte limit, and
    /// with the errors of adding values up (22003 on overflow).
    pub fn push_row(&mut self, shard: usize, data_row: &[u8]) -> Result<(), PgError> {
        let columns = self.fields.len();
        rows::scan_data_row(data_row, columns, &mut self.scratch)?;
        let row = RowRef::new(data_row, &self.scratch);
        let added = match &mut self.buffer {
            Buffer::Rows {
                shards,
                per_shard_cap,
            } => {
                let store = shards
                    .get_mut(shard)
                    .ok_or_else(|| plan_error("a row came from an unknown shard"))?;
                if per_shard_cap.is_some_and(|cap| store.len() as u64 >= cap) {
                    return Ok(());
                }
                store.push(row);
                data_row.len() + RowStore::overhead_per_row(columns)
            }
            Buffer::Groups(grouper) => grouper.add(row)?,
        };
        self.used_bytes = self.used_bytes.saturating_add(added);
        if self.used_bytes > self.max_bytes {
            return Err(PgError::error(
                LIMIT_EXCEEDED,
                format!("cross-shard result exceeds {} bytes", self.max_bytes),
            )
            .with_hint(
                "Add a LIMIT or a more selective WHERE clause, or aggregate on the shards.",
            ));
        }
        Ok(())
    }

    /// Merges everything pushed and appends the client's DataRow messages
    /// (visible columns only, each in its column's format) to `out`;
    /// returns the number of rows, for the `SELECT n` command tag. On error
    /// `out` is left as it was.
    pub fn finish(self, out: &mut BytesMut) -> Result<u64, PgError> {
        let start = out.len();
        let Merger { buffer, tail, .. } = self;
        let result = match buffer {
            Buffer::Rows { shards, .. } if tail.sort.is_empty() => {
                tail.emit(shards.iter().flat_map(|s| s.rows().map(Ok)), out)
            }
            Buffer::Rows { shards, .. } => tail.emit(KWayMerge::new(&tail.sort, &shards), out),
            Buffer::Groups(grouper) => grouper.finish().and_then(|merged| {
                let ordered = if tail.sort.is_empty() {
                    merged.rows().collect()
                } else {
                    tail.sort.sort(&merged)?
                };
                tail.emit(ordered.into_iter().map(Ok), out)
            }),
        };
        if result.is_err() {
            out.truncate(start);
        }
        result
    }
}

impl Tail {
    /// Applies HAVING, DISTINCT, OFFSET and LIMIT to rows in their final
    /// order and writes the survivors.
    fn emit<'a>(
        &self,
        rows: impl Iterator<Item = Result<RowRef<'a>, PgError>>,
        out: &mut BytesMut,
    ) -> Result<u64, PgError> {
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        let mut skipped = 0;
        let mut written = 0;
        for row in rows {
            if self.limit.is_some_and(|limit| written >= limit) {
                break;
            }
            let row = row?;
            if let Some(having) = &self.having
                && !having.accepts(row)?
            {
                continue;
            }
            if self.distinct && !seen.insert(self.distinct_key(row)?) {
                continue;
            }
            if skipped < self.offset {
                skipped += 1;
                continue;
            }
            row.write_visible(self.visible, out);
            written += 1;
        }
        Ok(written)
    }

    /// Bytes equal exactly for rows whose visible values are equal.
    fn distinct_key(&self, row: RowRef<'_>) -> Result<Vec<u8>, PgError> {
        let mut key = Vec::new();
        for (column, column_type) in self.output_types[..self.visible].iter().enumerate() {
            column_type.write_key(row.field(column), &mut key)?;
        }
        Ok(key)
    }
}

/// The type the client sees for a merged column: AVG's is numeric, or
/// double precision when the summed column is a float; others keep theirs.
fn output_type(merge: ColumnMerge, input: ColumnType) -> ColumnType {
    match (merge, input.oid()) {
        (ColumnMerge::AvgSum { .. }, oid::FLOAT4 | oid::FLOAT8) => {
            ColumnType::new(oid::FLOAT8, input.format())
        }
        (ColumnMerge::AvgSum { .. }, _) => ColumnType::new(oid::NUMERIC, input.format()),
        _ => input,
    }
}

/// `typlen` of the types AVG returns.
fn typlen(type_oid: u32) -> i16 {
    if type_oid == oid::FLOAT8 { 8 } else { -1 }
}
