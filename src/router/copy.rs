//! COPY statements: which table, which columns, which data format.
//!
//! The router only classifies COPY; the session moves the data. For
//! `COPY t FROM STDIN` into a sharded table it splits the rows by key, which
//! needs the column list (to find the key field) and the exact format
//! options (to cut rows into fields): [`CopyTarget`] gives both, with
//! Postgres' defaults filled in.

use sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, Ident, ObjectName,
};

use super::facts::fold;
use super::facts::table_name;

/// Direction of a COPY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyDirection {
    /// `COPY ... FROM STDIN`: the client sends rows.
    In,
    /// `COPY ... TO STDOUT`: the client receives rows.
    Out,
}

/// Data format of a COPY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFormat {
    /// Postgres' default text format (tab-separated, `\N` for NULL).
    Text,
    /// CSV.
    Csv,
    /// Postgres' binary COPY format.
    Binary,
}

/// A client-side `COPY table [(columns)] FROM STDIN / TO STDOUT` and its
/// options as the server will apply them (defaults filled in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyTarget {
    /// Normalized table name (`schema.table`).
    pub table: String,
    /// The column list (folded identifiers), `None` for all columns in
    /// table order.
    pub columns: Option<Vec<String>>,
    /// FROM STDIN or TO STDOUT.
    pub direction: CopyDirection,
    /// Data format.
    pub format: CopyFormat,
    /// Field delimiter (tab for text, comma for CSV).
    pub delimiter: char,
    /// The string that means NULL (`\N` for text, empty for CSV).
    pub null: String,
    /// The first line is a header (text and CSV).
    pub header: bool,
    /// CSV quote character.
    pub quote: char,
    /// CSV escape character (the quote character unless given).
    pub escape: char,
}

/// What the router keeps of a COPY statement.
#[derive(Debug, Clone)]
pub(super) enum CopyStatement {
    /// COPY of a table.
    Table {
        /// Normalized table name.
        table: String,
        /// The target when the data goes through the client (STDIN /
        /// STDOUT); `None` for server-side files and programs.
        client_side: Option<CopyTarget>,
        /// FROM (rows into the table) or TO.
        direction: CopyDirection,
    },
    /// `COPY (query) TO ...`: the query is routed as a read.
    Query,
}

/// Reads a parsed COPY statement.
pub(super) fn copy_statement(
    source: &CopySource,
    to: bool,
    client_side: bool,
    options: &[CopyOption],
    legacy_options: &[CopyLegacyOption],
) -> CopyStatement {
    let CopySource::Table {
        table_name: name,
        columns,
    } = source
    else {
        return CopyStatement::Query;
    };
    let direction = if to {
        CopyDirection::Out
    } else {
        CopyDirection::In
    };
    let table = table_name(name);
    let target = client_side.then(|| target(name, columns, direction, options, legacy_options));
    CopyStatement::Table {
        table,
        client_side: target,
        direction,
    }
}

/// Explicitly given options, before defaults.
#[derive(Default)]
struct Given {
    format: Option<CopyFormat>,
    delimiter: Option<char>,
    null: Option<String>,
    header: bool,
    quote: Option<char>,
    escape: Option<char>,
}

fn target(
    name: &ObjectName,
    columns: &[Ident],
    direction: CopyDirection,
    options: &[CopyOption],
    legacy_options: &[CopyLegacyOption],
) -> CopyTarget {
    let mut given = Given::default();
    options.iter().for_each(|o| given.option(o));
    legacy_options.iter().for_each(|o| given.legacy(o));
    let format = given.format.unwrap_or(CopyFormat::Text);
    let csv = format == CopyFormat::Csv;
    let quote = given.quote.unwrap_or('"');
    CopyTarget {
        table: table_name(name),
        columns: (!columns.is_empty()).then(|| columns.iter().map(fold).collect()),
        direction,
        format,
        delimiter: given.delimiter.unwrap_or(if csv { ',' } else { '\t' }),
        null: given.null.unwrap_or_else(|| {
            if csv {
                String::new()
            } else {
                "\\N".to_string()
            }
        }),
        header: given.header,
        quote,
        escape: given.escape.unwrap_or(quote),
    }
}

impl Given {
    fn option(&mut self, option: &CopyOption) {
        match option {
            CopyOption::Format(name) => {
                self.format = Some(match fold(name).as_str() {
                    "csv" => CopyFormat::Csv,
                    "binary" => CopyFormat::Binary,
                    _ => CopyFormat::Text,
                })
            }
            CopyOption::Delimiter(c) => self.delimiter = Some(*c),
            CopyOption::Null(s) => self.null = Some(s.clone()),
            CopyOption::Header(on) => self.header = *on,
            CopyOption::Quote(c) => self.quote = Some(*c),
            CopyOption::Escape(c) => self.escape = Some(*c),
            _ => {}
        }
    }

    fn legacy(&mut self, option: &CopyLegacyOption) {
        match option {
            CopyLegacyOption::Binary => self.format = Some(CopyFormat::Binary),
            CopyLegacyOption::Csv(csv_options) => {
                self.format = Some(CopyFormat::Csv);
                for csv_option in csv_options {
                    match csv_option {
                        CopyLegacyCsvOption::Header => self.header = true,
                        CopyLegacyCsvOption::Quote(c) => self.quote = Some(*c),
                        CopyLegacyCsvOption::Escape(c) => self.escape = Some(*c),
                        _ => {}
                    }
                }
            }
            CopyLegacyOption::Delimiter(c) => self.delimiter = Some(*c),
            CopyLegacyOption::Null(s) => self.null = Some(s.clone()),
            CopyLegacyOption::Header => self.header = true,
            _ => {}
        }
    }
}
