//! The generated dataset: a few thousand rows over six tables, fixed by a
//! seed. Non-key columns hold NULLs, duplicates (for grouping), negative
//! numbers and text in mixed case with accents and quotes (the clusters use
//! the C collation, so text sorts bytewise on both sides).

use std::collections::HashSet;

use super::rng::Rng;
use super::sql;

/// Customer names: duplicates by design, case and accent variants, a quote.
pub const NAMES: [&str; 20] = [
    "alice",
    "Alice",
    "ALICE",
    "bob",
    "Bob",
    "Zoë",
    "zoe",
    "Émile",
    "emile",
    "Ångström",
    "Ørsted",
    "O'Brien",
    "李雷",
    "Ñandú",
    "naïve",
    "Łukasz",
    "mañana",
    "Zürich",
    "über",
    "Über",
];
/// Customer regions ("west" is never stored: queries for it find nothing).
pub const REGIONS: [&str; 7] = ["north", "south", "east", "Nord", "Süd", "øst", "west"];
/// Order statuses.
pub const STATUSES: [&str; 7] = [
    "new",
    "paid",
    "shipped",
    "Shipped",
    "cancelled",
    "retour",
    "été",
];
/// Product categories.
pub const CATEGORIES: [&str; 6] = ["tools", "Toys", "toys", "garden", "café", "Café"];
/// Event kinds.
pub const KINDS: [&str; 6] = ["click", "view", "Buy", "buy", "refund", "ünlisted"];
/// Account owners.
pub const OWNERS: [&str; 8] = [
    "ada", "Ada", "grace", "Grâce", "linus", "Linus", "ken", "Kén",
];
/// Account code prefixes (one with a space, one with a quote).
const CODE_PREFIXES: [&str; 6] = ["acct", "ACCT", "Äcct", "zz", "a b", "x'y"];

/// Number of products (ids 1..=PRODUCTS).
pub const PRODUCTS: i64 = 50;
/// Ledger entries are drawn from 1..=LEDGER_SPAN (the range map splits at
/// 1000 and 2000).
pub const LEDGER_SPAN: i64 = 3000;
/// First and last day (since 2000-01-01) of `created` / `opened` / `booked`.
pub const DAYS: (i64, i64) = (5_000, 9_000);
/// First and last microsecond (since 2000-01-01) of `orders.placed`.
pub const PLACED: (i64, i64) = (630_000_000_000_000, 760_000_000_000_000);
/// Rows per multi-row INSERT.
const INSERT_BATCH: usize = 200;

/// A row of `customers`.
#[derive(Debug, Clone)]
pub struct Customer {
    /// Sharding key (hash, group "customer").
    pub id: i64,
    /// Duplicates, case and accent variants, some NULL.
    pub name: Option<String>,
    /// Few values, some NULL.
    pub region: Option<&'static str>,
    /// -1..=5, some NULL.
    pub tier: Option<i64>,
    /// `credit` in cents, negative ones included, some NULL.
    pub credit_cents: Option<i64>,
    /// Days since 2000-01-01, some NULL.
    pub created: Option<i64>,
}

/// A row of `orders`.
#[derive(Debug, Clone)]
pub struct Order {
    /// Sharding key (co-located with its customer).
    pub customer_id: i64,
    /// Unique over all orders.
    pub id: i64,
    /// A product (reference table), some NULL.
    pub product_id: Option<i64>,
    /// Few values, some NULL.
    pub status: Option<&'static str>,
    /// `amount` in cents, refunds negative, some NULL.
    pub amount_cents: Option<i64>,
    /// -3..=50, some NULL.
    pub qty: Option<i64>,
    /// Microseconds since 2000-01-01 UTC, some NULL.
    pub placed: Option<i64>,
}

/// A row of `products` (the reference table).
#[derive(Debug, Clone)]
pub struct Product {
    /// 1..=PRODUCTS.
    pub id: i64,
    /// Few values, some NULL.
    pub category: Option<&'static str>,
    /// `price` in cents, some NULL.
    pub price_cents: Option<i64>,
}

/// A row of `events`.
#[derive(Debug, Clone)]
pub struct Event {
    /// Sharding key (hash on uuid).
    pub id: [u8; 16],
    /// Few values, some NULL.
    pub kind: Option<&'static str>,
    /// -1000..=1000, some NULL.
    pub n: Option<i64>,
}

/// A row of `accounts`.
#[derive(Debug, Clone)]
pub struct Account {
    /// Sharding key (hash on text); unique.
    pub code: String,
    /// Few values, some NULL.
    pub owner: Option<&'static str>,
    /// Up to 10^15, negative ones included, some NULL.
    pub balance: Option<i64>,
    /// Days since 2000-01-01, some NULL.
    pub opened: Option<i64>,
}

