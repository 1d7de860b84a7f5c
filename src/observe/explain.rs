//! Capturing plans of slow statements with EXPLAIN on control-plane
//! connections.
//!
//! The plan of a slow statement is taken where it ran: `EXPLAIN (FORMAT
//! JSON)` of its own text, with the client's own parameter values (bytes
//! and formats unchanged), on the shard it ran on (the first shard of a
//! scatter), on that shard's current primary, or on a replica when it ran
//! on one. Connections log in as the session user's server role, to the
//! logical database's server database, and are kept per (server, role,
//! database) until they fail.
//!
//! Safety: only one statement of a plannable kind (SELECT, VALUES,
//! INSERT, UPDATE, DELETE, MERGE) is explained, through the extended
//! protocol (which refuses several statements in one string), on a
//! connection whose transactions are read-only and time-limited (and
//! never wait long for a lock). Plain EXPLAIN never executes the
//! statement; `explain_analyze` executes it, so it is used only for
//! statements the router classifies as reads and only on a replica, and
//! the read-only transaction makes any write fail instead of happening.
//! Session state (a `search_path` the client set, temporary tables) is
//! not carried over: a statement that depends on it gets an error as its
//! reason instead of a plan.
//!
//! At most one plan per fingerprint per `explain_interval_ms`: a slow
//! statement repeated a thousand times costs one EXPLAIN.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lru::LruCache;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlparser::ast::Statement;
use tokio::task::JoinHandle;
use tokio_postgres::types::{FromSql, ToSql, Type};

use super::bind::{Param, RawParam};
use super::event::StatementEvent;
use crate::backend::control::{ControlLogin, control_config};
use crate::backend::topology::{ServerRole, ShardServers, Topology};
use crate::config::{Config, ObserveSettings};
use crate::router::readwrite::{Access, ReadOnlyFunctions, statement_access};

/// Server-side limit on one EXPLAIN (with ANALYZE: the statement's run).
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest an EXPLAIN waits for a table lock (say, behind a client's open
/// transaction that altered the table): plan capture must not queue
/// behind the application.
const LOCK_TIMEOUT: Duration = Duration::from_secs(2);

/// Client-side limit: a little more than the server's, for a server that
/// stopped answering altogether.
const QUERY_TIMEOUT: Duration = Duration::from_secs(35);

/// Fingerprints whose last EXPLAIN time is remembered for the rate limit;
/// beyond it the least recently explained are forgotten (and may be
/// explained again early).
const RATE_LIMIT_ENTRIES: usize = 10_000;

/// Where a plan was captured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExplainTarget {
    /// The shard's name (for a scatter: the first shard it ran on).
    pub shard: String,
    /// The server's `host:port`.
    pub server: String,
    /// `primary` or `replica`.
    pub role: String,
    /// Whether EXPLAIN ANALYZE ran (the statement was executed there).
    pub analyze: bool,
}

/// The result of trying to capture a plan.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlanOutcome {
    /// The JSON EXPLAIN returned.
    pub plan: Option<Value>,
    /// Why there is no plan.
    pub reason: Option<String>,
    /// Where EXPLAIN ran (or was tried).
    pub target: Option<ExplainTarget>,
}

impl PlanOutcome {
    /// No plan, for `reason`, and no EXPLAIN tried.
    pub fn skipped(reason: impl Into<String>) -> PlanOutcome {
        PlanOutcome {
            plan: None,
            reason: Some(reason.into()),
            target: None,
        }
    }
}

/// Runs EXPLAINs for the plan-capture task (which owns it: no locks).
pub struct Explainer {
    settings: ObserveSettings,
    config: Arc<Config>,
    topology: Arc<Topology>,
    functions: ReadOnlyFunctions,
    connections: HashMap<ConnectionKey, PlanConnection>,
    last_explained: LruCache<u64, Instant>,
}

/// (server address, server role name, server database).
type ConnectionKey = (String, String, String);

/// One open control-plane connection; dropping it closes it.
struct PlanConnection {
    client: tokio_postgres::Client,
    task: JoinHandle<()>,
}

