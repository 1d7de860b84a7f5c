//! The few message fields the proxy reads, and the messages it writes itself.
//!
//! Readers borrow from the frame body and never allocate: they run on the hot
//! path. Writers append to a connection's reusable output buffer; the
//! structured ones (errors, authentication, row descriptions) use `pgwire`'s
//! message types.

use bytes::{BufMut, BytesMut};
use pgwire::messages::Message;
use pgwire::messages::response::{ErrorResponse, NoticeResponse};
use pgwire::messages::startup::{Authentication, BackendKeyData, ParameterStatus, SecretKey};

/// Frontend message tags the proxy acts on.
pub mod tag {
    /// Simple query.
    pub const QUERY: u8 = b'Q';
    /// Extended protocol: Parse.
    pub const PARSE: u8 = b'P';
    /// Extended protocol: Bind.
    pub const BIND: u8 = b'B';
    /// Extended protocol: Describe.
    pub const DESCRIBE: u8 = b'D';
    /// Extended protocol: Execute.
    pub const EXECUTE: u8 = b'E';
    /// Extended protocol: Close.
    pub const CLOSE: u8 = b'C';
    /// Extended protocol: Sync.
    pub const SYNC: u8 = b'S';
    /// Extended protocol: Flush.
    pub const FLUSH: u8 = b'H';
    /// Fast-path function call.
    pub const FUNCTION_CALL: u8 = b'F';
    /// COPY data (both directions).
    pub const COPY_DATA: u8 = b'd';
    /// COPY done (both directions).
    pub const COPY_DONE: u8 = b'c';
    /// COPY failed (frontend).
    pub const COPY_FAIL: u8 = b'f';
    /// End of session.
    pub const TERMINATE: u8 = b'X';
    /// Password / SASL responses.
    pub const PASSWORD: u8 = b'p';
}

/// Backend message tags the proxy acts on.
pub mod backend_tag {
    /// ReadyForQuery, carrying the transaction status.
    pub const READY_FOR_QUERY: u8 = b'Z';
    /// ErrorResponse.
    pub const ERROR: u8 = b'E';
    /// NoticeResponse.
    pub const NOTICE: u8 = b'N';
    /// NotificationResponse (LISTEN/NOTIFY).
    pub const NOTIFICATION: u8 = b'A';
    /// ParameterStatus.
    pub const PARAMETER_STATUS: u8 = b'S';
    /// CommandComplete.
    pub const COMMAND_COMPLETE: u8 = b'C';
    /// ParseComplete.
    pub const PARSE_COMPLETE: u8 = b'1';
    /// BindComplete.
    pub const BIND_COMPLETE: u8 = b'2';
    /// CloseComplete.
    pub const CLOSE_COMPLETE: u8 = b'3';
    /// ParameterDescription.
    pub const PARAMETER_DESCRIPTION: u8 = b't';
    /// RowDescription.
    pub const ROW_DESCRIPTION: u8 = b'T';
    /// NoData.
    pub const NO_DATA: u8 = b'n';
    /// DataRow.
    pub const DATA_ROW: u8 = b'D';
    /// EmptyQueryResponse.
    pub const EMPTY_QUERY: u8 = b'I';
    /// PortalSuspended.
    pub const PORTAL_SUSPENDED: u8 = b's';
    /// CopyInResponse.
    pub const COPY_IN: u8 = b'G';
    /// CopyOutResponse.
    pub const COPY_OUT: u8 = b'H';
    /// CopyBothResponse.
    pub const COPY_BOTH: u8 = b'W';
    /// FunctionCallResponse.
    pub const FUNCTION_CALL_RESPONSE: u8 = b'V';
    /// Authentication request.
    pub const AUTHENTICATION: u8 = b'R';
    /// BackendKeyData.
    pub const BACKEND_KEY_DATA: u8 = b'K';
    /// NegotiateProtocolVersion.
    pub const NEGOTIATE_PROTOCOL_VERSION: u8 = b'v';
}

/// Splits a NUL-terminated string off the front of `bytes`.
pub fn split_cstr(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = bytes.iter().position(|&b| b == 0)?;
    Some((&bytes[..end], &bytes[end + 1..]))
}

