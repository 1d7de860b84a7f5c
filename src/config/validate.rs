//! Semantic checks of a parsed config: every problem is collected with the
//! key path where it sits, so `shardwire check-config` can list them all at
//! once instead of making the operator fix them one by one.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;

use super::{AuthMethod, Config, is_stored_secret};

/// One problem found in a config, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Key path of the offending value, e.g. `users[1].password`.
    pub location: String,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Collects problems while walking a config or a shard map.
#[derive(Default)]
pub(crate) struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    /// Records a problem at `location`.
    pub(crate) fn report(&mut self, location: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            location: location.into(),
            message: message.into(),
        });
    }

    fn require_positive(&mut self, location: &str, value: u64) {
        if value == 0 {
            self.report(location, "must be greater than 0");
        }
    }

    fn require_unique_names<'a>(&mut self, section: &str, names: impl Iterator<Item = &'a str>) {
        let mut seen = HashSet::new();
        for (i, name) in names.enumerate() {
            let location = format!("{section}[{i}].name");
            if name.is_empty() {
                self.report(location, "must not be empty");
            } else if !seen.insert(name) {
                self.report(location, format!("duplicate name \"{name}\""));
            }
        }
    }

    /// The problems recorded so far.
    pub(crate) fn into_problems(self) -> Vec<Problem> {
        self.problems
    }
}

/// Returns every problem of `config`; an empty list means it is usable.
pub fn validate(config: &Config) -> Vec<Problem> {
    let mut c = Checker::default();
    check_proxy(config, &mut c);
    check_pool(config, &mut c);
    check_users(config, &mut c);
    check_databases(config, &mut c);
    check_shards(config, &mut c);
    check_replicas(config, &mut c);
    check_observe(config, &mut c);
    c.into_problems()
}

fn check_proxy(config: &Config, c: &mut Checker) {
    let proxy = &config.proxy;
    if proxy.listen.is_empty() && proxy.unix_socket_dir.is_none() {
        c.report(
            "proxy.listen",
            "no TCP address and no unix_socket_dir: clients could not connect",
        );
    }
    for (i, addr) in proxy.listen.iter().enumerate() {
        if addr.parse::<SocketAddr>().is_err() {
            c.report(
                format!("proxy.listen[{i}]"),
                format!("\"{addr}\" is not an IP:port address (e.g. \"127.0.0.1:6432\")"),
            );
        }
    }
    if proxy.unix_socket_dir.is_some() && proxy.listen.is_empty() {
        c.report(
            "proxy.unix_socket_dir",
            "the socket is named after the first TCP port: add a proxy.listen address",
        );
    }
    c.require_positive("proxy.startup_timeout_ms", proxy.startup_timeout_ms);
    c.require_positive("proxy.shutdown_timeout_ms", proxy.shutdown_timeout_ms);
    if proxy.max_message_bytes < 8192 {
        c.report(
            "proxy.max_message_bytes",
            "must be at least 8192 so ordinary statements fit",
        );
    }
    if let Some(tls) = &config.tls {
        for (key, path) in [("tls.cert", &tls.cert), ("tls.key", &tls.key)] {
            if path.as_os_str().is_empty() {
                c.report(key, "must name a PEM file");
            }
        }
    }
}

fn check_pool(config: &Config, c: &mut Checker) {
    let pool = &config.pool;
    c.require_positive("pool.size", pool.size as u64);
    if pool.min_idle > pool.size {
        c.report(
            "pool.min_idle",
            format!("{} exceeds pool.size {}", pool.min_idle, pool.size),
        );
    }
    c.require_positive("pool.connect_timeout_ms", pool.connect_timeout_ms);
    c.require_positive("pool.checkout_timeout_ms", pool.checkout_timeout_ms);
    c.require_positive("pool.idle_timeout_ms", pool.idle_timeout_ms);
    c.require_positive("pool.server_lifetime_ms", pool.server_lifetime_ms);
    c.require_positive(
        "pool.max_prepared_statements",
        pool.max_prepared_statements as u64,
    );
}

