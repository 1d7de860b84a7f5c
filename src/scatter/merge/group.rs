//! GROUP BY and aggregates across shards: rows with equal group columns
//! (compared per type, NULLs together) fold into one group; COUNTs and SUMs
//! add up, MIN/MAX keep the extreme value, AVG divides the summed SUM by the
//! summed COUNT.

use std::collections::HashMap;

use super::rows::{RowRef, RowStore};
use crate::net::messages::PgError;
use crate::scatter::ColumnMerge;
use crate::scatter::value::{self, ColumnType, Numeric, Value, oid};

/// SQLSTATE numeric_value_out_of_range.
const OUT_OF_RANGE: &str = "22003";

/// How the partial sums of one column add up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Adder {
    /// bigint with an overflow check (SUM of smallint/integer).
    Int8,
    /// Exact decimal (SUM of bigint/numeric; AVG of any integer type).
    Numeric,
    /// real, with Postgres' overflow check (`float4pl`).
    Float4,
    /// double precision, with Postgres' overflow check (`float8pl`).
    Float8,
}

impl Adder {
    /// The adder for a SUM column of `sum_type`; AVG sums integers exactly
    /// (its result is numeric) and floats as doubles (Postgres' AVG of
    /// real accumulates in double precision).
    fn for_column(sum_type: ColumnType, for_avg: bool) -> Result<Adder, PgError> {
        Ok(match (sum_type.oid(), for_avg) {
            (oid::INT8, false) => Adder::Int8,
            (oid::INT8 | oid::NUMERIC, _) => Adder::Numeric,
            (oid::FLOAT4, false) => Adder::Float4,
            (oid::FLOAT4 | oid::FLOAT8, _) => Adder::Float8,
            _ => return Err(sum_type.unsupported("adding up (SUM/AVG)")),
        })
    }

    /// A partial sum as this adder keeps it (`None` if the value is not
    /// of the column's type, which decoding by that type rules out).
    fn lift(self, value: Value<'_>) -> Option<Total> {
        Some(match (self, value) {
            (Adder::Int8, Value::Int(v)) => Total::Int(v),
            (Adder::Numeric, Value::Int(v)) => Total::Numeric(Numeric::from_i64(v)),
            (Adder::Numeric, Value::Numeric(n)) => Total::Numeric(n),
            (Adder::Float4, Value::Float(v)) => Total::Float4(v as f32),
            (Adder::Float8, Value::Float(v)) => Total::Float8(v),
            _ => return None,
        })
    }
}

/// A running sum.
#[derive(Debug, Clone)]
enum Total {
    Int(i64),
    Numeric(Numeric),
    Float4(f32),
    Float8(f64),
}

impl Total {
    /// Adds another partial sum, failing as Postgres does on overflow.
    fn add(&mut self, other: Total) -> Result<(), PgError> {
        let float_overflow = || PgError::error(OUT_OF_RANGE, "value out of range: overflow");
        match (self, other) {
            (Total::Int(a), Total::Int(b)) => {
                *a = a
                    .checked_add(b)
                    .ok_or_else(|| PgError::error(OUT_OF_RANGE, "bigint out of range"))?;
            }
            (Total::Numeric(a), Total::Numeric(b)) => *a = a.add(&b),
            (Total::Float4(a), Total::Float4(b)) => {
                let sum = *a + b;
                if sum.is_infinite() && a.is_finite() && b.is_finite() {
                    return Err(float_overflow());
                }
                *a = sum;
            }
            (Total::Float8(a), Total::Float8(b)) => {
                let sum = *a + b;
                if sum.is_infinite() && a.is_finite() && b.is_finite() {
                    return Err(float_overflow());
                }
                *a = sum;
            }
            _ => {}
        }
        Ok(())
    }
}

/// What one shard output column contributes to a group.
#[derive(Debug, Clone, Copy)]
enum Role {
    /// Group key (or plain value): the first row's value.
    Key,
    /// COUNT: summed.
    Count,
    /// SUM: summed by the adder.
    Sum(Adder),
    /// MIN (`least` true) or MAX.
    Extreme { least: bool },
    /// AVG's SUM part, divided by the COUNT in `count_column` at the end.
    Avg { adder: Adder, count_column: usize },
}

/// A group's running state for one column.
#[derive(Debug, Clone)]
enum Accumulator {
    /// Key, MIN and MAX: a field value as received.
    Field(Option<Box<[u8]>>),
    /// COUNT.
    Count(i64),
    /// SUM and AVG's sum; `None` while only NULLs were seen.
    Sum(Option<Total>),
}

