//! Sharding: which shard a row belongs to.
//!
//! Hash sharding reuses PostgreSQL's own `PARTITION BY HASH` hash (see
//! [`hash`]), so the proxy's routing decision for a key can be checked inside
//! Postgres with plain SQL (`satisfies_hash_partition`) and a table sharded by
//! shardwire can be re-partitioned by Postgres itself with the same result.
//! [`map`] holds the shard map: buckets, tables, strategies, groups.

pub mod copy;
pub mod hash;
pub mod map;
pub mod recovery;
