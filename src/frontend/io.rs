//! Reading whole messages from a client during startup, before the session
//! loop takes over the socket.

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::net::messages::PgError;
use crate::net::{Frame, peek_frame, peek_startup_packet};

fn lost(e: std::io::Error) -> PgError {
    PgError::fatal("08006", format!("client connection lost: {e}"))
}

async fn fill<S: AsyncRead + Unpin>(stream: &mut S, inbox: &mut BytesMut) -> Result<(), PgError> {
    match stream.read_buf(inbox).await {
        Ok(0) => Err(PgError::fatal(
            "08006",
            "client closed the connection during startup",
        )),
        Ok(_) => Ok(()),
        Err(e) => Err(lost(e)),
    }
}

/// Reads until a whole tagged message is buffered.
pub async fn read_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
    inbox: &mut BytesMut,
    max_len: usize,
) -> Result<Frame, PgError> {
    loop {
        match peek_frame(inbox, max_len) {
            Ok(Some(frame)) => return Ok(frame),
            Ok(None) => fill(stream, inbox).await?,
            Err(e) => return Err(PgError::fatal("08P01", e.to_string())),
        }
    }
}

/// Reads until a whole untagged startup packet is buffered; returns its length.
pub async fn read_startup_packet<S: AsyncRead + Unpin>(
    stream: &mut S,
    inbox: &mut BytesMut,
    max_len: usize,
) -> Result<usize, PgError> {
    loop {
        match peek_startup_packet(inbox, max_len) {
            Ok(Some(len)) => return Ok(len),
            Ok(None) => fill(stream, inbox).await?,
            Err(e) => {
                return Err(PgError::fatal(
                    "08P01",
                    format!("invalid startup packet: {e}"),
                ));
            }
        }
    }
}