/// A row of `ledger`.
#[derive(Debug, Clone)]
pub struct LedgerEntry {
    /// Sharding key (ranges split at 1000 and 2000).
    pub entry: i64,
    /// An account code (not co-located), some NULL.
    pub account: Option<String>,
    /// -100000..=100000, some NULL.
    pub delta: Option<i64>,
    /// Days since 2000-01-01, some NULL.
    pub booked: Option<i64>,
}

/// All rows of all tables.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// `customers` rows.
    pub customers: Vec<Customer>,
    /// `orders` rows.
    pub orders: Vec<Order>,
    /// `products` rows.
    pub products: Vec<Product>,
    /// `events` rows.
    pub events: Vec<Event>,
    /// `accounts` rows.
    pub accounts: Vec<Account>,
    /// `ledger` rows.
    pub ledger: Vec<LedgerEntry>,
}

/// The order rows are loaded in: the sharded side loads them reversed, so
/// rows that tie under an ORDER BY are stored (and come back) in a different
/// order than on the single Postgres, and only a correct tie-aware
/// comparison passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadOrder {
    /// As generated.
    Generated,
    /// Last row first.
    Reversed,
}

/// `n` distinct integers in `lo..=hi`, in random order.
fn distinct_ints(rng: &mut Rng, n: usize, lo: i64, hi: i64) -> Vec<i64> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let v = rng.between(lo, hi);
        if seen.insert(v) {
            out.push(v);
        }
    }
    out
}

fn day(rng: &mut Rng) -> i64 {
    rng.between(DAYS.0, DAYS.1)
}

fn random_uuid(rng: &mut Rng) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&rng.next_u64().to_be_bytes());
    bytes[8..].copy_from_slice(&rng.next_u64().to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    bytes
}

impl Dataset {
    /// The dataset of `seed`: 600 customers with 0–7 orders each, 50
    /// products, 800 events, 300 accounts and 900 ledger entries.
    pub fn generate(seed: u64) -> Dataset {
        let mut rng = Rng::new(seed);
        let customers: Vec<Customer> = distinct_ints(&mut rng, 600, -5_000, 250_000)
            .into_iter()
            .map(|id| Customer {
                id,
                name: rng.nullable(3, |r| {
                    let base = *r.pick(&NAMES);
                    if r.chance(20) {
                        format!("{base} {}", r.below(10))
                    } else {
                        base.to_string()
                    }
                }),
                region: rng.nullable(10, |r| *r.pick(&REGIONS[..6])),
                tier: rng.nullable(10, |r| r.between(-1, 5)),
                credit_cents: rng.nullable(8, |r| r.between(-500_000, 10_000_000)),
                created: rng.nullable(5, day),
            })
            .collect();
        let mut orders = Vec::new();
        for customer in &customers {
            for _ in 0..rng.below(8) {
                orders.push(Order {
                    customer_id: customer.id,
                    id: orders.len() as i64 + 1,
                    product_id: rng.nullable(3, |r| r.between(1, PRODUCTS)),
                    status: rng.nullable(6, |r| *r.pick(&STATUSES)),
                    amount_cents: rng.nullable(5, |r| r.between(-50_000, 500_000)),
                    qty: rng.nullable(5, |r| r.between(-3, 50)),
                    placed: rng.nullable(5, |r| {
                        let t = r.between(PLACED.0, PLACED.1);
                        if r.chance(50) { t - t % 1_000_000 } else { t }
                    }),
                });
            }
        }
        let products = (1..=PRODUCTS)
            .map(|id| Product {
                id,
                category: rng.nullable(8, |r| *r.pick(&CATEGORIES)),
                price_cents: rng.nullable(4, |r| r.between(50, 99_999)),
            })
            .collect();
        let events = (0..800)
            .map(|_| Event {
                id: random_uuid(&mut rng),
                kind: rng.nullable(5, |r| *r.pick(&KINDS)),
                n: rng.nullable(5, |r| r.between(-1000, 1000)),
            })
            .collect();
        let accounts: Vec<Account> = (0..300)
            .map(|i| Account {
                code: format!("{}-{i:04}", rng.pick(&CODE_PREFIXES)),
                owner: rng.nullable(5, |r| *r.pick(&OWNERS)),
                balance: rng.nullable(5, |r| r.between(-1_000_000_000_000, 1_000_000_000_000_000)),
                opened: rng.nullable(5, day),
            })
            .collect();
        let ledger = distinct_ints(&mut rng, 900, 1, LEDGER_SPAN)
            .into_iter()
            .map(|entry| LedgerEntry {
                entry,
                account: rng.nullable(5, |r| r.pick(&accounts).code.clone()),
                delta: rng.nullable(5, |r| r.between(-100_000, 100_000)),
                booked: rng.nullable(5, day),
            })
            .collect();
        Dataset {
            customers,
            orders,
            products,
            events,
            accounts,
            ledger,
        }
    }

