//! Per-statement metrics: queries by route, latency and errors, fed by
//! the collector with every completed statement.
//!
//! Handles are registered once per database and per SQLSTATE and then
//! looked up without allocating, so counting a statement costs a read
//! lock, a hash lookup and a few atomic adds.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use metrics::{Counter, Histogram, Label};

use super::Registrar;
use super::families::{QUERIES, QUERY_DURATION, QUERY_ERRORS};
use crate::observe::event::{Route, StatementEvent};

/// The (route, server_role) label pairs of `shardwire_queries_total`; a
/// statement counts under exactly one (see [`route_index`]).
const ROUTES: [(&str, &str); 5] = [
    ("single_shard", "primary"),
    ("single_shard", "replica"),
    ("scatter", "primary"),
    ("scatter", "replica"),
    ("local", "none"),
];

/// SQLSTATE label for a code that is not five ASCII capitals or digits
/// (never from a real Postgres): keeps label values clean, and all such
/// codes share one series so they cannot multiply series.
const MALFORMED_SQLSTATE: &str = "malformed";
/// The key every malformed code is counted under.
const MALFORMED_KEY: [u8; 5] = *b"?????";

/// Where a statement ran, as an index into [`ROUTES`]: no shard means the
/// proxy answered it itself; several shards (merged or not) is a scatter.
fn route_index(route: &Route) -> usize {
    let fanout = match route.shards.len() {
        0 => return ROUTES.len() - 1,
        1 if !route.scatter => 0,
        _ => 2,
    };
    fanout + usize::from(route.replica)
}

/// The key an error's SQLSTATE is counted under: the code itself when it
/// is well formed, else [`MALFORMED_KEY`].
fn sqlstate_key(code: &[u8; 5]) -> [u8; 5] {
    if code
        .iter()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        *code
    } else {
        MALFORMED_KEY
    }
}

/// The label value of a key from [`sqlstate_key`].
fn sqlstate_label(key: &[u8; 5]) -> String {
    if *key == MALFORMED_KEY {
        MALFORMED_SQLSTATE.to_string()
    } else {
        key.iter().map(|&b| char::from(b)).collect()
    }
}

/// The handles of one database.
struct DatabaseSeries {
    /// One counter per entry of [`ROUTES`].
    queries: [Counter; ROUTES.len()],
    duration: Histogram,
}

impl DatabaseSeries {
    fn register(registrar: &Registrar, database: &str) -> DatabaseSeries {
        let label = || Label::new("database", database.to_string());
        DatabaseSeries {
            queries: ROUTES.map(|(route, role)| {
                registrar.counter(
                    &QUERIES,
                    vec![
                        label(),
                        Label::new("route", route),
                        Label::new("server_role", role),
                    ],
                )
            }),
            duration: registrar.histogram(&QUERY_DURATION, vec![label()]),
        }
    }
}

/// Per-statement handles, registered on first use. Databases and
/// SQLSTATEs come from logged-in sessions and servers, so both sets stay
/// small.
#[derive(Default)]
pub struct StatementMetrics {
    databases: RwLock<HashMap<String, Arc<DatabaseSeries>>>,
    errors: RwLock<HashMap<[u8; 5], Counter>>,
}

impl StatementMetrics {
    /// Counts one completed statement.
    pub fn record(&self, registrar: &Registrar, event: &StatementEvent) {
        let series = self.database(registrar, &event.session.database);
        series.queries[route_index(&event.route)].increment(1);
        series.duration.record(event.duration.as_secs_f64());
        if let Some(code) = &event.error {
            self.error(registrar, code).increment(1);
        }
    }

    fn database(&self, registrar: &Registrar, database: &str) -> Arc<DatabaseSeries> {
        let known = self.databases.read().unwrap_or_else(|e| e.into_inner());
        if let Some(series) = known.get(database) {
            return Arc::clone(series);
        }
        drop(known);
        let mut all = self.databases.write().unwrap_or_else(|e| e.into_inner());
        Arc::clone(
            all.entry(database.to_string())
                .or_insert_with(|| Arc::new(DatabaseSeries::register(registrar, database))),
        )
    }

    fn error(&self, registrar: &Registrar, code: &[u8; 5]) -> Counter {
        let key = sqlstate_key(code);
        let known = self.errors.read().unwrap_or_else(|e| e.into_inner());
        if let Some(counter) = known.get(&key) {
            return counter.clone();
        }
        drop(known);
        let mut all = self.errors.write().unwrap_or_else(|e| e.into_inner());
        all.entry(key)
            .or_insert_with(|| {
                registrar.counter(
                    &QUERY_ERRORS,
                    vec![Label::new("sqlstate", sqlstate_label(&key))],
                )
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::event::ShardSet;

    fn route(shards: &[usize], scatter: bool, replica: bool) -> Route {
        let mut set = ShardSet::default();
        for &shard in shards {
            set.insert(shard);
        }
        Route {
            shards: set,
            scatter,
            replica,
        }
    }

    fn labels_of(route: Route) -> (&'static str, &'static str) {
        ROUTES[route_index(&route)]
    }

    #[test]
    fn every_route_counts_under_one_label_pair() {
        assert_eq!(
            labels_of(route(&[1], false, false)),
            ("single_shard", "primary")
        );
        assert_eq!(
            labels_of(route(&[0], false, true)),
            ("single_shard", "replica")
        );
        assert_eq!(
            labels_of(route(&[0, 1], true, false)),
            ("scatter", "primary")
        );
        assert_eq!(
            labels_of(route(&[0, 1], true, true)),
            ("scatter", "replica")
        );
        assert_eq!(
            labels_of(route(&[0, 1], false, false)),
            ("scatter", "primary"),
            "a statement on several shards is a scatter even if nothing was merged"
        );
        assert_eq!(labels_of(route(&[], false, false)), ("local", "none"));
    }

    #[test]
    fn sqlstates_are_kept_only_when_well_formed() {
        let label = |code: &[u8; 5]| sqlstate_label(&sqlstate_key(code));
        assert_eq!(label(b"42P01"), "42P01");
        assert_eq!(label(b"57014"), "57014");
        assert_eq!(label(b"4\"} x"), MALFORMED_SQLSTATE);
        assert_eq!(label(b"42p01"), MALFORMED_SQLSTATE);
        assert_eq!(sqlstate_key(b"4\"} x"), sqlstate_key(b"?????"));
    }
}
