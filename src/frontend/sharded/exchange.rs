//! Request/answer exchanges with several servers at once.
//!
//! Cross-shard work (scatter reads, writes to every shard, two-phase commit)
//! is not streamed through the session's pump: the proxy sends each
//! participant its request, reads every answer completely, and only then
//! decides what the client sees. Answers are read concurrently, so shards
//! execute in parallel and one slow shard does not serialize the others.

use bytes::{Buf, Bytes, BytesMut};

use crate::backend::conn::{MAX_SERVER_MESSAGE, ServerConn};
use crate::net::messages::{PgError, backend_tag as bt, error_field, parameter_status_parts};
use crate::net::peek_frame;

/// Where a server's answer ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// ReadyForQuery: the request ended with a simple Query or a Sync.
    ReadyForQuery,
    /// CopyInResponse (the server now waits for COPY data) or an error
    /// (after which it still sends ReadyForQuery, read here too).
    CopyIn,
}

/// One server's complete answer.
#[derive(Debug, Default)]
pub struct Answer {
    /// Every message of the answer except ParameterStatus, NoticeResponse
    /// and the final ReadyForQuery, as whole frames.
    pub frames: BytesMut,
    /// The first ErrorResponse, as a whole frame.
    pub error: Option<Bytes>,
    /// Notices, as whole frames (forwarded to the client).
    pub notices: BytesMut,
}

impl Answer {
    /// The answer's messages as (tag, body) pairs.
    pub fn messages(&self) -> Messages<'_> {
        Messages::new(&self.frames)
    }

    /// The error as a client-facing [`PgError`] (SQLSTATE and message kept).
    pub fn error_summary(&self) -> Option<PgError> {
        let frame = self.error.as_ref()?;
        let body = &frame[crate::net::HEADER_LEN..];
        Some(PgError::error(
            error_field(body, b'C').unwrap_or("XX000"),
            error_field(body, b'M').unwrap_or("").to_string(),
        ))
    }

    /// The tag of the last CommandComplete, if any.
    pub fn command_tag(&self) -> Option<&str> {
        self.messages()
            .filter(|(tag, _)| *tag == bt::COMMAND_COMPLETE)
            .last()
            .and_then(|(_, body)| std::str::from_utf8(body.strip_suffix(b"\0")?).ok())
    }
}

/// Iterator over whole frames in a buffer.
pub struct Messages<'a> {
    rest: &'a [u8],
}

impl<'a> Messages<'a> {
    /// Iterates over the whole frames in `bytes`.
    pub fn new(bytes: &'a [u8]) -> Messages<'a> {
        Messages { rest: bytes }
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let frame = peek_frame(self.rest, usize::MAX).ok()??;
        let (whole, rest) = self.rest.split_at(frame.len);
        self.rest = rest;
        Some((frame.tag, &whole[crate::net::HEADER_LEN..]))
    }
}

/// Sends `request` and reads the answer up to `until`, keeping the
/// connection's transaction status and reported parameters current.
/// Fails only when the connection is lost or the server breaks protocol.
pub async fn exchange(
    conn: &mut ServerConn,
    request: &[u8],
    until: Until,
) -> Result<Answer, PgError> {
    use tokio::io::AsyncWriteExt;
    let address = conn.cancel.address.clone();
    let lost = |e: std::io::Error| {
        PgError::fatal(
            "08006",
            format!("lost the connection to server {address}: {e}"),
        )
    };
    if !conn.outbox.is_empty() {
        let pending = std::mem::take(&mut conn.outbox);
        conn.writer.write_all(&pending).await.map_err(lost)?;
    }
    conn.writer.write_all(request).await.map_err(lost)?;
    read_answer(conn, until).await
}

/// Reads one answer (see [`exchange`]).
pub async fn read_answer(conn: &mut ServerConn, until: Until) -> Result<Answer, PgError> {
    let mut answer = Answer::default();
    loop {
        let frame = conn.read_frame().await.map_err(|e| {
            PgError::fatal(
                "08006",
                format!("lost the connection to server {}: {e}", conn.cancel.address),
            )
        })?;
        if frame.len > MAX_SERVER_MESSAGE {
            return Err(PgError::fatal("08P01", "server message too large"));
        }
        let whole = &conn.inbox[..frame.len];
        let body = &whole[crate::net::HEADER_LEN..];
        let mut done = false;
        match frame.tag {
            bt::PARAMETER_STATUS => {
                if let Some((name, value)) = parameter_status_parts(body) {
                    conn.reported.insert(name.to_string(), value.to_string());
                }
            }
            bt::NOTICE | bt::NOTIFICATION => answer.notices.extend_from_slice(whole),
            bt::READY_FOR_QUERY => {
                conn.status = body.first().copied().unwrap_or(b'I');
                done = true;
            }
            bt::ERROR => {
                if answer.error.is_none() {
                    answer.error = Some(Bytes::copy_from_slice(whole));
                }
            }
            tag => {
                answer.frames.extend_from_slice(whole);
                done = until == Until::CopyIn && tag == bt::COPY_IN;
            }
        }
        conn.inbox.advance(frame.len);
        if done {
            return Ok(answer);
        }
    }
}

/// Runs one exchange per connection concurrently; answers come back in the
/// order of `conns`. The first lost connection fails the whole call.
pub async fn exchange_all(
    conns: Vec<(&mut ServerConn, &[u8])>,
    until: Until,
) -> Result<Vec<Answer>, PgError> {
    futures::future::try_join_all(
        conns
            .into_iter()
            .map(|(conn, request)| exchange(conn, request, until)),
    )
    .await
}