impl Drop for PlanConnection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The server EXPLAIN runs on, and how.
struct Choice {
    target: ExplainTarget,
    /// A read-only statement to run EXPLAIN ANALYZE of.
    analyze: bool,
}

impl Explainer {
    /// An explainer for `config`'s users and databases, choosing servers
    /// from `topology`.
    pub fn new(config: Arc<Config>, topology: Arc<Topology>) -> Explainer {
        Explainer {
            settings: config.observe.clone(),
            functions: ReadOnlyFunctions::new(&config.replicas.read_only_functions),
            config,
            topology,
            connections: HashMap::new(),
            last_explained: LruCache::new(
                NonZeroUsize::new(RATE_LIMIT_ENTRIES).unwrap_or(NonZeroUsize::MIN),
            ),
        }
    }

    /// The plan of `event` (whose text is `text`, fingerprint
    /// `fingerprint`, parameters `params`), or why there is none.
    pub async fn plan(
        &mut self,
        event: &StatementEvent,
        fingerprint: u64,
        text: &str,
        params: &[Param],
    ) -> PlanOutcome {
        if !self.settings.explain {
            return PlanOutcome::skipped("plan capture is off (observe.explain = false)");
        }
        if let Some(code) = event.error {
            return PlanOutcome::skipped(format!(
                "the statement failed (SQLSTATE {})",
                String::from_utf8_lossy(&code)
            ));
        }
        let statement = match plannable(text) {
            Ok(statement) => statement,
            Err(reason) => return PlanOutcome::skipped(reason),
        };
        let Some(shard) = event.route.shards.iter().next() else {
            return PlanOutcome::skipped("answered by the proxy itself, on no shard");
        };
        if self.rate_limited(fingerprint) {
            return PlanOutcome::skipped(format!(
                "rate limited: this fingerprint was explained less than {} ms ago",
                self.settings.explain_interval_ms
            ));
        }
        let reads = statement_access(&statement, &self.functions) == Access::Read;
        let wants_analyze = self.settings.explain_analyze && reads;
        let Some(choice) = self.choose(shard, event.route.replica, wants_analyze) else {
            return PlanOutcome::skipped(format!("no shard #{shard} in the topology"));
        };
        let Some(login) = self.login(&event.session.user, &event.session.database) else {
            return PlanOutcome {
                target: Some(choice.target),
                ..PlanOutcome::skipped(format!(
                    "user \"{}\" is not in the config",
                    event.session.user
                ))
            };
        };
        let options = if choice.analyze {
            "ANALYZE, BUFFERS, "
        } else {
            ""
        };
        let sql = format!("EXPLAIN ({options}FORMAT JSON) {text}");
        let key = (
            choice.target.server.clone(),
            login.user.clone(),
            login.database.clone(),
        );
        let result = self.run(key, &login, &sql, params).await;
        let (plan, reason) = match result {
            Ok(plan) => (Some(plan), None),
            Err(why) => (None, Some(format!("EXPLAIN failed: {why}"))),
        };
        PlanOutcome {
            plan,
            reason,
            target: Some(choice.target),
        }
    }

    /// Whether `fingerprint` was explained within the interval; if not, the
    /// attempt now counts.
    fn rate_limited(&mut self, fingerprint: u64) -> bool {
        let now = Instant::now();
        let interval = self.settings.explain_interval();
        if let Some(last) = self.last_explained.get(&fingerprint)
            && now.duration_since(*last) < interval
        {
            return true;
        }
        self.last_explained.put(fingerprint, now);
        false
    }

