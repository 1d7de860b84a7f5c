//! Loading the shard map files a config names, one per sharded database.
//!
//! Map problems are reported alongside the config's own, so the operator
//! sees everything in one `check-config` run: a file that cannot be read is
//! a problem of the database entry naming it, a problem inside a map is
//! located as `<map file>: <key path>`.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Config, Problem};
use crate::sharding::map::ShardMap;

/// Loads the map of every database that names one; returns the maps that
/// loaded cleanly, by database name, and every problem found.
pub(super) fn load(config: &Config) -> (HashMap<String, Arc<ShardMap>>, Vec<Problem>) {
    let shard_names: Vec<String> = config.shards.iter().map(|s| s.name.clone()).collect();
    let mut maps = HashMap::new();
    let mut problems = Vec::new();
    for (i, database) in config.databases.iter().enumerate() {
        let Some(path) = database.shard_map.as_deref() else {
            continue;
        };
        if path.as_os_str().is_empty() {
            continue; // reported by validate()
        }
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                problems.push(Problem {
                    location: format!("databases[{i}].shard_map"),
                    message: format!("cannot read shard map {}: {e}", path.display()),
                });
                continue;
            }
        };
        match ShardMap::from_toml(&text, &shard_names) {
            Ok(map) => {
                maps.insert(database.name.clone(), Arc::new(map));
            }
            Err(map_problems) => {
                problems.extend(map_problems.into_iter().map(|p| Problem {
                    location: if p.location.is_empty() {
                        path.display().to_string()
                    } else {
                        format!("{}: {}", path.display(), p.location)
                    },
                    message: p.message,
                }));
            }
        }
    }
    (maps, problems)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, ConfigError, Problem};
    use crate::sharding::map::TableClass;

    const CONFIG: &str = r#"
        [[users]]
        name = "app"
        password = "secret"
        [[databases]]
        name = "app"
        shard_map = "maps/app.toml"
        [[databases]]
        name = "plain"
        [[shards]]
        name = "s0"
        primary = "127.0.0.1:5432"
        [[shards]]
        name = "s1"
        primary = "127.0.0.1:5433"
    "#;

    const MAP: &str = r#"
        buckets = 2
        default_shard = "s1"
        bucket_ranges = [{ buckets = "0-1", shard = "s0" }]
        [[tables]]
        name = "t"
        key = "id"
        type = "bigint"
    "#;

    /// Writes the config (as `shardwire.toml`) and the map (as
    /// `maps/app.toml`) to a fresh folder and loads the config.
    fn load(config: &str, map: &str) -> (tempfile::TempDir, Result<Config, ConfigError>) {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("maps")).expect("maps dir");
        std::fs::write(dir.path().join("maps/app.toml"), map).expect("write map");
        let path = dir.path().join("shardwire.toml");
        std::fs::write(&path, config).expect("write config");
        let loaded = Config::load(&path);
        (dir, loaded)
    }

    fn problems(result: Result<Config, ConfigError>) -> Vec<Problem> {
        match result {
            Err(ConfigError::Invalid { problems, .. }) => problems,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn maps_load_relative_to_the_config_file() {
        let (dir, loaded) = load(CONFIG, MAP);
        let config = loaded.expect("valid");
        let map_path = dir.path().join("maps/app.toml");
        assert_eq!(config.databases[0].shard_map.as_deref(), Some(&*map_path));
        let map = config.shard_map("app").expect("app is sharded");
        assert_eq!(map.default_shard, 1);
        assert_eq!(map.shards, vec![0, 1]);
        assert!(matches!(map.table("public.t"), TableClass::Sharded(_)));
        assert!(config.shard_map("plain").is_none());
        assert!(config.shard_map("unknown").is_none());
        assert_eq!(config.shard_maps.len(), 1);
    }

    #[test]
    fn map_problems_are_listed_with_the_config_problems() {
        let config = CONFIG.replace("password = \"secret\"", "");
        let map = MAP.replace("\"s1\"", "\"s9\"").replace("bigint", "float");
        let (dir, loaded) = load(&config, &map);
        let map_path = dir.path().join("maps/app.toml");
        let found: Vec<String> = problems(loaded)
            .iter()
            .map(|p| p.location.clone())
            .collect();
        let at = |key: &str| format!("{}: {key}", map_path.display());
        assert_eq!(
            found,
            vec![
                "users[0].password".to_string(),
                at("default_shard"),
                at("tables[0].type"),
            ]
        );
    }

    #[test]
    fn an_unreadable_map_is_a_problem_of_its_database_entry() {
        let config = CONFIG.replace("maps/app.toml", "maps/missing.toml");
        let (dir, loaded) = load(&config, MAP);
        let found = problems(loaded);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].location, "databases[0].shard_map");
        let missing = dir.path().join("maps/missing.toml");
        assert!(
            found[0].message.contains(&missing.display().to_string()),
            "{found:?}"
        );
    }

    #[test]
    fn a_map_syntax_error_names_the_file_line_and_column() {
        let (dir, loaded) = load(CONFIG, "buckets = 2\ndefault_shard = \n");
        let found = problems(loaded);
        let map_path = dir.path().join("maps/app.toml");
        assert_eq!(
            found[0].location,
            format!("{}: line 2, column 17", map_path.display())
        );
    }

    #[test]
    fn an_empty_map_path_is_refused() {
        let config = CONFIG.replace("maps/app.toml", "");
        let found = problems(Config::from_toml(&config, Path::new("x.toml")));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].location, "databases[0].shard_map");
    }
}
