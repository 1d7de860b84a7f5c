//! The wire side of merging: reading the shards' RowDescription and
//! DataRow bodies, keeping rows compactly, and writing the client's
//! messages.
//!
//! Rows are stored as their DataRow bodies, copied back to back into one
//! byte arena per store, plus one `u32` offset per field: no allocation and
//! about `8 + 4 × columns` bytes of bookkeeping per row. Values are decoded
//! only when a comparison needs them.

use bytes::{BufMut, BytesMut};

use crate::net::messages::{PgError, backend_tag, put_message, split_cstr};
use crate::scatter::value::{ColumnType, Format};

/// SQLSTATE protocol_violation.
const PROTOCOL_VIOLATION: &str = "08P01";
/// Bytes after a field's name in a RowDescription: table OID, column number,
/// type OID, type length, type modifier, format code.
const FIELD_TAIL_LEN: usize = 18;
/// Offset of the type OID within those bytes.
const TYPE_OID_AT: usize = 6;

/// One column of the shards' RowDescription.
#[derive(Debug, Clone)]
pub(super) struct FieldDescription {
    /// The field exactly as the shard described it (name through format
    /// code).
    raw: Vec<u8>,
    /// Its type and result format.
    pub column_type: ColumnType,
}

impl FieldDescription {
    /// Appends the field as the shard described it.
    pub fn write(&self, out: &mut BytesMut) {
        out.put_slice(&self.raw);
    }

    /// Appends the field with another type (type modifier -1, same name,
    /// origin and format): how AVG's column is presented.
    pub fn write_retyped(&self, oid: u32, typlen: i16, out: &mut BytesMut) {
        let type_at = self.raw.len() - FIELD_TAIL_LEN + TYPE_OID_AT;
        out.put_slice(&self.raw[..type_at]);
        out.put_u32(oid);
        out.put_i16(typlen);
        out.put_i32(-1);
        out.put_slice(&self.raw[self.raw.len() - 2..]);
    }
}

/// Parses a RowDescription body into its fields.
pub(super) fn parse_row_description(body: &[u8]) -> Result<Vec<FieldDescription>, PgError> {
    let malformed = || {
        PgError::error(
            PROTOCOL_VIOLATION,
            "a shard sent a malformed RowDescription",
        )
    };
    let (count, mut rest) = body.split_first_chunk::<2>().ok_or_else(malformed)?;
    let count = usize::try_from(i16::from_be_bytes(*count)).map_err(|_| malformed())?;
    let mut fields = Vec::with_capacity(count);
    for _ in 0..count {
        let (name, after_name) = split_cstr(rest).ok_or_else(malformed)?;
        let tail = after_name.get(..FIELD_TAIL_LEN).ok_or_else(malformed)?;
        let oid = u32::from_be_bytes([tail[6], tail[7], tail[8], tail[9]]);
        let format =
            Format::from_code(i16::from_be_bytes([tail[16], tail[17]])).ok_or_else(malformed)?;
        let len = name.len() + 1 + FIELD_TAIL_LEN;
        fields.push(FieldDescription {
            raw: rest[..len].to_vec(),
            column_type: ColumnType::new(oid, format),
        });
        rest = &rest[len..];
    }
    if !rest.is_empty() {
        return Err(malformed());
    }
    Ok(fields)
}

/// Checks a DataRow body against the expected column count and appends the
/// start offset of each field's value to `starts` (cleared first).
pub(super) fn scan_data_row(
    body: &[u8],
    columns: usize,
    starts: &mut Vec<u32>,
) -> Result<(), PgError> {
    let malformed = |what: &str| {
        PgError::error(
            PROTOCOL_VIOLATION,
            format!("a shard sent a malformed DataRow: {what}"),
        )
    };
    starts.clear();
    if u32::try_from(body.len()).is_err() {
        return Err(malformed("too long"));
    }
    let count = body
        .first_chunk::<2>()
        .map(|c| i16::from_be_bytes(*c))
        .ok_or_else(|| malformed("no field count"))?;
    if usize::try_from(count).ok() != Some(columns) {
        return Err(malformed(&format!(
            "{count} fields where the RowDescription has {columns}"
        )));
    }
    let mut at = 2;
    for _ in 0..columns {
        let len = body
            .get(at..at + 4)
            .map(|l| i32::from_be_bytes([l[0], l[1], l[2], l[3]]))
            .ok_or_else(|| malformed("field length past the end"))?;
        at += 4;
        starts.push(at as u32);
        match len {
            -1 => {}
            len if len >= 0 && (len as usize) <= body.len() - at => at += len as usize,
            _ => return Err(malformed("field value past the end")),
        }
    }
    if at != body.len() {
        return Err(malformed("bytes after the last field"));
    }
    Ok(())
}

