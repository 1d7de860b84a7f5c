//! Finding one field of a complete COPY row and decoding its value.
//!
//! This mirrors PostgreSQL's `CopyReadAttributesText` and
//! `CopyReadAttributesCSV`, but stops at the field the caller wants: fields
//! before it are only skipped, and the wanted field is decoded only when it
//! has escapes or quotes (otherwise its value is the raw bytes, borrowed).

use std::ops::Range;

use memchr::{memchr, memchr2};

use super::line::CsvQuoting;

/// A field found in a row: its raw bytes and whether decoding changes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RawField<'a> {
    /// The field as it appears in the row, delimiters excluded. Postgres
    /// compares this (not the decoded value) with the NULL and DEFAULT
    /// strings.
    pub(super) raw: &'a [u8],
    /// Text: the field holds a backslash. CSV: the field holds a quote.
    pub(super) encoded: bool,
}

/// Finds field `index` (0-based) of a text-format row (terminator removed).
/// `Err(n)`: the row has only `n` fields.
pub(super) fn text_field(
    content: &[u8],
    delimiter: u8,
    index: usize,
) -> Result<RawField<'_>, usize> {
    nth_field(content, index, |start| {
        text_field_end(content, start, delimiter)
    })
}

/// Finds field `index` (0-based) of a CSV row (terminator removed).
/// `Err(n)`: the row has only `n` fields.
pub(super) fn csv_field(
    content: &[u8],
    delimiter: u8,
    quoting: CsvQuoting,
    index: usize,
) -> Result<RawField<'_>, usize> {
    nth_field(content, index, |start| {
        csv_field_end(content, start, delimiter, quoting)
    })
}

/// Finds field `index` (0-based) of a row that holds no backslash (text) or
/// no quote (CSV), whose fields are the plain slices between delimiters.
/// `Err(n)`: the row has only `n` fields.
pub(super) fn plain_field(
    content: &[u8],
    delimiter: u8,
    index: usize,
) -> Result<RawField<'_>, usize> {
    nth_field(content, index, |start| {
        let end =
            memchr(delimiter, &content[start..]).map_or(content.len(), |offset| start + offset);
        (end, false)
    })
}

/// Walks fields with `field_end(start) -> (end, encoded)` (`end` is the
/// delimiter's index, or the row's length for the last field) up to field
/// `index`.
fn nth_field(
    content: &[u8],
    index: usize,
    field_end: impl Fn(usize) -> (usize, bool),
) -> Result<RawField<'_>, usize> {
    let mut start = 0;
    let mut field = 0;
    loop {
        let (end, encoded) = field_end(start);
        if field == index {
            return Ok(RawField {
                raw: &content[start..end],
                encoded,
            });
        }
        field += 1;
        if end == content.len() {
            return Err(field);
        }
        start = end + 1;
    }
}

/// End of the text field starting at `start`, and whether it holds a
/// backslash. An escape sequence is consumed whole (`\x4A` is one byte even
/// when `A` is the delimiter), as Postgres does.
fn text_field_end(content: &[u8], start: usize, delimiter: u8) -> (usize, bool) {
    let mut at = start;
    let mut escaped = false;
    while let Some(offset) = memchr2(delimiter, b'\\', &content[at..]) {
        let found = at + offset;
        if content[found] == delimiter {
            return (found, escaped);
        }
        escaped = true;
        let after = found + 1;
        at = after + decode_escape(&content[after..]).map_or(0, |(_, len)| len);
    }
    (content.len(), escaped)
}

