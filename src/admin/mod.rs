//! The admin console: database `shardwire` on the proxy's own port, for
//! users marked `admin = true`. It speaks the simple query protocol (psql,
//! `simple_query` in drivers) and answers with ordinary result sets.
//!
//! Commands so far: `SHOW REPLICAS` (every server's probed role, lag and
//! rotation state), `SHOW CONFIG` (every setting in effect, passwords
//! masked), `SHOW VERSION`, and `PROMOTE <shard> <server>` (promotes a
//! replica; the probe then moves writes to it).

mod commands;
mod resultset;
mod statements;

use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

use crate::frontend::io::read_frame;
use crate::net::messages::{
    PgError, put_backend_key_data, put_parameter_status, put_ready_for_query, query_text, tag,
};
use crate::net::stream::ClientStream;
use crate::proxy::Shared;

/// Largest message the console accepts.
const MAX_MESSAGE: usize = 1024 * 1024;

/// Serves an authenticated admin client until it leaves.
pub async fn serve(mut stream: ClientStream, mut inbox: BytesMut, shared: Arc<Shared>) {
    let mut out = BytesMut::new();
    for (name, value) in [
        ("server_version", "15.0 (shardwire admin console)"),
        ("server_encoding", "UTF8"),
        ("client_encoding", "UTF8"),
        ("DateStyle", "ISO, MDY"),
        ("integer_datetimes", "on"),
        ("standard_conforming_strings", "on"),
    ] {
        put_parameter_status(&mut out, name, value);
    }
    put_backend_key_data(&mut out, 0, 0);
    put_ready_for_query(&mut out, b'I');
    let mut skip_until_sync = false;
    loop {
        if stream.write_all(&out).await.is_err() {
            return;
        }
        out.clear();
        let frame = match read_frame(&mut stream, &mut inbox, MAX_MESSAGE).await {
            Ok(frame) => frame,
            Err(e) => {
                e.encode(&mut out);
                let _ = stream.write_all(&out).await;
                return;
            }
        };
        let message = inbox.split_to(frame.len);
        let body = frame.body(&message);
        match frame.tag {
            tag::TERMINATE => return,
            tag::QUERY => {
                let sql = String::from_utf8_lossy(query_text(body)).into_owned();
                match commands::run(&sql, &shared).await {
                    Ok(answer) => out.extend_from_slice(&answer),
                    Err(e) => e.encode(&mut out),
                }
                put_ready_for_query(&mut out, b'I');
            }
            tag::SYNC => {
                skip_until_sync = false;
                put_ready_for_query(&mut out, b'I');
            }
            _ if skip_until_sync => {}
            _ => {
                skip_until_sync = true;
                PgError::error(
                    "0A000",
                    "the admin console speaks only the simple query protocol",
                )
                .with_hint("use psql, or your driver's simple_query")
                .encode(&mut out);
            }
        }
    }
}