fn check_observe(config: &Config, c: &mut Checker) {
    let observe = &config.observe;
    c.require_positive("observe.max_fingerprints", observe.max_fingerprints as u64);
    c.require_positive("observe.snapshot_interval_ms", observe.snapshot_interval_ms);
    c.require_positive("observe.slow_log_max_bytes", observe.slow_log_max_bytes);
    c.require_positive(
        "observe.slow_ring_entries",
        observe.slow_ring_entries as u64,
    );
    if let Some(addr) = &config.metrics.listen
        && addr.parse::<SocketAddr>().is_err()
    {
        c.report(
            "metrics.listen",
            format!("\"{addr}\" is not an IP:port address (e.g. \"127.0.0.1:9930\")"),
        );
    }
}

fn check_replicas(config: &Config, c: &mut Checker) {
    let replicas = &config.replicas;
    c.require_positive("replicas.probe_interval_ms", replicas.probe_interval_ms);
    c.require_positive(
        "replicas.max_replica_lag_bytes",
        replicas.max_replica_lag_bytes,
    );
    c.require_positive("replicas.max_replica_lag_ms", replicas.max_replica_lag_ms);
    for (i, name) in replicas.read_only_functions.iter().enumerate() {
        let valid = !name.is_empty()
            && name.split('.').count() <= 2
            && name.split('.').all(|part| {
                !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            });
        if !valid {
            c.report(
                format!("replicas.read_only_functions[{i}]"),
                format!("\"{name}\" is not a function name (name or schema.name)"),
            );
        }
    }
    if let Some(user) = &replicas.probe_user {
        match config.user(user) {
            None => c.report(
                "replicas.probe_user",
                format!("no [[users]] entry is named \"{user}\""),
            ),
            Some(u) if u.server_password().is_none() => c.report(
                "replicas.probe_user",
                format!("user \"{user}\" has no plain-text server password the probe could use"),
            ),
            Some(_) => {}
        }
    }
}

fn check_users(config: &Config, c: &mut Checker) {
    if config.users.is_empty() {
        c.report("users", "no [[users]]: nobody could log in");
    }
    c.require_unique_names("users", config.users.iter().map(|u| u.name.as_str()));
    for (i, user) in config.users.iter().enumerate() {
        let at = |key: &str| format!("users[{i}].{key}");
        let password = user.password.as_deref();
        match (user.auth, password) {
            (AuthMethod::Trust, _) => {}
            (_, None) => c.report(
                at("password"),
                format!("auth = {:?} needs a password or stored secret", user.auth),
            ),
            (AuthMethod::ScramSha256, Some(p)) if p.starts_with("md5") && is_stored_secret(p) => {
                c.report(
                    at("password"),
                    "an md5 secret cannot verify SCRAM clients: give the plain password or a SCRAM-SHA-256 secret, or set auth = \"md5\"",
                )
            }
            (AuthMethod::Md5, Some(p)) if p.starts_with("SCRAM-SHA-256$") => c.report(
                at("password"),
                "a SCRAM secret cannot verify md5 clients: give the plain password or an md5 secret, or set auth = \"scram-sha-256\"",
            ),
            (_, Some(p)) if p.starts_with("SCRAM-SHA-256$") && !valid_scram_secret(p) => c.report(
                at("password"),
                "malformed SCRAM secret: expected SCRAM-SHA-256$<iterations>:<salt>$<storedkey>:<serverkey>",
            ),
            _ => {}
        }
        if let Some(size) = user.pool_size {
            c.require_positive(&at("pool_size"), size as u64);
        }
        if user.server_user.as_deref() == Some("") {
            c.report(at("server_user"), "must not be empty");
        }
    }
}

fn valid_scram_secret(secret: &str) -> bool {
    crate::auth::ScramSecret::parse(secret).is_some()
}

fn check_databases(config: &Config, c: &mut Checker) {
    if config.databases.is_empty() {
        c.report("databases", "no [[databases]]: clients could not pick one");
    }
    c.require_unique_names(
        "databases",
        config.databases.iter().map(|d| d.name.as_str()),
    );
    for (i, db) in config.databases.iter().enumerate() {
        if db
            .shard_map
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            c.report(
                format!("databases[{i}].shard_map"),
                "must name a shard map file (omit it for an unsharded database)",
            );
        }
        if db.name == crate::ADMIN_DATABASE {
            c.report(
                format!("databases[{i}].name"),
                format!(
                    "\"{}\" is reserved for the admin console",
                    crate::ADMIN_DATABASE
                ),
            );
        }
    }
}