/// A stored (or just received) DataRow body with its field offsets.
#[derive(Debug, Clone, Copy)]
pub(super) struct RowRef<'a> {
    body: &'a [u8],
    starts: &'a [u32],
}

impl<'a> RowRef<'a> {
    /// A row checked by [`scan_data_row`].
    pub fn new(body: &'a [u8], starts: &'a [u32]) -> RowRef<'a> {
        RowRef { body, starts }
    }

    /// The value of field `column`, `None` for NULL (or a column that does
    /// not exist).
    pub fn field(&self, column: usize) -> Option<&'a [u8]> {
        let start = *self.starts.get(column)? as usize;
        let len = self.body.get(start.checked_sub(4)?..start)?;
        let len = usize::try_from(i32::from_be_bytes([len[0], len[1], len[2], len[3]])).ok()?;
        self.body.get(start..start + len)
    }

    /// Appends a DataRow message with the first `visible` fields: their
    /// bytes are one contiguous slice of the body, copied as they are.
    pub fn write_visible(&self, visible: usize, out: &mut BytesMut) {
        let end = match self.starts.get(visible) {
            Some(&next_start) => next_start as usize - 4,
            None => self.body.len(),
        };
        put_message(out, backend_tag::DATA_ROW, |b| {
            b.put_i16(visible as i16);
            b.put_slice(&self.body[2..end]);
        });
    }
}

/// Rows kept back to back in one arena.
#[derive(Debug)]
pub(super) struct RowStore {
    columns: usize,
    data: Vec<u8>,
    /// Where each row's body starts in `data`.
    row_starts: Vec<usize>,
    /// `columns` offsets per row, relative to the row's body.
    field_starts: Vec<u32>,
}

impl RowStore {
    /// An empty store of rows with `columns` fields.
    pub fn new(columns: usize) -> RowStore {
        RowStore {
            columns,
            data: Vec::new(),
            row_starts: Vec::new(),
            field_starts: Vec::new(),
        }
    }

    /// Bytes one stored row costs beyond its body.
    pub fn overhead_per_row(columns: usize) -> usize {
        size_of::<usize>() + size_of::<u32>() * columns
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.row_starts.len()
    }

    /// Row `index` (which must be below [`len`](Self::len)).
    pub fn row(&self, index: usize) -> RowRef<'_> {
        let start = self.row_starts[index];
        let end = self
            .row_starts
            .get(index + 1)
            .copied()
            .unwrap_or(self.data.len());
        let fields = index * self.columns;
        RowRef {
            body: &self.data[start..end],
            starts: &self.field_starts[fields..fields + self.columns],
        }
    }

    /// All rows in order.
    pub fn rows(&self) -> impl Iterator<Item = RowRef<'_>> {
        (0..self.len()).map(|i| self.row(i))
    }

    /// Copies a scanned row in.
    pub fn push(&mut self, row: RowRef<'_>) {
        self.row_starts.push(self.data.len());
        self.data.extend_from_slice(row.body);
        self.field_starts.extend_from_slice(row.starts);
    }

    /// Starts building a row in place; add exactly `columns` fields with
    /// [`push_null`](Self::push_null), [`push_bytes`](Self::push_bytes) and
    /// [`push_value`](Self::push_value).
    pub fn begin_row(&mut self) {
        self.row_starts.push(self.data.len());
        self.data
            .extend_from_slice(&(self.columns as i16).to_be_bytes());
    }

    /// Adds a NULL field to the row being built.
    pub fn push_null(&mut self) {
        self.data.extend_from_slice(&(-1i32).to_be_bytes());
        self.record_field_start();
    }

    /// Adds a field holding `value` to the row being built.
    pub fn push_bytes(&mut self, value: &[u8]) {
        self.data
            .extend_from_slice(&(value.len() as i32).to_be_bytes());
        self.record_field_start();
        self.data.extend_from_slice(value);
    }

    /// Adds a field whose value `write` appends to the row being built.
    pub fn push_value(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), PgError>,
    ) -> Result<(), PgError> {
        let len_at = self.data.len();
        self.data.extend_from_slice(&0i32.to_be_bytes());
        self.record_field_start();
        write(&mut self.data)?;
        let len = (self.data.len() - len_at - 4) as i32;
        self.data[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }

    fn record_field_start(&mut self) {
        let row_start = self.row_starts.last().copied().unwrap_or(0);
        self.field_starts.push((self.data.len() - row_start) as u32);
    }
}

