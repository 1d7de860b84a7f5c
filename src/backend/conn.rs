//! One connection from the proxy to a Postgres server: connect, authenticate
//! with the proxy's server credentials, and remember what the server told us
//! (parameters, cancel key) and what the proxy prepared on it.

use std::collections::BTreeMap;
use std::io;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::net::messages::{PgError, backend_tag, error_field, parameter_status_parts};
use crate::net::{Frame, peek_frame};

/// Largest message accepted from a server: Postgres' own limit (1 GiB).
pub const MAX_SERVER_MESSAGE: usize = 1 << 30;

/// Where and as whom to connect.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerTarget {
    /// `host:port` of the server.
    pub address: String,
    /// Role on the server.
    pub user: String,
    /// Password on the server, if it asks for one.
    pub password: Option<String>,
    /// Database on the server.
    pub database: String,
}

/// The server's cancel key, so a client's CancelRequest can be passed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelTarget {
    /// `host:port` of the server (shared: copied on every checkout).
    pub address: std::sync::Arc<str>,
    /// Backend process id.
    pub pid: i32,
    /// Backend secret key.
    pub secret: i32,
}

/// Why a server connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// TCP or I/O failure, or timeout.
    #[error("cannot connect to server {address}: {source}")]
    Io {
        /// The server.
        address: String,
        /// What failed.
        source: io::Error,
    },
    /// The server refused us with an ErrorResponse (bad password, no such database...).
    #[error("server {address} refused the connection: {code} {message}")]
    Refused {
        /// The server.
        address: String,
        /// SQLSTATE sent by the server.
        code: String,
        /// Message sent by the server.
        message: String,
    },
    /// The server asked for something the proxy cannot do.
    #[error("server {address}: {message}")]
    Unsupported {
        /// The server.
        address: String,
        /// What is missing.
        message: String,
    },
}

impl ConnectError {
    /// The error a client sees when its server connection cannot be made.
    pub fn to_client_error(&self) -> PgError {
        match self {
            ConnectError::Refused { code, message, .. }
                if code == "3D000" || code == "28P01" || code == "28000" =>
            {
                PgError::fatal("08004", format!("{self}")).with_hint(format!(
                    "check the server credentials in the shardwire config ({message})"
                ))
            }
            _ => PgError::fatal("08006", self.to_string()),
        }
    }
}

/// An authenticated server connection, ready for queries.
pub struct ServerConn {
    /// Read half of the socket.
    pub reader: OwnedReadHalf,
    /// Write half of the socket.
    pub writer: OwnedWriteHalf,
    /// Bytes read from the server, not yet processed.
    pub inbox: BytesMut,
    /// Bytes to send to the server.
    pub outbox: BytesMut,
    /// Its cancel key.
    pub cancel: CancelTarget,
    /// Every ParameterStatus the server reported, by name as sent.
    pub reported: BTreeMap<String, String>,
    /// Session parameters the proxy set on it for clients (lower-case names).
    pub session_params: BTreeMap<String, String>,
    /// Statements the proxy prepared on it (transaction pooling).
    pub prepared: crate::frontend::statements::ServerStatements,
    /// Transaction status of the last ReadyForQuery: `I`, `T` or `E`.
    pub status: u8,
    /// When it was opened.
    pub created: Instant,
    /// When it last went back to the pool.
    pub idle_since: Instant,
    /// A client may have written through it since the proxy last read its
    /// WAL position: read-your-writes routing records that position before
    /// the connection goes back to the pool.
    pub wrote: bool,
}