/// End of the CSV field starting at `start`, and whether it holds a quote.
/// A quote may open a quoted section anywhere in a field (`ab"c,d"e` is one
/// field), as in Postgres.
fn csv_field_end(
    content: &[u8],
    start: usize,
    delimiter: u8,
    quoting: CsvQuoting,
) -> (usize, bool) {
    let mut at = start;
    let mut quoted = false;
    while let Some(offset) = memchr2(delimiter, quoting.quote, &content[at..]) {
        let found = at + offset;
        if content[found] == delimiter {
            return (found, quoted);
        }
        quoted = true;
        match walk_quoted(content, found + 1, quoting, |_| {}) {
            Some(closing_quote) => at = closing_quote + 1,
            None => return (content.len(), quoted),
        }
    }
    (content.len(), quoted)
}

/// Walks a quoted section starting at `from` (just after the opening
/// quote), calling `on_escaped(at)` for each escaped character at `at` (the
/// escape byte is at `at - 1`). Returns the index of the closing quote, or
/// `None` when there is none.
fn walk_quoted(
    content: &[u8],
    from: usize,
    quoting: CsvQuoting,
    mut on_escaped: impl FnMut(usize),
) -> Option<usize> {
    let escape = quoting.escape.unwrap_or(quoting.quote);
    let mut at = from;
    loop {
        let offset = if escape == quoting.quote {
            memchr(quoting.quote, &content[at..])?
        } else {
            memchr2(quoting.quote, escape, &content[at..])?
        };
        let found = at + offset;
        let next = content.get(found + 1).copied();
        if content[found] == escape && (next == Some(escape) || next == Some(quoting.quote)) {
            on_escaped(found + 1);
            at = found + 2;
        } else if content[found] == quoting.quote {
            return Some(found);
        } else {
            // A lone escape byte inside quotes is plain data.
            at = found + 1;
        }
    }
}

/// Decodes one text-format escape; `after` starts just after the backslash.
/// Returns the byte it stands for and how many bytes of `after` it uses, or
/// `None` for a backslash at the very end of the row (Postgres drops it).
fn decode_escape(after: &[u8]) -> Option<(u8, usize)> {
    let first = *after.first()?;
    Some(match first {
        b'0'..=b'7' => {
            // Up to three octal digits; the value keeps its low 8 bits.
            let (value, len) = leading_number(after, 3, 8);
            (value as u8, len)
        }
        b'x' => {
            // Up to two hex digits; `\x` with none is a plain `x`.
            match leading_number(&after[1..], 2, 16) {
                (_, 0) => (b'x', 1),
                (value, len) => (value as u8, 1 + len),
            }
        }
        b'b' => (0x08, 1),
        b'f' => (0x0c, 1),
        b'n' => (b'\n', 1),
        b'r' => (b'\r', 1),
        b't' => (b'\t', 1),
        b'v' => (0x0b, 1),
        other => (other, 1),
    })
}

/// The number written by the first (at most `max`) digits of `bytes` in
/// `radix`, and how many digits that is.
fn leading_number(bytes: &[u8], max: usize, radix: u32) -> (u32, usize) {
    bytes
        .iter()
        .take(max)
        .map_while(|&byte| char::from(byte).to_digit(radix))
        .fold((0, 0), |(value, len), digit| {
            (value * radix + digit, len + 1)
        })
}

/// Decodes a raw text field into `scratch`: backslash escapes `\b \f \n \r
/// \t \v`, `\` + 1-3 octal digits, `\x` + 1-2 hex digits, and `\` + any other
/// byte for that byte.
pub(super) fn decode_text<'s>(raw: &[u8], scratch: &'s mut Vec<u8>) -> &'s [u8] {
    scratch.clear();
    let mut at = 0;
    while let Some(offset) = memchr(b'\\', &raw[at..]) {
        let found = at + offset;
        scratch.extend_from_slice(&raw[at..found]);
        match decode_escape(&raw[found + 1..]) {
            Some((byte, len)) => {
                scratch.push(byte);
                at = found + 1 + len;
            }
            None => at = raw.len(),
        }
    }
    scratch.extend_from_slice(&raw[at..]);
    scratch
}

