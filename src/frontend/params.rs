//! Session parameters (GUCs) of a client, kept coherent across the server
//! connections it is given.
//!
//! Under transaction pooling a client meets many server connections. The
//! parameters it asked for at startup (application_name, TimeZone,
//! DateStyle, search_path, ...) and those it changed later that the server
//! reports (ParameterStatus) are remembered per client; before a server
//! connection serves the client, the differences are applied with one
//! `set_config` query, and parameters only a previous client had set are
//! reset to the server default.

use std::collections::BTreeMap;

/// Startup parameters that are not GUCs.
const NOT_GUCS: [&str; 4] = ["user", "database", "options", "replication"];

/// Parameters the client wants, by lower-case name.
pub type Params = BTreeMap<String, String>;

/// Extracts the GUCs a client asked for in its StartupMessage, including
/// `-c name=value` / `--name=value` items of the `options` parameter.
pub fn startup_gucs(startup: &BTreeMap<String, String>) -> Result<Params, String> {
    let mut gucs = Params::new();
    for (name, value) in startup {
        if !NOT_GUCS.contains(&name.as_str()) && !name.starts_with("_pq_.") {
            gucs.insert(name.to_ascii_lowercase(), value.clone());
        }
    }
    if let Some(options) = startup.get("options") {
        for (name, value) in parse_options(options)? {
            gucs.insert(name.to_ascii_lowercase(), value);
        }
    }
    for name in gucs.keys() {
        if !valid_guc_name(name) {
            return Err(format!("invalid parameter name \"{name}\""));
        }
    }
    Ok(gucs)
}

/// Parses libpq's `options` string: `-c a=b --c=d`, backslash escapes spaces.
fn parse_options(options: &str) -> Result<Vec<(String, String)>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => word.extend(chars.next()),
            c if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    let mut pairs = Vec::new();
    let mut iter = words.into_iter();
    while let Some(word) = iter.next() {
        let setting = if word == "-c" {
            iter.next()
                .ok_or_else(|| "\"-c\" in options needs name=value".to_string())?
        } else if let Some(rest) = word.strip_prefix("--") {
            rest.to_string()
        } else if let Some(rest) = word.strip_prefix("-c") {
            rest.to_string()
        } else {
            return Err(format!(
                "unsupported item \"{word}\" in options: shardwire accepts only -c name=value"
            ));
        };
        let (name, value) = setting
            .split_once('=')
            .ok_or_else(|| format!("\"{setting}\" in options is not name=value"))?;
        pairs.push((name.replace('-', "_"), value.to_string()));
    }
    Ok(pairs)
}

/// GUC names are identifiers, possibly dotted (`myext.setting`).
pub fn valid_guc_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

/// Quotes a string as an SQL literal (standard_conforming_strings on).
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The query that turns a server session with `current` parameters into one
/// with `wanted` ones, or `None` when they already agree.
pub fn sync_query(current: &Params, wanted: &Params) -> Option<String> {
    let mut sets = Vec::new();
    let mut resets = Vec::new();
    for (name, value) in wanted {
        if current.get(name) != Some(value) {
            sets.push(format!(
                "pg_catalog.set_config({}, {}, false)",
                quote_literal(name),
                quote_literal(value)
            ));
        }
    }
    for name in current.keys() {
        if !wanted.contains_key(name) {
            resets.push(format!("RESET {name}"));
        }
    }
    if sets.is_empty() && resets.is_empty() {
        return None;
    }
    let mut sql = String::new();
    if !sets.is_empty() {
        sql.push_str("SELECT ");
        sql.push_str(&sets.join(", "));
        sql.push(';');
    }
    for reset in resets {
        sql.push_str(&reset);
        sql.push(';');
    }
    Some(sql)
}

/// Reported parameters a client can change with SET; a change the server
/// reports while serving the client is carried to its next server.
/// (Read-only ones such as `in_hot_standby` or `server_version` are not.)
const SETTABLE_REPORTED: [&str; 8] = [
    "application_name",
    "client_encoding",
    "datestyle",
    "intervalstyle",
    "timezone",
    "standard_conforming_strings",
    "default_transaction_read_only",
    "search_path",
];

/// After a server reported `name` = `value` while serving a client, record
/// it if the client may have changed it, so the next server gets it too.
/// Returns whether it was recorded.
pub fn note_reported(params: &mut Params, name: &str, value: &str) -> bool {
    let key = name.to_ascii_lowercase();
    if SETTABLE_REPORTED.contains(&key.as_str()) || params.contains_key(&key) {
        params.insert(key, value.to_string());
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn startup_gucs_skip_protocol_keys_and_read_options() {
        let startup = map(&[
            ("user", "app"),
            ("database", "db"),
            ("application_name", "psql"),
            ("TimeZone", "UTC"),
            (
                "options",
                "-c search_path=a,b --statement-timeout=5s -cwork_mem=64MB",
            ),
        ]);
        let gucs = startup_gucs(&startup).unwrap();
        assert_eq!(
            gucs,
            map(&[
                ("application_name", "psql"),
                ("timezone", "UTC"),
                ("search_path", "a,b"),
                ("statement_timeout", "5s"),
                ("work_mem", "64MB"),
            ])
        );
    }

    #[test]
    fn bad_options_are_errors() {
        assert!(startup_gucs(&map(&[("options", "-x y")])).is_err());
        assert!(startup_gucs(&map(&[("options", "-c")])).is_err());
        assert!(startup_gucs(&map(&[("options", "-c novalue")])).is_err());
        assert!(startup_gucs(&map(&[("bad name;", "x")])).is_err());
    }

    #[test]
    fn escaped_spaces_in_options() {
        let gucs = startup_gucs(&map(&[("options", r"-c application_name=a\ b")])).unwrap();
        assert_eq!(gucs["application_name"], "a b");
    }

    #[test]
    fn sync_sets_differences_and_resets_leftovers() {
        let current = map(&[
            ("application_name", "old"),
            ("search_path", "x"),
            ("timezone", "UTC"),
        ]);
        let wanted = map(&[("application_name", "it's"), ("timezone", "UTC")]);
        assert_eq!(
            sync_query(&current, &wanted).unwrap(),
            "SELECT pg_catalog.set_config('application_name', 'it''s', false);RESET search_path;"
        );
        assert_eq!(sync_query(&wanted, &wanted), None);
    }

    #[test]
    fn reported_values_are_tracked_when_asked() {
        let mut params = map(&[("timezone", "utc")]);
        assert!(note_reported(&mut params, "TimeZone", "UTC"));
        assert!(!note_reported(&mut params, "in_hot_standby", "on"));
        assert!(!note_reported(&mut params, "server_version", "15"));
        assert_eq!(params, map(&[("timezone", "UTC")]));
        assert!(note_reported(&mut params, "DateStyle", "ISO, MDY"));
        assert_eq!(params["datestyle"], "ISO, MDY");
    }
}
