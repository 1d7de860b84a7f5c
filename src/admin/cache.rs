//! `SHOW CACHE`: the caches of the proxy with their effectiveness. Today
//! that is the parse and routing-analysis cache of each routed database
//! (column `cache` is `routing`); other caches add rows of their own kind.

use bytes::BytesMut;

use super::resultset::result_set_with_nulls;
use crate::proxy::{ROUTER_CACHE_ENTRIES, Shared};

/// One row per routed database; `hit_ratio` is NULL before any lookup.
pub fn show_cache(shared: &Shared) -> BytesMut {
    let runtime = shared.runtime();
    let mut routers: Vec<_> = runtime.routers.iter().collect();
    routers.sort_by(|a, b| a.0.cmp(b.0));
    let rows: Vec<Vec<Option<String>>> = routers
        .into_iter()
        .map(|(database, cache)| {
            let (hits, misses) = (cache.hits(), cache.misses());
            vec![
                Some(database.clone()),
                Some("routing".to_string()),
                Some(cache.len().to_string()),
                Some(ROUTER_CACHE_ENTRIES.to_string()),
                Some(hits.to_string()),
                Some(misses.to_string()),
                hit_ratio(hits, misses),
            ]
        })
        .collect();
    result_set_with_nulls(
        &[
            "database",
            "cache",
            "entries",
            "capacity",
            "hits",
            "misses",
            "hit_ratio",
        ],
        &rows,
        "SHOW",
    )
}

/// Hits over lookups, to four decimals; `None` without lookups.
fn hit_ratio(hits: u64, misses: u64) -> Option<String> {
    let lookups = hits + misses;
    (lookups > 0).then(|| format!("{:.4}", hits as f64 / lookups as f64))
}

#[cfg(test)]
mod tests {
    use super::hit_ratio;

    #[test]
    fn ratio_of_hits() {
        assert_eq!(hit_ratio(0, 0), None);
        assert_eq!(hit_ratio(3, 1).as_deref(), Some("0.7500"));
        assert_eq!(hit_ratio(0, 5).as_deref(), Some("0.0000"));
    }
}
