//! Result sets of the admin console: text columns, one CommandComplete;
//! and the split of an encoded answer that the extended protocol needs
//! (its RowDescription for Describe, its rows and completion for Execute).

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};

use crate::net::messages::{backend_tag, put_cstr, put_message};

/// `text` type oid: every console column is text, as in PgBouncer.
const TEXT_OID: u32 = 25;

/// Writes a RowDescription, the rows and a CommandComplete with `tag`.
pub fn result_set(columns: &[&str], rows: &[Vec<String>], tag: &str) -> BytesMut {
    encode(
        columns,
        rows.iter().map(|row| row.iter().map(|v| Some(v.as_str()))),
        tag,
    )
}

/// [`result_set`] whose cells may be NULL (`None`): a value that does not
/// apply, or could not be read.
pub fn result_set_with_nulls(
    columns: &[&str],
    rows: &[Vec<Option<String>>],
    tag: &str,
) -> BytesMut {
    encode(
        columns,
        rows.iter().map(|row| row.iter().map(Option::as_deref)),
        tag,
    )
}

fn encode<'a, R, C>(columns: &[&str], rows: R, tag: &str) -> BytesMut
where
    R: Iterator<Item = C>,
    C: ExactSizeIterator<Item = Option<&'a str>>,
{
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
    let mut count = 0;
    for row in rows {
        count += 1;
        put_message(&mut out, backend_tag::DATA_ROW, |b| {
            b.put_i16(row.len() as i16);
            for value in row {
                match value {
                    Some(value) => {
                        b.put_i32(value.len() as i32);
                        b.put_slice(value.as_bytes());
                    }
                    None => b.put_i32(-1),
                }
            }
        });
    }
    command_complete(&mut out, &format!("{tag} {count}"));
    out
}

/// Writes a CommandComplete with `tag`.
pub fn command_complete(out: &mut BytesMut, tag: &str) {
    put_message(out, backend_tag::COMMAND_COMPLETE, |b| {
        put_cstr(b, tag.as_bytes())
    });
}

/// A command's encoded answer taken apart for the extended protocol,
/// where the row description and the rows are sent at different times.
#[derive(Debug, Default)]
pub struct Answer {
    /// The RowDescription; `None` for a command without rows.
    pub description: Option<Bytes>,
    /// DataRow messages not sent yet.
    pub rows: VecDeque<Bytes>,
    /// What follows the rows: CommandComplete (or EmptyQueryResponse),
    /// after any notices.
    pub completion: BytesMut,
}

impl Answer {
    /// Splits an answer encoded for the simple protocol into its messages.
    pub fn split(mut encoded: BytesMut) -> Answer {
        let mut answer = Answer::default();
        while encoded.len() >= 5 {
            let tag = encoded[0];
            let len = u32::from_be_bytes([encoded[1], encoded[2], encoded[3], encoded[4]]) as usize;
            let message = encoded.split_to((len + 1).min(encoded.len())).freeze();
            match tag {
                backend_tag::ROW_DESCRIPTION if answer.description.is_none() => {
                    answer.description = Some(message)
                }
                backend_tag::DATA_ROW => answer.rows.push_back(message),
                _ => answer.completion.extend_from_slice(&message),
            }
        }
        answer
    }
}

/// `description` with the result format of each column set as Bind asked
/// (`formats`: none means all text, one applies to every column, else one
/// per column). The console's values are text, whose binary form is the
/// same UTF-8 bytes: only the announced format changes.
pub fn with_result_formats(description: &[u8], formats: &[i16]) -> Bytes {
    let mut out = BytesMut::from(description);
    let mut at = 7; // tag, length, column count
    let mut column = 0;
    while let Some(name_len) = out
        .get(at..)
        .and_then(|rest| rest.iter().position(|&b| b == 0))
    {
        // Name and NUL, then table oid, column number, type, size, modifier.
        let format_at = at + name_len + 1 + 16;
        let format = match formats {
            [] => 0,
            [all] => *all,
            each => each.get(column).copied().unwrap_or(0),
        };
        let Some(slot) = out.get_mut(format_at..format_at + 2) else {
            break;
        };
        slot.copy_from_slice(&format.to_be_bytes());
        at = format_at + 2;
        column += 1;
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_split_into_description_rows_and_completion() {
        let encoded = result_set(
            &["a", "bb"],
            &[vec!["1".into(), "x".into()], vec!["2".into(), "y".into()]],
            "SHOW",
        );
        let whole = encoded.clone();
        let answer = Answer::split(encoded);
        let description = answer.description.expect("a description");
        assert_eq!(description[0], backend_tag::ROW_DESCRIPTION);
        assert_eq!(answer.rows.len(), 2);
        assert_eq!(answer.completion[0], backend_tag::COMMAND_COMPLETE);
        let total = description.len()
            + answer.rows.iter().map(Bytes::len).sum::<usize>()
            + answer.completion.len();
        assert_eq!(total, whole.len());

        let mut done = BytesMut::new();
        command_complete(&mut done, "PAUSE");
        let answer = Answer::split(done.clone());
        assert!(answer.description.is_none() && answer.rows.is_empty());
        assert_eq!(answer.completion, done);
    }

    #[test]
    fn result_formats_are_patched_per_column() {
        let encoded = result_set(&["a", "bb"], &[], "SHOW");
        let description = Answer::split(encoded).description.expect("description");
        let formats = |d: &[u8]| {
            // Last two bytes of each column: after "a\0" + 16 and "bb\0" + 16.
            let first = 7 + 2 + 16;
            let second = first + 2 + 3 + 16;
            (
                i16::from_be_bytes([d[first], d[first + 1]]),
                i16::from_be_bytes([d[second], d[second + 1]]),
            )
        };
        assert_eq!(formats(&description), (0, 0));
        assert_eq!(formats(&with_result_formats(&description, &[1])), (1, 1));
        assert_eq!(formats(&with_result_formats(&description, &[0, 1])), (0, 1));
        assert_eq!(formats(&with_result_formats(&description, &[])), (0, 0));
    }

    #[test]
    fn nulls_are_encoded_as_minus_one() {
        let encoded = result_set_with_nulls(&["a"], &[vec![None]], "SHOW");
        let answer = Answer::split(encoded);
        let row = &answer.rows[0];
        assert_eq!(&row[row.len() - 4..], &(-1i32).to_be_bytes());
    }
}
