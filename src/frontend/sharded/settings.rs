//! Session settings that follow the client to every server it uses.
//!
//! Parameters the server reports (ParameterStatus) already follow the
//! client. Others (`search_path`, `statement_timeout`, `work_mem`, ...) do
//! not, and with reads spread over replicas a later read would run without
//! them: on a different `search_path` it could even read another table. So
//! after a session-level `SET name ...` or `RESET name` has run, the proxy
//! asks that server for the setting's resulting value and adds it to the
//! client's parameters, which are applied to every server the client is
//! given next.

use crate::frontend::session::Session;

/// A setting a client changed for its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedSetting {
    /// Config shard index of the server that ran the statement.
    pub shard: usize,
    /// The parameter's name, lower case.
    pub name: String,
}

/// The parameter a session-level `SET` or `RESET` of `sql` changes:
/// `None` for `SET LOCAL`, `RESET ALL`, `SET SESSION AUTHORIZATION`,
/// transaction characteristics and anything not understood.
pub fn changed_setting_name(sql: &str) -> Option<String> {
    let mut words = sql
        .split(|c: char| c.is_whitespace() || c == '=')
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase);
    let verb = words.next()?;
    let mut name = words.next()?;
    if verb == "set" && name == "session" {
        name = words.next()?;
    }
    let name = match (verb.as_str(), name.as_str()) {
        (
            "set" | "reset",
            "local" | "all" | "transaction" | "characteristics" | "authorization",
        ) => {
            return None;
        }
        ("set" | "reset", "time") => "timezone".to_string(),
        ("set" | "reset", "schema") => "search_path".to_string(),
        ("set" | "reset", "names") => "client_encoding".to_string(),
        ("set" | "reset", _) => name.trim_end_matches(';').to_string(),
        _ => return None,
    };
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
    (valid && !name.starts_with("shardwire.")).then_some(name)
}

/// The parameters a statement changes with `set_config('name', ...)`
/// (whatever its `is_local`: the value read back afterwards is the
/// session's own either way).
pub fn set_config_names(sql: &str) -> Vec<String> {
    const CALL: &str = "set_config";
    let lower = sql.to_ascii_lowercase();
    let mut names = Vec::new();
    let mut from = 0;
    while let Some(at) = lower[from..].find(CALL) {
        let rest = lower[from + at + CALL.len()..].trim_start();
        from += at + CALL.len();
        let Some(rest) = rest.strip_prefix('(') else {
            continue;
        };
        let Some(rest) = rest.trim_start().strip_prefix('\'') else {
            continue;
        };
        let Some(end) = rest.find('\'') else { continue };
        let name = &rest[..end];
        if !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
            && !name.starts_with("shardwire.")
        {
            names.push(name.to_string());
        }
    }
    names
}

impl Session {
    /// Remembers the session parameter the statement just sent to the
    /// active server changes, if it is a session-level SET or RESET and
    /// reads are spread over replicas (otherwise the client stays on
    /// servers of one pool, as under any transaction pooler).
    pub(crate) fn note_if_setting(&mut self, statement: &crate::router::StatementAnalysis) {
        if !self.shard_state_ref().reads.enabled {
            return;
        }
        let names = if statement.kind == crate::router::StatementKind::Set {
            changed_setting_name(&statement.sql).into_iter().collect()
        } else {
            set_config_names(&statement.sql)
        };
        let st = self.shard_state();
        let shard = st.active;
        for name in names {
            st.changed_settings.push(ChangedSetting { shard, name });
        }
    }

    /// Between transactions: reads the value each changed setting ended
    /// with on the server that ran it and makes it one of the client's
    /// parameters (applied to every server it is given next).
    pub(crate) async fn learn_settings(&mut self) {
        let changed = std::mem::take(&mut self.shard_state().changed_settings);
        for setting in changed {
            let active = self.shard_state_ref().active;
            let lease = if active == setting.shard {
                self.server.as_mut()
            } else {
                self.sharding
                    .as_deref_mut()
                    .and_then(|st| st.parked.iter_mut().find(|p| p.shard == setting.shard))
                    .map(|p| &mut p.lease)
            };
            let Some(lease) = lease else { continue };
            let conn = lease.conn();
            let sql = format!(
                "SELECT pg_catalog.current_setting({}, true)",
                super::super::params::quote_literal(&setting.name)
            );
            // A server that cannot answer is dropped at its next use; the
            // setting then stays unknown.
            if let Ok(Some(value)) = Box::pin(conn.query_value(&sql)).await {
                conn.session_params
                    .insert(setting.name.clone(), value.clone());
                self.params.insert(setting.name, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{changed_setting_name, set_config_names};

    #[test]
    fn finds_the_parameters_set_config_changes() {
        assert_eq!(
            set_config_names("SELECT set_config('search_path', 'x', false)"),
            ["search_path"]
        );
        assert_eq!(
            set_config_names(
                "select pg_catalog.SET_CONFIG ( 'work_mem','1MB',true), set_config('my.flag', 'on', false)"
            ),
            ["work_mem", "my.flag"]
        );
        assert!(set_config_names("SELECT set_config(name, 'x', false) FROM t").is_empty());
        assert!(set_config_names("SELECT 'set_config' AS word").is_empty());
    }

    #[test]
    fn finds_the_parameter_a_statement_sets() {
        let cases = [
            ("SET search_path = a, b", Some("search_path")),
            (
                "set SESSION statement_timeout TO '5s'",
                Some("statement_timeout"),
            ),
            ("SET work_mem='64MB'", Some("work_mem")),
            ("SET TIME ZONE 'UTC'", Some("timezone")),
            ("SET SCHEMA 'app'", Some("search_path")),
            ("RESET search_path", Some("search_path")),
            ("SET myext.flag = on", Some("myext.flag")),
            ("SET LOCAL work_mem = '1MB'", None),
            ("RESET ALL", None),
            ("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", None),
            ("SET SESSION AUTHORIZATION bob", None),
            ("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", None),
            ("SET shardwire.shard = 1", None),
            ("DISCARD ALL", None),
        ];
        for (sql, expected) in cases {
            assert_eq!(changed_setting_name(sql).as_deref(), expected, "{sql}");
        }
    }
}
