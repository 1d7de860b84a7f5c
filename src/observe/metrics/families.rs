//! Every metric family the proxy exports: name, kind, unit and help text,
//! in one place so names stay consistent and each one is described once.

use metrics::{Recorder, Unit};

/// How a family is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (a `_total` name).
    Counter,
    /// A value that is set.
    Gauge,
    /// A distribution of observations, rendered with buckets.
    Histogram,
}

/// One metric family.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// The full metric name (`shardwire_...`).
    pub name: &'static str,
    /// How it is recorded.
    pub kind: Kind,
    /// Its unit, for the recorder's metadata.
    pub unit: Option<Unit>,
    /// The `# HELP` text.
    pub help: &'static str,
}

const fn family(name: &'static str, kind: Kind, unit: Option<Unit>, help: &'static str) -> Family {
    Family {
        name,
        kind,
        unit,
        help,
    }
}

/// Logged-in clients per (user, database).
pub const CLIENT_CONNECTIONS: Family = family(
    "shardwire_client_connections",
    Kind::Gauge,
    None,
    "Clients logged in now, per user and database.",
);
/// Server connections per pool and state (active: lent to a client).
pub const SERVER_CONNECTIONS: Family = family(
    "shardwire_server_connections",
    Kind::Gauge,
    None,
    "Open server connections per pool (user, database, shard, server) and state (active: lent to a client, idle).",
);
/// Clients queued for a server connection of a pool.
pub const POOL_CLIENTS_WAITING: Family = family(
    "shardwire_pool_clients_waiting",
    Kind::Gauge,
    None,
    "Clients waiting for a server connection of the pool now.",
);
/// Checkouts that had to queue.
pub const POOL_WAITS: Family = family(
    "shardwire_pool_waits_total",
    Kind::Counter,
    None,
    "Checkouts that had to queue for a server connection of the pool.",
);
/// Time spent queueing (integer counters only: microseconds, not seconds).
pub const POOL_WAIT_MICROSECONDS: Family = family(
    "shardwire_pool_wait_microseconds_total",
    Kind::Counter,
    Some(Unit::Microseconds),
    "Time checkouts spent queueing for a server connection of the pool, in microseconds.",
);
/// Checkouts that gave up waiting.
pub const POOL_CHECKOUT_TIMEOUTS: Family = family(
    "shardwire_pool_checkout_timeouts_total",
    Kind::Counter,
    None,
    "Checkouts that timed out waiting for a server connection of the pool.",
);
/// Server connections opened by a pool.
pub const SERVER_CONNECTIONS_OPENED: Family = family(
    "shardwire_server_connections_opened_total",
    Kind::Counter,
    None,
    "Server connections the pool opened.",
);
/// Server connections closed by a pool.
pub const SERVER_CONNECTIONS_CLOSED: Family = family(
    "shardwire_server_connections_closed_total",
    Kind::Counter,
    None,
    "Server connections the pool closed.",
);
/// Completed statements per database and route.
pub const QUERIES: Family = family(
    "shardwire_queries_total",
    Kind::Counter,
    None,
    "Completed statements per database, route (single_shard, scatter, local: answered by the proxy) and server_role (primary, replica, none).",
);
/// Statement latency.
pub const QUERY_DURATION: Family = family(
    "shardwire_query_duration_seconds",
    Kind::Histogram,
    Some(Unit::Seconds),
    "Time from a statement's message to the end of its answer, per database.",
);
/// Statements that ended in an error.
pub const QUERY_ERRORS: Family = family(
    "shardwire_query_errors_total",
    Kind::Counter,
    None,
    "Statements that ended in an error, per SQLSTATE.",
);
/// Parse-cache hits.
pub const PARSE_CACHE_HITS: Family = family(
    "shardwire_parse_cache_hits_total",
    Kind::Counter,
    None,
    "Statements whose parse and routing analysis came from the cache, per database.",
);
/// Parse-cache misses.
pub const PARSE_CACHE_MISSES: Family = family(
    "shardwire_parse_cache_misses_total",
    Kind::Counter,
    None,
    "Statements the router had to parse and analyse, per database.",
);
/// Parse-cache size.
pub const PARSE_CACHE_ENTRIES: Family = family(
    "shardwire_parse_cache_entries",
    Kind::Gauge,
    None,
    "Statement texts in the parse cache now, per database.",
);
/// WAL bytes a server is behind its shard's primary.
pub const REPLICA_LAG_BYTES: Family = family(
    "shardwire_replica_lag_bytes",
    Kind::Gauge,
    Some(Unit::Bytes),
    "WAL bytes the server was behind its shard's primary at the last probe.",
);
/// Time a server is behind its shard's primary.
pub const REPLICA_LAG_SECONDS: Family = family(
    "shardwire_replica_lag_seconds",
    Kind::Gauge,
    Some(Unit::Seconds),
    "Time the server was behind its shard's primary at the last probe.",
);
/// Whether reads may go to a server.
pub const REPLICA_IN_ROTATION: Family = family(
    "shardwire_replica_in_rotation",
    Kind::Gauge,
    None,
    "1 if reads may be routed to the server now, else 0.",
);
/// Bytes received from clients.
pub const CLIENT_BYTES_RECEIVED: Family = family(
    "shardwire_client_bytes_received_total",
    Kind::Counter,
    Some(Unit::Bytes),
    "Bytes received from clients.",
);
/// Bytes sent to clients.
pub const CLIENT_BYTES_SENT: Family = family(
    "shardwire_client_bytes_sent_total",
    Kind::Counter,
    Some(Unit::Bytes),
    "Bytes sent to clients.",
);
/// Statement events lost because the collector fell behind.
pub const EVENTS_DROPPED: Family = family(
    "shardwire_statement_events_dropped_total",
    Kind::Counter,
    None,
    "Statement events dropped because the statistics collector fell behind (they are missing from statistics and metrics).",
);

/// Every family, for [`describe_all`].
const ALL: [Family; 20] = [
    CLIENT_CONNECTIONS,
    SERVER_CONNECTIONS,
    POOL_CLIENTS_WAITING,
    POOL_WAITS,
    POOL_WAIT_MICROSECONDS,
    POOL_CHECKOUT_TIMEOUTS,
    SERVER_CONNECTIONS_OPENED,
    SERVER_CONNECTIONS_CLOSED,
    QUERIES,
    QUERY_DURATION,
    QUERY_ERRORS,
    PARSE_CACHE_HITS,
    PARSE_CACHE_MISSES,
    PARSE_CACHE_ENTRIES,
    REPLICA_LAG_BYTES,
    REPLICA_LAG_SECONDS,
    REPLICA_IN_ROTATION,
    CLIENT_BYTES_RECEIVED,
    CLIENT_BYTES_SENT,
    EVENTS_DROPPED,
];

/// Gives every family its help text and unit on `recorder`.
pub fn describe_all(recorder: &impl Recorder) {
    for family in ALL {
        let (name, help) = (family.name.into(), family.help.into());
        match family.kind {
            Kind::Counter => recorder.describe_counter(name, family.unit, help),
            Kind::Gauge => recorder.describe_gauge(name, family.unit, help),
            Kind::Histogram => recorder.describe_histogram(name, family.unit, help),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_prefixed_and_counters_end_in_total() {
        let mut names: Vec<&str> = ALL.iter().map(|f| f.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        for family in ALL {
            assert!(family.name.starts_with("shardwire_"), "{}", family.name);
            assert_eq!(
                family.kind == Kind::Counter,
                family.name.ends_with("_total"),
                "{}",
                family.name
            );
        }
    }
}
