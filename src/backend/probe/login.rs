//! The probe's own connections to the servers (tokio-postgres), as the
//! `replicas.probe_user`, and the one query that reads a server's role and
//! WAL position.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::backend::topology::{Lsn, ServerStatus, parse_lsn};
use crate::config::Config;
use crate::net::messages::PgError;

/// Role, WAL position and (out of recovery) WAL file name, whose first 8
/// hex digits are the timeline being written now. Works for any role: no
/// function here needs a superuser.
const STATUS_SQL: &str = "SELECT pg_is_in_recovery(), \
     CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, \
     CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END";

/// The shortest time a server gets to answer a probe, however short the
/// probe interval: a busy server is not a dead one.
const MIN_QUERY_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a probe of a server failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum ProbeError {
    /// Connecting or answering took too long.
    #[error("no answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The connection failed or the server answered with an error.
    #[error("{0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// The server answered something the probe cannot read.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
}

impl ProbeError {
    /// The error an admin sees when a statement on `address` failed:
    /// the server's own error when it sent one.
    pub(super) fn to_pg_error(&self, address: &str) -> PgError {
        match self {
            ProbeError::Postgres(e) => match e.as_db_error() {
                Some(db) => PgError::error(
                    db.code().code(),
                    format!("server {address}: {}", db.message()),
                ),
                None => PgError::error(
                    "08006",
                    format!("connection to server {address} failed: {e}"),
                ),
            },
            ProbeError::Timeout(_) => PgError::error("57014", format!("server {address}: {self}")),
            ProbeError::Unexpected(_) => {
                PgError::error("XX000", format!("server {address}: {self}"))
            }
        }
    }
}

/// Where and as whom the probe logs in, and how long it waits.
#[derive(Debug, Clone)]
pub(super) struct ProbeLogin {
    user: String,
    password: Option<String>,
    database: String,
    connect_timeout: Duration,
    /// Time a server gets to answer one probe query.
    pub(super) query_timeout: Duration,
}

impl ProbeLogin {
    /// The `replicas.probe_user`, else the first user with a server
    /// password, else the first user; on the first database's server
    /// database (`postgres` without databases). `None`: no such user.
    pub(super) fn from_config(config: &Config) -> Option<ProbeLogin> {
        let user = crate::backend::control::control_user(config)?;
        Some(ProbeLogin {
            user: user.server_user().to_string(),
            password: user.server_password().map(str::to_string),
            database: config
                .databases
                .first()
                .map_or("postgres", |d| d.server_database())
                .to_string(),
            connect_timeout: config.pool.connect_timeout(),
            query_timeout: config.replicas.probe_interval().max(MIN_QUERY_TIMEOUT),
        })
    }

    /// Opens a connection to `address` (`host:port`, `[v6]:port`).
    pub(super) async fn connect(&self, address: &str) -> Result<ProbeConnection, ProbeError> {
        let pg = crate::backend::control::control_config(
            address,
            &crate::backend::control::ControlLogin {
                user: &self.user,
                password: self.password.as_deref(),
                database: &self.database,
                application_name: "shardwire-probe",
                connect_timeout: self.connect_timeout,
            },
        );
        let (client, connection) =
            bounded(self.connect_timeout, pg.connect(tokio_postgres::NoTls)).await??;
        let task = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(ProbeConnection { client, task })
    }
}

/// Awaits `work` for at most `limit`.
async fn bounded<T>(limit: Duration, work: impl Future<Output = T>) -> Result<T, ProbeError> {
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| ProbeError::Timeout(limit))
}

/// One open probe connection; dropping it closes the connection.
pub(super) struct ProbeConnection {
    client: Client,
    task: JoinHandle<()>,
}

impl Drop for ProbeConnection {
    fn drop(&mut self) {
        // A hung server must not keep the connection's task alive forever.
        self.task.abort();
    }
}

impl ProbeConnection {
    /// Whether the connection is known to be broken.
    pub(super) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Asks the server for its role and WAL position.
    pub(super) async fn status(&self, limit: Duration) -> Result<ServerStatus, ProbeError> {
        let row = self.query_row(STATUS_SQL, limit).await?;
        parse_status(&row)
    }

    /// Runs `sql` and returns the first column of its only row.
    pub(super) async fn query_value(
        &self,
        sql: &str,
        limit: Duration,
    ) -> Result<Option<String>, ProbeError> {
        let row = self.query_row(sql, limit).await?;
        Ok(row.into_iter().next().flatten())
    }

    async fn query_row(
        &self,
        sql: &str,
        limit: Duration,
    ) -> Result<Vec<Option<String>>, ProbeError> {
        let messages = bounded(limit, self.client.simple_query(sql)).await??;
        messages
            .iter()
            .find_map(|m| match m {
                SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_string))
                        .collect(),
                ),
                _ => None,
            })
            .ok_or_else(|| ProbeError::Unexpected(format!("no row from {sql}")))
    }
}

/// Reads the answer to [`STATUS_SQL`].
fn parse_status(row: &[Option<String>]) -> Result<ServerStatus, ProbeError> {
    let unexpected = || ProbeError::Unexpected(format!("{row:?}"));
    let in_recovery = match row.first().and_then(Option::as_deref) {
        Some("t") => true,
        Some("f") => false,
        _ => return Err(unexpected()),
    };
    let position: Lsn = match row.get(1).and_then(Option::as_deref) {
        None => 0,
        Some(text) => parse_lsn(text).ok_or_else(unexpected)?,
    };
    let timeline = row
        .get(2)
        .and_then(Option::as_deref)
        .and_then(|walfile| walfile.get(..8))
        .and_then(|hex| u32::from_str_radix(hex, 16).ok());
    Ok(ServerStatus {
        in_recovery,
        position,
        timeline,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[Option<&str>]) -> Vec<Option<String>> {
        cells.iter().map(|c| c.map(str::to_string)).collect()
    }

    #[test]
    fn status_rows_are_read_for_both_roles() {
        let primary = parse_status(&row(&[
            Some("f"),
            Some("0/3000148"),
            Some("000000020000000000000003"),
        ]))
        .unwrap();
        assert_eq!(
            primary,
            ServerStatus {
                in_recovery: false,
                position: 0x300_0148,
                timeline: Some(2)
            }
        );
        let replica = parse_status(&row(&[Some("t"), Some("1/10"), None])).unwrap();
        assert_eq!(
            replica,
            ServerStatus {
                in_recovery: true,
                position: 0x1_0000_0010,
                timeline: None
            }
        );
        let nothing_replayed = parse_status(&row(&[Some("t"), None, None])).unwrap();
        assert_eq!(nothing_replayed.position, 0);
    }

    #[test]
    fn odd_status_rows_are_errors() {
        assert!(parse_status(&row(&[])).is_err());
        assert!(parse_status(&row(&[Some("yes"), Some("0/1"), None])).is_err());
        assert!(parse_status(&row(&[Some("f"), Some("garbage"), None])).is_err());
    }
}