/// Decodes a raw CSV field: quotes removed, escaped quotes/escapes kept once.
/// The value is borrowed from `raw` when it is one contiguous run of it (an
/// unquoted field, or `"abc"`); otherwise it is built in `scratch`.
pub(super) fn decode_csv<'a>(
    raw: &'a [u8],
    quoting: CsvQuoting,
    scratch: &'a mut Vec<u8>,
) -> &'a [u8] {
    let mut value = Pieces::new(raw, scratch);
    let mut at = 0;
    while let Some(offset) = memchr(quoting.quote, &raw[at..]) {
        let open = at + offset;
        value.push(at..open);
        let mut run_start = open + 1;
        let closing_quote = walk_quoted(raw, open + 1, quoting, |escaped| {
            value.push(run_start..escaped - 1);
            run_start = escaped;
        });
        match closing_quote {
            Some(closing_quote) => {
                value.push(run_start..closing_quote);
                at = closing_quote + 1;
            }
            None => {
                value.push(run_start..raw.len());
                at = raw.len();
            }
        }
    }
    value.push(at..raw.len());
    value.finish()
}

/// A value made of pieces of a source slice: borrowed while the pieces are
/// contiguous, copied into a scratch buffer from the first gap on.
struct Pieces<'a> {
    source: &'a [u8],
    scratch: &'a mut Vec<u8>,
    /// The borrowed run, while no gap has been seen.
    run: Option<Range<usize>>,
    copied: bool,
}

impl<'a> Pieces<'a> {
    fn new(source: &'a [u8], scratch: &'a mut Vec<u8>) -> Self {
        Pieces {
            source,
            scratch,
            run: None,
            copied: false,
        }
    }

    fn push(&mut self, piece: Range<usize>) {
        if piece.is_empty() {
            return;
        }
        if self.copied {
            self.scratch.extend_from_slice(&self.source[piece]);
            return;
        }
        match &mut self.run {
            None => self.run = Some(piece),
            Some(run) if run.end == piece.start => run.end = piece.end,
            Some(run) => {
                self.scratch.clear();
                self.scratch.extend_from_slice(&self.source[run.clone()]);
                self.scratch.extend_from_slice(&self.source[piece]);
                self.copied = true;
            }
        }
    }

