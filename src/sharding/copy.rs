//! Splitting `COPY ... FROM STDIN` data into rows and finding each row's
//! sharding key.
//!
//! A client's COPY data arrives as CopyData messages cut at arbitrary places:
//! a row may span messages and a message may hold many rows. To send each row
//! to its shard, the proxy must find where rows end and read the key column
//! of each, exactly as PostgreSQL itself would read them (a key read
//! differently from Postgres would route a row to the wrong shard). The
//! [`RowSplitter`] does that for text and CSV formats (binary COPY is refused
//! by the caller), streaming: it keeps only the unfinished row between calls
//! and hands out each row as the exact bytes received, so the caller forwards
//! rows to the shards' own COPY unchanged.
//!
//! What is read as Postgres reads it (`copyfromparse.c`):
//! - rows end at `\n`, `\r\n` or a lone `\r`, the style fixed by the first row
//!   (another style later is an error); in text format a backslash makes the
//!   next byte data, line breaks included; in CSV, line breaks inside quotes
//!   are data;
//! - text fields: the escapes `\b \f \n \r \t \v`, `\` + 1-3 octal digits,
//!   `\x` + 1-2 hex digits, `\` + any other byte; NULL is the NULL string
//!   compared with the raw (undecoded) field;
//! - CSV fields: quotes may open anywhere in a field, a doubled quote (or
//!   ESCAPE + quote/escape) inside quotes is one character, NULL is the NULL
//!   string only when unquoted (so `,,` is NULL and `,"",` the empty string);
//! - the end-of-data marker `\.` alone on its line ends the data (later bytes
//!   are ignored); in text format a `\.` elsewhere is an error (PostgreSQL 18
//!   rejects it; older servers silently ended the data there).
//!
//! Not handled here (the caller must refuse or pass them on): client
//! encodings whose multibyte characters can contain ASCII bytes (SJIS, BIG5,
//! GBK, UHC, GB18030), where Postgres scans after converting to the server
//! encoding.

mod field;
mod line;

use std::borrow::Cow;

use line::{Chunk, CsvQuoting, LineScanner, RowEnd, Scan};

/// Default of [`CopyOptions::max_row_bytes`].
pub const DEFAULT_MAX_ROW_BYTES: usize = 1 << 30;

/// COPY data formats the splitter reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFormat {
    /// PostgreSQL's default text format (backslash escapes).
    Text,
    /// `FORMAT csv`.
    Csv,
}

/// The options of a `COPY ... FROM STDIN` statement that decide how its data
/// is read, as the router parsed them from the statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOptions {
    /// Text or CSV.
    pub format: CopyFormat,
    /// DELIMITER: one byte (text default `\t`, CSV default `,`).
    pub delimiter: u8,
    /// NULL string (text default `\N`, CSV default empty).
    pub null: Vec<u8>,
    /// CSV QUOTE (default `"`); unused in text format.
    pub quote: u8,
    /// CSV ESCAPE (default: the same as QUOTE); unused in text format.
    pub escape: u8,
    /// HEADER: the first line is column names, not a row (it is skipped,
    /// since the per-shard COPYs are started without HEADER).
    pub header: bool,
    /// DEFAULT string (PostgreSQL 16+): a key field equal to it would take
    /// the column default, which the proxy cannot compute, so it is an
    /// error. `None` when the statement has no DEFAULT option.
    pub default_marker: Option<Vec<u8>>,
    /// CSV `FORCE_NOT_NULL` names the key column: an unquoted NULL string in
    /// the key field is the string itself, not NULL.
    pub key_force_not_null: bool,
    /// CSV `FORCE_NULL` names the key column: a quoted key equal to the NULL
    /// string is NULL too.
    pub key_force_null: bool,
    /// CSV: whether an unquoted `\.` alone on a line ends the data.
    /// PostgreSQL up to 17 reads it so; PostgreSQL 18 reads it as a data row.
    /// Set it to match the shards' server version (text format always
    /// honours the marker).
    pub csv_end_marker: bool,
    /// Longest row accepted, terminator included. The splitter holds an
    /// unfinished row in memory, so a client that never ends its row must
    /// meet a limit; the default, 1 GiB, is about where Postgres itself fails.
    pub max_row_bytes: usize,
}

impl CopyOptions {
    /// Defaults of text format: tab delimiter, `\N` for NULL.
    pub fn text() -> Self {
        CopyOptions {
            format: CopyFormat::Text,
            delimiter: b'\t',
            null: b"\\N".to_vec(),
            quote: b'"',
            escape: b'"',
            header: false,
            default_marker: None,
            key_force_not_null: false,
            key_force_null: false,
            csv_end_marker: true,
            max_row_bytes: DEFAULT_MAX_ROW_BYTES,
        }
    }

