//! Routing hints written as SQL comments.
//!
//! Applications that know better than the router (or that run statements
//! the router cannot analyze) name the target in a comment, which Postgres
//! ignores: `/* shardwire: shard=eu1 */` or `-- shardwire: sharding_key=42`.
//! Comments survive ORMs and poolers that would drop a `SET`.

use super::text;

/// A routing hint found in a comment of the query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// `shard=<name or config index>`: run there, whatever the statement.
    Shard(String),
    /// `sharding_key=<value>`: route as if the statement's sharded tables
    /// were constrained to this key value.
    ShardingKey(String),
}

/// The first hint in the comments of `sql`, if any. Later hints are ignored.
pub(super) fn find_hint(sql: &str) -> Option<Hint> {
    text::comments(sql).iter().find_map(|body| parse_hint(body))
}

/// The directive of a `shardwire:` comment: what follows the prefix
/// (case-insensitive, spaces allowed around `:`), trimmed. Shard hints
/// (`name=value`) and role hints ([`super::readwrite::find_role_hint`],
/// a bare word) share the prefix and never match each other.
pub(super) fn shardwire_directive(body: &str) -> Option<&str> {
    let (prefix, rest) = body.split_once(':')?;
    prefix
        .trim()
        .eq_ignore_ascii_case("shardwire")
        .then_some(rest.trim())
}

/// Reads one comment body: `shardwire:` then `shard=...` or
/// `sharding_key=...`, case-insensitive, spaces allowed around `:` and `=`,
/// the value optionally in single quotes.
fn parse_hint(body: &str) -> Option<Hint> {
    let (name, value) = shardwire_directive(body)?.split_once('=')?;
    let value = value.trim();
    let value = value
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .unwrap_or(value);
    if value.is_empty() {
        return None;
    }
    match name.trim().to_ascii_lowercase().as_str() {
        "shard" => Some(Hint::Shard(value.to_string())),
        "sharding_key" => Some(Hint::ShardingKey(value.to_string())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_hints_in_either_comment_style() {
        assert_eq!(
            find_hint("/* shardwire: shard=1 */ select 1"),
            Some(Hint::Shard("1".into()))
        );
        assert_eq!(
            find_hint("select 1 -- ShardWire : Sharding_Key = 'a b'\n"),
            Some(Hint::ShardingKey("a b".into()))
        );
        assert_eq!(
            find_hint("/* other */ select /*shardwire:shard=eu*/ 1 /* shardwire: shard=us */"),
            Some(Hint::Shard("eu".into()))
        );
    }

    #[test]
    fn ignores_non_hints() {
        assert_eq!(find_hint("select '/* shardwire: shard=1 */'"), None);
        assert_eq!(find_hint("/* shardwire: replica=1 */ select 1"), None);
        assert_eq!(find_hint("/* shardwire: primary */ select 1"), None);
        assert_eq!(find_hint("-- shardwire: replica\nselect 1"), None);
        assert_eq!(find_hint("/* shardwire: shard= */ select 1"), None);
        assert_eq!(find_hint("/* shard=1 */ select 1"), None);
    }
}
