//! The extended query protocol in the console, so drivers that prepare
//! every statement (tokio-postgres `query`, JDBC) work too.
//!
//! Parse checks the command (no parameters allowed); Describe of a
//! statement or portal of a `SHOW` command runs it for its columns (a
//! portal keeps that answer for its Execute), other commands have no rows
//! (NoData); Execute runs the command unless Describe already did and
//! sends its rows (up to the row limit, then PortalSuspended). Every
//! column is text, whose binary form is its UTF-8 bytes: Bind's result
//! formats only change the announced format. Portals end at Sync.

use std::collections::HashMap;

use bytes::{BufMut, BytesMut};

use super::commands::Command;
use super::resultset::{Answer, with_result_formats};
use crate::net::messages::{PgError, backend_tag, put_empty, put_message, split_cstr, tag};
use crate::proxy::Shared;

/// A bound statement.
struct Portal {
    command: Command,
    /// Result format codes from Bind.
    formats: Vec<i16>,
    /// The answer, once Describe or Execute ran the command.
    answer: Option<Answer>,
    /// Whether Execute sent the answer's completion already.
    completed: bool,
}

/// Prepared statements and portals of one console connection.
#[derive(Default)]
pub struct Extended {
    statements: HashMap<Vec<u8>, Command>,
    portals: HashMap<Vec<u8>, Portal>,
}

impl Extended {
    /// Handles one Parse, Bind, Describe, Execute or Close message,
    /// appending the answer to `out`. Returns the command an Execute
    /// completed (the console acts on SHUTDOWN once its answer is out).
    pub async fn handle(
        &mut self,
        message: u8,
        body: &[u8],
        shared: &Shared,
        out: &mut BytesMut,
    ) -> Result<Option<Command>, PgError> {
        let mut reader = Reader {
            rest: body,
            message,
        };
        match message {
            tag::PARSE => self.parse(&mut reader, out)?,
            tag::BIND => self.bind(&mut reader, out)?,
            tag::DESCRIBE => self.describe(&mut reader, shared, out).await?,
            tag::EXECUTE => return self.execute(&mut reader, shared, out).await,
            tag::CLOSE => self.close(&mut reader, out)?,
            _ => return Err(reader.malformed()),
        }
        Ok(None)
    }

    /// Sync: the implicit transaction ends, and its portals with it.
    pub fn sync(&mut self) {
        self.portals.clear();
    }

    /// A simple Query replaces the unnamed statement and portal.
    pub fn forget_unnamed(&mut self) {
        self.statements.remove(&b""[..]);
        self.portals.remove(&b""[..]);
    }

    fn parse(&mut self, reader: &mut Reader<'_>, out: &mut BytesMut) -> Result<(), PgError> {
        let name = reader.cstr()?.to_vec();
        let sql = String::from_utf8_lossy(reader.cstr()?).into_owned();
        if reader.i16()? != 0 {
            return Err(no_parameters());
        }
        if !name.is_empty() && self.statements.contains_key(&name) {
            return Err(PgError::error(
                "42P05",
                format!("prepared statement \"{}\" already exists", show(&name)),
            ));
        }
        self.statements.insert(name, Command::parse(&sql)?);
        put_empty(out, backend_tag::PARSE_COMPLETE);
        Ok(())
    }

    fn bind(&mut self, reader: &mut Reader<'_>, out: &mut BytesMut) -> Result<(), PgError> {
        let portal = reader.cstr()?.to_vec();
        let statement = reader.cstr()?;
        let parameter_formats = reader.count()?;
        reader.skip(parameter_formats * 2)?;
        if reader.i16()? != 0 {
            return Err(no_parameters());
        }
        let formats = (0..reader.count()?)
            .map(|_| reader.i16())
            .collect::<Result<Vec<i16>, PgError>>()?;
        let command = self
            .statements
            .get(statement)
            .ok_or_else(|| no_statement(statement))?
            .clone();
        if !portal.is_empty() && self.portals.contains_key(&portal) {
            return Err(PgError::error(
                "42P03",
                format!("portal \"{}\" already exists", show(&portal)),
            ));
        }
        self.portals.insert(
            portal,
            Portal {
                command,
                formats,
                answer: None,
                completed: false,
            },
        );
        put_empty(out, backend_tag::BIND_COMPLETE);
        Ok(())
    }