/// The parts of a Parse body: statement name, and the rest (query text and
/// parameter types) that defines the statement's content.
pub fn parse_parts(body: &[u8]) -> Option<(&[u8], &[u8])> {
    split_cstr(body)
}

/// The parts of a Bind body: portal name, statement name, and the rest
/// (formats and values) which the proxy forwards untouched.
pub fn bind_parts(body: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let (portal, rest) = split_cstr(body)?;
    let (statement, rest) = split_cstr(rest)?;
    Some((portal, statement, rest))
}

/// The kind (`S` statement or `P` portal) and name of a Describe or Close.
pub fn target_parts(body: &[u8]) -> Option<(u8, &[u8])> {
    let (&kind, rest) = body.split_first()?;
    let (name, _) = split_cstr(rest)?;
    Some((kind, name))
}

/// The query text of a simple Query body (without its NUL).
pub fn query_text(body: &[u8]) -> &[u8] {
    split_cstr(body).map_or(body, |(text, _)| text)
}

/// Name and value of a ParameterStatus body.
pub fn parameter_status_parts(body: &[u8]) -> Option<(&str, &str)> {
    let (name, rest) = split_cstr(body)?;
    let (value, _) = split_cstr(rest)?;
    Some((
        std::str::from_utf8(name).ok()?,
        std::str::from_utf8(value).ok()?,
    ))
}

/// One field of an ErrorResponse or NoticeResponse body (`C` is the SQLSTATE,
/// `M` the message, `S` the severity).
pub fn error_field(body: &[u8], code: u8) -> Option<&str> {
    let mut rest = body;
    while let Some((&field, tail)) = rest.split_first() {
        if field == 0 {
            break;
        }
        let (value, tail) = split_cstr(tail)?;
        if field == code {
            return std::str::from_utf8(value).ok();
        }
        rest = tail;
    }
    None
}

/// Appends one tagged message whose body `write` produces; the length field
/// is patched afterwards so bodies need no size computed up front.
pub fn put_message(out: &mut BytesMut, tag: u8, write: impl FnOnce(&mut BytesMut)) {
    out.put_u8(tag);
    let len_at = out.len();
    out.put_i32(0);
    write(out);
    let len = (out.len() - len_at) as i32;
    out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
}

/// Appends a message with an empty body (ParseComplete, Sync, ...).
pub fn put_empty(out: &mut BytesMut, tag: u8) {
    out.put_u8(tag);
    out.put_i32(4);
}

/// Appends a NUL-terminated string.
pub fn put_cstr(out: &mut BytesMut, s: &[u8]) {
    out.put_slice(s);
    out.put_u8(0);
}

/// Appends a simple Query.
pub fn put_query(out: &mut BytesMut, sql: &str) {
    put_message(out, tag::QUERY, |b| put_cstr(b, sql.as_bytes()));
}

/// Appends a ReadyForQuery with the given status byte (`I`, `T` or `E`).
pub fn put_ready_for_query(out: &mut BytesMut, status: u8) {
    put_message(out, backend_tag::READY_FOR_QUERY, |b| b.put_u8(status));
}

/// An error the proxy itself reports to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgError {
    /// `ERROR` (the session goes on) or `FATAL` (the proxy closes it).
    pub severity: &'static str,
    /// Five-character SQLSTATE.
    pub code: String,
    /// Primary message.
    pub message: String,
    /// Optional hint telling the user what to change.
    pub hint: Option<String>,
}

impl PgError {
    /// An error after which the session continues.
    pub fn error(code: &str, message: impl Into<String>) -> Self {
        PgError {
            severity: "ERROR",
            code: code.to_string(),
            message: message.into(),
            hint: None,
        }
    }

