//! Message framing of the Postgres protocol (v3): find whole messages in a
//! read buffer without copying them, so the data plane can forward raw bytes
//! and decode only the few fields that routing needs.

pub mod messages;
pub mod stream;

use std::fmt;

/// Length of a tagged message header: one tag byte and an i32 length.
pub const HEADER_LEN: usize = 5;

/// Where a whole message sits in a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// The message type byte (`Q`, `P`, `D`, ...).
    pub tag: u8,
    /// Total length in bytes, tag and length field included.
    pub len: usize,
}

impl Frame {
    /// The body of this message inside `buf` (which starts at the message).
    pub fn body<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[HEADER_LEN..self.len]
    }
}

/// A message that breaks the framing rules; the connection cannot continue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The length field is smaller than the length field itself.
    BadLength(i64),
    /// The message is larger than the configured limit.
    TooLarge {
        /// Announced length.
        len: usize,
        /// The limit in force.
        max: usize,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::BadLength(len) => write!(f, "invalid message length {len}"),
            FrameError::TooLarge { len, max } => write!(
                f,
                "message of {len} bytes exceeds the limit of {max} bytes (proxy.max_message_bytes)"
            ),
        }
    }
}

impl std::error::Error for FrameError {}

/// Finds the tagged message at the start of `buf`: `Ok(None)` while more
/// bytes are needed. The length is checked as soon as the header is in, so a
/// client cannot make the proxy buffer an oversized message.
pub fn peek_frame(buf: &[u8], max_len: usize) -> Result<Option<Frame>, FrameError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let declared = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if declared < 4 {
        return Err(FrameError::BadLength(declared.into()));
    }
    let len = declared as usize + 1;
    if len > max_len {
        return Err(FrameError::TooLarge { len, max: max_len });
    }
    Ok((buf.len() >= len).then_some(Frame { tag: buf[0], len }))
}

/// Finds the untagged startup-phase packet (StartupMessage, SSLRequest,
/// CancelRequest, GSSENCRequest) at the start of `buf`; returns its length.
pub fn peek_startup_packet(buf: &[u8], max_len: usize) -> Result<Option<usize>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let declared = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if declared < 8 {
        return Err(FrameError::BadLength(declared.into()));
    }
    let len = declared as usize;
    if len > max_len {
        return Err(FrameError::TooLarge { len, max: max_len });
    }
    Ok((buf.len() >= len).then_some(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_header_and_body() {
        let msg = [b'Q', 0, 0, 0, 8, b's', b'e', b'l', 0];
        for cut in 0..msg.len() {
            assert_eq!(peek_frame(&msg[..cut], 1024), Ok(None), "cut at {cut}");
        }
        assert_eq!(
            peek_frame(&msg, 1024),
            Ok(Some(Frame { tag: b'Q', len: 9 }))
        );
        let frame = peek_frame(&msg, 1024).unwrap().unwrap();
        assert_eq!(frame.body(&msg), b"sel\0");
    }

    #[test]
    fn finds_the_first_of_several_messages() {
        let two = [b'S', 0, 0, 0, 4, b'H', 0, 0, 0, 4];
        assert_eq!(peek_frame(&two, 64), Ok(Some(Frame { tag: b'S', len: 5 })));
        assert_eq!(
            peek_frame(&two[5..], 64),
            Ok(Some(Frame { tag: b'H', len: 5 }))
        );
    }

    #[test]
    fn rejects_bad_and_oversized_lengths_before_the_body_arrives() {
        assert_eq!(
            peek_frame(&[b'Q', 0, 0, 0, 3], 64),
            Err(FrameError::BadLength(3))
        );
        assert_eq!(
            peek_frame(&[b'Q', 0xff, 0xff, 0xff, 0xff], 64),
            Err(FrameError::BadLength(-1))
        );
        assert_eq!(
            peek_frame(&[b'Q', 0, 0, 1, 0], 64),
            Err(FrameError::TooLarge { len: 257, max: 64 })
        );
    }

    #[test]
    fn startup_packets_have_no_tag() {
        let ssl = [0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f];
        assert_eq!(peek_startup_packet(&ssl[..7], 64), Ok(None));
        assert_eq!(peek_startup_packet(&ssl, 64), Ok(Some(8)));
        assert_eq!(
            peek_startup_packet(&[0, 0, 0, 2], 64),
            Err(FrameError::BadLength(2))
        );
        assert_eq!(
            peek_startup_packet(&[0, 1, 0, 0], 64),
            Err(FrameError::TooLarge {
                len: 65536,
                max: 64
            })
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 12) as usize;
            let bytes: Vec<u8> = (0..len).map(|i| (state >> (i * 5)) as u8).collect();
            let _ = peek_frame(&bytes, 1 << 20);
            let _ = peek_startup_packet(&bytes, 1 << 20);
        }
    }
}