#[cfg(test)]
pub(super) mod test_support {
    //! Hand-built RowDescription and DataRow bodies for the merge tests.

    use bytes::BufMut;

    /// A RowDescription body: (name, type OID, typlen, format code) per
    /// column.
    pub fn row_description(columns: &[(&str, u32, i16, i16)]) -> Vec<u8> {
        let mut out = Vec::new();
        out.put_i16(columns.len() as i16);
        for &(name, oid, typlen, format) in columns {
            out.put_slice(name.as_bytes());
            out.put_u8(0);
            out.put_u32(0);
            out.put_i16(0);
            out.put_u32(oid);
            out.put_i16(typlen);
            out.put_i32(-1);
            out.put_i16(format);
        }
        out
    }

    /// A DataRow body from raw field values (`None` for NULL).
    pub fn data_row(fields: &[Option<&[u8]>]) -> Vec<u8> {
        let mut out = Vec::new();
        out.put_i16(fields.len() as i16);
        for field in fields {
            match field {
                Some(value) => {
                    out.put_i32(value.len() as i32);
                    out.put_slice(value);
                }
                None => out.put_i32(-1),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{data_row, row_description};
    use super::*;

    #[test]
    fn row_descriptions_parse_and_retype() {
        let body = row_description(&[("a", 23, 4, 0), ("avg", 20, 8, 1)]);
        let fields = parse_row_description(&body).unwrap();
        assert_eq!(fields.len(), 2);
        assert_eq!(fields[1].column_type, ColumnType::new(20, Format::Binary));
        let mut out = BytesMut::new();
        fields[1].write_retyped(1700, -1, &mut out);
        let expected = row_description(&[("avg", 1700, -1, 1)]);
        assert_eq!(&out[..], &expected[2..]);
        assert!(parse_row_description(&body[..body.len() - 1]).is_err());
        let mut bad_format = body.clone();
        let last = bad_format.len() - 1;
        bad_format[last] = 7;
        assert!(parse_row_description(&bad_format).is_err());
    }

    #[test]
    fn data_rows_are_checked_and_stored() {
        let mut starts = Vec::new();
        let body = data_row(&[Some(b"12"), None, Some(b"")]);
        scan_data_row(&body, 3, &mut starts).unwrap();
        let mut store = RowStore::new(3);
        store.push(RowRef::new(&body, &starts));
        store.begin_row();
        store.push_null();
        store.push_bytes(b"xyz");
        store.push_null();
        let first = store.row(0);
        assert_eq!(first.field(0), Some(&b"12"[..]));
        assert_eq!(first.field(1), None);
        assert_eq!(first.field(2), Some(&b""[..]));
        assert_eq!(store.row(1).body, data_row(&[None, Some(b"xyz"), None]));
        let mut out = BytesMut::new();
        first.write_visible(2, &mut out);
        let mut expected = vec![b'D', 0, 0, 0, 16];
        expected.extend_from_slice(&data_row(&[Some(b"12"), None]));
        assert_eq!(&out[..], &expected[..]);

        for bad in [
            data_row(&[Some(b"1"), None]),
            body[..body.len() - 1].to_vec(),
            [&body[..], b"x"].concat(),
            vec![0],
        ] {
            let err = scan_data_row(&bad, 3, &mut starts).unwrap_err();
            assert_eq!(err.code, "08P01");
        }
        let mut overrun = data_row(&[Some(b"1")]);
        overrun[5] = 9;
        assert!(scan_data_row(&overrun, 1, &mut starts).is_err());
        let mut negative = data_row(&[Some(b"1")]);
        negative[2..6].copy_from_slice(&(-2i32).to_be_bytes());
        assert!(scan_data_row(&negative, 1, &mut starts).is_err());
    }
}
