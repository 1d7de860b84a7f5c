//! Client side of the data plane: startup (TLS negotiation, cancel requests,
//! the StartupMessage), authentication, and the per-client query loop.

pub mod auth;
pub mod cancel;
pub mod clients;
pub(crate) mod io;
pub mod params;
pub mod pipeline;
pub mod session;
pub mod sharded;
pub mod startup;
pub mod statements;
pub mod tracker;

use std::sync::Arc;

use bytes::{Buf, BufMut, BytesMut};
use pgwire::messages::startup::Authentication;
use tokio::io::AsyncWriteExt;

use crate::config::{PoolMode, User};
use crate::net::messages::{
    PgError, backend_tag, put_authentication, put_backend_key_data, put_cstr, put_message,
    put_parameter_status, put_ready_for_query,
};
use crate::net::stream::ClientStream;
use crate::observe::event::{Route, SessionInfo};
use crate::proxy::{Runtime, Shared};
use io::read_startup_packet;
use params::Params;
use pipeline::Pipeline;
use session::Session;
use startup::{StartupPacket, parse_startup_packet};
use statements::ClientStatements;
use tracing::Instrument;

/// Startup packets are small; Postgres allows 10,000 bytes.
const MAX_STARTUP_PACKET: usize = 10_000;

/// Who logged in, to which database, asking for which parameters.
struct Login {
    user: User,
    database: String,
    gucs: Params,
}

/// Serves one client connection from its first byte to its last.
pub async fn serve_client(stream: ClientStream, shared: Arc<Shared>) {
    let peer = stream.peer();
    let runtime = shared.runtime();
    let mut slot = Some(stream);
    let mut inbox = BytesMut::with_capacity(512);
    let timeout = runtime.config.proxy.startup_timeout();
    let login =
        // Boxed, like the session setup below: once startup is done an idle
        // client costs only its session state.
        tokio::time::timeout(
            timeout,
            Box::pin(handshake(&mut slot, &mut inbox, &shared, &runtime)),
        )
        .await;
    let Some(mut stream) = slot else { return };
    let login = match login {
        Ok(Ok(Some(login))) => login,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => return refuse(&mut stream, e).await,
        Err(_) => {
            let e = PgError::fatal(
                "08P01",
                format!(
                    "startup and authentication did not finish within {} ms",
                    timeout.as_millis()
                ),
            );
            return refuse(&mut stream, e).await;
        }
    };
    let client_id = shared.registry.next_id();
    let span = tracing::info_span!(
        "client",
        id = client_id,
        user = %login.user.name,
        database = %login.database,
        address = %peer,
    );
    let registration = shared.registry.register(
        SessionInfo {
            client_id,
            user: login.user.name.clone(),
            database: login.database.clone(),
            address: peer,
        },
        stream.is_tls(),
    );
    if login.database == crate::ADMIN_DATABASE {
        crate::admin::serve(stream, inbox, shared)
            .instrument(span)
            .await;
        return;
    }
    let client = Arc::clone(&registration.entry);
    async move {
        match Box::pin(begin_session(
            stream, inbox, login, client, &shared, &runtime,
        ))
        .await
        {
            Ok(mut session) => {
                if let session::SessionEnd::Fatal(e) = session.run().await {
                    tracing::info!(error = %e, "session ended with an error");
                }
            }
            Err(e) => tracing::info!(error = %e, "session refused"),
        }
    }
    .instrument(span)
    .await;
    drop(registration);
}

async fn refuse(stream: &mut ClientStream, error: PgError) {
    tracing::debug!(error = %error, "client refused during startup");
    let mut out = BytesMut::new();
    error.encode(&mut out);
    let _ = stream.write_all(&out).await;
    let _ = stream.shutdown().await;
}

async fn write_raw(stream: &mut ClientStream, bytes: &[u8]) -> Result<(), PgError> {
    stream
        .write_all(bytes)
        .await
        .map_err(|e| PgError::fatal("08006", format!("client connection lost: {e}")))
}

