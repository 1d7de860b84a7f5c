//! Which settings a RELOAD can apply to a running proxy.
//!
//! Live: users and their passwords, pool settings (pools whose limits or
//! server credentials change are replaced), databases and their shard
//! maps, TLS files and `tls.require` (new connections), the client-side
//! limits and timeouts of `[proxy]` that are read at each login, and the
//! replica settings read at each login or by the router
//! (`read_write_split`, `read_your_writes`, `read_only_functions`).
//!
//! Start-only: what the listeners, the shard topology, the probe and the
//! observer were built from. Changing them needs a restart, and RELOAD
//! refuses a config that does, naming each such setting.

use std::collections::BTreeMap;

use super::Config;

/// Settings (key paths, and every key under them) read only when the
/// proxy starts.
const START_ONLY: &[&str] = &[
    "proxy.listen",
    "proxy.unix_socket_dir",
    "proxy.log_format",
    "proxy.shutdown_timeout_ms",
    "shards",
    "replicas.load_balance",
    "replicas.primary_reads",
    "replicas.probe_interval_ms",
    "replicas.max_replica_lag_bytes",
    "replicas.max_replica_lag_ms",
    "replicas.ban_time_ms",
    "replicas.probe_user",
    "observe",
    "metrics",
];

/// The start-only settings whose value differs between `running` and
/// `reloaded` (set, changed or removed), by key path; empty when
/// `reloaded` can be applied live.
pub fn restart_only_changes(running: &Config, reloaded: &Config) -> Vec<String> {
    let before: BTreeMap<String, String> = running.settings().into_iter().collect();
    let after: BTreeMap<String, String> = reloaded.settings().into_iter().collect();
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|key| is_start_only(key) && before.get(*key) != after.get(*key))
        .cloned()
        .collect()
}

fn is_start_only(key: &str) -> bool {
    START_ONLY.iter().any(|prefix| {
        key.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::User;

    fn config() -> Config {
        Config::single_shard(
            "127.0.0.1:6432",
            User::with_password("app", "secret"),
            "appdb",
            "127.0.0.1:5432",
        )
    }

    #[test]
    fn live_changes_pass() {
        let running = config();
        let mut reloaded = config();
        reloaded.pool.size = 20;
        reloaded.users.push(User::with_password("other", "pw"));
        reloaded.users[0].password = Some("new".into());
        reloaded.replicas.read_write_split = !running.replicas.read_write_split;
        reloaded.proxy.startup_timeout_ms += 1;
        assert!(restart_only_changes(&running, &reloaded).is_empty());
    }

    #[test]
    fn start_only_changes_are_named() {
        let running = config();
        let mut reloaded = config();
        reloaded.proxy.listen = vec!["127.0.0.1:7000".into()];
        reloaded.shards[0].primary = "127.0.0.1:5999".into();
        reloaded.shards[0].replicas = vec!["127.0.0.1:5998".into()];
        reloaded.observe.slow_query_threshold_ms += 1;
        assert_eq!(
            restart_only_changes(&running, &reloaded),
            vec![
                "observe.slow_query_threshold_ms",
                "proxy.listen",
                "shards[0].primary",
                "shards[0].replicas",
            ]
        );
    }

    #[test]
    fn prefixes_match_whole_keys_only() {
        assert!(is_start_only("shards[1].name"));
        assert!(is_start_only("observe"));
        assert!(!is_start_only("proxy.listenx"));
        assert!(!is_start_only("replicas.read_write_split"));
    }
}
