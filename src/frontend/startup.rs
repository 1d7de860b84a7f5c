//! The untagged packets a client sends before its session starts.

use std::collections::BTreeMap;

use crate::net::messages::{PgError, split_cstr};

/// Request codes that share the startup packet's version field.
const CANCEL_REQUEST: i32 = 80_877_102;
const SSL_REQUEST: i32 = 80_877_103;
const GSSENC_REQUEST: i32 = 80_877_104;

/// A decoded startup-phase packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupPacket {
    /// The client asks for TLS.
    Ssl,
    /// The client asks for GSSAPI encryption.
    GssEnc,
    /// The client asks to cancel the query of the session with this key.
    Cancel {
        /// Process id the proxy gave the session.
        pid: i32,
        /// Secret the proxy gave the session.
        secret: i32,
    },
    /// A StartupMessage.
    Startup {
        /// Major protocol version (3).
        major: u16,
        /// Minor protocol version (0 is the one shardwire speaks).
        minor: u16,
        /// user, database, options, and GUCs.
        params: BTreeMap<String, String>,
    },
}

/// Decodes one whole startup-phase packet (length prefix included).
pub fn parse_startup_packet(packet: &[u8]) -> Result<StartupPacket, PgError> {
    let malformed = |what: &str| PgError::fatal("08P01", format!("invalid startup packet: {what}"));
    if packet.len() < 8 {
        return Err(malformed("too short"));
    }
    let code = i32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
    let body = &packet[8..];
    match code {
        SSL_REQUEST => Ok(StartupPacket::Ssl),
        GSSENC_REQUEST => Ok(StartupPacket::GssEnc),
        CANCEL_REQUEST if body.len() >= 8 => Ok(StartupPacket::Cancel {
            pid: i32::from_be_bytes([body[0], body[1], body[2], body[3]]),
            secret: i32::from_be_bytes([body[4], body[5], body[6], body[7]]),
        }),
        CANCEL_REQUEST => Err(malformed("short cancel request")),
        _ => {
            let major = (code >> 16) as u16;
            let minor = (code & 0xffff) as u16;
            if major != 3 {
                return Err(PgError::fatal(
                    "0A000",
                    format!(
                        "unsupported frontend protocol {major}.{minor}: shardwire speaks protocol 3.0"
                    ),
                ));
            }
            Ok(StartupPacket::Startup {
                major,
                minor,
                params: parse_params(body).ok_or_else(|| {
                    malformed("parameters are not NUL-terminated name/value pairs")
                })?,
            })
        }
    }
}

fn parse_params(mut body: &[u8]) -> Option<BTreeMap<String, String>> {
    let mut params = BTreeMap::new();
    loop {
        let (name, rest) = split_cstr(body)?;
        if name.is_empty() {
            return Some(params);
        }
        let (value, rest) = split_cstr(rest)?;
        params.insert(
            String::from_utf8(name.to_vec()).ok()?,
            String::from_utf8(value.to_vec()).ok()?,
        );
        body = rest;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(code: i32, body: &[u8]) -> Vec<u8> {
        let mut p = ((body.len() + 8) as i32).to_be_bytes().to_vec();
        p.extend_from_slice(&code.to_be_bytes());
        p.extend_from_slice(body);
        p
    }

    #[test]
    fn recognises_every_request() {
        assert_eq!(
            parse_startup_packet(&packet(SSL_REQUEST, b"")),
            Ok(StartupPacket::Ssl)
        );
        assert_eq!(
            parse_startup_packet(&packet(GSSENC_REQUEST, b"")),
            Ok(StartupPacket::GssEnc)
        );
        let mut key = 7i32.to_be_bytes().to_vec();
        key.extend_from_slice(&(-9i32).to_be_bytes());
        assert_eq!(
            parse_startup_packet(&packet(CANCEL_REQUEST, &key)),
            Ok(StartupPacket::Cancel { pid: 7, secret: -9 })
        );
        let startup =
            parse_startup_packet(&packet(196_608, b"user\0app\0database\0db\0\0")).unwrap();
        let StartupPacket::Startup {
            major,
            minor,
            params,
        } = startup
        else {
            panic!("expected startup")
        };
        assert_eq!((major, minor), (3, 0));
        assert_eq!(params["user"], "app");
        assert_eq!(params["database"], "db");
    }

    #[test]
    fn rejects_other_protocols_and_garbage() {
        let err = parse_startup_packet(&packet(2 << 16, b"\0")).unwrap_err();
        assert_eq!(err.code, "0A000");
        assert!(err.message.contains("2.0"));
        for body in [&b"user\0app"[..], b"user\0", b"\xff\xfe\0x\0\0"] {
            assert_eq!(
                parse_startup_packet(&packet(196_608, body))
                    .unwrap_err()
                    .code,
                "08P01"
            );
        }
        assert!(parse_startup_packet(&packet(CANCEL_REQUEST, b"1234")).is_err());
        assert!(parse_startup_packet(&[0, 0, 0, 8]).is_err());
    }
}
