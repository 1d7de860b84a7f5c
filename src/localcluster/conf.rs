//! Writing and reading the configuration files of a cluster.

use std::path::Path;

use anyhow::{Context, Result, bail};

use super::runas::RunAs;

/// File (inside the data directory) holding the settings this module chooses.
pub(crate) const SETTINGS_FILE: &str = "shardwire.conf";

const INCLUDE_LINE: &str = "include_if_exists 'shardwire.conf'";

/// The pg_hba.conf every local cluster gets: trust on the cluster's own unix
/// socket (so this module can run setup through it), SCRAM on loopback TCP.
pub(crate) const HBA: &str = "\
# Written by shardwire localcluster.
# TYPE  DATABASE     USER  ADDRESS        METHOD
local   all          all                  trust
host    all          all   127.0.0.1/32   scram-sha-256
host    all          all   ::1/128        scram-sha-256
local   replication  all                  trust
host    replication  all   127.0.0.1/32   scram-sha-256
host    replication  all   ::1/128        scram-sha-256
";

/// Quotes a value for postgresql.conf: '...' with `'` doubled and `\` escaped.
/// Any setting type accepts a quoted value.
pub(crate) fn quote_value(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// Quotes a value for a libpq connection string, if it needs quoting.
pub(crate) fn conninfo_value(value: &str) -> String {
    let plain = !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '\\' || c == '=');
    if plain {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

/// Checks that `key` looks like a setting name (letters, digits, `_`, `.`).
pub(crate) fn check_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if !ok {
        bail!("invalid PostgreSQL setting name {key:?}");
    }
    Ok(())
}

/// Renders settings as `key = 'value'` lines.
pub(crate) fn render(settings: &[(String, String)]) -> Result<String> {
    let mut out = String::from(
        "# Written by shardwire localcluster; rewritten at every start of the cluster.\n",
    );
    for (k, v) in settings {
        check_key(k)?;
        out.push_str(&format!("{k} = {}\n", quote_value(v)));
    }
    Ok(out)
}

/// Writes `shardwire.conf` and makes sure `postgresql.conf` includes it.
pub(crate) fn write_settings(
    data_dir: &Path,
    run_as: &RunAs,
    settings: &[(String, String)],
) -> Result<()> {
    run_as.write_file(&data_dir.join(SETTINGS_FILE), &render(settings)?)?;
    let main = data_dir.join("postgresql.conf");
    let text =
        std::fs::read_to_string(&main).with_context(|| format!("reading {}", main.display()))?;
    if !text.lines().any(|l| l.trim() == INCLUDE_LINE) {
        let mut text = text;
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!(
            "\n# Added by shardwire localcluster: its settings.\n{INCLUDE_LINE}\n"
        ));
        write_keeping_mode(&main, &text, run_as)?;
    }
    Ok(())
}

/// Writes pg_hba.conf.
pub(crate) fn write_hba(data_dir: &Path, run_as: &RunAs) -> Result<()> {
    run_as.write_file(&data_dir.join("pg_hba.conf"), HBA)
}

/// The key of a `key = value` config line, lower-cased, if the line has one.
fn line_key(line: &str) -> Option<String> {
    let t = line.trim_start();
    if t.starts_with('#') || t.is_empty() {
        return None;
    }
    let end = t
        .find(|c: char| c == '=' || c.is_whitespace())
        .unwrap_or(t.len());
    Some(t[..end].to_ascii_lowercase())
}

/// Reads the (unquoted) value of `key` from a config file; the last one wins.
pub(crate) fn read_setting(path: &Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let key = key.to_ascii_lowercase();
    let mut found = None;
    for line in text.lines() {
        if line_key(line).as_deref() != Some(key.as_str()) {
            continue;
        }
        let rest = line.trim_start()[key.len()..].trim_start();
        let rest = rest.strip_prefix('=').unwrap_or(rest).trim();
        let value = if let Some(inner) = rest.strip_prefix('\'') {
            let end = inner.rfind('\'').unwrap_or(inner.len());
            inner[..end].replace("''", "'")
        } else {
            rest.split('#').next().unwrap_or("").trim().to_string()
        };
        found = Some(value);
    }
    found
}

/// True if the file sets `key`.
pub(crate) fn has_setting(path: &Path, key: &str) -> bool {
    read_setting(path, key).is_some()
}

/// Replaces (or appends) settings in a config file such as
/// postgresql.auto.conf, removing earlier lines for the same keys.
pub(crate) fn set_in_file(path: &Path, run_as: &RunAs, settings: &[(&str, String)]) -> Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let keys: Vec<String> = settings
        .iter()
        .map(|(k, _)| k.to_ascii_lowercase())
        .collect();
    let mut out = String::new();
    for line in text.lines() {
        if line_key(line).is_some_and(|k| keys.contains(&k)) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    for (k, v) in settings {
        check_key(k)?;
        out.push_str(&format!("{k} = {}\n", quote_value(v)));
    }
    write_keeping_mode(path, &out, run_as)
}

/// Rewrites a server-owned file: keeps its mode if it exists, owner = run_as.
fn write_keeping_mode(path: &Path, text: &str, run_as: &RunAs) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0o600);
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))?;
    run_as.chown(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_value("a'b\\c"), "'a''b\\\\c'");
        assert_eq!(conninfo_value("abc"), "abc");
        assert_eq!(conninfo_value(""), "''");
        assert_eq!(conninfo_value("a b'c"), "'a b\\'c'");
    }

    #[test]
    fn keys() {
        assert!(check_key("log_min_messages").is_ok());
        assert!(check_key("auto_explain.log_min_duration").is_ok());
        assert!(check_key("x = 1").is_err());
        assert!(check_key("").is_err());
    }

    #[test]
    fn read_and_set() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.conf");
        std::fs::write(&path, "# port = 1\nport = 5432\nfoo='it''s' # c\n").unwrap();
        assert_eq!(read_setting(&path, "port").as_deref(), Some("5432"));
        assert_eq!(read_setting(&path, "foo").as_deref(), Some("it's"));
        assert_eq!(read_setting(&path, "bar"), None);
        let me = RunAs::detect();
        // Only exercise set_in_file where chown is not needed (or allowed).
        if let Ok(me) = me {
            set_in_file(&path, &me, &[("port", "6000".to_string())]).unwrap();
            assert_eq!(read_setting(&path, "port").as_deref(), Some("6000"));
            let text = std::fs::read_to_string(&path).unwrap();
            assert_eq!(text.matches("port =").count(), 2, "{text}");
        }
    }
}