/// Negotiates TLS, handles cancel requests, reads the StartupMessage and
/// authenticates. `None` means the connection ends without a session
/// (a cancel request).
async fn handshake(
    slot: &mut Option<ClientStream>,
    inbox: &mut BytesMut,
    shared: &Shared,
    runtime: &Runtime,
) -> Result<Option<Login>, PgError> {
    let params = loop {
        let stream = slot
            .as_mut()
            .expect("the stream is only taken during TLS upgrade");
        let len = read_startup_packet(stream, inbox, MAX_STARTUP_PACKET).await?;
        let packet = parse_startup_packet(&inbox[..len]);
        inbox.advance(len);
        match packet? {
            StartupPacket::Ssl => match (&runtime.tls, slot.take()) {
                (Some(acceptor), Some(ClientStream::Tcp(mut tcp))) => {
                    if !inbox.is_empty() {
                        return Err(PgError::fatal(
                            "08P01",
                            "unencrypted data after SSL request",
                        ));
                    }
                    tcp.write_all(b"S").await.map_err(|e| {
                        PgError::fatal("08006", format!("client connection lost: {e}"))
                    })?;
                    let tls = acceptor.accept(tcp).await.map_err(|e| {
                        PgError::fatal("08P01", format!("TLS handshake failed: {e}"))
                    })?;
                    *slot = Some(ClientStream::Tls(Box::new(tls)));
                }
                (_, Some(mut other)) => {
                    let result = write_raw(&mut other, b"N").await;
                    *slot = Some(other);
                    result?;
                }
                (_, None) => return Err(PgError::fatal("08P01", "connection lost")),
            },
            StartupPacket::GssEnc => write_raw(stream, b"N").await?,
            StartupPacket::Cancel { pid, secret } => {
                shared.cancels.cancel(pid, secret).await;
                return Ok(None);
            }
            StartupPacket::Startup { minor, params, .. } => {
                if minor > 0 {
                    negotiate_protocol(stream, &params).await?;
                }
                break params;
            }
        }
    };
    let stream = slot.as_mut().expect("stream present after startup");
    if runtime.config.tls.as_ref().is_some_and(|t| t.require)
        && matches!(stream, ClientStream::Tcp(_))
    {
        return Err(PgError::fatal(
            "28000",
            "shardwire requires TLS for TCP connections (tls.require)",
        )
        .with_hint("connect with sslmode=require"));
    }
    if params.contains_key("replication") {
        return Err(PgError::fatal(
            "0A000",
            "replication connections are not supported by shardwire",
        ));
    }
    let user_name = params
        .get("user")
        .filter(|u| !u.is_empty())
        .ok_or_else(|| PgError::fatal("28000", "no user name specified in startup packet"))?;
    let database = params
        .get("database")
        .filter(|d| !d.is_empty())
        .unwrap_or(user_name)
        .clone();
    let user = runtime.config.user(user_name).cloned().ok_or_else(|| {
        PgError::fatal(
            "28000",
            format!("user \"{user_name}\" is not configured in shardwire"),
        )
        .with_hint("add it under [[users]] in the shardwire config")
    })?;
    let secrets = runtime
        .secrets
        .get(&user.name)
        .cloned()
        .unwrap_or_else(|| auth::UserSecrets::derive(&user));
    auth::authenticate(stream, inbox, &user, &secrets).await?;
    if database == crate::ADMIN_DATABASE {
        if !user.admin {
            return Err(PgError::fatal(
                "42501",
                format!("user \"{}\" may not use the admin console", user.name),
            )
            .with_hint("set admin = true on the user in the shardwire config"));
        }
    } else if runtime.config.database(&database).is_none() {
        let known: Vec<&str> = runtime
            .config
            .databases
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        return Err(PgError::fatal(
            "3D000",
            format!("database \"{database}\" does not exist in shardwire"),
        )
        .with_hint(format!("configured databases: {}", known.join(", "))));
    }
    let gucs = params::startup_gucs(&params).map_err(|e| PgError::fatal("08P01", e))?;
    let mut out = BytesMut::new();
    put_authentication(&mut out, Authentication::Ok);
    write_raw(stream, &out).await?;
    Ok(Some(Login {
        user,
        database,
        gucs,
    }))
}

/// Answers a 3.x startup with minor > 0: shardwire speaks 3.0 and knows no
/// `_pq_.` protocol options.
async fn negotiate_protocol(
    stream: &mut ClientStream,
    params: &std::collections::BTreeMap<String, String>,
) -> Result<(), PgError> {
    let unknown: Vec<&String> = params.keys().filter(|k| k.starts_with("_pq_.")).collect();
    let mut out = BytesMut::new();
    put_message(&mut out, backend_tag::NEGOTIATE_PROTOCOL_VERSION, |b| {
        b.put_i32(0);
        b.put_i32(unknown.len() as i32);
        for name in &unknown {
            put_cstr(b, name.as_bytes());
        }
    });
    write_raw(stream, &out).await
}

/// Borrows a server connection and applies the client's startup parameters
/// to it; returns the connection, the parameters in the server's spelling
/// (e.g. DateStyle "iso" becomes "ISO, MDY", so later comparisons are exact)
/// and the ParameterStatus set the client is to see.
async fn apply_startup_params(
    pool: &Arc<crate::backend::pool::Pool>,
    gucs: &Params,
) -> Result<(crate::backend::pool::Lease, Params, Params), PgError> {
    let mut lease = pool.checkout().await?;
    let conn = lease.conn();
    if let Some(sql) = params::sync_query(&conn.session_params, gucs) {
        conn.run_maintenance(&sql).await?;
    }
    pool.dialect().learn(gucs, &conn.reported);
    let normalized: Params = gucs
        .iter()
        .map(|(name, value)| {
            let reported = conn
                .reported
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name));
            (name.clone(), reported.map_or(value, |(_, v)| v).clone())
        })
        .collect();
    conn.session_params = normalized.clone();
    let view = conn.reported.clone();
    Ok((lease, normalized, view))
}

