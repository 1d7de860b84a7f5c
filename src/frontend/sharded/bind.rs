//! Reading and rewriting the parameter part of a Bind message.
//!
//! Routing needs the bind values (the sharding key may be `$1`); fanning a
//! statement out needs the same values re-sent with result formats widened
//! to the shard query's extra columns, or a subset of them renumbered for
//! one shard's part of a split INSERT.

use bytes::{BufMut, BytesMut};

/// The part of a Bind after the portal and statement names, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindValues<'a> {
    /// Parameter format codes as sent (0, 1 or one per parameter).
    pub param_formats: Vec<i16>,
    /// Parameter values; `None` is NULL.
    pub values: Vec<Option<&'a [u8]>>,
    /// Result column format codes as sent (0, 1 or one per column).
    pub result_formats: Vec<i16>,
}

impl<'a> BindValues<'a> {
    /// Decodes `rest`; `None` when it is malformed.
    pub fn parse(rest: &'a [u8]) -> Option<BindValues<'a>> {
        let mut r = Reader { buf: rest };
        let param_formats = r.codes()?;
        let count = usize::try_from(r.i16()?).ok()?;
        let mut values = Vec::with_capacity(count);
        for _ in 0..count {
            let len = r.i32()?;
            values.push(if len < 0 {
                None
            } else {
                Some(r.take(usize::try_from(len).ok()?)?)
            });
        }
        let result_formats = r.codes()?;
        r.buf.is_empty().then_some(BindValues {
            param_formats,
            values,
            result_formats,
        })
    }

    /// The format code of parameter `index` (0-based).
    pub fn param_format(&self, index: usize) -> i16 {
        match self.param_formats.as_slice() {
            [] => 0,
            [one] => *one,
            many => many.get(index).copied().unwrap_or(0),
        }
    }

    /// Re-encodes with only the parameters `keep` (1-based numbers, in their
    /// new order) and result formats covering `columns` result columns.
    pub fn encode(&self, keep: Option<&[usize]>, columns: Option<usize>, out: &mut BytesMut) {
        let picked: Vec<usize> = match keep {
            Some(numbers) => numbers.iter().map(|n| n.saturating_sub(1)).collect(),
            None => (0..self.values.len()).collect(),
        };
        if self.param_formats.len() > 1 {
            put_len16(out, picked.len());
            for &i in &picked {
                out.put_i16(self.param_format(i));
            }
        } else {
            put_len16(out, self.param_formats.len());
            for &code in &self.param_formats {
                out.put_i16(code);
            }
        }
        put_len16(out, picked.len());
        for &i in &picked {
            match self.values.get(i).copied().flatten() {
                None => out.put_i32(-1),
                Some(value) => {
                    out.put_i32(i32::try_from(value.len()).unwrap_or(i32::MAX));
                    out.put_slice(value);
                }
            }
        }
        match (columns, self.result_formats.as_slice()) {
            (Some(columns), many) if many.len() > 1 && columns > many.len() => {
                put_len16(out, columns);
                for &code in many {
                    out.put_i16(code);
                }
                // Hidden helper columns come back as text.
                for _ in many.len()..columns {
                    out.put_i16(0);
                }
            }
            (_, codes) => {
                put_len16(out, codes.len());
                for &code in codes {
                    out.put_i16(code);
                }
            }
        }
    }
}

fn put_len16(out: &mut BytesMut, len: usize) {
    out.put_i16(i16::try_from(len).unwrap_or(i16::MAX));
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }

    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    fn codes(&mut self) -> Option<Vec<i16>> {
        let count = usize::try_from(self.i16()?).ok()?;
        (0..count).map(|_| self.i16()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BytesMut {
        let mut b = BytesMut::new();
        b.put_i16(2);
        b.put_i16(0);
        b.put_i16(1);
        b.put_i16(2);
        b.put_i32(2);
        b.put_slice(b"42");
        b.put_i32(-1);
        b.put_i16(1);
        b.put_i16(1);
        b
    }

    #[test]
    fn decodes_and_reencodes_unchanged() {
        let raw = sample();
        let v = BindValues::parse(&raw).unwrap();
        assert_eq!(v.values, vec![Some(&b"42"[..]), None]);
        assert_eq!(v.param_format(1), 1);
        let mut out = BytesMut::new();
        v.encode(None, None, &mut out);
        assert_eq!(out, raw);
    }

    #[test]
    fn keeps_a_renumbered_subset() {
        let raw = sample();
        let v = BindValues::parse(&raw).unwrap();
        let mut out = BytesMut::new();
        v.encode(Some(&[2]), None, &mut out);
        let w = BindValues::parse(&out).unwrap();
        assert_eq!(w.values, vec![None]);
        assert_eq!(w.param_formats, vec![1]);
    }

    #[test]
    fn widens_per_column_result_formats() {
        let mut b = BytesMut::new();
        b.put_i16(0);
        b.put_i16(0);
        b.put_i16(2);
        b.put_i16(1);
        b.put_i16(1);
        let v = BindValues::parse(&b).unwrap();
        let mut out = BytesMut::new();
        v.encode(None, Some(4), &mut out);
        assert_eq!(
            BindValues::parse(&out).unwrap().result_formats,
            vec![1, 1, 0, 0]
        );
    }

    #[test]
    fn rejects_truncated_input() {
        let raw = sample();
        for cut in 0..raw.len() {
            assert!(BindValues::parse(&raw[..cut]).is_none(), "cut at {cut}");
        }
    }
}