    /// Defaults of CSV format: comma delimiter, empty unquoted NULL, `"` as
    /// quote and escape, `\.` ending the data (PostgreSQL up to 17).
    pub fn csv() -> Self {
        CopyOptions {
            format: CopyFormat::Csv,
            delimiter: b',',
            null: Vec::new(),
            ..CopyOptions::text()
        }
    }

    fn csv_quoting(&self) -> Option<CsvQuoting> {
        (self.format == CopyFormat::Csv).then_some(CsvQuoting {
            quote: self.quote,
            escape: (self.escape != self.quote).then_some(self.escape),
        })
    }
}

/// Bad COPY data, reported as Postgres would (with the line number the
/// client would see: data lines counted from 1, header included, a CSV row
/// with quoted line breaks counting as one line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CopyError {
    /// The row ends before the sharding key column.
    #[error(
        "missing data for the sharding key column (field {key_field_number}) at line {line}: the row has {fields} field(s)"
    )]
    MissingKeyField {
        /// Line number of the row.
        line: u64,
        /// Number of fields the row has.
        fields: usize,
        /// 1-based position of the key among the COPY's columns.
        key_field_number: usize,
    },
    /// A CSV quoted field is still open at the end of the data.
    #[error("unterminated CSV quoted field at line {line}")]
    UnterminatedCsvQuote {
        /// Line number of the row.
        line: u64,
    },
    /// A `\r` that breaks the line-terminator style of the earlier rows.
    #[error("{} carriage return found in data at line {line}", if *csv { "unquoted" } else { "literal" })]
    StrayCarriageReturn {
        /// Line number of the row.
        line: u64,
        /// CSV format (the hint differs).
        csv: bool,
    },
    /// A `\n` that breaks the line-terminator style of the earlier rows.
    #[error("{} newline found in data at line {line}", if *csv { "unquoted" } else { "literal" })]
    StrayNewline {
        /// Line number of the row.
        line: u64,
        /// CSV format (the hint differs).
        csv: bool,
    },
    /// Text format: `\.` with other data on its line, or without a line
    /// terminator after it.
    #[error("end-of-copy marker is not alone on its line (line {line})")]
    EndMarkerNotAlone {
        /// Line number of the row.
        line: u64,
    },
    /// Text format: the data ends with a lone backslash. Postgres drops it,
    /// but the row could not be forwarded unchanged (a shard would read the
    /// backslash as escaping the line terminator), so it is refused.
    #[error("COPY data ends with a lone backslash at line {line}")]
    TrailingBackslash {
        /// Line number of the row.
        line: u64,
    },
    /// A row is longer than [`CopyOptions::max_row_bytes`].
    #[error("COPY row at line {line} is longer than {limit} bytes")]
    RowTooLong {
        /// Line number of the row.
        line: u64,
        /// The limit.
        limit: usize,
    },
    /// The key field is the DEFAULT string: its value would be the column
    /// default, which the proxy cannot compute to route the row.
    #[error("the sharding key column uses the COPY DEFAULT marker at line {line}")]
    KeyIsDefaultMarker {
        /// Line number of the row.
        line: u64,
    },
}

impl CopyError {
    /// The SQLSTATE to send to the client: `22P04` (bad_copy_file_format),
    /// `0A000` (feature_not_supported) for a defaulted key, or `54000`
    /// (program_limit_exceeded) for a row over the size limit.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            CopyError::KeyIsDefaultMarker { .. } => "0A000",
            CopyError::RowTooLong { .. } => "54000",
            _ => "22P04",
        }
    }

    /// A hint for the client, where there is a useful one.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            CopyError::StrayCarriageReturn { csv: false, .. } => {
                Some("Use \"\\r\" to represent carriage return.")
            }
            CopyError::StrayCarriageReturn { csv: true, .. } => {
                Some("Use quoted CSV field to represent carriage return.")
            }
            CopyError::StrayNewline { csv: false, .. } => Some("Use \"\\n\" to represent newline."),
            CopyError::StrayNewline { csv: true, .. } => {
                Some("Use quoted CSV field to represent newline.")
            }
            CopyError::KeyIsDefaultMarker { .. } => {
                Some("Give the sharding key a value in every row of a sharded COPY.")
            }
            _ => None,
        }
    }
}

/// Whether the data goes on after a [`RowSplitter::feed`].
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Send more data (or call [`RowSplitter::finish`] at CopyDone).
    NeedMore,
    /// The end-of-data marker `\.` was read: the data is complete, and any
    /// bytes after it (in this chunk or later ones) are ignored, as Postgres
    /// ignores them until CopyDone.
    EndOfData,
}

