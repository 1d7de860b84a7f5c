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