    async fn describe(
        &mut self,
        reader: &mut Reader<'_>,
        shared: &Shared,
        out: &mut BytesMut,
    ) -> Result<(), PgError> {
        let kind = reader.byte()?;
        let name = reader.cstr()?;
        if kind == b'S' {
            let command = self
                .statements
                .get(name)
                .ok_or_else(|| no_statement(name))?;
            put_message(out, backend_tag::PARAMETER_DESCRIPTION, |b| b.put_i16(0));
            let description = match command.returns_rows() {
                true => Answer::split(command.run(shared).await?).description,
                false => None,
            };
            put_description(out, description.as_deref(), &[]);
            return Ok(());
        }
        let portal = self.portals.get_mut(name).ok_or_else(|| no_portal(name))?;
        if portal.command.returns_rows() && portal.answer.is_none() {
            portal.answer = Some(Answer::split(portal.command.run(shared).await?));
        }
        let description = portal
            .answer
            .as_ref()
            .and_then(|a| a.description.as_deref());
        put_description(out, description, &portal.formats);
        Ok(())
    }

    async fn execute(
        &mut self,
        reader: &mut Reader<'_>,
        shared: &Shared,
        out: &mut BytesMut,
    ) -> Result<Option<Command>, PgError> {
        let name = reader.cstr()?;
        let limit = match reader.i32()? {
            n if n > 0 => n as usize,
            _ => usize::MAX,
        };
        let portal = self.portals.get_mut(name).ok_or_else(|| no_portal(name))?;
        let answer = match &mut portal.answer {
            Some(answer) => answer,
            empty => empty.insert(Answer::split(portal.command.run(shared).await?)),
        };
        for _ in 0..limit {
            let Some(row) = answer.rows.pop_front() else {
                break;
            };
            out.extend_from_slice(&row);
        }
        if !answer.rows.is_empty() {
            put_empty(out, backend_tag::PORTAL_SUSPENDED);
            return Ok(None);
        }
        out.extend_from_slice(&answer.completion);
        let first_completion = !std::mem::replace(&mut portal.completed, true);
        Ok(first_completion.then(|| portal.command.clone()))
    }

    fn close(&mut self, reader: &mut Reader<'_>, out: &mut BytesMut) -> Result<(), PgError> {
        let kind = reader.byte()?;
        let name = reader.cstr()?;
        match kind {
            b'S' => drop(self.statements.remove(name)),
            b'P' => drop(self.portals.remove(name)),
            _ => return Err(reader.malformed()),
        }
        put_empty(out, backend_tag::CLOSE_COMPLETE);
        Ok(())
    }
}

/// Appends the RowDescription (with `formats`), or NoData without one.
fn put_description(out: &mut BytesMut, description: Option<&[u8]>, formats: &[i16]) {
    match description {
        Some(description) => out.extend_from_slice(&with_result_formats(description, formats)),
        None => put_empty(out, backend_tag::NO_DATA),
    }
}

fn no_parameters() -> PgError {
    PgError::error("08P01", "admin console commands take no parameters")
}

fn no_statement(name: &[u8]) -> PgError {
    PgError::error(
        "26000",
        format!("prepared statement \"{}\" does not exist", show(name)),
    )
}

fn no_portal(name: &[u8]) -> PgError {
    PgError::error("34000", format!("portal \"{}\" does not exist", show(name)))
}

fn show(name: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(name)
}

/// Reads the fields of one message body, failing with a protocol error
/// (never a panic) when it is short.
struct Reader<'a> {
    rest: &'a [u8],
    message: u8,
}

