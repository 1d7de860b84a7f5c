//! The config as a flat list of settings, `key.path` to value (`pool.size`,
//! `users[0].name`, `shards[1].replicas`): what `SHOW CONFIG` lists and
//! what RELOAD compares to name the settings that changed.

use super::Config;

impl Config {
    /// Every setting in effect as (key path, value), in key order within
    /// each table, values as TOML renders them (strings unquoted).
    /// Passwords are included in clear: mask them before showing them.
    pub fn settings(&self) -> Vec<(String, String)> {
        let mut settings = Vec::new();
        if let Ok(table) = self.to_toml().parse::<toml::Table>() {
            flatten("", &toml::Value::Table(table), &mut settings);
        }
        settings
    }
}

/// Appends `value`'s leaves under `path` to `settings`.
fn flatten(path: &str, value: &toml::Value, settings: &mut Vec<(String, String)>) {
    match value {
        toml::Value::Table(table) => {
            for (key, value) in table {
                let joined = match path {
                    "" => key.clone(),
                    _ => format!("{path}.{key}"),
                };
                flatten(&joined, value, settings);
            }
        }
        toml::Value::Array(items)
            if items.iter().all(toml::Value::is_table) && !items.is_empty() =>
        {
            for (i, item) in items.iter().enumerate() {
                flatten(&format!("{path}[{i}]"), item, settings);
            }
        }
        toml::Value::String(s) => settings.push((path.to_string(), s.clone())),
        leaf => settings.push((path.to_string(), leaf.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Config, User};

    #[test]
    fn settings_are_flat_key_paths() {
        let mut config = Config::single_shard(
            "127.0.0.1:6432",
            User::with_password("app", "secret"),
            "appdb",
            "127.0.0.1:5432",
        );
        config.shards[0].replicas = vec!["127.0.0.1:5433".into()];
        let settings = config.settings();
        let get = |key: &str| {
            settings
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("pool.size"), Some("8"));
        assert_eq!(get("users[0].name"), Some("app"));
        assert_eq!(get("users[0].password"), Some("secret"));
        assert_eq!(get("shards[0].primary"), Some("127.0.0.1:5432"));
        assert_eq!(get("shards[0].replicas"), Some("[\"127.0.0.1:5433\"]"));
        assert_eq!(get("proxy.listen"), Some("[\"127.0.0.1:6432\"]"));
    }
}
