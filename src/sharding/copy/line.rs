//! Finding where each COPY row ends, one chunk at a time.
//!
//! This mirrors PostgreSQL's `CopyReadLineText`: a row ends at an unescaped
//! (text) or unquoted (CSV) line terminator; the terminator style (`\n`,
//! `\r\n` or a lone `\r`) is fixed by the first row, and a later row that uses
//! another style is an error, exactly as Postgres rejects it. In text format a
//! backslash makes the next byte data, even a line break.
//!
//! The scanner keeps its state between calls, so a row may be spread over any
//! number of chunks without rescanning the bytes already seen: the only bytes
//! whose meaning depends on the next one (a backslash, a `\r`, a CSV escape
//! inside quotes) are remembered as flags.

use memchr::{memchr, memchr2, memchr3};

use super::CopyError;

/// Line terminator style of the data, fixed by its first row as in Postgres.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Eol {
    /// No row has ended yet.
    Unknown,
    /// `\n`.
    Lf,
    /// `\r\n`.
    CrLf,
    /// A lone `\r` (old Mac style, still accepted by Postgres).
    Cr,
}

impl Eol {
    /// The terminator to append to a final row that arrived without one, so
    /// that a shard's COPY sees the same style as in the rest of the data.
    pub(super) fn terminator(self) -> &'static [u8] {
        match self {
            Eol::Unknown | Eol::Lf => b"\n",
            Eol::CrLf => b"\r\n",
            Eol::Cr => b"\r",
        }
    }
}

/// CSV quoting characters as the line scanner needs them.
#[derive(Debug, Clone, Copy)]
pub(super) struct CsvQuoting {
    /// The QUOTE character.
    pub(super) quote: u8,
    /// The ESCAPE character when it differs from QUOTE (when it is the same,
    /// a doubled quote simply toggles the quoted state twice).
    pub(super) escape: Option<u8>,
}

/// Where a complete row ends, and what the scanner noticed in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RowEnd {
    /// Index just past the row's terminator in the scanned buffer (may be 0
    /// when the terminator was a lone `\r` at the end of an earlier buffer).
    pub(super) end: usize,
    /// Length of the terminator (1 or 2; 0 for a row cut by the end of data).
    pub(super) terminator_len: usize,
    /// Text format: the row holds a backslash-period, which Postgres reads as
    /// the end-of-data marker (valid only when it is alone on its line).
    pub(super) escaped_dot: bool,
    /// The row holds no backslash (text) or no quote (CSV): its fields are
    /// plain slices between delimiters.
    pub(super) plain: bool,
}

/// Outcome of scanning one buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scan {
    /// The current row ends inside the buffer.
    Complete(RowEnd),
    /// The buffer ended first; the row continues in the next one.
    Partial,
}

/// A buffer being scanned, with how far it is known to hold no byte that
/// needs care in text format (backslash, `\r`): rows that end before that
/// point are found with a plain `memchr` for `\n`. The knowledge comes from
/// one pass over the rest of the buffer, reused for all its rows.
pub(super) struct Chunk<'a> {
    bytes: &'a [u8],
    /// Index of the first backslash or `\r` at or after the position last
    /// asked about (the length when there is none); `None` before the first
    /// question. Positions are asked about in increasing order.
    clean_end: Option<usize>,
}

impl<'a> Chunk<'a> {
    /// A buffer about which nothing is known yet.
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Chunk {
            bytes,
            clean_end: None,
        }
    }

    /// End of the run without backslash or `\r` that starts at `from`.
    fn clean_end(&mut self, from: usize) -> usize {
        match self.clean_end {
            Some(end) if end >= from => end,
            _ => {
                let end = memchr2(b'\\', b'\r', &self.bytes[from..])
                    .map_or(self.bytes.len(), |offset| from + offset);
                self.clean_end = Some(end);
                end
            }
        }
    }
}

/// Resumable row-boundary scanner for text or CSV COPY data.
#[derive(Debug, Clone)]
pub(super) struct LineScanner {
    /// `None` for text format.
    csv: Option<CsvQuoting>,
    eol: Eol,
    /// CSV: inside a quoted section.
    in_quote: bool,
    /// CSV: the previous byte was an ESCAPE inside quotes.
    last_was_escape: bool,
    /// Text: the previous byte was a backslash (the buffer ended on it).
    after_backslash: bool,
    /// The previous byte was a `\r` whose meaning depends on the next byte.
    after_cr: bool,
    /// Text: the current row holds a backslash-period.
    escaped_dot: bool,
    /// The current row holds a backslash (text) or a quote (CSV).
    encoded: bool,
}

impl LineScanner {
    /// A scanner for text format (`csv` is `None`) or CSV.
    pub(super) fn new(csv: Option<CsvQuoting>) -> Self {
        LineScanner {
            csv,
            eol: Eol::Unknown,
            in_quote: false,
            last_was_escape: false,
            after_backslash: false,
            after_cr: false,
            escaped_dot: false,
            encoded: false,
        }
    }