/// Folds rows into groups.
#[derive(Debug)]
pub(super) struct Grouper {
    roles: Vec<Role>,
    input_types: Vec<ColumnType>,
    output_types: Vec<ColumnType>,
    /// Group key bytes → index into `groups`.
    index: HashMap<Vec<u8>, usize>,
    groups: Vec<Vec<Accumulator>>,
    /// Reused buffer for building keys.
    key: Vec<u8>,
}

impl Grouper {
    /// A grouper for shard columns merged by `merges`, of `input_types`;
    /// `output_types` are the merged columns' types (AVG retyped).
    pub fn new(
        merges: &[ColumnMerge],
        input_types: &[ColumnType],
        output_types: &[ColumnType],
    ) -> Result<Grouper, PgError> {
        let roles = merges
            .iter()
            .zip(input_types)
            .map(|(merge, &column_type)| role(*merge, column_type, merges, input_types))
            .collect::<Result<_, PgError>>()?;
        Ok(Grouper {
            roles,
            input_types: input_types.to_vec(),
            output_types: output_types.to_vec(),
            index: HashMap::new(),
            groups: Vec::new(),
            key: Vec::new(),
        })
    }

    /// Folds one shard row in; returns the bytes of memory it added.
    pub fn add(&mut self, row: RowRef<'_>) -> Result<usize, PgError> {
        self.key.clear();
        for (column, role) in self.roles.iter().enumerate() {
            if let Role::Key = role {
                self.input_types[column].write_key(row.field(column), &mut self.key)?;
            }
        }
        let (group, mut added) = match self.index.get(&self.key) {
            Some(&group) => (group, 0),
            None => {
                let accumulators = self.roles.iter().map(|r| empty_accumulator(*r)).collect();
                self.groups.push(accumulators);
                self.index.insert(self.key.clone(), self.groups.len() - 1);
                let bookkeeping = size_of::<Accumulator>() * self.roles.len() + 64;
                (self.groups.len() - 1, 2 * self.key.len() + bookkeeping)
            }
        };
        for (column, role) in self.roles.iter().enumerate() {
            let raw = row.field(column);
            let column_type = self.input_types[column];
            let accumulator = &mut self.groups[group][column];
            added += fold(*role, column_type, accumulator, raw)?;
        }
        Ok(added)
    }

    /// The merged groups as rows of all shard columns (AVG columns hold the
    /// average), in the order groups were first seen. Without any group
    /// column (aggregates without GROUP BY), no input still gives one row.
    pub fn finish(mut self) -> Result<RowStore, PgError> {
        let has_keys = self.roles.iter().any(|r| matches!(r, Role::Key));
        if self.groups.is_empty() && !has_keys {
            let empty = self.roles.iter().map(|r| empty_accumulator(*r)).collect();
            self.groups.push(empty);
        }
        let mut store = RowStore::new(self.roles.len());
        for group in &self.groups {
            store.begin_row();
            for (column, role) in self.roles.iter().enumerate() {
                self.write_column(group, column, *role, &mut store)?;
            }
        }
        Ok(store)
    }

    /// Appends the merged value of `column` of `group`.
    fn write_column(
        &self,
        group: &[Accumulator],
        column: usize,
        role: Role,
        store: &mut RowStore,
    ) -> Result<(), PgError> {
        let format = self.output_types[column].format();
        let accumulator = &group[column];
        if let Role::Avg { count_column, .. } = role {
            let count = match group.get(count_column) {
                Some(Accumulator::Count(count)) => *count,
                _ => 0,
            };
            return match accumulator {
                Accumulator::Sum(Some(sum)) if count > 0 => {
                    store.push_value(|out| write_average(sum, count, format, out))
                }
                _ => {
                    store.push_null();
                    Ok(())
                }
            };
        }
        match accumulator {
            Accumulator::Field(Some(raw)) => store.push_bytes(raw),
            Accumulator::Count(n) => {
                store.push_value(|out| write_total(&Total::Int(*n), format, out))?;
            }
            Accumulator::Sum(Some(total)) => {
                store.push_value(|out| write_total(total, format, out))?
            }
            Accumulator::Field(None) | Accumulator::Sum(None) => store.push_null(),
        }
        Ok(())
    }
}

