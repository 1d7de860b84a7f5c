//! The query generator's state: the seeded random stream and the dataset,
//! with helpers picking key values that exist (or, now and then, do not),
//! literals that fit a column, and ORDER BY / LIMIT clauses.

use super::super::dataset::{self, CATEGORIES, Dataset, KINDS, NAMES, OWNERS, REGIONS, STATUSES};
use super::super::rng::Rng;
use super::super::sql;
use super::catalog::{Col, Kind, TABLES, Table};

/// Random choices over a dataset.
pub struct Gen<'a> {
    /// The random stream.
    pub rng: Rng,
    /// The rows the queries run over.
    pub data: &'a Dataset,
}

impl<'a> Gen<'a> {
    /// A generator over `data` fixed by `seed`.
    pub fn new(data: &'a Dataset, seed: u64) -> Gen<'a> {
        Gen {
            rng: Rng::new(seed ^ 0x0051_EDC0_FFEE),
            data,
        }
    }

    /// A customer id: usually an existing one, sometimes one no row has.
    pub fn customer_id(&mut self) -> i64 {
        if self.rng.chance(8) {
            self.rng.between(300_000, 400_000)
        } else {
            self.rng.pick(&self.data.customers).id
        }
    }

    /// `n` customer ids (existing ones mostly), spread over the shards.
    pub fn customer_ids(&mut self, n: usize) -> Vec<i64> {
        (0..n).map(|_| self.customer_id()).collect()
    }

    /// A customer that exists.
    pub fn customer(&mut self) -> &'a dataset::Customer {
        self.rng.pick(&self.data.customers)
    }