    /// The terminator style seen so far.
    pub(super) fn eol(&self) -> Eol {
        self.eol
    }

    /// Scans `buf[from..]` for the end of the current row, whose earlier
    /// bytes (if any) were given to previous calls. `line` is the row's line
    /// number, for error messages.
    pub(super) fn scan(
        &mut self,
        chunk: &mut Chunk<'_>,
        from: usize,
        line: u64,
    ) -> Result<Scan, CopyError> {
        let buf = chunk.bytes;
        if self.after_cr {
            let Some(&next) = buf.get(from) else {
                return Ok(Scan::Partial);
            };
            self.after_cr = false;
            return if next == b'\n' {
                self.eol = Eol::CrLf;
                Ok(self.complete(from + 1, 2))
            } else {
                self.lone_cr(line)?;
                Ok(self.complete(from, 1))
            };
        }
        match self.csv {
            None => self.scan_text(chunk, from, line),
            Some(quoting) => self.scan_csv(quoting, buf, from, line),
        }
    }

    /// Resolves the scanner's state at the end of the data for a row that
    /// has begun: returns how the row ends (`end` 0, `terminator_len` 0 when
    /// it has no terminator) or the error Postgres would report.
    pub(super) fn finish(&mut self, line: u64) -> Result<RowEnd, CopyError> {
        if self.after_backslash {
            return Err(CopyError::TrailingBackslash { line });
        }
        if self.in_quote {
            return Err(CopyError::UnterminatedCsvQuote { line });
        }
        let terminator_len = if self.after_cr {
            self.after_cr = false;
            self.lone_cr(line)?;
            1
        } else {
            0
        };
        Ok(self.end_row(0, terminator_len))
    }

    fn scan_text(
        &mut self,
        chunk: &mut Chunk<'_>,
        mut at: usize,
        line: u64,
    ) -> Result<Scan, CopyError> {
        let buf = chunk.bytes;
        if self.after_backslash {
            let Some(&escaped) = buf.get(at) else {
                return Ok(Scan::Partial);
            };
            self.after_backslash = false;
            self.escaped_dot |= escaped == b'.';
            self.encoded = true;
            at += 1;
        }
        let clean_end = chunk.clean_end(at);
        if let Some(offset) = memchr(b'\n', &buf[at..clean_end]) {
            return self.newline(at + offset, line);
        }
        at = clean_end;
        while let Some(offset) = memchr3(b'\n', b'\r', b'\\', &buf[at..]) {
            let found = at + offset;
            match buf[found] {
                b'\n' => return self.newline(found, line),
                b'\r' => return self.carriage_return(buf, found, line),
                _ => match buf.get(found + 1) {
                    None => {
                        self.encoded = true;
                        self.after_backslash = true;
                        return Ok(Scan::Partial);
                    }
                    Some(&escaped) => {
                        self.escaped_dot |= escaped == b'.';
                        self.encoded = true;
                        at = found + 2;
                    }
                },
            }
        }
        Ok(Scan::Partial)
    }

    fn scan_csv(
        &mut self,
        quoting: CsvQuoting,
        buf: &[u8],
        mut at: usize,
        line: u64,
    ) -> Result<Scan, CopyError> {
        loop {
            if !self.in_quote {
                let Some(offset) = memchr3(quoting.quote, b'\n', b'\r', &buf[at..]) else {
                    return Ok(Scan::Partial);
                };
                let found = at + offset;
                match buf[found] {
                    b'\n' => return self.newline(found, line),
                    b'\r' => return self.carriage_return(buf, found, line),
                    _ => {
                        self.in_quote = true;
                        self.encoded = true;
                        at = found + 1;
                    }
                }
                continue;
            }
            match quoting.escape {
                None => {
                    let Some(offset) = memchr(quoting.quote, &buf[at..]) else {
                        return Ok(Scan::Partial);
                    };
                    self.in_quote = false;
                    at += offset + 1;
                }
                Some(_) if self.last_was_escape => {
                    // Postgres toggles its flag on each escape and clears it
                    // on any other byte, and a quote right after an escape
                    // stays inside the quotes: so the byte after an escape
                    // is plain data, whatever it is.
                    if at == buf.len() {
                        return Ok(Scan::Partial);
                    }
                    self.last_was_escape = false;
                    at += 1;
                }
                Some(escape) => {
                    let Some(offset) = memchr2(quoting.quote, escape, &buf[at..]) else {
                        return Ok(Scan::Partial);
                    };
                    let found = at + offset;
                    if buf[found] == escape {
                        self.last_was_escape = true;
                    } else {
                        self.in_quote = false;
                    }
                    at = found + 1;
                }
            }
        }
    }