/// Splits streamed COPY data into rows and reads each row's key field.
///
/// Feed every CopyData payload in order with [`feed`](Self::feed), then call
/// [`finish`](Self::finish) at CopyDone. After an error the COPY is broken:
/// stop using the splitter.
#[derive(Debug)]
pub struct RowSplitter {
    keys: KeyReader,
    lines: LineScanner,
    csv_end_marker: bool,
    max_row_bytes: usize,
    /// The header line has yet to be skipped.
    header_pending: bool,
    /// Bytes of the row that the last chunk left unfinished (capacity kept).
    partial: Vec<u8>,
    /// Decoded key values that are not a slice of the row (capacity kept).
    scratch: Vec<u8>,
    /// Lines read so far, header included.
    lines_read: u64,
    ended: bool,
}

impl RowSplitter {
    /// A splitter for data in `options`' format whose sharding key is column
    /// `key_field` (0-based) among the COPY's columns.
    pub fn new(options: CopyOptions, key_field: usize) -> Self {
        let quoting = options.csv_quoting();
        RowSplitter {
            lines: LineScanner::new(quoting),
            csv_end_marker: quoting.is_some() && options.csv_end_marker,
            max_row_bytes: options.max_row_bytes,
            header_pending: options.header,
            keys: KeyReader {
                quoting,
                delimiter: options.delimiter,
                key_field,
                null: options.null,
                default_marker: options.default_marker,
                force_not_null: quoting.is_some() && options.key_force_not_null,
                force_null: quoting.is_some() && options.key_force_null,
            },
            partial: Vec::new(),
            scratch: Vec::new(),
            lines_read: 0,
            ended: false,
        }
    }

