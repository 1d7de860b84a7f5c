//! The differential suite: a generated dataset loaded into a single
//! Postgres and, through the proxy, into three shards; several hundred
//! generated queries run on both with the simple and the extended protocol;
//! every answer must match the single Postgres' (or be a 0A000 refusal).
//!
//! [`dataset`] makes the rows, [`schema`] the tables and shard map,
//! [`queries`] the queries, [`answer`] and [`decode`] capture answers,
//! [`compare`] judges a pair, [`run`] drives both sides, [`outcome`] counts.

pub mod answer;
pub mod calendar;
pub mod compare;
pub mod dataset;
pub mod decode;
pub mod outcome;
pub mod params;
pub mod queries;
pub mod rng;
pub mod run;
pub mod schema;
pub mod sql;