fn check_shards(config: &Config, c: &mut Checker) {
    if config.shards.is_empty() {
        c.report(
            "shards",
            "no [[shards]]: there is no server to send queries to",
        );
    }
    if config.shards.len() > crate::observe::event::ShardSet::CAPACITY {
        c.report(
            "shards",
            format!(
                "{} shards: at most {} are supported",
                config.shards.len(),
                crate::observe::event::ShardSet::CAPACITY
            ),
        );
    }
    c.require_unique_names("shards", config.shards.iter().map(|s| s.name.as_str()));
    for (i, shard) in config.shards.iter().enumerate() {
        check_server_address(c, &format!("shards[{i}].primary"), &shard.primary);
        for (j, replica) in shard.replicas.iter().enumerate() {
            check_server_address(c, &format!("shards[{i}].replicas[{j}]"), replica);
        }
    }
}

fn check_server_address(c: &mut Checker, location: &str, address: &str) {
    match address.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {}
        _ => c.report(
            location,
            format!("\"{address}\" is not host:port (e.g. \"127.0.0.1:5432\")"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> Config {
        toml::from_str(text).expect("test config parses")
    }

    const MINIMAL: &str = r#"
        [[users]]
        name = "app"
        password = "secret"
        [[databases]]
        name = "app"
        [[shards]]
        name = "s0"
        primary = "127.0.0.1:5432"
    "#;

    #[test]
    fn minimal_config_is_valid() {
        assert_eq!(validate(&parse(MINIMAL)), vec![]);
    }

    #[test]
    fn empty_config_reports_each_missing_section() {
        let problems = validate(&parse(""));
        let locations: Vec<_> = problems.iter().map(|p| p.location.as_str()).collect();
        assert_eq!(locations, vec!["users", "databases", "shards"]);
    }

    #[test]
    fn every_problem_is_reported_with_its_location() {
        let text = r#"
            [proxy]
            listen = ["localhost:x"]
            [pool]
            size = 0
            min_idle = 3
            [[users]]
            name = "a"
            auth = "md5"
            [[users]]
            name = "a"
            password = "SCRAM-SHA-256$broken"
            [[databases]]
            name = "shardwire"
            [[shards]]
            name = "s0"
            primary = "nohostport"
            replicas = ["127.0.0.1:0"]
        "#;
        let problems = validate(&parse(text));
        let locations: Vec<_> = problems.iter().map(|p| p.location.as_str()).collect();
        assert_eq!(
            locations,
            vec![
                "proxy.listen[0]",
                "pool.size",
                "pool.min_idle",
                "users[1].name",
                "users[0].password",
                "users[1].password",
                "databases[0].name",
                "shards[0].primary",
                "shards[0].replicas[0]",
            ]
        );
    }

    #[test]
    fn unknown_keys_are_syntax_errors_with_line_numbers() {
        let text = format!("{MINIMAL}\n[pool]\nsise = 3\n");
        let err = Config::from_toml(&text, Path::new("x.toml")).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("sise"), "{message}");
        assert!(message.contains("line 12"), "{message}");
    }

    #[test]
    fn shipped_example_config_is_valid() {
        let text = include_str!("../../shardwire.example.toml");
        let config = Config::from_toml(text, Path::new("shardwire.example.toml"))
            .expect("the example config in the repository is valid");
        assert_eq!(config.pool, crate::config::PoolSettings::default());
        assert_eq!(config.proxy, crate::config::ProxySettings::default());
    }

    #[test]
    fn secrets_are_recognised() {
        assert!(is_stored_secret("md5e7b2b1ed1d4d69c7ff2ce9a3e7d2e2a7"));
        assert!(!is_stored_secret("md5password"));
        assert!(is_stored_secret("SCRAM-SHA-256$4096:abc$def:ghi"));
        assert!(!is_stored_secret("hunter2"));
    }

    #[test]
    fn server_password_falls_back_to_plain_password_only() {
        let config = parse(MINIMAL);
        assert_eq!(config.users[0].server_password(), Some("secret"));
        let mut user = config.users[0].clone();
        user.password = Some("md5e7b2b1ed1d4d69c7ff2ce9a3e7d2e2a7".into());
        assert_eq!(user.server_password(), None);
    }
}