    /// An error after which the proxy closes the connection.
    pub fn fatal(code: &str, message: impl Into<String>) -> Self {
        PgError {
            severity: "FATAL",
            code: code.to_string(),
            message: message.into(),
            hint: None,
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Appends this error as an ErrorResponse.
    pub fn encode(&self, out: &mut BytesMut) {
        let mut fields = vec![
            (b'S', self.severity.to_string()),
            (b'V', self.severity.to_string()),
            (b'C', self.code.clone()),
            (b'M', self.message.clone()),
        ];
        if let Some(hint) = &self.hint {
            fields.push((b'H', hint.clone()));
        }
        encode_infallible(&ErrorResponse::new(fields), out);
    }
}

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.severity, self.code, self.message)
    }
}

impl std::error::Error for PgError {}

/// Appends a NoticeResponse with severity WARNING.
pub fn put_warning(out: &mut BytesMut, code: &str, message: &str) {
    let fields = vec![
        (b'S', "WARNING".to_string()),
        (b'V', "WARNING".to_string()),
        (b'C', code.to_string()),
        (b'M', message.to_string()),
    ];
    encode_infallible(&NoticeResponse::new(fields), out);
}

/// Appends a ParameterStatus.
pub fn put_parameter_status(out: &mut BytesMut, name: &str, value: &str) {
    encode_infallible(&ParameterStatus::new(name.into(), value.into()), out);
}

/// Appends a BackendKeyData with the proxy's own key for this client.
pub fn put_backend_key_data(out: &mut BytesMut, pid: i32, secret: i32) {
    encode_infallible(&BackendKeyData::new(pid, SecretKey::I32(secret)), out);
}

/// Appends an authentication request or result.
pub fn put_authentication(out: &mut BytesMut, auth: Authentication) {
    encode_infallible(&auth, out);
}

/// Encodes a message built by the proxy; those are small and well formed, so
/// encoding cannot fail (pgwire only fails on oversized messages).
fn encode_infallible<M: Message>(message: &M, out: &mut BytesMut) {
    if let Err(e) = message.encode(out) {
        tracing::error!(error = %e, "could not encode a proxy-built message");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::peek_frame;

    #[test]
    fn readers_take_fields_apart() {
        assert_eq!(
            parse_parts(b"s1\0select 1\0\0\0"),
            Some((&b"s1"[..], &b"select 1\0\0\0"[..]))
        );
        assert_eq!(
            bind_parts(b"\0s1\0rest"),
            Some((&b""[..], &b"s1"[..], &b"rest"[..]))
        );
        assert_eq!(target_parts(b"Sname\0"), Some((b'S', &b"name"[..])));
        assert_eq!(query_text(b"select 1\0"), b"select 1");
        assert_eq!(
            parameter_status_parts(b"TimeZone\0UTC\0"),
            Some(("TimeZone", "UTC"))
        );
        let err = b"SERROR\0C42P01\0Mno such table\0\0";
        assert_eq!(error_field(err, b'C'), Some("42P01"));
        assert_eq!(error_field(err, b'M'), Some("no such table"));
        assert_eq!(error_field(err, b'D'), None);
    }

    #[test]
    fn readers_reject_truncated_bodies() {
        assert_eq!(bind_parts(b"portal"), None);
        assert_eq!(bind_parts(b"p\0s"), None);
        assert_eq!(target_parts(b""), None);
        assert_eq!(target_parts(b"S"), None);
        assert_eq!(parameter_status_parts(b"x\0"), None);
        assert_eq!(error_field(b"Cabc", b'C'), None);
    }

    #[test]
    fn writers_produce_well_framed_messages() {
        let mut out = BytesMut::new();
        put_query(&mut out, "select 1");
        PgError::error("0A000", "nope")
            .with_hint("do this")
            .encode(&mut out);
        put_ready_for_query(&mut out, b'I');
        let mut offset = 0;
        let mut tags = vec![];
        while let Some(frame) = peek_frame(&out[offset..], 1 << 20).unwrap() {
            tags.push(frame.tag);
            if frame.tag == b'E' {
                let body = frame.body(&out[offset..]);
                assert_eq!(error_field(body, b'C'), Some("0A000"));
                assert_eq!(error_field(body, b'H'), Some("do this"));
            }
            offset += frame.len;
        }
        assert_eq!(tags, vec![b'Q', b'E', b'Z']);
        assert_eq!(offset, out.len());
    }
}