    fn finish(self) -> &'a [u8] {
        if self.copied {
            return self.scratch;
        }
        match self.run {
            Some(run) => &self.source[run],
            None => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DQ: CsvQuoting = CsvQuoting {
        quote: b'"',
        escape: None,
    };
    const BACKSLASH_ESCAPE: CsvQuoting = CsvQuoting {
        quote: b'"',
        escape: Some(b'\\'),
    };

    fn text(raw: &[u8]) -> Vec<u8> {
        decode_text(raw, &mut Vec::new()).to_vec()
    }

    fn csv(raw: &[u8], quoting: CsvQuoting) -> Vec<u8> {
        decode_csv(raw, quoting, &mut Vec::new()).to_vec()
    }

    #[test]
    fn every_text_escape_decodes_as_postgres_does() {
        assert_eq!(text(b"\\b\\f\\n\\r\\t\\v"), b"\x08\x0c\n\r\t\x0b");
        assert_eq!(text(b"\\\\"), b"\\");
        assert_eq!(text(b"\\101\\60\\7"), b"A0\x07");
        assert_eq!(text(b"\\1012"), b"A2", "at most three octal digits");
        assert_eq!(text(b"\\777"), b"\xff", "octal keeps the low 8 bits");
        assert_eq!(text(b"\\18"), b"\x018", "8 is not octal");
        assert_eq!(text(b"\\x41\\x4g\\xg"), b"A\x04gxg");
        assert_eq!(text(b"\\x414"), b"A4", "at most two hex digits");
        assert_eq!(text(b"\\xfF"), b"\xff");
        assert_eq!(
            text(b"\\q\\.\\\t\\\n"),
            b"q.\t\n",
            "other bytes stand for themselves"
        );
        assert_eq!(text(b"ab\\"), b"ab", "a final lone backslash is dropped");
        assert_eq!(text(b"\\303\\251"), "é".as_bytes());
    }

    #[test]
    fn text_fields_skip_escaped_delimiters_and_whole_escapes() {
        let row = b"a\\\tb\tkey\tc";
        assert_eq!(text_field(row, b'\t', 1).unwrap().raw, b"key");
        assert_eq!(text_field(row, b'\t', 3), Err(3));
        // `\x4A` is one escape even though `A` is the delimiter.
        let row = b"\\x4AxAy";
        assert_eq!(text_field(row, b'A', 0).unwrap().raw, b"\\x4Ax");
        assert_eq!(text_field(row, b'A', 1).unwrap().raw, b"y");
        assert!(!text_field(b"plain\tx", b'\t', 0).unwrap().encoded);
        assert!(text_field(b"p\\\\lain\tx", b'\t', 0).unwrap().encoded);
    }

    #[test]
    fn plain_fields_are_slices_between_delimiters() {
        assert_eq!(plain_field(b"a,bc,", b',', 1).unwrap().raw, b"bc");
        assert_eq!(plain_field(b"a,bc,", b',', 2).unwrap().raw, b"");
        assert_eq!(plain_field(b"a,bc,", b',', 3), Err(3));
    }

    #[test]
    fn empty_rows_have_one_empty_field() {
        assert_eq!(text_field(b"", b'\t', 0).unwrap().raw, b"");
        assert_eq!(text_field(b"", b'\t', 1), Err(1));
        assert_eq!(csv_field(b"", b',', DQ, 0).unwrap().raw, b"");
    }

    #[test]
    fn csv_fields_keep_quoted_delimiters() {
        let row = b"\"a,b\",\"k\"\"ey\",c";
        let field = csv_field(row, b',', DQ, 1).unwrap();
        assert_eq!(field.raw, b"\"k\"\"ey\"");
        assert!(field.encoded);
        assert_eq!(csv(field.raw, DQ), b"k\"ey");
        assert_eq!(csv_field(row, b',', DQ, 2).unwrap().raw, b"c");
        assert_eq!(csv_field(row, b',', DQ, 3), Err(3));
    }

    #[test]
    fn csv_quotes_may_open_anywhere_in_a_field() {
        let row = b"ab\"c,d\"e,f";
        let field = csv_field(row, b',', DQ, 0).unwrap();
        assert_eq!(csv(field.raw, DQ), b"abc,de");
        assert_eq!(csv_field(row, b',', DQ, 1).unwrap().raw, b"f");
    }

    #[test]
    fn csv_escape_distinct_from_quote() {
        assert_eq!(csv(b"\"a\\\"b\"", BACKSLASH_ESCAPE), b"a\"b");
        assert_eq!(csv(b"\"a\\\\b\"", BACKSLASH_ESCAPE), b"a\\b");
        assert_eq!(
            csv(b"\"a\\b\"", BACKSLASH_ESCAPE),
            b"a\\b",
            "lone escape is data"
        );
        assert_eq!(
            csv(b"a\\\"b\"", BACKSLASH_ESCAPE),
            b"a\\b",
            "escape outside quotes is data"
        );
        // With a distinct escape, a doubled quote closes and reopens.
        assert_eq!(csv(b"\"a\"\"b\"", BACKSLASH_ESCAPE), b"ab");
    }

    #[test]
    fn csv_values_are_borrowed_when_contiguous() {
        let raw = b"\"abc\"";
        let mut scratch = Vec::new();
        let value = decode_csv(raw, DQ, &mut scratch);
        assert_eq!(value, b"abc");
        assert_eq!(value.as_ptr(), raw[1..].as_ptr());
        assert_eq!(csv(b"\"\"", DQ), b"");
        assert_eq!(csv(b"\"a\"\"\"", DQ), b"a\"");
    }
}
