//! The columns of the suite's tables as the generic generators (aggregates,
//! GROUP BY, DISTINCT, ORDER BY) see them: which aggregates apply, which are
//! worth grouping by, which column makes an order total.

/// A column's type family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// int / bigint.
    Integer,
    /// numeric.
    Numeric,
    /// text.
    Text,
    /// date / timestamptz.
    Temporal,
    /// uuid (no min/max in Postgres 15).
    Uuid,
}

/// A column.
#[derive(Debug, Clone, Copy)]
pub struct Col {
    /// Its name.
    pub name: &'static str,
    /// Its type family.
    pub kind: Kind,
    /// Few distinct values: a useful GROUP BY / DISTINCT column.
    pub groupable: bool,
}

/// A table.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    /// Its name.
    pub name: &'static str,
    /// A column unique over its rows (the tie-breaker of total orders).
    pub unique: &'static str,
    /// Its columns.
    pub cols: &'static [Col],
}

const fn col(name: &'static str, kind: Kind, groupable: bool) -> Col {
    Col {
        name,
        kind,
        groupable,
    }
}

/// The tables the generic generators draw from.
pub const TABLES: [Table; 6] = [
    Table {
        name: "customers",
        unique: "id",
        cols: &[
            col("id", Kind::Integer, false),
            col("name", Kind::Text, true),
            col("region", Kind::Text, true),
            col("tier", Kind::Integer, true),
            col("credit", Kind::Numeric, false),
            col("created", Kind::Temporal, false),
        ],
    },
    Table {
        name: "orders",
        unique: "id",
        cols: &[
            col("customer_id", Kind::Integer, false),
            col("id", Kind::Integer, false),
            col("product_id", Kind::Integer, true),
            col("status", Kind::Text, true),
            col("amount", Kind::Numeric, false),
            col("qty", Kind::Integer, true),
            col("placed", Kind::Temporal, false),
        ],
    },
    Table {
        name: "events",
        unique: "id",
        cols: &[
            col("id", Kind::Uuid, false),
            col("kind", Kind::Text, true),
            col("n", Kind::Integer, false),
        ],
    },
    Table {
        name: "accounts",
        unique: "code",
        cols: &[
            col("code", Kind::Text, false),
            col("owner", Kind::Text, true),
            col("balance", Kind::Integer, false),
            col("opened", Kind::Temporal, false),
        ],
    },
    Table {
        name: "ledger",
        unique: "entry",
        cols: &[
            col("entry", Kind::Integer, false),
            col("account", Kind::Text, true),
            col("delta", Kind::Integer, false),
            col("booked", Kind::Temporal, false),
        ],
    },
    Table {
        name: "products",
        unique: "id",
        cols: &[
            col("id", Kind::Integer, false),
            col("category", Kind::Text, true),
            col("price", Kind::Numeric, false),
        ],
    },
];

/// The sharded tables (all but the reference table `products`).
pub fn sharded_tables() -> &'static [Table] {
    &TABLES[..5]
}

impl Table {
    /// Its groupable columns.
    pub fn groupable(&self) -> Vec<Col> {
        self.cols.iter().copied().filter(|c| c.groupable).collect()
    }

    /// Its columns other than uuids (orderable, with min/max).
    pub fn orderable(&self) -> Vec<Col> {
        self.cols
            .iter()
            .copied()
            .filter(|c| c.kind != Kind::Uuid)
            .collect()
    }
}

impl Col {
    /// Aggregate calls valid over this column.
    pub fn aggregates(&self) -> Vec<String> {
        let n = self.name;
        let mut out = vec![format!("count({n})")];
        if matches!(self.kind, Kind::Integer | Kind::Numeric) {
            out.extend([format!("sum({n})"), format!("avg({n})")]);
        }
        if self.kind != Kind::Uuid {
            out.extend([format!("min({n})"), format!("max({n})")]);
        }
        out
    }
}