impl<'a> Reader<'a> {
    fn malformed(&self) -> PgError {
        PgError::error(
            "08P01",
            format!("malformed '{}' message", char::from(self.message)),
        )
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PgError> {
        if self.rest.len() < n {
            return Err(self.malformed());
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    fn skip(&mut self, n: usize) -> Result<(), PgError> {
        self.take(n).map(drop)
    }

    fn byte(&mut self) -> Result<u8, PgError> {
        Ok(self.take(1)?[0])
    }

    fn i16(&mut self) -> Result<i16, PgError> {
        let bytes = self.take(2)?;
        Ok(i16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn i32(&mut self) -> Result<i32, PgError> {
        let bytes = self.take(4)?;
        Ok(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// A non-negative 16-bit count.
    fn count(&mut self) -> Result<usize, PgError> {
        usize::try_from(self.i16()?).map_err(|_| self.malformed())
    }

    fn cstr(&mut self) -> Result<&'a [u8], PgError> {
        let (text, rest) = split_cstr(self.rest).ok_or_else(|| self.malformed())?;
        self.rest = rest;
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_body(name: &str, sql: &str, parameters: i16) -> Vec<u8> {
        let mut body = BytesMut::new();
        crate::net::messages::put_cstr(&mut body, name.as_bytes());
        crate::net::messages::put_cstr(&mut body, sql.as_bytes());
        body.put_i16(parameters);
        for _ in 0..parameters {
            body.put_u32(0);
        }
        body.to_vec()
    }

    fn bind_body(portal: &str, statement: &str, values: i16, formats: &[i16]) -> Vec<u8> {
        let mut body = BytesMut::new();
        crate::net::messages::put_cstr(&mut body, portal.as_bytes());
        crate::net::messages::put_cstr(&mut body, statement.as_bytes());
        body.put_i16(0);
        body.put_i16(values);
        for _ in 0..values {
            body.put_i32(-1);
        }
        body.put_i16(formats.len() as i16);
        for f in formats {
            body.put_i16(*f);
        }
        body.to_vec()
    }

    fn run<T>(
        extended: &mut Extended,
        body: &[u8],
        step: impl FnOnce(&mut Extended, &mut Reader<'_>, &mut BytesMut) -> Result<T, PgError>,
    ) -> Result<BytesMut, PgError> {
        let mut out = BytesMut::new();
        let mut reader = Reader {
            rest: body,
            message: b'?',
        };
        step(extended, &mut reader, &mut out).map(|_| out)
    }

    #[test]
    fn parse_and_bind_check_commands_and_parameters() {
        let mut ext = Extended::default();
        let out = run(
            &mut ext,
            &parse_body("s1", "show pools", 0),
            Extended::parse,
        )
        .unwrap();
        assert_eq!(out[0], backend_tag::PARSE_COMPLETE);
        let again = run(
            &mut ext,
            &parse_body("s1", "SHOW POOLS", 0),
            Extended::parse,
        );
        assert_eq!(again.unwrap_err().code, "42P05");
        let typed = run(&mut ext, &parse_body("", "SHOW POOLS", 1), Extended::parse);
        assert_eq!(typed.unwrap_err().code, "08P01");
        let unknown = run(&mut ext, &parse_body("", "SELECT 1", 0), Extended::parse);
        assert_eq!(unknown.unwrap_err().code, "42601");

        let out = run(&mut ext, &bind_body("", "s1", 0, &[1]), Extended::bind).unwrap();
        assert_eq!(out[0], backend_tag::BIND_COMPLETE);
        assert_eq!(ext.portals[&b""[..]].formats, vec![1]);
        let valued = run(&mut ext, &bind_body("", "s1", 1, &[]), Extended::bind);
        assert_eq!(valued.unwrap_err().code, "08P01");
        let missing = run(&mut ext, &bind_body("", "nope", 0, &[]), Extended::bind);
        assert_eq!(missing.unwrap_err().code, "26000");
        ext.sync();
        assert!(ext.portals.is_empty());
        assert!(ext.statements.contains_key(&b"s1"[..]));
    }

    #[test]
    fn short_messages_are_protocol_errors() {
        let mut ext = Extended::default();
        let short = run(&mut ext, b"s1", Extended::parse);
        assert_eq!(short.unwrap_err().code, "08P01");
        let short = run(&mut ext, b"\0s1\0\0", Extended::bind);
        assert_eq!(short.unwrap_err().code, "08P01");
        let close = run(&mut ext, b"Sx\0", Extended::close).unwrap();
        assert_eq!(close[0], backend_tag::CLOSE_COMPLETE);
    }
}
