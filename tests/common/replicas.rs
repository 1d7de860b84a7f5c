//! A primary with streaming replicas (real `pg_basebackup -R` hot
//! standbys) behind an in-process proxy, for the read-replica tests.

use std::time::Duration;

use shardwire::backend::topology::{ServerReport, ServerRole};
use shardwire::config::{Config, PoolMode, User};
use shardwire::localcluster::{LocalCluster, ReplicaOptions};
use shardwire::proxy::ProxyHandle;

use super::{APP_DB, APP_PASSWORD, APP_USER, base_config, connect, start_cluster};

/// The admin console user of these tests.
pub const ADMIN_USER: &str = "ops";
/// Its password.
pub const ADMIN_PASSWORD: &str = "ops-secret";

/// A primary, its replicas, and a proxy routing reads to them.
pub struct ReplicaEnv {
    /// The proxy (dropped first).
    pub proxy: ProxyHandle,
    /// Its config.
    pub config: Config,
    /// Server 0 of the shard.
    pub primary: LocalCluster,
    /// Servers 1.. of the shard, in order.
    pub replicas: Vec<LocalCluster>,
}

impl ReplicaEnv {
    /// Starts a primary, one replica per entry of `replicas`, and a proxy
    /// (transaction mode, probe every 100 ms, `customize` last); returns
    /// once the probe has seen every server.
    pub async fn start(
        replicas: Vec<ReplicaOptions>,
        customize: impl FnOnce(&mut Config),
    ) -> ReplicaEnv {
        let (primary, replicas) = tokio::task::spawn_blocking(move || {
            let primary = start_cluster();
            // The probe runs as the app user; PROMOTE needs this grant.
            primary
                .psql(
                    APP_DB,
                    &format!(
                        "GRANT EXECUTE ON FUNCTION pg_promote(boolean, integer) TO {APP_USER}"
                    ),
                )
                .expect("grant pg_promote");
            let clones = replicas
                .iter()
                .map(|opts| primary.create_replica(None, opts).expect("replica starts"))
                .collect::<Vec<_>>();
            (primary, clones)
        })
        .await
        .expect("cluster task");
        let mut config = base_config(&primary, PoolMode::Transaction, 4);
        config.shards[0].replicas = replicas
            .iter()
            .map(|r| format!("{}:{}", r.host(), r.port()))
            .collect();
        config.replicas.probe_interval_ms = 100;
        config.replicas.ban_time_ms = 1_000;
        let mut admin = User::with_password(ADMIN_USER, ADMIN_PASSWORD);
        admin.admin = true;
        config.users.push(admin);
        customize(&mut config);
        let problems = shardwire::config::validate(&config);
        assert!(problems.is_empty(), "test config invalid: {problems:?}");
        let proxy = shardwire::proxy::start(config.clone())
            .await
            .expect("proxy starts");
        let env = ReplicaEnv {
            proxy,
            config,
            primary,
            replicas,
        };
        env.wait_for("every server probed", |r| {
            r.iter().all(|s| s.role != ServerRole::Unknown)
        })
        .await;
        env
    }

    /// The probed state of every server (0 = the configured primary).
    pub fn reports(&self) -> Vec<ServerReport> {
        let shard = &self.proxy.shared.topology.shards[0];
        (0..shard.servers.len()).map(|i| shard.report(i)).collect()
    }

    /// Index of the server taking writes now.
    pub fn primary_index(&self) -> usize {
        self.proxy.shared.topology.shards[0].primary()
    }

    /// Polls the reports (every 50 ms, at most 60 s) until `done` holds.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[ServerReport]) -> bool) {
        for _ in 0..1200 {
            if done(&self.reports()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "gave up waiting for: {what}; servers: {:#?}",
            self.reports()
        );
    }

    /// Connects through the proxy as the app user.
    pub async fn connect(&self) -> tokio_postgres::Client {
        connect(&self.conninfo(APP_USER, APP_PASSWORD, APP_DB))
            .await
            .expect("connect through proxy")
    }

    /// Connects to the admin console.
    pub async fn connect_admin(&self) -> tokio_postgres::Client {
        connect(&self.conninfo(ADMIN_USER, ADMIN_PASSWORD, shardwire::ADMIN_DATABASE))
            .await
            .expect("connect to the admin console")
    }

    /// A connection string to the proxy.
    pub fn conninfo(&self, user: &str, password: &str, db: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} password={password} dbname={db}",
            self.proxy.addrs[0].port()
        )
    }

    /// Connects straight to a server as the superuser.
    pub async fn connect_server(cluster: &LocalCluster) -> tokio_postgres::Client {
        connect(&cluster.connection_string(APP_DB))
            .await
            .expect("connect to a server directly")
    }

    /// Waits until every replica has replayed everything the primary has
    /// written so far.
    pub async fn wait_for_replay(&self) {
        let primary = Self::connect_server(&self.primary).await;
        let text: String = primary
            .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
            .await
            .expect("primary position")
            .get(0);
        let target = shardwire::backend::topology::parse_lsn(&text).expect("an LSN");
        let primary_index = self.primary_index();
        self.wait_for("replicas replay the primary's writes", |r| {
            r.iter()
                .enumerate()
                .all(|(i, s)| i == primary_index || s.position >= target)
        })
        .await;
    }

    /// Reads routed to each server so far.
    pub fn reads(&self) -> Vec<u64> {
        self.reports().iter().map(|r| r.reads).collect()
    }

    /// Writes routed to each server so far.
    pub fn writes(&self) -> Vec<u64> {
        self.reports().iter().map(|r| r.writes).collect()
    }
}