    /// Reads one chunk of COPY data, calling `on_row(row, key)` for every row
    /// it completes: `row` is the row's bytes exactly as received, line
    /// terminator included; `key` is the key field's value (`None` for NULL),
    /// borrowed from the row whenever it needs no decoding.
    pub fn feed<F>(&mut self, chunk: &[u8], mut on_row: F) -> Result<Progress, CopyError>
    where
        F: FnMut(&[u8], Option<Cow<'_, [u8]>>),
    {
        if self.ended {
            return Ok(Progress::EndOfData);
        }
        let mut scanned = Chunk::new(chunk);
        let mut at = 0;
        if !self.partial.is_empty() {
            match self.lines.scan(&mut scanned, 0, self.lines_read + 1)? {
                Scan::Partial => {
                    self.partial.extend_from_slice(chunk);
                    self.check_row_size(self.partial.len())?;
                    return Ok(Progress::NeedMore);
                }
                Scan::Complete(end) => {
                    self.partial.extend_from_slice(&chunk[..end.end]);
                    if self.deliver_partial(end, true, &mut on_row)? == Progress::EndOfData {
                        return Ok(Progress::EndOfData);
                    }
                    at = end.end;
                }
            }
        }
        loop {
            match self.lines.scan(&mut scanned, at, self.lines_read + 1)? {
                Scan::Partial => {
                    self.partial.extend_from_slice(&chunk[at..]);
                    self.check_row_size(self.partial.len())?;
                    return Ok(Progress::NeedMore);
                }
                Scan::Complete(end) => {
                    if self.deliver(&chunk[at..end.end], end, true, &mut on_row)?
                        == Progress::EndOfData
                    {
                        return Ok(Progress::EndOfData);
                    }
                    at = end.end;
                }
            }
        }
    }

    /// Ends the data (CopyDone): a final row without a line terminator is
    /// still a row, handed out with the data's terminator appended (so the
    /// rows forwarded to a shard all end alike). An unterminated CSV quote is
    /// an error, as in Postgres.
    pub fn finish<F>(&mut self, mut on_row: F) -> Result<(), CopyError>
    where
        F: FnMut(&[u8], Option<Cow<'_, [u8]>>),
    {
        if self.ended || self.partial.is_empty() {
            self.ended = true;
            return Ok(());
        }
        let line = self.lines_read + 1;
        let mut end = self.lines.finish(line)?;
        let terminated = end.terminator_len > 0;
        if !terminated {
            if end.escaped_dot {
                // Postgres wants a line terminator right after `\.`.
                return Err(CopyError::EndMarkerNotAlone { line });
            }
            let terminator = self.lines.eol().terminator();
            self.partial.extend_from_slice(terminator);
            end.terminator_len = terminator.len();
        }
        // Whether that last row was the end marker changes nothing now.
        let _ = self.deliver_partial(end, terminated, &mut on_row)?;
        self.ended = true;
        Ok(())
    }

    /// Hands out the row collected in `partial` and empties it.
    fn deliver_partial<F>(
        &mut self,
        end: RowEnd,
        terminated: bool,
        on_row: &mut F,
    ) -> Result<Progress, CopyError>
    where
        F: FnMut(&[u8], Option<Cow<'_, [u8]>>),
    {
        let row = std::mem::take(&mut self.partial);
        let result = self.deliver(&row, end, terminated, on_row);
        self.partial = row;
        self.partial.clear();
        result
    }

    /// Hands out one complete row: detects the end marker, skips the header,
    /// reads the key and calls `on_row`. `terminated`: the row's terminator
    /// came from the client (only then can the row be the end marker).
    fn deliver<F>(
        &mut self,
        row: &[u8],
        end: RowEnd,
        terminated: bool,
        on_row: &mut F,
    ) -> Result<Progress, CopyError>
    where
        F: FnMut(&[u8], Option<Cow<'_, [u8]>>),
    {
        self.check_row_size(row.len())?;
        self.lines_read += 1;
        let line = self.lines_read;
        let content = &row[..row.len() - end.terminator_len];
        if self.is_end_marker(content, end.escaped_dot, terminated, line)? {
            self.ended = true;
            return Ok(Progress::EndOfData);
        }
        if self.header_pending {
            self.header_pending = false;
            return Ok(Progress::NeedMore);
        }
        let key = self
            .keys
            .read(content, end.plain, &mut self.scratch, line)?;
        on_row(row, key);
        Ok(Progress::NeedMore)
    }

    /// Refuses a row (complete or not) of `len` bytes over the limit.
    fn check_row_size(&self, len: usize) -> Result<(), CopyError> {
        if len > self.max_row_bytes {
            return Err(CopyError::RowTooLong {
                line: self.lines_read + 1,
                limit: self.max_row_bytes,
            });
        }
        Ok(())
    }

    /// Whether a row is the end-of-data marker `\.`; in text format a
    /// backslash-period anywhere else is an error.
    fn is_end_marker(
        &self,
        content: &[u8],
        escaped_dot: bool,
        terminated: bool,
        line: u64,
    ) -> Result<bool, CopyError> {
        let alone = terminated && content == b"\\.";
        if self.keys.quoting.is_some() {
            return Ok(self.csv_end_marker && alone);
        }
        if !escaped_dot {
            return Ok(false);
        }
        if alone {
            Ok(true)
        } else {
            Err(CopyError::EndMarkerNotAlone { line })
        }
    }
}

/// Reads and interprets the key field of a row.
#[derive(Debug)]
struct KeyReader {
    /// `None` for text format.
    quoting: Option<CsvQuoting>,
    delimiter: u8,
    key_field: usize,
    null: Vec<u8>,
    default_marker: Option<Vec<u8>>,
    force_not_null: bool,
    force_null: bool,
}

impl KeyReader {
    /// The key of a row (`content`: the row without its terminator; `plain`:
    /// it holds no backslash in text format, no quote in CSV); `None` for
    /// NULL. Decoded values that are not a slice of the row are built in
    /// `scratch`.
    fn read<'a>(
        &'a self,
        content: &'a [u8],
        plain: bool,
        scratch: &'a mut Vec<u8>,
        line: u64,
    ) -> Result<Option<Cow<'a, [u8]>>, CopyError> {
        let found = match self.quoting {
            _ if plain => field::plain_field(content, self.delimiter, self.key_field),
            None => field::text_field(content, self.delimiter, self.key_field),
            Some(quoting) => field::csv_field(content, self.delimiter, quoting, self.key_field),
        };
        let field = found.map_err(|fields| CopyError::MissingKeyField {
            line,
            fields,
            key_field_number: self.key_field.saturating_add(1),
        })?;
        // As in Postgres: a CSV field with quotes is never the NULL string.
        let quoted = self.quoting.is_some() && field.encoded;
        if !quoted && field.raw == self.null.as_slice() {
            return Ok(self.force_not_null.then_some(Cow::Borrowed(field.raw)));
        }
        if self.default_marker.as_deref() == Some(field.raw) {
            return Err(CopyError::KeyIsDefaultMarker { line });
        }
        let value = match (self.quoting, field.encoded) {
            (_, false) => field.raw,
            (None, true) => field::decode_text(field.raw, scratch),
            (Some(quoting), true) => field::decode_csv(field.raw, quoting, scratch),
        };
        if self.force_null && value == self.null.as_slice() {
            return Ok(None);
        }
        Ok(Some(Cow::Borrowed(value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows handed out (bytes, key) and whether the end marker was read.
    #[derive(Debug, PartialEq)]
    struct Split {
        rows: Vec<(Vec<u8>, Option<Vec<u8>>)>,
        end_marker: bool,
    }

    impl Split {
        fn keys(&self) -> Vec<Option<&[u8]>> {
            self.rows.iter().map(|(_, key)| key.as_deref()).collect()
        }

        fn rows(&self) -> Vec<&[u8]> {
            self.rows.iter().map(|(row, _)| row.as_slice()).collect()
        }
    }

    fn split(
        options: &CopyOptions,
        key_field: usize,
        chunks: &[&[u8]],
    ) -> Result<Split, CopyError> {
        let mut splitter = RowSplitter::new(options.clone(), key_field);
        let mut rows = Vec::new();
        let mut end_marker = false;
        let mut collect = |row: &[u8], key: Option<Cow<'_, [u8]>>| {
            rows.push((row.to_vec(), key.map(Cow::into_owned)));
        };
        for chunk in chunks {
            if splitter.feed(chunk, &mut collect)? == Progress::EndOfData {
                end_marker = true;
            }
        }
        splitter.finish(&mut collect)?;
        Ok(Split { rows, end_marker })
    }

    /// Splits `input` whole, cut at every position, cut at every pair of
    /// positions, and byte by byte; every way must give the same outcome.
    fn split_everywhere(
        options: &CopyOptions,
        key_field: usize,
        input: &[u8],
    ) -> Result<Split, CopyError> {
        let whole = split(options, key_field, &[input]);
        for first in 0..=input.len() {
            let (head, tail) = input.split_at(first);
            assert_eq!(
                split(options, key_field, &[head, tail]),
                whole,
                "cut at {first}"
            );
            for second in first..=input.len() {
                let (middle, last) = input[first..].split_at(second - first);
                assert_eq!(
                    split(options, key_field, &[head, middle, last]),
                    whole,
                    "cuts at {first} and {second}"
                );
            }
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(split(options, key_field, &bytes), whole, "byte by byte");
        whole
    }

    fn text_keys(input: &[u8], key_field: usize) -> Vec<Option<Vec<u8>>> {
        let split = split_everywhere(&CopyOptions::text(), key_field, input).unwrap();
        split
            .keys()
            .into_iter()
            .map(|key| key.map(<[u8]>::to_vec))
            .collect()
    }

    fn csv_keys(options: &CopyOptions, input: &[u8], key_field: usize) -> Vec<Option<Vec<u8>>> {
        let split = split_everywhere(options, key_field, input).unwrap();
        split
            .keys()
            .into_iter()
            .map(|key| key.map(<[u8]>::to_vec))
            .collect()
    }

    fn some(value: &[u8]) -> Option<Vec<u8>> {
        Some(value.to_vec())
    }

    #[test]
    fn text_rows_are_passed_on_unchanged_with_their_keys() {
        let input = b"1\tone\tx\n2\ttwo\ty\n";
        let split = split_everywhere(&CopyOptions::text(), 1, input).unwrap();
        assert_eq!(split.rows(), vec![&b"1\tone\tx\n"[..], b"2\ttwo\ty\n"]);
        assert_eq!(split.keys(), vec![Some(&b"one"[..]), Some(b"two")]);
        assert!(!split.end_marker);
        assert_eq!(text_keys(input, 0), vec![some(b"1"), some(b"2")]);
        assert_eq!(text_keys(input, 2), vec![some(b"x"), some(b"y")]);
    }

    #[test]
    fn text_key_escapes_are_decoded() {
        let input = b"\\b\\f\\n\\r\\t\\v\\\\\n\\101\\x41\\x4g\\q\\\t\n\\303\\251\\7\\777\n";
        assert_eq!(
            text_keys(input, 0),
            vec![
                some(b"\x08\x0c\n\r\t\x0b\\"),
                some(b"AA\x04gq\t"),
                some(b"\xc3\xa9\x07\xff"),
            ]
        );
    }

    #[test]
    fn text_null_is_the_raw_null_string() {
        let input = b"\\N\tx\n\\\\N\tx\na\\N\tx\n\tx\n";
        assert_eq!(
            text_keys(input, 0),
            vec![None, some(b"\\N"), some(b"aN"), some(b"")]
        );
    }

    #[test]
    fn custom_delimiter_and_null() {
        let options = CopyOptions {
            delimiter: b'|',
            null: b"nil".to_vec(),
            ..CopyOptions::text()
        };
        let input = b"a|nil\nb|ni\\l\nc|x\\|y\n|\n";
        let split = split_everywhere(&options, 1, input).unwrap();
        assert_eq!(
            split.keys(),
            vec![None, Some(&b"nil"[..]), Some(b"x|y"), Some(b"")]
        );
    }

    #[test]
    fn an_escape_sequence_can_hide_a_delimiter_byte() {
        // With DELIMITER 'A', `\x4A` is one escaped byte, not `\x4` + 'A'.
        let options = CopyOptions {
            delimiter: b'A',
            ..CopyOptions::text()
        };
        let split = split_everywhere(&options, 1, b"\\x4AzAkey\n").unwrap();
        assert_eq!(split.keys(), vec![Some(&b"key"[..])]);
    }

    #[test]
    fn a_backslash_before_a_line_break_makes_it_data() {
        let input = b"a\\\nb\tk\\\r\n";
        let split = split_everywhere(&CopyOptions::text(), 0, input).unwrap();
        assert_eq!(split.rows(), vec![&input[..]]);
        assert_eq!(split.keys(), vec![Some(&b"a\nb"[..])]);
        assert_eq!(text_keys(input, 1), vec![some(b"k\r")]);
    }

    #[test]
    fn crlf_rows_keep_their_terminators() {
        let input = b"a\tb\r\nc\td\r\ne\tf";
        let split = split_everywhere(&CopyOptions::text(), 1, input).unwrap();
        assert_eq!(
            split.rows(),
            vec![&b"a\tb\r\n"[..], b"c\td\r\n", b"e\tf\r\n"],
            "the final row gets the data's own terminator"
        );
        assert_eq!(split.keys(), vec![Some(&b"b"[..]), Some(b"d"), Some(b"f")]);
    }

    #[test]
    fn lone_carriage_returns_end_rows_when_the_first_row_says_so() {
        let input = b"a\tb\rc\td\r";
        let split = split_everywhere(&CopyOptions::text(), 1, input).unwrap();
        assert_eq!(split.rows(), vec![&b"a\tb\r"[..], b"c\td\r"]);
        let split = split_everywhere(&CopyOptions::text(), 0, b"a\rb").unwrap();
        assert_eq!(split.rows(), vec![&b"a\r"[..], b"b\r"]);
    }

    #[test]
    fn mixed_line_terminators_are_errors() {
        let text = CopyOptions::text();
        assert_eq!(
            split_everywhere(&text, 0, b"a\nb\r\n"),
            Err(CopyError::StrayCarriageReturn {
                line: 2,
                csv: false
            })
        );
        assert_eq!(
            split_everywhere(&text, 0, b"a\r\nb\nc\r\n"),
            Err(CopyError::StrayNewline {
                line: 2,
                csv: false
            })
        );
        assert_eq!(
            split_everywhere(&text, 0, b"a\r\nb\rc\r\n"),
            Err(CopyError::StrayCarriageReturn {
                line: 2,
                csv: false
            })
        );
        assert_eq!(
            split_everywhere(&text, 0, b"a\r\nb\r"),
            Err(CopyError::StrayCarriageReturn {
                line: 2,
                csv: false
            })
        );
        assert_eq!(
            split_everywhere(&CopyOptions::csv(), 0, b"a\n\"b\r\",c\r\n"),
            Err(CopyError::StrayCarriageReturn { line: 2, csv: true })
        );
    }

    #[test]
    fn text_end_marker_ends_the_data() {
        let text = CopyOptions::text();
        let split = split_everywhere(&text, 0, b"a\n\\.\nnot\tread\n\\.x").unwrap();
        assert_eq!(split.rows(), vec![&b"a\n"[..]]);
        assert!(split.end_marker);
        let split = split_everywhere(&text, 0, b"a\r\n\\.\r\nrest").unwrap();
        assert_eq!(split.rows(), vec![&b"a\r\n"[..]]);
        assert!(split.end_marker);
        let split = split_everywhere(&text, 0, b"\\.\n").unwrap();
        assert!(split.rows.is_empty() && split.end_marker);
    }

    #[test]
    fn feeding_after_the_end_marker_is_ignored() {
        let mut splitter = RowSplitter::new(CopyOptions::text(), 0);
        let mut rows = 0;
        assert_eq!(
            splitter.feed(b"a\n\\.\nb\n", |_, _| rows += 1),
            Ok(Progress::EndOfData)
        );
        assert_eq!(
            splitter.feed(b"c\n", |_, _| rows += 1),
            Ok(Progress::EndOfData)
        );
        assert_eq!(splitter.finish(|_, _| rows += 1), Ok(()));
        assert_eq!(rows, 1);
    }

    #[test]
    fn a_misplaced_text_end_marker_is_an_error() {
        let text = CopyOptions::text();
        for input in [&b"a\nb\\.\n"[..], b"a\n\\.x\n", b"a\n\\.", b"a\nb\\."] {
            assert_eq!(
                split_everywhere(&text, 0, input),
                Err(CopyError::EndMarkerNotAlone { line: 2 }),
                "{input:?}"
            );
        }
        // An escaped backslash followed by a period is data.
        assert_eq!(text_keys(b"\\\\.\n", 0), vec![some(b"\\.")]);
    }

    #[test]
    fn a_trailing_lone_backslash_is_refused() {
        assert_eq!(
            split_everywhere(&CopyOptions::text(), 0, b"a\nb\\"),
            Err(CopyError::TrailingBackslash { line: 2 })
        );
    }

    #[test]
    fn header_lines_are_skipped() {
        let text = CopyOptions {
            header: true,
            ..CopyOptions::text()
        };
        let split = split_everywhere(&text, 1, b"id\tname\n1\tone\n").unwrap();
        assert_eq!(split.rows(), vec![&b"1\tone\n"[..]]);
        let csv = CopyOptions {
            header: true,
            ..CopyOptions::csv()
        };
        let split = split_everywhere(&csv, 1, b"\"i\nd\",name\n1,one\n").unwrap();
        assert_eq!(split.rows(), vec![&b"1,one\n"[..]]);
        assert_eq!(split.keys(), vec![Some(&b"one"[..])]);
        // A header alone is no row, and needs no key field.
        assert!(split_everywhere(&csv, 5, b"id").unwrap().rows.is_empty());
    }

    #[test]
    fn rows_without_the_key_field_are_errors_naming_the_line() {
        let text = CopyOptions::text();
        assert_eq!(
            split_everywhere(&text, 1, b"a\tb\nc\n"),
            Err(CopyError::MissingKeyField {
                line: 2,
                fields: 1,
                key_field_number: 2
            })
        );
        let csv = CopyOptions {
            header: true,
            ..CopyOptions::csv()
        };
        let error = split_everywhere(&csv, 2, b"h\n\"a,b\nc\",d,e\n\"x,y\",z\n").unwrap_err();
        assert_eq!(
            error,
            CopyError::MissingKeyField {
                line: 3,
                fields: 2,
                key_field_number: 3
            }
        );
        assert_eq!(
            error.to_string(),
            "missing data for the sharding key column (field 3) at line 3: the row has 2 field(s)"
        );
        assert_eq!(error.sqlstate(), "22P04");
    }

    #[test]
    fn a_final_row_without_a_newline_is_still_a_row() {
        let split = split_everywhere(&CopyOptions::text(), 1, b"a\tb\nc\td").unwrap();
        assert_eq!(split.rows(), vec![&b"a\tb\n"[..], b"c\td\n"]);
        assert_eq!(split.keys(), vec![Some(&b"b"[..]), Some(b"d")]);
        let split = split_everywhere(&CopyOptions::csv(), 0, b"\"x\ny\"").unwrap();
        assert_eq!(split.rows(), vec![&b"\"x\ny\"\n"[..]]);
        assert_eq!(split.keys(), vec![Some(&b"x\ny"[..])]);
    }

    #[test]
    fn empty_lines() {
        assert_eq!(text_keys(b"\n\n", 0), vec![some(b""), some(b"")]);
        assert_eq!(csv_keys(&CopyOptions::csv(), b"\n", 0), vec![None]);
        assert!(
            split_everywhere(&CopyOptions::text(), 0, b"")
                .unwrap()
                .rows
                .is_empty()
        );
    }

    #[test]
    fn csv_quoting() {
        let csv = CopyOptions::csv();
        let input = b"1,\"a,b\",x\n2,\"multi\nline\r\n\",x\n3,\"say \"\"hi\"\"\",x\n4,ab\"c,d\"e,x\n5,\\N,x\n";
        assert_eq!(
            csv_keys(&csv, input, 1),
            vec![
                some(b"a,b"),
                some(b"multi\nline\r\n"),
                some(b"say \"hi\""),
                some(b"abc,de"),
                some(b"\\N"),
            ]
        );
        let split = split_everywhere(&csv, 2, input).unwrap();
        assert_eq!(split.rows().concat(), input.to_vec());
    }

    #[test]
    fn csv_null_is_unquoted_only() {
        let csv = CopyOptions::csv();
        assert_eq!(
            csv_keys(&csv, b"a,,b\na,\"\",b\n", 1),
            vec![None, some(b"")]
        );
        let null_word = CopyOptions {
            null: b"NULL".to_vec(),
            ..CopyOptions::csv()
        };
        assert_eq!(
            csv_keys(&null_word, b"NULL\n\"NULL\"\nNU\"LL\"\n\n", 0),
            vec![None, some(b"NULL"), some(b"NULL"), some(b"")]
        );
    }

    #[test]
    fn csv_force_null_and_force_not_null_on_the_key() {
        let force_not_null = CopyOptions {
            key_force_not_null: true,
            ..CopyOptions::csv()
        };
        assert_eq!(csv_keys(&force_not_null, b"a,\n", 1), vec![some(b"")]);
        let force_null = CopyOptions {
            null: b"NULL".to_vec(),
            key_force_null: true,
            ..CopyOptions::csv()
        };
        assert_eq!(
            csv_keys(&force_null, b"\"NULL\"\nNULL\n\"x\"\n", 0),
            vec![None, None, some(b"x")]
        );
    }

    #[test]
    fn csv_escape_character() {
        let csv = CopyOptions {
            escape: b'\\',
            ..CopyOptions::csv()
        };
        let input = b"\"a\\\"b\n\",\"c\\\\\"\n\"x\\y\",z\n";
        assert_eq!(
            csv_keys(&csv, input, 0),
            vec![some(b"a\"b\n"), some(b"x\\y")]
        );
        assert_eq!(csv_keys(&csv, input, 1), vec![some(b"c\\"), some(b"z")]);
    }

    #[test]
    fn csv_custom_quote_and_delimiter() {
        let csv = CopyOptions {
            delimiter: b';',
            quote: b'\'',
            escape: b'\'',
            ..CopyOptions::csv()
        };
        assert_eq!(
            csv_keys(&csv, b"'a;b';'it''s'\n\"x\";y\n", 1),
            vec![some(b"it's"), some(b"y")]
        );
        assert_eq!(csv_keys(&csv, b"\"x\";y\n", 0), vec![some(b"\"x\"")]);
    }

    #[test]
    fn unterminated_csv_quote_is_an_error() {
        assert_eq!(
            split_everywhere(&CopyOptions::csv(), 0, b"a\n\"b\n"),
            Err(CopyError::UnterminatedCsvQuote { line: 2 })
        );
    }

    #[test]
    fn csv_end_marker() {
        let csv = CopyOptions::csv();
        let split = split_everywhere(&csv, 0, b"a\n\\.\nb\n").unwrap();
        assert_eq!(split.rows(), vec![&b"a\n"[..]]);
        assert!(split.end_marker);
        // Quoted, with more on its line, or unterminated: data.
        assert_eq!(
            csv_keys(&csv, b"\"\\.\"\n\\.,x\nx,\\.\n\"a\n\\.\n\"\n\\.", 0),
            vec![
                some(b"\\."),
                some(b"\\."),
                some(b"x"),
                some(b"a\n\\.\n"),
                some(b"\\.")
            ]
        );
        let postgres_18 = CopyOptions {
            csv_end_marker: false,
            ..CopyOptions::csv()
        };
        let split = split_everywhere(&postgres_18, 0, b"a\n\\.\nb\n").unwrap();
        assert_eq!(
            split.keys(),
            vec![Some(&b"a"[..]), Some(b"\\."), Some(b"b")]
        );
        assert!(!split.end_marker);
    }

    #[test]
    fn a_default_marker_in_the_key_is_refused() {
        let options = CopyOptions {
            default_marker: Some(b"\\D".to_vec()),
            ..CopyOptions::text()
        };
        assert_eq!(
            split_everywhere(&options, 1, b"\\D\tx\ny\t\\D\n"),
            Err(CopyError::KeyIsDefaultMarker { line: 2 })
        );
        assert_eq!(
            CopyError::KeyIsDefaultMarker { line: 2 }.sqlstate(),
            "0A000"
        );
    }

    #[test]
    fn keys_are_borrowed_from_the_chunk_in_the_common_case() {
        let chunk = b"1\tplain\n2\t\"quoted\"\n";
        let mut splitter = RowSplitter::new(CopyOptions::text(), 1);
        let range = chunk.as_ptr_range();
        let mut borrowed = 0;
        let progress = splitter.feed(chunk, |row, key| {
            assert!(range.contains(&row.as_ptr()));
            if let Some(Cow::Borrowed(key)) = key {
                assert!(range.contains(&key.as_ptr()));
                borrowed += 1;
            }
        });
        assert_eq!(progress, Ok(Progress::NeedMore));
        assert_eq!(borrowed, 2);

        let chunk = b"1,\"quoted\"\n";
        let mut splitter = RowSplitter::new(CopyOptions::csv(), 1);
        let range = chunk.as_ptr_range();
        let _ = splitter.feed(chunk, |_, key| {
            let Some(Cow::Borrowed(key)) = key else {
                panic!("key not borrowed");
            };
            assert_eq!(key, b"quoted");
            assert!(range.contains(&key.as_ptr()));
        });
    }

    #[test]
    fn rows_over_the_size_limit_are_refused() {
        let options = CopyOptions {
            max_row_bytes: 4,
            ..CopyOptions::text()
        };
        assert_eq!(
            split_everywhere(&options, 0, b"abc\nd\n")
                .unwrap()
                .rows
                .len(),
            2
        );
        for input in [&b"abc\nde\tf\n"[..], b"abc\nde\tf", b"abc\nde\tfgh"] {
            assert_eq!(
                split_everywhere(&options, 0, input),
                Err(CopyError::RowTooLong { line: 2, limit: 4 }),
                "{input:?}"
            );
        }
    }

    #[test]
    fn errors_carry_postgres_hints() {
        let error = CopyError::StrayCarriageReturn {
            line: 4,
            csv: false,
        };
        assert_eq!(
            error.to_string(),
            "literal carriage return found in data at line 4"
        );
        assert_eq!(
            error.hint(),
            Some("Use \"\\r\" to represent carriage return.")
        );
        let error = CopyError::StrayNewline { line: 4, csv: true };
        assert_eq!(
            error.to_string(),
            "unquoted newline found in data at line 4"
        );
        assert_eq!(
            error.hint(),
            Some("Use quoted CSV field to represent newline.")
        );
    }
}