    /// The server of shard `shard` to explain on: a replica in rotation
    /// for EXPLAIN ANALYZE (else plain EXPLAIN), a replica when the
    /// statement ran on one, else the current primary.
    fn choose(&self, shard: usize, ran_on_replica: bool, wants_analyze: bool) -> Option<Choice> {
        let servers = self.topology.shards.get(shard)?;
        let replica = usable_replica(servers);
        let (index, analyze) = match replica {
            Some(replica) if wants_analyze => (replica, true),
            Some(replica) if ran_on_replica => (replica, false),
            _ => (servers.primary(), false),
        };
        let role = if index == servers.primary() {
            "primary"
        } else {
            "replica"
        };
        Some(Choice {
            target: ExplainTarget {
                shard: servers.name.clone(),
                server: servers.servers.get(index)?.address.clone(),
                role: role.to_string(),
                analyze,
            },
            analyze,
        })
    }

    /// The server credentials of client user `user` and the server
    /// database of logical database `database`.
    fn login(&self, user: &str, database: &str) -> Option<Login> {
        let user = self.config.user(user)?;
        let database = self
            .config
            .database(database)
            .map_or(database, |d| d.server_database());
        Some(Login {
            user: user.server_user().to_string(),
            password: user.server_password().map(str::to_string),
            database: database.to_string(),
        })
    }

    /// Runs `sql` on the connection `key` (opening it if needed); a
    /// connection that failed or timed out is dropped, to be reopened by
    /// the next EXPLAIN.
    async fn run(
        &mut self,
        key: ConnectionKey,
        login: &Login,
        sql: &str,
        params: &[Param],
    ) -> Result<Value, String> {
        let connection = match self.connections.remove(&key) {
            Some(open) if !open.client.is_closed() => open,
            _ => self.connect(&key.0, login).await?,
        };
        let raw: Vec<RawParam<'_>> = params.iter().map(RawParam).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = raw.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let answer =
            tokio::time::timeout(QUERY_TIMEOUT, connection.client.query_one(sql, &refs)).await;
        let Ok(answer) = answer else {
            // The connection is dropped (closed) here: it may be stuck.
            return Err(format!("no answer within {} s", QUERY_TIMEOUT.as_secs()));
        };
        let plan = answer
            .and_then(|row| row.try_get::<_, PlanJson>(0))
            .map(|plan| plan.0);
        if !connection.client.is_closed() {
            self.connections.insert(key, connection);
        }
        plan.map_err(|e| describe(&e))
    }

    async fn connect(&self, address: &str, login: &Login) -> Result<PlanConnection, String> {
        let connect_timeout = self.config.pool.connect_timeout();
        let mut pg = control_config(
            address,
            &ControlLogin {
                user: &login.user,
                password: login.password.as_deref(),
                database: &login.database,
                application_name: "shardwire-explain",
                connect_timeout,
            },
        );
        pg.options(format!(
            "-c default_transaction_read_only=on -c statement_timeout={} -c lock_timeout={}",
            STATEMENT_TIMEOUT.as_millis(),
            LOCK_TIMEOUT.as_millis()
        ));
        let (client, connection) =
            tokio::time::timeout(connect_timeout, pg.connect(tokio_postgres::NoTls))
                .await
                .map_err(|_| format!("cannot connect to {address} in time"))?
                .map_err(|e| format!("cannot connect to {address}: {}", describe(&e)))?;
        let task = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(PlanConnection { client, task })
    }
}

/// Who an EXPLAIN connection logs in as, and where.
struct Login {
    user: String,
    password: Option<String>,
    database: String,
}

/// The first replica of `servers` that is in the read rotation now.
fn usable_replica(servers: &ShardServers) -> Option<usize> {
    let primary = servers.primary();
    (0..servers.servers.len())
        .filter(|&i| i != primary)
        .find(|&i| {
            let report = servers.report(i);
            report.role == ServerRole::Replica && report.in_rotation
        })
}

/// The one statement of `text` when it has a plan to show; else why not.
fn plannable(text: &str) -> Result<Statement, String> {
    // The router's guarded parse: a statement too deep for recursive tree
    // walks (a chain of thousands of ANDs) must not overflow the stack.
    let mut statements = crate::router::parse_guarded(text)
        .map_err(|e| format!("not explained: the statement does not parse here ({e})"))?;
    if statements.len() != 1 {
        return Err(format!(
            "not explained: {} statements in one string",
            statements.len()
        ));
    }
    let statement = statements.remove(0);
    match statement {
        Statement::Query(_)
        | Statement::Insert(_)
        | Statement::Update(_)
        | Statement::Delete(_)
        | Statement::Merge(_) => Ok(statement),
        _ => Err(
            "not explained: a utility statement (only SELECT, VALUES, INSERT, UPDATE, DELETE \
             and MERGE have plans)"
                .to_string(),
        ),
    }
}

