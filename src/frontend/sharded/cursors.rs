//! Cursors follow the shard they were declared on.
//!
//! `DECLARE c CURSOR FOR SELECT ...` runs on the shard its query routes to;
//! the `FETCH`, `MOVE` and `CLOSE` naming `c` carry no sharding key, so the
//! session remembers where each cursor lives and sends them there.

use std::collections::HashMap;

use crate::router::Route;

/// Cursors remembered per session beyond which the oldest knowledge is
/// dropped (a client that never closes its cursors).
const MAX_CURSORS: usize = 1_000;

/// Where each cursor this session declared lives, by folded name.
#[derive(Debug, Default)]
pub struct Cursors {
    shards: HashMap<String, usize>,
}

impl Cursors {
    /// The shard of the cursor a FETCH / MOVE / CLOSE statement names.
    pub fn route_of(&self, sql: &str) -> Option<Route> {
        let name = used_cursor(sql)?;
        self.shards.get(&name).map(|&shard| Route::Single(shard))
    }

    /// Remembers a DECLARE's shard, or forgets a closed cursor.
    pub fn note(&mut self, sql: &str, route: &Route) {
        let words = words(sql);
        match (words.first().map(String::as_str), route) {
            (Some("declare"), Route::Single(shard)) => {
                if let Some(name) = words.get(1) {
                    if self.shards.len() >= MAX_CURSORS {
                        self.shards.clear();
                    }
                    self.shards.insert(name.clone(), *shard);
                }
            }
            (Some("close"), _) => match words.get(1).map(String::as_str) {
                Some("all") => self.shards.clear(),
                Some(name) => {
                    self.shards.remove(name);
                }
                None => {}
            },
            _ => {}
        }
    }
}

/// The statement's words, folded as SQL folds unquoted identifiers (a
/// quoted name keeps its case, without the quotes).
fn words(sql: &str) -> Vec<String> {
    sql.trim()
        .trim_end_matches(';')
        .split_whitespace()
        .map(
            |w| match w.strip_prefix('"').and_then(|w| w.strip_suffix('"')) {
                Some(quoted) => quoted.to_string(),
                None => w.to_ascii_lowercase(),
            },
        )
        .collect()
}

/// The cursor named by FETCH / MOVE (its last word) or CLOSE.
fn used_cursor(sql: &str) -> Option<String> {
    let words = words(sql);
    match words.first().map(String::as_str)? {
        "fetch" | "move" | "close" if words.len() >= 2 => words.last().cloned(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_move_and_close_follow_their_declare() {
        let mut cursors = Cursors::default();
        cursors.note(
            "DECLARE Big CURSOR FOR SELECT * FROM t WHERE k = 1",
            &Route::Single(2),
        );
        cursors.note("DECLARE \"Q\" CURSOR FOR SELECT 1", &Route::Single(1));
        for sql in [
            "FETCH 10 FROM big",
            "fetch next in BIG;",
            "MOVE LAST IN big",
            "FETCH big",
        ] {
            assert_eq!(cursors.route_of(sql), Some(Route::Single(2)), "{sql}");
        }
        assert_eq!(
            cursors.route_of("FETCH ALL FROM \"Q\""),
            Some(Route::Single(1))
        );
        assert_eq!(cursors.route_of("FETCH ALL FROM q"), None);
        assert_eq!(cursors.route_of("SELECT * FROM big"), None);
        cursors.note("CLOSE big", &Route::Single(0));
        assert_eq!(cursors.route_of("FETCH big"), None);
        cursors.note("CLOSE ALL", &Route::Single(0));
        assert_eq!(cursors.route_of("FETCH \"Q\""), None);
    }
}
