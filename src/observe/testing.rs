//! Statement events for the unit tests of this module.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;

use super::event::{Route, SessionInfo, ShardSet, StatementEvent};

/// The route of a statement on `shards`.
pub fn route(shards: &[usize], scatter: bool, replica: bool) -> Route {
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

/// `sql` run by user `app` on `database`, taking `millis`, one row, no
/// error, started at 2023-11-14T22:13:20Z.
pub fn event(database: &str, sql: &str, millis: u64, route: Route) -> StatementEvent {
    StatementEvent {
        session: Arc::new(SessionInfo {
            client_id: 7,
            user: "app".into(),
            database: database.into(),
            address: "127.0.0.1:5555".into(),
        }),
        text: Bytes::copy_from_slice(sql.as_bytes()),
        bind: None,
        started: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        duration: Duration::from_millis(millis),
        rows: 1,
        error: None,
        route,
    }
}