    /// An unescaped, unquoted `\n` at `found`.
    fn newline(&mut self, found: usize, line: u64) -> Result<Scan, CopyError> {
        match self.eol {
            Eol::Cr | Eol::CrLf => Err(CopyError::StrayNewline {
                line,
                csv: self.csv.is_some(),
            }),
            Eol::Unknown | Eol::Lf => {
                self.eol = Eol::Lf;
                Ok(self.complete(found + 1, 1))
            }
        }
    }

    /// An unescaped, unquoted `\r` at `found`.
    fn carriage_return(&mut self, buf: &[u8], found: usize, line: u64) -> Result<Scan, CopyError> {
        match self.eol {
            Eol::Lf => Err(CopyError::StrayCarriageReturn {
                line,
                csv: self.csv.is_some(),
            }),
            Eol::Cr => Ok(self.complete(found + 1, 1)),
            Eol::Unknown | Eol::CrLf => match buf.get(found + 1) {
                None => {
                    self.after_cr = true;
                    Ok(Scan::Partial)
                }
                Some(b'\n') => {
                    self.eol = Eol::CrLf;
                    Ok(self.complete(found + 2, 2))
                }
                Some(_) => {
                    self.lone_cr(line)?;
                    Ok(self.complete(found + 1, 1))
                }
            },
        }
    }

    /// A `\r` not followed by `\n` ends the row only in `\r` style, which the
    /// first row may choose; after `\r\n` rows it is an error.
    fn lone_cr(&mut self, line: u64) -> Result<(), CopyError> {
        if self.eol == Eol::CrLf {
            return Err(CopyError::StrayCarriageReturn {
                line,
                csv: self.csv.is_some(),
            });
        }
        self.eol = Eol::Cr;
        Ok(())
    }

    /// Ends the current row at `end`.
    fn complete(&mut self, end: usize, terminator_len: usize) -> Scan {
        Scan::Complete(self.end_row(end, terminator_len))
    }

    /// Ends the current row and resets the per-row state.
    fn end_row(&mut self, end: usize, terminator_len: usize) -> RowEnd {
        RowEnd {
            end,
            terminator_len,
            escaped_dot: std::mem::take(&mut self.escaped_dot),
            plain: !std::mem::take(&mut self.encoded),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: Option<CsvQuoting> = Some(CsvQuoting {
        quote: b'"',
        escape: None,
    });

    /// Every row end of `input` scanned in one buffer: (end, terminator_len).
    fn ends(csv: Option<CsvQuoting>, input: &[u8]) -> Result<Vec<(usize, usize)>, CopyError> {
        let mut scanner = LineScanner::new(csv);
        let mut at = 0;
        let mut found = Vec::new();
        let mut chunk = Chunk::new(input);
        while let Scan::Complete(end) = scanner.scan(&mut chunk, at, 1)? {
            found.push((end.end, end.terminator_len));
            at = end.end;
        }
        Ok(found)
    }

    #[test]
    fn text_rows_end_at_unescaped_newlines() {
        assert_eq!(
            ends(None, b"a\tb\nc\\\nd\ne").unwrap(),
            vec![(4, 1), (9, 1)]
        );
    }

    #[test]
    fn terminator_style_is_fixed_by_the_first_row() {
        assert_eq!(ends(None, b"a\r\nb\r\n").unwrap(), vec![(3, 2), (6, 2)]);
        assert_eq!(ends(None, b"a\rb\r").unwrap()[0], (2, 1));
        assert!(matches!(
            ends(None, b"a\nb\r\n"),
            Err(CopyError::StrayCarriageReturn {
                line: 1,
                csv: false
            })
        ));
        assert!(matches!(
            ends(None, b"a\r\nb\n"),
            Err(CopyError::StrayNewline { .. })
        ));
        assert!(matches!(
            ends(None, b"a\rb\n"),
            Err(CopyError::StrayNewline { .. })
        ));
    }

    #[test]
    fn csv_line_breaks_inside_quotes_are_data() {
        assert_eq!(
            ends(CSV, b"\"a\nb\",c\n\"x\r\n\"\"\"\n").unwrap(),
            vec![(8, 1), (16, 1)]
        );
    }

    #[test]
    fn csv_escape_keeps_a_quote_inside_the_quotes() {
        let quoting = Some(CsvQuoting {
            quote: b'"',
            escape: Some(b'\\'),
        });
        // "a\"b\n" then "c\\" ends the quotes before the newline.
        assert_eq!(
            ends(quoting, b"\"a\\\"b\n\"\n\"c\\\\\"\n").unwrap(),
            vec![(8, 1), (14, 1)]
        );
    }

    #[test]
    fn finish_resolves_a_pending_carriage_return() {
        let mut scanner = LineScanner::new(None);
        assert_eq!(
            scanner.scan(&mut Chunk::new(b"ab\r"), 0, 1).unwrap(),
            Scan::Partial
        );
        assert_eq!(scanner.finish(1).unwrap().terminator_len, 1);
        assert_eq!(scanner.eol(), Eol::Cr);
    }
}