/// A server's own message when it sent one.
fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => error.to_string(),
    }
}

/// The `json` column EXPLAIN (FORMAT JSON) answers with.
struct PlanJson(Value);

impl<'a> FromSql<'a> for PlanJson {
    fn from_sql(
        _ty: &Type,
        raw: &'a [u8],
    ) -> Result<PlanJson, Box<dyn std::error::Error + Sync + Send>> {
        Ok(PlanJson(serde_json::from_slice(raw)?))
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::JSON | Type::TEXT)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use super::{Explainer, PlanOutcome, plannable};
    use crate::backend::topology::{ServerStatus, Topology};
    use crate::config::{Config, User};
    use crate::observe::event::{SessionInfo, StatementEvent};
    use crate::observe::testing::{event, route};

    const SLEEP: &str = "SELECT pg_sleep(0.3)";

    /// An explainer for one shard whose primary (127.0.0.1:1) and replica
    /// (127.0.0.1:2) refuse connections: every EXPLAIN tried fails, and
    /// its outcome still says where it was tried. With `probed`, the
    /// topology knows the replica is one.
    fn explainer(probed: bool, customize: impl FnOnce(&mut Config)) -> Explainer {
        let mut config = Config::single_shard(
            "127.0.0.1:0",
            User::with_password("app", "pw"),
            "appdb",
            "127.0.0.1:1",
        );
        config.shards[0].replicas = vec!["127.0.0.1:2".into()];
        customize(&mut config);
        let topology = Arc::new(Topology::new(&config));
        if probed {
            let status = |in_recovery| ServerStatus {
                in_recovery,
                position: 0,
                timeline: None,
            };
            topology.shards[0].record_round(
                &[Some(status(false)), Some(status(true))],
                0,
                Instant::now(),
            );
        }
        Explainer::new(Arc::new(config), topology)
    }

    fn on_shard0(sql: &str, replica: bool) -> StatementEvent {
        event("appdb", sql, 300, route(&[0], false, replica))
    }

    async fn plan(
        explainer: &mut Explainer,
        event: &StatementEvent,
        fingerprint: u64,
    ) -> PlanOutcome {
        let text = String::from_utf8_lossy(&event.text).into_owned();
        explainer.plan(event, fingerprint, &text, &[]).await
    }

    fn reason(outcome: &PlanOutcome) -> &str {
        outcome.reason.as_deref().unwrap_or("")
    }

    /// (server, role, analyze) of the outcome's target.
    fn target(outcome: &PlanOutcome) -> (&str, &str, bool) {
        let t = outcome.target.as_ref().expect("a target");
        (t.server.as_str(), t.role.as_str(), t.analyze)
    }

    #[test]
    fn statements_too_deep_to_walk_are_not_parsed() {
        // 30,000 ANDs overflowed the stack when parsed and dropped.
        let sql = format!("SELECT 1 WHERE {}", vec!["1 <> 2"; 30_000].join(" AND "));
        let reason = plannable(&sql).expect_err("refused");
        assert!(reason.contains("chain of more than"), "{reason}");
    }

    #[test]
    fn only_single_plannable_statements_are_explained() {
        for sql in [
            "SELECT pg_sleep(0.3)",
            "select * from t where id = $1;",
            "VALUES (1)",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "INSERT INTO t VALUES (1)",
            "UPDATE t SET v = 1 WHERE id = 2",
            "DELETE FROM t WHERE id = $1",
        ] {
            assert!(plannable(sql).is_ok(), "{sql}");
        }
        let refused = |sql: &str| plannable(sql).expect_err(sql);
        assert!(refused("SELECT 1; DROP TABLE t").contains("2 statements"));
        assert!(refused("CREATE TABLE t (id int)").contains("utility"));
        assert!(refused("VACUUM t").contains("utility"));
        assert!(refused("EXPLAIN SELECT 1").contains("utility"));
        assert!(refused("SELEC 1").contains("does not parse"));
        assert!(refused("").contains("0 statements"));
    }