impl ServerConn {
    /// Connects and authenticates; waits for the first ReadyForQuery.
    pub async fn connect(
        target: &ServerTarget,
        timeout: Duration,
        max_prepared: usize,
    ) -> Result<ServerConn, ConnectError> {
        match tokio::time::timeout(timeout, Self::connect_inner(target, max_prepared)).await {
            Ok(result) => result,
            Err(_) => Err(ConnectError::Io {
                address: target.address.clone(),
                source: io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no ready server within {} ms (pool.connect_timeout_ms)",
                        timeout.as_millis()
                    ),
                ),
            }),
        }
    }

    async fn connect_inner(
        target: &ServerTarget,
        max_prepared: usize,
    ) -> Result<ServerConn, ConnectError> {
        let io_err = |source| ConnectError::Io {
            address: target.address.clone(),
            source,
        };
        let stream = TcpStream::connect(&target.address).await.map_err(io_err)?;
        stream.set_nodelay(true).map_err(io_err)?;
        let (reader, writer) = stream.into_split();
        let now = Instant::now();
        let mut conn = ServerConn {
            reader,
            writer,
            inbox: BytesMut::with_capacity(8192),
            outbox: BytesMut::with_capacity(8192),
            cancel: CancelTarget {
                address: target.address.as_str().into(),
                pid: 0,
                secret: 0,
            },
            reported: BTreeMap::new(),
            session_params: BTreeMap::new(),
            prepared: crate::frontend::statements::ServerStatements::new(max_prepared),
            status: b'I',
            created: now,
            idle_since: now,
            wrote: false,
        };
        conn.startup(target).await?;
        Ok(conn)
    }

    async fn startup(&mut self, target: &ServerTarget) -> Result<(), ConnectError> {
        let address = target.address.clone();
        let io_err = |source| ConnectError::Io {
            address: address.clone(),
            source,
        };
        let mut out = BytesMut::new();
        frontend::startup_message(
            [
                ("user", target.user.as_str()),
                ("database", target.database.as_str()),
            ],
            &mut out,
        )
        .map_err(io_err)?;
        self.send(&out).await.map_err(io_err)?;
        let mut scram: Option<ScramSha256> = None;
        loop {
            let frame = self.read_frame().await.map_err(io_err)?;
            let body = frame.body(&self.inbox).to_vec();
            self.inbox.advance(frame.len);
            match frame.tag {
                backend_tag::AUTHENTICATION => {
                    self.answer_auth(target, &body, &mut scram).await?;
                }
                backend_tag::PARAMETER_STATUS => {
                    if let Some((name, value)) = parameter_status_parts(&body) {
                        self.reported.insert(name.to_string(), value.to_string());
                    }
                }
                backend_tag::BACKEND_KEY_DATA if body.len() >= 8 => {
                    self.cancel.pid = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                    self.cancel.secret = i32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                }
                backend_tag::READY_FOR_QUERY => return Ok(()),
                backend_tag::ERROR => {
                    return Err(ConnectError::Refused {
                        address: target.address.clone(),
                        code: error_field(&body, b'C').unwrap_or("XX000").to_string(),
                        message: error_field(&body, b'M').unwrap_or("").to_string(),
                    });
                }
                _ => {}
            }
        }
    }

    async fn answer_auth(
        &mut self,
        target: &ServerTarget,
        body: &[u8],
        scram: &mut Option<ScramSha256>,
    ) -> Result<(), ConnectError> {
        let unsupported = |message: String| ConnectError::Unsupported {
            address: target.address.clone(),
            message,
        };
        let io_err = |source| ConnectError::Io {
            address: target.address.clone(),
            source,
        };
        if body.len() < 4 {
            return Err(unsupported("truncated authentication request".into()));
        }
        let code = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        let data = &body[4..];
        let password = || {
            target.password.as_deref().ok_or_else(|| {
                unsupported(format!(
                    "asks for a password for role \"{}\" but the config has no server_password for it",
                    target.user
                ))
            })
        };
        let mut out = BytesMut::new();
        match code {
            0 => return Ok(()),
            3 => frontend::password_message(password()?.as_bytes(), &mut out).map_err(io_err)?,
            5 if data.len() >= 4 => {
                let salt = [data[0], data[1], data[2], data[3]];
                let hash = postgres_protocol::authentication::md5_hash(
                    target.user.as_bytes(),
                    password()?.as_bytes(),
                    salt,
                );
                frontend::password_message(hash.as_bytes(), &mut out).map_err(io_err)?;
            }
            10 => {
                let offers_scram = data
                    .split(|&b| b == 0)
                    .any(|mechanism| mechanism == b"SCRAM-SHA-256");
                if !offers_scram {
                    return Err(unsupported("offers no SASL mechanism but SCRAM-SHA-256-PLUS, which shardwire does not speak to servers".into()));
                }
                let client =
                    ScramSha256::new(password()?.as_bytes(), ChannelBinding::unsupported());
                frontend::sasl_initial_response("SCRAM-SHA-256", client.message(), &mut out)
                    .map_err(io_err)?;
                *scram = Some(client);
            }
            11 => {
                let client = scram
                    .as_mut()
                    .ok_or_else(|| unsupported("SASL continue without start".into()))?;
                client.update(data).map_err(io_err)?;
                frontend::sasl_response(client.message(), &mut out).map_err(io_err)?;
            }
            12 => {
                let client = scram
                    .as_mut()
                    .ok_or_else(|| unsupported("SASL final without start".into()))?;
                client.finish(data).map_err(io_err)?;
                return Ok(());
            }
            other => {
                return Err(unsupported(format!(
                    "asks for authentication method {other}, which shardwire does not support"
                )));
            }
        }
        self.send(&out).await.map_err(io_err)
    }

    async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes).await
    }

    /// Reads until one whole message is in `inbox`; the caller consumes it.
    pub async fn read_frame(&mut self) -> io::Result<Frame> {
        loop {
            if let Some(frame) = peek_frame(&self.inbox, MAX_SERVER_MESSAGE)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?
            {
                return Ok(frame);
            }
            if self.reader.read_buf(&mut self.inbox).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "server closed the connection",
                ));
            }
        }
    }

    /// Runs a one-value query of the proxy's own (a WAL position, a
    /// setting) and returns the first column of its first row as text
    /// (`None` for no row or NULL).
    pub async fn query_value(&mut self, sql: &str) -> Result<Option<String>, PgError> {
        let mut value = None;
        self.run_query(sql, &mut |tag, body| {
            if tag == backend_tag::DATA_ROW && value.is_none() {
                value = first_column(body);
            }
        })
        .await?;
        Ok(value)
    }

    /// Sends a simple query and waits for its ReadyForQuery, collecting
    /// ParameterStatus changes. Used for the proxy's own maintenance queries
    /// (parameter sync, rollback, reset) while no client is attached.
    pub async fn run_maintenance(&mut self, sql: &str) -> Result<(), PgError> {
        self.run_query(sql, &mut |_, _| {}).await
    }

    /// Runs a simple query to its ReadyForQuery, showing every other
    /// message of the answer to `on_message`.
    async fn run_query(
        &mut self,
        sql: &str,
        on_message: &mut (dyn FnMut(u8, &[u8]) + Send),
    ) -> Result<(), PgError> {
        let mut out = BytesMut::new();
        crate::net::messages::put_query(&mut out, sql);
        // A simple query destroys the server's unnamed statement.
        self.prepared.unnamed = None;
        let lost = |e: io::Error| PgError::fatal("08006", format!("server connection lost: {e}"));
        self.send(&out).await.map_err(lost)?;
        let mut failure = None;
        loop {
            let frame = self.read_frame().await.map_err(lost)?;
            let body = frame.body(&self.inbox);
            match frame.tag {
                backend_tag::PARAMETER_STATUS => {
                    if let Some((name, value)) = parameter_status_parts(body) {
                        self.reported.insert(name.to_string(), value.to_string());
                    }
                }
                backend_tag::ERROR if failure.is_none() => {
                    failure = Some(PgError::error(
                        error_field(body, b'C').unwrap_or("XX000"),
                        error_field(body, b'M').unwrap_or("").to_string(),
                    ));
                }
                backend_tag::READY_FOR_QUERY => {
                    self.status = body.first().copied().unwrap_or(b'I');
                    self.inbox.advance(frame.len);
                    return failure.map_or(Ok(()), Err);
                }
                tag => on_message(tag, body),
            }
            self.inbox.advance(frame.len);
        }
    }

    /// True when the server is idle, outside a transaction, with nothing
    /// buffered in either direction: safe to lend to another client.
    pub fn is_clean(&self) -> bool {
        self.status == b'I' && self.inbox.is_empty() && self.outbox.is_empty()
    }

    /// Non-blocking check that the idle connection is still usable: no EOF
    /// and no unsolicited message (such as a FATAL on server shutdown).
    pub fn looks_alive(&self) -> bool {
        let mut probe = [0u8; 1];
        match self.reader.try_read(&mut probe) {
            Err(e) => e.kind() == io::ErrorKind::WouldBlock,
            Ok(_) => false,
        }
    }
}

/// The first column of a DataRow body as text; `None` when it is NULL or
/// the row is malformed.
fn first_column(body: &[u8]) -> Option<String> {
    let count = i16::from_be_bytes(body.get(0..2)?.try_into().ok()?);
    if count < 1 {
        return None;
    }
    let len = i32::from_be_bytes(body.get(2..6)?.try_into().ok()?);
    let len = usize::try_from(len).ok()?;
    let bytes = body.get(6..6 + len)?;
    String::from_utf8(bytes.to_vec()).ok()
}