    /// An event id: usually an existing one.
    pub fn event_id(&mut self) -> [u8; 16] {
        if self.rng.chance(8) {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&self.rng.next_u64().to_be_bytes());
            id
        } else {
            self.rng.pick(&self.data.events).id
        }
    }

    /// An account code: usually an existing one.
    pub fn account_code(&mut self) -> String {
        if self.rng.chance(8) {
            format!("nobody-{}", self.rng.below(100))
        } else {
            self.rng.pick(&self.data.accounts).code.clone()
        }
    }

    /// A ledger entry: usually an existing one.
    pub fn ledger_entry(&mut self) -> i64 {
        if self.rng.chance(8) {
            self.rng.between(1, dataset::LEDGER_SPAN)
        } else {
            self.rng.pick(&self.data.ledger).entry
        }
    }

    /// `n` values of `value`, joined by ", " (an IN list).
    pub fn list(&mut self, n: usize, mut value: impl FnMut(&mut Gen<'a>) -> String) -> String {
        (0..n).map(|_| value(self)).collect::<Vec<_>>().join(", ")
    }

    /// One of `pool`, as a string literal.
    pub fn quoted(&mut self, pool: &[&str]) -> String {
        let value = *self.rng.pick(pool);
        sql::quote(value)
    }

    /// A literal that fits `col` of `table` (existing keys, pool texts,
    /// numbers in the column's range).
    pub fn literal(&mut self, table: &str, col: &Col) -> String {
        match (table, col.name) {
            ("customers", "id") | ("orders", "customer_id") => self.customer_id().to_string(),
            ("orders", "id") => self
                .rng
                .between(1, self.data.orders.len() as i64 + 5)
                .to_string(),
            ("events", "id") => sql::uuid(&self.event_id()),
            ("accounts", "code") | ("ledger", "account") => sql::quote(&self.account_code()),
            ("ledger", "entry") => self.ledger_entry().to_string(),
            (_, "name") => self.quoted(&NAMES),
            (_, "region") => self.quoted(&REGIONS),
            (_, "status") => self.quoted(&STATUSES),
            (_, "category") => self.quoted(&CATEGORIES),
            (_, "kind") => self.quoted(&KINDS),
            (_, "owner") => self.quoted(&OWNERS),
            (_, "tier") => self.rng.between(-1, 6).to_string(),
            (_, "qty") => self.rng.between(-3, 50).to_string(),
            (_, "product_id") | ("products", "id") => {
                self.rng.between(1, dataset::PRODUCTS + 3).to_string()
            }
            (_, "n") => self.rng.between(-1000, 1000).to_string(),
            (_, "delta") => self.rng.between(-100_000, 100_000).to_string(),
            (_, "balance") => self
                .rng
                .between(-1_000_000_000_000, 1_000_000_000_000_000)
                .to_string(),
            (_, "credit") => sql::format_cents(self.rng.between(-500_000, 10_000_000)),
            (_, "amount") => sql::format_cents(self.rng.between(-50_000, 500_000)),
            (_, "price") => sql::format_cents(self.rng.between(0, 100_000)),
            (_, "placed") => {
                sql::timestamptz(Some(self.rng.between(dataset::PLACED.0, dataset::PLACED.1)))
            }
            (_, _) if col.kind == Kind::Temporal => {
                sql::date(Some(self.rng.between(dataset::DAYS.0, dataset::DAYS.1)))
            }
            _ => panic!("test generator bug: no literal for {table}.{}", col.name),
        }
    }

    /// A WHERE condition on one column of `table` (comparison, BETWEEN,
    /// IS [NOT] NULL), `prefix` qualifying the column (`"o."` or `""`).
    pub fn predicate(&mut self, table: &Table, prefix: &str) -> String {
        let col = *self.rng.pick(table.cols);
        let name = format!("{prefix}{}", col.name);
        match self.rng.below(10) {
            0 => format!("{name} IS NULL"),
            1 => format!("{name} IS NOT NULL"),
            2 if col.kind != Kind::Uuid => {
                let (a, b) = (
                    self.literal(table.name, &col),
                    self.literal(table.name, &col),
                );
                format!("{name} BETWEEN {a} AND {b}")
            }
            _ => {
                let op = if col.kind == Kind::Uuid {
                    "<>"
                } else {
                    *self.rng.pick(&["=", "<>", "<", "<=", ">", ">="])
                };
                format!("{name} {op} {}", self.literal(table.name, &col))
            }
        }
    }

    /// Optional WHERE clause (with its leading space) on `table`.
    pub fn maybe_where(&mut self, table: &Table) -> String {
        match self.rng.below(4) {
            0 => String::new(),
            1 => format!(
                " WHERE {} AND {}",
                self.predicate(table, ""),
                self.predicate(table, "")
            ),
            _ => format!(" WHERE {}", self.predicate(table, "")),
        }
    }

    /// `expr` with a random direction and NULLS placement (each sometimes
    /// left to the default).
    pub fn sort_term(&mut self, expr: &str) -> String {
        let direction = *self.rng.pick(&["", " ASC", " DESC"]);
        let nulls = *self.rng.pick(&["", "", " NULLS FIRST", " NULLS LAST"]);
        format!("{expr}{direction}{nulls}")
    }

    /// The ORDER BY item for output column `index` (0-based) written
    /// `expr`: the expression itself or (now and then) its position, with a
    /// random direction and NULLS placement.
    pub fn sort_item(&mut self, expr: &str, index: usize) -> String {
        let written = if self.rng.chance(30) {
            (index + 1).to_string()
        } else {
            expr.to_string()
        };
        self.sort_term(&written)
    }

    /// LIMIT and/or OFFSET (with a leading space), or nothing.
    pub fn limit_offset(&mut self) -> String {
        let limit = self.rng.between(0, 40);
        let offset = self.rng.between(1, 30);
        match self.rng.below(5) {
            0 => String::new(),
            1 => format!(" OFFSET {offset}"),
            2 => format!(" LIMIT {limit} OFFSET {offset}"),
            3 => format!(" OFFSET {offset} ROWS FETCH FIRST {limit} ROWS ONLY"),
            _ => format!(" LIMIT {limit}"),
        }
    }

    /// A table the generic generators may use; sharded ones mostly.
    pub fn table(&mut self) -> &'static Table {
        if self.rng.chance(10) {
            &TABLES[5]
        } else {
            self.rng.pick(super::catalog::sharded_tables())
        }
    }
}