    #[tokio::test]
    async fn statements_without_a_plan_say_why_before_any_connection() {
        let mut explainer = explainer(false, |_| {});
        let mut failed = on_shard0(SLEEP, false);
        failed.error = Some(*b"57014");
        let outcome = plan(&mut explainer, &failed, 1).await;
        assert!(reason(&outcome).contains("SQLSTATE 57014"));
        assert!(outcome.target.is_none());
        let answered_by_proxy = event("appdb", SLEEP, 300, route(&[], false, false));
        let outcome = plan(&mut explainer, &answered_by_proxy, 2).await;
        assert!(reason(&outcome).contains("on no shard"));
        let mut stranger = on_shard0(SLEEP, false);
        stranger.session = Arc::new(SessionInfo {
            user: "nobody".into(),
            ..(*stranger.session).clone()
        });
        let outcome = plan(&mut explainer, &stranger, 3).await;
        assert!(reason(&outcome).contains("not in the config"));
        assert_eq!(target(&outcome).0, "127.0.0.1:1");

        let mut off = self::explainer(false, |c| c.observe.explain = false);
        let outcome = plan(&mut off, &on_shard0(SLEEP, false), 4).await;
        assert!(reason(&outcome).contains("observe.explain = false"));
    }

    #[tokio::test]
    async fn each_fingerprint_is_explained_once_per_interval() {
        let mut explainer = explainer(false, |c| c.observe.explain_interval_ms = 600_000);
        let slow = on_shard0(SLEEP, false);
        let first = plan(&mut explainer, &slow, 1).await;
        assert!(
            reason(&first).starts_with("EXPLAIN failed: cannot connect to 127.0.0.1:1"),
            "{first:?}"
        );
        assert_eq!(target(&first), ("127.0.0.1:1", "primary", false));
        let again = plan(&mut explainer, &slow, 1).await;
        assert!(reason(&again).starts_with("rate limited"), "{again:?}");
        assert!(again.target.is_none());
        let other = plan(&mut explainer, &slow, 2).await;
        assert!(reason(&other).starts_with("EXPLAIN failed"), "{other:?}");
    }

    #[tokio::test]
    async fn analyze_is_for_reads_on_a_probed_replica_only() {
        let mut analyzing = explainer(true, |c| c.observe.explain_analyze = true);
        let read = plan(&mut analyzing, &on_shard0(SLEEP, false), 1).await;
        assert_eq!(target(&read), ("127.0.0.1:2", "replica", true));
        let write = on_shard0("INSERT INTO t SELECT 1 FROM pg_sleep(0.3)", false);
        assert_eq!(
            target(&plan(&mut analyzing, &write, 2).await),
            ("127.0.0.1:1", "primary", false)
        );
        let locking = on_shard0("SELECT * FROM t FOR UPDATE", false);
        assert_eq!(
            target(&plan(&mut analyzing, &locking, 3).await),
            ("127.0.0.1:1", "primary", false)
        );

        // Not known to be a replica yet: plain EXPLAIN on the primary.
        let mut unprobed = explainer(false, |c| c.observe.explain_analyze = true);
        let read = plan(&mut unprobed, &on_shard0(SLEEP, false), 1).await;
        assert_eq!(target(&read), ("127.0.0.1:1", "primary", false));

        // Plain EXPLAIN of a statement that ran on a replica: on a replica.
        let mut plain = explainer(true, |_| {});
        let read = plan(&mut plain, &on_shard0(SLEEP, true), 1).await;
        assert_eq!(target(&read), ("127.0.0.1:2", "replica", false));
    }
}
