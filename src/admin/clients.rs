//! `SHOW CLIENTS`: every logged-in client with its traffic.

use std::sync::atomic::Ordering;

use bytes::BytesMut;

use super::resultset::result_set;
use super::time::format_utc;
use crate::proxy::Shared;

/// One row per client in the registry, by client id.
pub fn show_clients(shared: &Shared) -> BytesMut {
    let rows: Vec<Vec<String>> = shared
        .registry
        .snapshot()
        .iter()
        .map(|client| {
            vec![
                client.info.client_id.to_string(),
                client.info.user.clone(),
                client.info.database.clone(),
                client.info.address.clone(),
                client.tls.to_string(),
                format_utc(client.connected_at),
                client.statements.load(Ordering::Relaxed).to_string(),
                client.bytes_in.load(Ordering::Relaxed).to_string(),
                client.bytes_out.load(Ordering::Relaxed).to_string(),
            ]
        })
        .collect();
    result_set(
        &[
            "id",
            "user",
            "database",
            "address",
            "tls",
            "connected_since",
            "statements",
            "bytes_in",
            "bytes_out",
        ],
        &rows,
        "SHOW",
    )
}