/// The role of a column, after checking its type suits it.
fn role(
    merge: ColumnMerge,
    column_type: ColumnType,
    merges: &[ColumnMerge],
    types: &[ColumnType],
) -> Result<Role, PgError> {
    Ok(match merge {
        ColumnMerge::Group if column_type.has_equality() => Role::Key,
        ColumnMerge::Group => return Err(column_type.unsupported("grouping")),
        ColumnMerge::Count if column_type.oid() == oid::INT8 => Role::Count,
        ColumnMerge::Count => {
            return Err(super::plan_error("a COUNT column is not of type bigint"));
        }
        ColumnMerge::Sum => Role::Sum(Adder::for_column(column_type, false)?),
        ColumnMerge::Min | ColumnMerge::Max if !column_type.has_ordering() => {
            return Err(column_type.unsupported("MIN/MAX"));
        }
        ColumnMerge::Min => Role::Extreme { least: true },
        ColumnMerge::Max => Role::Extreme { least: false },
        ColumnMerge::AvgSum { count_column } => {
            if merges.get(count_column) != Some(&ColumnMerge::Count)
                || types.get(count_column).map(ColumnType::oid) != Some(oid::INT8)
            {
                return Err(super::plan_error(
                    "an AVG column's count column is not a bigint COUNT",
                ));
            }
            Role::Avg {
                adder: Adder::for_column(column_type, true)?,
                count_column,
            }
        }
    })
}

/// A group's state before any row.
fn empty_accumulator(role: Role) -> Accumulator {
    match role {
        Role::Key | Role::Extreme { .. } => Accumulator::Field(None),
        Role::Count => Accumulator::Count(0),
        Role::Sum(_) | Role::Avg { .. } => Accumulator::Sum(None),
    }
}

/// Folds one field into its accumulator; returns the bytes of memory
/// added.
fn fold(
    role: Role,
    column_type: ColumnType,
    accumulator: &mut Accumulator,
    raw: Option<&[u8]>,
) -> Result<usize, PgError> {
    let Some(raw) = raw else {
        // NULLs never change an aggregate; a key's NULL is the empty field.
        return Ok(0);
    };
    match (role, accumulator) {
        (Role::Key, Accumulator::Field(slot @ None)) => {
            *slot = Some(raw.into());
            return Ok(raw.len());
        }
        (Role::Count, Accumulator::Count(total)) => {
            let Value::Int(n) = column_type.decode(raw)? else {
                return Ok(0);
            };
            *total = total
                .checked_add(n)
                .ok_or_else(|| PgError::error(OUT_OF_RANGE, "bigint out of range"))?;
        }
        (Role::Sum(adder) | Role::Avg { adder, .. }, Accumulator::Sum(total)) => {
            let partial = adder
                .lift(column_type.decode(raw)?)
                .ok_or_else(|| column_type.unsupported("adding up (SUM/AVG)"))?;
            match total {
                Some(total) => total.add(partial)?,
                None => *total = Some(partial),
            }
        }
        (Role::Extreme { least }, Accumulator::Field(slot)) => {
            let replace = match slot {
                None => true,
                Some(current) => {
                    let order = column_type
                        .decode(raw)?
                        .compare(&column_type.decode(current)?);
                    if least { order.is_lt() } else { order.is_gt() }
                }
            };
            if replace {
                let grown = raw
                    .len()
                    .saturating_sub(slot.as_ref().map_or(0, |c| c.len()));
                *slot = Some(raw.into());
                return Ok(grown);
            }
        }
        _ => {}
    }
    Ok(0)
}

/// Appends a sum (or count) in `format`, as Postgres sends its type.
fn write_total(total: &Total, format: value::Format, out: &mut Vec<u8>) -> Result<(), PgError> {
    match total {
        Total::Int(v) => value::write_int8(*v, format, out),
        Total::Numeric(n) => return value::write_numeric(n, format, out),
        Total::Float4(v) => value::write_float4(*v, format, out),
        Total::Float8(v) => value::write_float8(*v, format, out),
    }
    Ok(())
}

/// Appends `sum / count` as Postgres' AVG returns it: numeric division with
/// `numeric_div`'s scale, or a double.
fn write_average(
    sum: &Total,
    count: i64,
    format: value::Format,
    out: &mut Vec<u8>,
) -> Result<(), PgError> {
    let average = match sum {
        Total::Int(v) => Total::Numeric(Numeric::from_i64(*v).div_by_count(count)),
        Total::Numeric(n) => Total::Numeric(n.div_by_count(count)),
        Total::Float4(v) => Total::Float8(f64::from(*v) / count as f64),
        Total::Float8(v) => Total::Float8(v / count as f64),
    };
    write_total(&average, format, out)
}
