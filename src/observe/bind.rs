//! The parameter values of an extended-protocol statement, read from the
//! client's Bind message: shown in the slow log's sample and passed,
//! byte for byte and in the client's formats, to its EXPLAIN.

use std::fmt::Write as _;

use bytes::{Bytes, BytesMut};
use tokio_postgres::types::{Format, IsNull, ToSql, Type, to_sql_checked};

/// Longest rendering of one value in a sample.
const MAX_SHOWN_VALUE: usize = 200;

/// One parameter value as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// The value's bytes; `None` for SQL NULL.
    pub value: Option<Bytes>,
    /// Binary format (else text).
    pub binary: bool,
}

/// Why a Bind message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable Bind message: {0}")]
pub struct BindError(&'static str);

/// The parameters of a whole Bind message (its 5-byte header included).
pub fn decode(message: &Bytes) -> Result<Vec<Param>, BindError> {
    let mut reader = Reader {
        message,
        position: 0,
    };
    if reader.take(1)? != b"B" {
        return Err(BindError("not a Bind message"));
    }
    let length = reader.i32()?;
    if usize::try_from(length).ok() != Some(message.len() - 1) {
        return Err(BindError("length does not match"));
    }
    reader.cstr()?; // portal
    reader.cstr()?; // prepared statement
    let format_count = reader.count()?;
    let formats = (0..format_count)
        .map(|_| match reader.i16()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(BindError("unknown format code")),
        })
        .collect::<Result<Vec<bool>, BindError>>()?;
    let value_count = reader.count()?;
    if formats.len() > 1 && formats.len() != value_count {
        return Err(BindError("format codes do not match the parameters"));
    }
    (0..value_count)
        .map(|i| {
            let binary = match formats.as_slice() {
                [] => false,
                [all] => *all,
                each => each[i],
            };
            let value = match reader.i32()? {
                -1 => None,
                n => {
                    let n = usize::try_from(n).map_err(|_| BindError("negative length"))?;
                    let start = reader.position;
                    reader.take(n)?;
                    Some(message.slice(start..start + n))
                }
            };
            Ok(Param { value, binary })
        })
        .collect()
}

/// Reads a Bind message front to back.
struct Reader<'a> {
    message: &'a Bytes,
    position: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], BindError> {
        let end = self
            .position
            .checked_add(n)
            .filter(|&end| end <= self.message.len())
            .ok_or(BindError("truncated"))?;
        let bytes = &self.message[self.position..end];
        self.position = end;
        Ok(bytes)
    }

    fn i16(&mut self) -> Result<i16, BindError> {
        let bytes = self.take(2)?;
        Ok(i16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn i32(&mut self) -> Result<i32, BindError> {
        let bytes = self.take(4)?;
        Ok(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// A non-negative 16-bit count.
    fn count(&mut self) -> Result<usize, BindError> {
        usize::try_from(self.i16()?).map_err(|_| BindError("negative count"))
    }

    fn cstr(&mut self) -> Result<(), BindError> {
        let rest = &self.message[self.position..];
        let end = memchr::memchr(0, rest).ok_or(BindError("unterminated string"))?;
        self.position += end + 1;
        Ok(())
    }
}

/// `text` with its parameters appended as a comment, for the slow log:
/// `SELECT pg_sleep($1) -- params: $1='0.3'`. Text values are quoted as
/// SQL literals, binary ones shown as hex, each cut at 200 characters.
pub fn render_sample(text: &str, params: &[Param]) -> String {
    if params.is_empty() {
        return text.to_string();
    }
    let mut out = format!("{text} -- params: ");
    for (i, param) in params.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "${}=", i + 1);
        match &param.value {
            None => out.push_str("NULL"),
            Some(bytes) if param.binary => {
                out.push_str("<binary 0x");
                for byte in bytes.iter().take(MAX_SHOWN_VALUE / 2) {
                    let _ = write!(out, "{byte:02x}");
                }
                if bytes.len() > MAX_SHOWN_VALUE / 2 {
                    out.push('…');
                }
                out.push('>');
            }
            Some(bytes) => {
                let text = String::from_utf8_lossy(bytes);
                let shown = super::stats::truncate(&text, MAX_SHOWN_VALUE);
                out.push('\'');
                out.push_str(&shown.replace('\'', "''"));
                if shown.len() < text.len() {
                    out.push('…');
                }
                out.push('\'');
            }
        }
    }
    out
}

/// A client's parameter value passed on unchanged: its bytes in its
/// format, whatever type the server infers for the parameter.
#[derive(Debug)]
pub struct RawParam<'a>(pub &'a Param);