/// Tells the client its parameters (as the server reports them) and its
/// cancel key, borrowing a server connection only when the pool cannot
/// answer for the server, and builds the session.
async fn begin_session(
    mut stream: ClientStream,
    inbox: BytesMut,
    login: Login,
    client: Arc<clients::ClientEntry>,
    shared: &Arc<Shared>,
    runtime: &Runtime,
) -> Result<Session, PgError> {
    let config = &runtime.config;
    let mode = config.pool_mode(&login.user);
    let sharding = sharding_state(shared, runtime, &login);
    let pool = match &sharding {
        Some(st) => {
            let home = st.map.default_shard;
            let servers = st.servers[home]
                .as_ref()
                .expect("the default shard has pools");
            Arc::clone(&servers.pools[servers.topology.primary()])
        }
        None => shared
            .pools
            .primary(config, &login.user, &login.database, 0),
    };
    let mut out = BytesMut::new();
    let known = match mode {
        // A transaction-mode client needs no server until its first query
        // when the pool already knows how its server reports the client's
        // parameters: a saturated pool does not keep clients from connecting.
        PoolMode::Transaction => pool.dialect().describe(&login.gucs),
        PoolMode::Session => None,
    };
    let (lease, params, view) = match known {
        Some((view, params)) => (None, params, view),
        None => match Box::pin(apply_startup_params(&pool, &login.gucs)).await {
            Ok((lease, params, view)) => (Some(lease), params, view),
            Err(e) => {
                let fatal = PgError {
                    severity: "FATAL",
                    ..e.clone()
                };
                refuse(&mut stream, fatal).await;
                return Err(e);
            }
        },
    };
    for (name, value) in &view {
        put_parameter_status(&mut out, name, value);
    }
    let cancel = shared.cancels.register();
    put_backend_key_data(&mut out, cancel.pid, cancel.secret);
    put_ready_for_query(&mut out, b'I');
    write_raw(&mut stream, &out).await?;
    let server = match (mode, lease) {
        (PoolMode::Session, Some(lease)) => {
            cancel.slot.set(Some(lease.conn_ref().cancel.clone()));
            Some(lease)
        }
        (_, lease) => {
            if let Some(lease) = lease {
                crate::backend::pool::Pool::give_back(lease);
            }
            None
        }
    };
    let client_tls = stream.is_tls();
    let tracker = shared.observer.enabled().then(|| {
        // An unrouted session runs everything on shard 0's primary.
        let fixed_route = sharding.is_none().then(|| {
            let mut route = Route::default();
            route.shards.insert(0);
            route
        });
        Box::new(tracker::StatementTracker::new(
            Arc::clone(&shared.observer),
            Arc::clone(&client),
            fixed_route,
        ))
    });
    let (client_rd, client_wr) = tokio::io::split(stream);
    Ok(Session {
        mode,
        pool,
        server,
        client_rd,
        client_wr,
        inbox,
        outbox: BytesMut::new(),
        pipeline: Pipeline::default(),
        statements: ClientStatements::default(),
        params,
        skip_until_sync: false,
        cancel,
        max_message: config.proxy.max_message_bytes,
        reset_query: config.pool.reset_query.clone(),
        closing: None,
        client_unflushed: false,
        client_tls,
        sharding,
        current_message: bytes::Bytes::new(),
        query_timeout: config.pool.query_timeout(),
        server_activity: tokio::time::Instant::now(),
        client,
        tracker,
    })
}

/// Routing state for a client of a sharded database, or of an unsharded
/// one whose shard has replicas (reads are routed there too); `None` when
/// every statement goes to the one primary untouched.
fn sharding_state(
    shared: &Arc<Shared>,
    runtime: &Runtime,
    login: &Login,
) -> Option<Box<sharded::ShardState>> {
    let config = &runtime.config;
    let map = crate::proxy::routed_map(config, &login.database)?;
    let servers = (0..config.shards.len())
        .map(|shard| {
            map.shards
                .contains(&shard)
                .then(|| shard_pools(shared, config, login, shard))
        })
        .collect();
    let has_replicas = map
        .shards
        .iter()
        .any(|&shard| !config.shards[shard].replicas.is_empty());
    let reads = sharded::ReadRouting {
        enabled: has_replicas
            && config.replicas.read_write_split
            && config.pool_mode(&login.user) == PoolMode::Transaction,
        read_your_writes: config.replicas.read_your_writes,
        positions: vec![None; config.shards.len()],
    };
    Some(Box::new(sharded::ShardState::new(
        map,
        Arc::clone(runtime.routers.get(&login.database)?),
        config.shards.iter().map(|s| s.name.clone()).collect(),
        servers,
        reads,
        config.proxy.max_message_bytes.saturating_mul(4),
    )))
}

/// The pools of every server of `shard` for the client's user and database.
fn shard_pools(
    shared: &Shared,
    config: &crate::config::Config,
    login: &Login,
    shard: usize,
) -> sharded::ShardPools {
    let topology = Arc::clone(&shared.topology.shards[shard]);
    let pools = topology
        .servers
        .iter()
        .map(|server| {
            shared
                .pools
                .server(config, &login.user, &login.database, shard, &server.address)
        })
        .collect();
    sharded::ShardPools { topology, pools }
}
