//! Result sets of the admin console: text columns, one CommandComplete.

use bytes::{BufMut, BytesMut};

use crate::net::messages::{backend_tag, put_cstr, put_message};

/// `text` type oid: every console column is text, as in PgBouncer.
const TEXT_OID: u32 = 25;

/// Writes a RowDescription, the rows and a CommandComplete with `tag`.
pub fn result_set(columns: &[&str], rows: &[Vec<String>], tag: &str) -> BytesMut {
    let mut out = BytesMut::new();
    put_message(&mut out, backend_tag::ROW_DESCRIPTION, |b| {
        b.put_i16(columns.len() as i16);
        for name in columns {
            put_cstr(b, name.as_bytes());
            b.put_u32(0); // table oid
            b.put_i16(0); // column number
            b.put_u32(TEXT_OID);
            b.put_i16(-1); // variable length
            b.put_i32(-1); // no type modifier
            b.put_i16(0); // text format
        }
    });
    for row in rows {
        put_message(&mut out, backend_tag::DATA_ROW, |b| {
            b.put_i16(row.len() as i16);
            for value in row {
                b.put_i32(value.len() as i32);
                b.put_slice(value.as_bytes());
            }
        });
    }
    command_complete(&mut out, &format!("{tag} {}", rows.len()));
    out
}

/// Writes a CommandComplete with `tag`.
pub fn command_complete(out: &mut BytesMut, tag: &str) {
    put_message(out, backend_tag::COMMAND_COMPLETE, |b| {
        put_cstr(b, tag.as_bytes())
    });
}