impl ToSql for RawParam<'_> {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match &self.0.value {
            None => Ok(IsNull::Yes),
            Some(bytes) => {
                out.extend_from_slice(bytes);
                Ok(IsNull::No)
            }
        }
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    fn encode_format(&self, _ty: &Type) -> Format {
        if self.0.binary {
            Format::Binary
        } else {
            Format::Text
        }
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, Bytes, BytesMut};

    use super::*;

    /// A Bind message with `formats` and `values` (`None`: NULL).
    fn bind(formats: &[i16], values: &[Option<&[u8]>]) -> Bytes {
        let mut body = BytesMut::new();
        body.put_slice(b"portal\0stmt\0");
        body.put_i16(formats.len() as i16);
        for f in formats {
            body.put_i16(*f);
        }
        body.put_i16(values.len() as i16);
        for v in values {
            match v {
                None => body.put_i32(-1),
                Some(v) => {
                    body.put_i32(v.len() as i32);
                    body.put_slice(v);
                }
            }
        }
        body.put_i16(1); // result formats: ignored
        body.put_i16(1);
        let mut message = BytesMut::new();
        message.put_u8(b'B');
        message.put_i32(body.len() as i32 + 4);
        message.put_slice(&body);
        message.freeze()
    }

    fn text(v: &str) -> Param {
        Param {
            value: Some(Bytes::copy_from_slice(v.as_bytes())),
            binary: false,
        }
    }

    #[test]
    fn values_get_their_own_or_the_common_format() {
        let none = decode(&bind(&[], &[Some(b"0.3"), None])).unwrap();
        assert_eq!(
            none,
            [
                text("0.3"),
                Param {
                    value: None,
                    binary: false
                }
            ]
        );
        let all_binary = decode(&bind(&[1], &[Some(&[0, 0, 0, 7]), Some(b"")])).unwrap();
        assert!(all_binary.iter().all(|p| p.binary));
        assert_eq!(all_binary[1].value.as_deref(), Some(&b""[..]));
        let each = decode(&bind(&[0, 1], &[Some(b"x"), Some(&[1])])).unwrap();
        assert_eq!((each[0].binary, each[1].binary), (false, true));
        assert!(decode(&bind(&[], &[])).unwrap().is_empty());
    }

    #[test]
    fn malformed_binds_are_errors_not_panics() {
        let good = bind(&[0, 1], &[Some(b"x"), Some(&[1])]);
        for cut in 0..good.len() {
            assert!(decode(&good.slice(..cut)).is_err(), "cut at {cut}");
        }
        assert!(decode(&bind(&[0, 1, 0], &[Some(b"x")])).is_err());
        assert!(decode(&bind(&[2], &[Some(b"x")])).is_err());
        let mut wrong_tag = BytesMut::from(&good[..]);
        wrong_tag[0] = b'P';
        assert!(decode(&wrong_tag.freeze()).is_err());
        let mut negative = BytesMut::from(&bind(&[], &[Some(b"x")])[..]);
        let at = negative.len() - 4 - 1 - 4;
        negative[at..at + 4].copy_from_slice(&(-7i32).to_be_bytes());
        assert!(decode(&negative.freeze()).is_err());
    }

    #[test]
    fn samples_show_values_as_literals() {
        let params = decode(&bind(&[0, 0, 1], &[Some(b"it's"), None, Some(&[0, 42])])).unwrap();
        assert_eq!(
            render_sample("SELECT $1, $2, $3", &params),
            "SELECT $1, $2, $3 -- params: $1='it''s', $2=NULL, $3=<binary 0x002a>"
        );
        assert_eq!(render_sample("SELECT 1", &[]), "SELECT 1");
        let long = render_sample("SELECT $1", &[text(&"y".repeat(500))]);
        assert!(long.ends_with("y…'") && long.len() < 260, "{long}");
    }

    #[test]
    fn raw_params_pass_bytes_and_format_unchanged() {
        let param = text("0.3");
        let raw = RawParam(&param);
        let mut out = BytesMut::new();
        assert!(matches!(
            raw.to_sql(&Type::FLOAT8, &mut out),
            Ok(IsNull::No)
        ));
        assert_eq!(&out[..], b"0.3");
        assert!(matches!(raw.encode_format(&Type::FLOAT8), Format::Text));
        let null = Param {
            value: None,
            binary: true,
        };
        let raw = RawParam(&null);
        assert!(matches!(raw.to_sql(&Type::INT4, &mut out), Ok(IsNull::Yes)));
        assert!(matches!(raw.encode_format(&Type::INT4), Format::Binary));
    }
}
