//! The tables of the differential suite and the shard map spreading them
//! over three shards: every strategy and key type the router knows.

/// Tables, created on the single Postgres and on every shard alike.
///
/// `customers` and `orders` are one co-location group (hash on the customer
/// id), `products` is a reference table, `events` is hash-sharded on a uuid,
/// `accounts` on a text key, `ledger` is range-sharded on an integer.
pub const SCHEMA: &str = "
CREATE TABLE customers (id bigint PRIMARY KEY, name text, region text, tier int,
                        credit numeric(12,2), created date);
CREATE TABLE orders (customer_id bigint NOT NULL, id bigint NOT NULL, product_id int, status text,
                     amount numeric(12,2), qty int, placed timestamptz,
                     PRIMARY KEY (customer_id, id));
CREATE TABLE products (id int PRIMARY KEY, category text, price numeric(10,2));
CREATE TABLE events (id uuid PRIMARY KEY, kind text, n int);
CREATE TABLE accounts (code text PRIMARY KEY, owner text, balance bigint, opened date);
CREATE TABLE ledger (entry int PRIMARY KEY, account text, delta bigint, booked date);
";

/// The shard map for three shards `shard0..shard2`.
pub const SHARD_MAP: &str = r#"
buckets = 256
default_shard = "shard0"
reference_tables = ["products"]

[[bucket_ranges]]
buckets = "0-84"
shard = "shard0"

[[bucket_ranges]]
buckets = "85-169"
shard = "shard1"

[[bucket_ranges]]
buckets = "170-255"
shard = "shard2"

[[tables]]
name = "customers"
key = "id"
type = "bigint"
group = "customer"

[[tables]]
name = "orders"
key = "customer_id"
type = "bigint"
group = "customer"

[[tables]]
name = "events"
key = "id"
type = "uuid"

[[tables]]
name = "accounts"
key = "code"
type = "text"

[[tables]]
name = "ledger"
key = "entry"
type = "integer"
strategy = "range"
ranges = [
    { to = "1000", shard = "shard0" },
    { from = "1000", to = "2000", shard = "shard1" },
    { from = "2000", shard = "shard2" },
]
"#;

/// Sharded tables (rows split over the shards) and the reference table
/// (a full copy on each), for checking where the loaded rows went.
pub const SHARDED_TABLES: [&str; 5] = ["customers", "orders", "events", "accounts", "ledger"];
/// See [`SHARDED_TABLES`].
pub const REFERENCE_TABLE: &str = "products";
