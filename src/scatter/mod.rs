//! Cross-shard execution: a statement without a shard key runs on every
//! shard that may hold rows, and the client sees one result.
//!
//! [`plan`] turns a SELECT into the SQL each shard runs plus a [`MergeSpec`]
//! (aggregates rewritten to mergeable parts, LIMIT pushed down as
//! `LIMIT offset+limit`, hidden columns appended for sort and group keys the
//! select list lacks); [`merge`] combines the shards' rows by that spec,
//! decoding values in text or binary format as the shards sent them.
//! Whatever cannot be merged exactly is refused at planning time with
//! SQLSTATE 0A000: an error, never a wrong answer.

pub mod merge;
pub mod plan;
pub mod value;

pub use merge::Merger;
pub use plan::plan_select;

/// How a fanned-out SELECT is run and merged.
#[derive(Debug, Clone, PartialEq)]
pub struct ScatterPlan {
    /// SQL every shard runs; keeps the client's `$n` placeholders, so bind
    /// values are passed to every shard unchanged.
    pub shard_sql: String,
    /// The client sees the first `visible_columns` of the shards' columns;
    /// the rest are hidden helpers (sort keys, group keys, AVG counts,
    /// HAVING aggregates).
    pub visible_columns: usize,
    /// Where a `*` (or `t.*`) of the select list expands to columns only
    /// the shards know. `None`: every count and column number here is
    /// final. `Some(at)`: column numbers (in `merge`, `visible_columns`)
    /// count the expansion as zero columns placed before column `at`; call
    /// [`ScatterPlan::for_shard_columns`] with the shards' column count
    /// (from their RowDescription) before merging.
    pub wildcard_at: Option<usize>,
    /// How the shards' rows become the client's rows.
    pub merge: MergeSpec,
}

/// Merge instructions, in terms of the shard query's output columns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MergeSpec {
    /// One entry per shard output column.
    pub columns: Vec<ColumnMerge>,
    /// Rows are grouped (the query has GROUP BY or aggregates): rows whose
    /// `Group` columns are equal are combined into one, the other columns
    /// by their aggregate. Without GROUP BY, all rows form one group and an
    /// empty input still yields one row (COUNT 0, SUM NULL, ...).
    pub grouped: bool,
    /// Applied to each merged group (HAVING), over shard output columns.
    pub having: Option<Filter>,
    /// Sort of the merged rows (each shard's rows arrive sorted the same way
    /// unless `grouped`).
    pub order_by: Vec<SortKey>,
    /// Remove duplicate visible rows (SELECT DISTINCT).
    pub distinct: bool,
    /// Rows skipped after merging.
    pub offset: u64,
    /// Most rows returned after merging and skipping.
    pub limit: Option<u64>,
}

/// What a shard output column is and how values from several shards combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnMerge {
    /// A plain value or group key: part of the group identity when grouped.
    Group,
    /// COUNT(...) per shard: summed (int8).
    Count,
    /// SUM(...) per shard: summed in the column's type (NULL when all NULL).
    Sum,
    /// MIN(...) per shard: the least non-NULL value.
    Min,
    /// MAX(...) per shard: the greatest non-NULL value.
    Max,
    /// AVG(x) rewritten to SUM(x) here, with COUNT(x) in `count_column`:
    /// the client sees sum/count, typed as Postgres' AVG would be (numeric
    /// for integer and numeric input, double precision for floats).
    AvgSum {
        /// Shard output column holding COUNT(x) (hidden).
        count_column: usize,
    },
}

/// One ORDER BY key over shard output columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKey {
    /// Shard output column.
    pub column: usize,
    /// DESC.
    pub descending: bool,
    /// NULLS FIRST (Postgres' default: true for DESC, false for ASC).
    pub nulls_first: bool,
}

/// A HAVING condition evaluated by the proxy after merging.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Both hold.
    And(Box<Filter>, Box<Filter>),
    /// Either holds.
    Or(Box<Filter>, Box<Filter>),
    /// Negation.
    Not(Box<Filter>),
    /// `column <op> literal` over a merged shard output column.
    Compare {
        /// Shard output column.
        column: usize,
        /// The comparison.
        op: CompareOp,
        /// The constant, as SQL text of a number or string.
        literal: String,
    },
}

/// Comparison operators HAVING may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `=`
    Eq,
    /// `<>` / `!=`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
}
