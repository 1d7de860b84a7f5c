//! What a server (or the proxy) answered to one query, in a form two answers
//! can be compared in: column names (and types, in the extended protocol),
//! rows of canonical text values, or the error's SQLSTATE.

use std::fmt;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, SimpleQueryMessage};

use super::decode::{Raw, canonical};
use super::params::Param;

/// One result row: canonical text per column, `None` for NULL.
pub type Row = Vec<Option<String>>;

/// A result column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Its name as the client sees it.
    pub name: String,
    /// Its type name (extended protocol only: the simple protocol's row
    /// description reaches tokio-postgres' users without types).
    pub type_name: Option<String>,
}

/// An answer to one query.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// A result set.
    Rows {
        /// The row description.
        columns: Vec<Column>,
        /// The rows, in the order they arrived.
        rows: Vec<Row>,
        /// The row count of the CommandComplete tag (simple protocol only).
        tag_rows: Option<u64>,
    },
    /// An ErrorResponse (`code` is its SQLSTATE), or a client-side failure
    /// (`code` is `None`: a broken connection, a timeout, a test bug).
    Error {
        /// SQLSTATE.
        code: Option<String>,
        /// The message.
        message: String,
    },
}

impl Answer {
    /// The answer of a failed call.
    pub fn from_error(error: &tokio_postgres::Error) -> Answer {
        match error.as_db_error() {
            Some(db) => Answer::Error {
                code: Some(db.code().code().to_string()),
                message: db.message().to_string(),
            },
            None => Answer::Error {
                code: None,
                message: error.to_string(),
            },
        }
    }

    /// A client-side failure (no SQLSTATE).
    pub fn failure(message: impl Into<String>) -> Answer {
        Answer::Error {
            code: None,
            message: message.into(),
        }
    }
}

/// Runs `sql` with the simple query protocol (text results).
pub async fn simple(client: &Client, sql: &str) -> Answer {
    let messages = match client.simple_query(sql).await {
        Ok(messages) => messages,
        Err(e) => return Answer::from_error(&e),
    };
    let mut columns = Vec::new();
    let mut rows = Vec::new();
    let mut tag_rows = None;
    for message in messages {
        match message {
            SimpleQueryMessage::RowDescription(description) => {
                columns = description
                    .iter()
                    .map(|c| Column {
                        name: c.name().to_string(),
                        type_name: None,
                    })
                    .collect();
            }
            SimpleQueryMessage::Row(row) => {
                rows.push(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_string))
                        .collect(),
                );
            }
            SimpleQueryMessage::CommandComplete(count) => tag_rows = Some(count),
            _ => return Answer::failure("unexpected simple-query message"),
        }
    }
    Answer::Rows {
        columns,
        rows,
        tag_rows,
    }
}

/// Runs `sql` with the extended protocol: Parse/Describe (prepare), then
/// Bind with `params` and binary results, Execute.
pub async fn extended(client: &Client, sql: &str, params: &[Param]) -> Answer {
    let statement = match client.prepare(sql).await {
        Ok(statement) => statement,
        Err(e) => return Answer::from_error(&e),
    };
    let columns: Vec<Column> = statement
        .columns()
        .iter()
        .map(|c| Column {
            name: c.name().to_string(),
            type_name: Some(c.type_().name().to_string()),
        })
        .collect();
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
    let result = match client.query(&statement, &refs).await {
        Ok(result) => result,
        Err(e) => return Answer::from_error(&e),
    };
    let mut rows = Vec::with_capacity(result.len());
    for row in &result {
        let mut values = Vec::with_capacity(row.len());
        for (i, column) in row.columns().iter().enumerate() {
            match row.try_get::<_, Option<Raw>>(i) {
                Ok(value) => values.push(value.map(|raw| canonical(column.type_(), raw.0))),
                Err(e) => return Answer::failure(format!("column {i}: {e}")),
            }
        }
        rows.push(values);
    }
    Answer::Rows {
        columns,
        rows,
        tag_rows: None,
    }
}

/// Shows at most this many rows of an answer in a report.
const SHOWN_ROWS: usize = 25;

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Error { code, message } => {
                write!(
                    f,
                    "ERROR {}: {message}",
                    code.as_deref().unwrap_or("(no SQLSTATE)")
                )
            }
            Answer::Rows {
                columns,
                rows,
                tag_rows,
            } => {
                let header: Vec<String> = columns
                    .iter()
                    .map(|c| match &c.type_name {
                        Some(t) => format!("{}::{t}", c.name),
                        None => c.name.clone(),
                    })
                    .collect();
                write!(f, "{} row(s)", rows.len())?;
                if let Some(n) = tag_rows {
                    write!(f, " (tag: {n})")?;
                }
                write!(f, " [{}]", header.join(", "))?;
                for row in rows.iter().take(SHOWN_ROWS) {
                    write!(f, "\n      {}", format_row(row))?;
                }
                if rows.len() > SHOWN_ROWS {
                    write!(f, "\n      …")?;
                }
                Ok(())
            }
        }
    }
}

/// `(1, 'a', NULL)`-style rendering of a row.
pub fn format_row(row: &Row) -> String {
    let values: Vec<String> = row
        .iter()
        .map(|v| match v {
            Some(v) => format!("{v:?}"),
            None => "NULL".to_string(),
        })
        .collect();
    format!("({})", values.join(", "))
}