    /// Multi-row INSERTs of every row, [`INSERT_BATCH`] rows each, in `order`.
    pub fn insert_statements(&self, order: LoadOrder) -> Vec<String> {
        let mut out = Vec::new();
        inserts(
            &mut out,
            "customers (id, name, region, tier, credit, created)",
            &self.customers,
            order,
            |c| {
                format!(
                    "({}, {}, {}, {}, {}, {})",
                    c.id,
                    sql::text(c.name.as_deref()),
                    sql::text(c.region),
                    sql::int(c.tier),
                    sql::cents(c.credit_cents),
                    sql::date(c.created)
                )
            },
        );
        inserts(
            &mut out,
            "orders (customer_id, id, product_id, status, amount, qty, placed)",
            &self.orders,
            order,
            |o| {
                format!(
                    "({}, {}, {}, {}, {}, {}, {})",
                    o.customer_id,
                    o.id,
                    sql::int(o.product_id),
                    sql::text(o.status),
                    sql::cents(o.amount_cents),
                    sql::int(o.qty),
                    sql::timestamptz(o.placed)
                )
            },
        );
        inserts(
            &mut out,
            "products (id, category, price)",
            &self.products,
            order,
            |p| {
                format!(
                    "({}, {}, {})",
                    p.id,
                    sql::text(p.category),
                    sql::cents(p.price_cents)
                )
            },
        );
        inserts(&mut out, "events (id, kind, n)", &self.events, order, |e| {
            format!(
                "({}, {}, {})",
                sql::uuid(&e.id),
                sql::text(e.kind),
                sql::int(e.n)
            )
        });
        inserts(
            &mut out,
            "accounts (code, owner, balance, opened)",
            &self.accounts,
            order,
            |a| {
                format!(
                    "({}, {}, {}, {})",
                    sql::quote(&a.code),
                    sql::text(a.owner),
                    sql::int(a.balance),
                    sql::date(a.opened)
                )
            },
        );
        inserts(
            &mut out,
            "ledger (entry, account, delta, booked)",
            &self.ledger,
            order,
            |l| {
                format!(
                    "({}, {}, {}, {})",
                    l.entry,
                    sql::text(l.account.as_deref()),
                    sql::int(l.delta),
                    sql::date(l.booked)
                )
            },
        );
        out
    }

    /// Rows per table, for checking a load: `(table, rows)`.
    pub fn row_counts(&self) -> Vec<(&'static str, usize)> {
        vec![
            ("customers", self.customers.len()),
            ("orders", self.orders.len()),
            ("products", self.products.len()),
            ("events", self.events.len()),
            ("accounts", self.accounts.len()),
            ("ledger", self.ledger.len()),
        ]
    }
}

/// Appends INSERTs of `rows` into `target` (table and column list).
fn inserts<T>(
    out: &mut Vec<String>,
    target: &str,
    rows: &[T],
    order: LoadOrder,
    values: impl Fn(&T) -> String,
) {
    let ordered: Vec<&T> = match order {
        LoadOrder::Generated => rows.iter().collect(),
        LoadOrder::Reversed => rows.iter().rev().collect(),
    };
    for chunk in ordered.chunks(INSERT_BATCH) {
        let tuples: Vec<String> = chunk.iter().map(|row| values(row)).collect();
        out.push(format!("INSERT INTO {target} VALUES {}", tuples.join(", ")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_covers_edge_values() {
        let a = Dataset::generate(1);
        let b = Dataset::generate(1);
        assert_eq!(
            a.insert_statements(LoadOrder::Generated),
            b.insert_statements(LoadOrder::Generated)
        );
        assert!(a.customers.iter().any(|c| c.region.is_none()));
        assert!(
            a.customers
                .iter()
                .any(|c| c.credit_cents.is_some_and(|v| v < 0))
        );
        assert!(a.customers.iter().any(|c| c.id < 0));
        assert!(a.orders.len() > 1500);
        let codes: HashSet<_> = a.accounts.iter().map(|x| &x.code).collect();
        assert_eq!(codes.len(), a.accounts.len());
        let reversed = a.insert_statements(LoadOrder::Reversed);
        assert_eq!(
            reversed.len(),
            a.insert_statements(LoadOrder::Generated).len()
        );
    }
}
