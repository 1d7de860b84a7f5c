//! Turns a parsed shard map file into a [`ShardMap`], checking everything.
//!
//! Every problem is collected with its location (`tables[2].ranges[1].to`),
//! so one run of `shardwire check-config` lists them all. A map is only
//! built when there is none: routing never sees a half-valid map.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::mem::discriminant;

use super::file::{Literal, MapFile, RangeEntry, TableEntry};
use super::{
    KeyType, MAX_BUCKETS, OwnedKey, RangeRule, ShardMap, ShardedTable, Strategy, ident, key,
    normalize_table_name,
};
use crate::config::{Checker, Problem};

/// Builds and validates a map whose shard names refer to `shard_names` (the
/// config's `[[shards]]`, in order).
pub(super) fn build(file: &MapFile, shard_names: &[String]) -> Result<ShardMap, Vec<Problem>> {
    let mut b = Builder {
        shard_names,
        c: Checker::default(),
    };
    let default_shard = b.shard("default_shard", &file.default_shard);
    let bucket_owner = b.bucket_owner(file);
    let tables = b.tables(&file.tables);
    b.check_groups(&tables);
    let reference_tables = b.reference_tables(&file.reference_tables, &tables);
    let problems = b.c.into_problems();
    // Every missing piece was reported as a problem.
    let (Some(default_shard), Some(bucket_owner), Some(reference_tables), true) = (
        default_shard,
        bucket_owner,
        reference_tables,
        problems.is_empty(),
    ) else {
        return Err(problems);
    };
    let mut map = ShardMap {
        version: 1,
        shards: Vec::new(),
        default_shard,
        buckets: file.buckets,
        bucket_owner,
        tables: tables
            .into_iter()
            .map(|(_, t)| (t.name.clone(), t))
            .collect(),
        reference_tables,
        allow_keyless_writes: file.allow_keyless_writes,
    };
    let mut used: Vec<usize> = map
        .tables
        .values()
        .flat_map(|t| map.shards_of(t))
        .chain(map.bucket_owner.iter().copied())
        .chain([map.default_shard])
        .collect();
    used.sort_unstable();
    used.dedup();
    map.shards = used;
    Ok(map)
}

/// A sharded table built from `tables[index]`.
type IndexedTable = (usize, ShardedTable);

/// The checks, sharing the config's shard names and the problem list.
struct Builder<'a> {
    shard_names: &'a [String],
    c: Checker,
}

impl Builder<'_> {
    /// The config index of shard `name`, or a problem at `location`.
    fn shard(&mut self, location: &str, name: &str) -> Option<usize> {
        let found = self.shard_names.iter().position(|n| n == name);
        if found.is_none() {
            let known = if self.shard_names.is_empty() {
                "the config has no [[shards]]".to_string()
            } else {
                format!("the config's shards: {}", self.shard_names.join(", "))
            };
            self.c
                .report(location, format!("unknown shard \"{name}\" ({known})"));
        }
        found
    }

    /// The owner of every bucket, or `None` after reporting a bad count,
    /// malformed ranges, unknown shards, buckets assigned twice or never.
    fn bucket_owner(&mut self, file: &MapFile) -> Option<Vec<usize>> {
        let count = file.buckets;
        let count_ok = match count {
            0 => Some("must be greater than 0".to_string()),
            n if n > MAX_BUCKETS => Some(format!("{n} is more than the limit of {MAX_BUCKETS}")),
            _ => None,
        }
        .map(|message| self.c.report("buckets", message))
        .is_none();
        // Per bucket: the bucket_ranges entry assigning it, and its shard.
        let mut assigned: Vec<Option<(usize, Option<usize>)>> =
            vec![None; if count_ok { count as usize } else { 0 }];
        for (i, entry) in file.bucket_ranges.iter().enumerate() {
            let at = format!("bucket_ranges[{i}].buckets");
            let shard = self.shard(&format!("bucket_ranges[{i}].shard"), &entry.shard);
            let Some((first, last)) = self.bucket_span(&at, &entry.buckets) else {
                continue;
            };
            if !count_ok {
                continue;
            }
            if last >= count {
                let message = format!(
                    "{} beyond the last bucket {}",
                    describe_buckets(first, last),
                    count - 1
                );
                self.c.report(&at, message);
                continue;
            }
            let mut conflicts = Runs::default();
            for bucket in first..=last {
                match &mut assigned[bucket as usize] {
                    Some((earlier, _)) => conflicts.push(*earlier, bucket),
                    slot => *slot = Some((i, shard)),
                }
            }
            for (earlier, lo, hi) in conflicts.0 {
                let message = format!(
                    "{} already assigned by bucket_ranges[{earlier}]",
                    describe_buckets(lo, hi)
                );
                self.c.report(&at, message);
            }
        }
        let mut unassigned = Runs::default();
        for (bucket, slot) in (0..).zip(&assigned) {
            if slot.is_none() {
                unassigned.push((), bucket);
            }
        }
        for ((), lo, hi) in unassigned.0 {
            let message = format!("{} assigned to no shard", describe_buckets(lo, hi));
            self.c.report("bucket_ranges", message);
        }
        let owners = assigned
            .into_iter()
            .map(|slot| slot.and_then(|(_, shard)| shard))
            .collect::<Option<Vec<usize>>>();
        owners.filter(|_| count_ok)
    }

    /// Reads `"first-last"`, `"n"` or `n`.
    fn bucket_span(&mut self, location: &str, written: &Literal) -> Option<(u32, u32)> {
        let text = written.text();
        let number = |s: &str| s.trim().parse::<u32>().ok();
        let span = match text.split_once('-') {
            Some((first, last)) => number(first).zip(number(last)),
            None => number(&text).map(|n| (n, n)),
        };
        match span {
            Some((first, last)) if first <= last => return Some((first, last)),
            Some((first, last)) => self.c.report(
                location,
                format!("the first bucket {first} comes after the last {last}"),
            ),
            None => self.c.report(
                location,
                format!(
                    "\"{text}\" is not a bucket range: write \"first-last\" (e.g. \"0-511\") or one bucket number"
                ),
            ),
        }
        None
    }

    /// The tables that are valid, with their entry index; duplicates are
    /// reported (the first one stays).
    fn tables(&mut self, entries: &[TableEntry]) -> Vec<IndexedTable> {
        let mut tables: Vec<IndexedTable> = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, entry) in entries.iter().enumerate() {
            let Some(table) = self.table(i, entry) else {
                continue;
            };
            match seen.entry(table.name.clone()) {
                Entry::Occupied(first) => self.c.report(
                    format!("tables[{i}].name"),
                    format!(
                        "table {} is already named by tables[{}]",
                        table.name,
                        first.get()
                    ),
                ),
                Entry::Vacant(slot) => {
                    slot.insert(i);
                    tables.push((i, table));
                }
            }
        }
        tables
    }

    /// One table entry, or `None` after reporting its problems.
    fn table(&mut self, i: usize, entry: &TableEntry) -> Option<ShardedTable> {
        let at = |key: &str| format!("tables[{i}].{key}");
        let name = self.table_name(&at("name"), &entry.name);
        let key_column = if entry.key.trim().is_empty() {
            self.c.report(at("key"), "must name the key column");
            None
        } else {
            match ident::parse_qualified(&entry.key).as_deref() {
                Some([column]) => Some(column.clone()),
                _ => {
                    let message = format!("\"{}\" is not a column name", entry.key);
                    self.c.report(at("key"), message);
                    None
                }
            }
        };
        let key_type = self.key_type(&at("type"), &entry.key_type);
        let strategy = self.strategy(i, entry, key_type);
        let group = entry.group.as_deref().map(str::trim);
        if group == Some("") {
            self.c
                .report(at("group"), "must not be empty (omit it instead)");
        }
        let name = name?;
        Some(ShardedTable {
            group: match group {
                Some("") => return None,
                Some(group) => group.to_string(),
                None => name.clone(),
            },
            name,
            key_column: key_column?,
            key_type: key_type?,
            strategy: strategy?,
        })
    }

    /// A table name normalized to `schema.table`.
    fn table_name(&mut self, location: &str, written: &str) -> Option<String> {
        match ident::parse_qualified(written) {
            Some(parts) if parts.len() <= 2 => Some(normalize_table_name(&parts)),
            _ => {
                self.c.report(
                    location,
                    format!(
                        "\"{written}\" is not a table name: write table or schema.table (double-quote parts that need it)"
                    ),
                );
                None
            }
        }
    }

    fn key_type(&mut self, location: &str, written: &str) -> Option<KeyType> {
        let key_type = match written.trim().to_ascii_lowercase().as_str() {
            "bigint" | "int8" => KeyType::Bigint,
            "integer" | "int" | "int4" => KeyType::Integer,
            "text" | "varchar" => KeyType::Text,
            "uuid" => KeyType::Uuid,
            _ => {
                self.c.report(
                    location,
                    format!("unknown key type \"{written}\": use bigint, integer, text or uuid"),
                );
                return None;
            }
        };
        Some(key_type)
    }

    /// The table's strategy with its rules; keys meant for another strategy
    /// are problems (they would be silently ignored otherwise).
    fn strategy(
        &mut self,
        i: usize,
        entry: &TableEntry,
        key_type: Option<KeyType>,
    ) -> Option<Strategy> {
        let written = entry.strategy.as_deref().unwrap_or("hash");
        let strategy = match written {
            "hash" => Some(Strategy::Hash),
            "range" => self.range_rules(i, &entry.ranges, key_type),
            "list" => self.list_rules(i, entry, key_type),
            _ => {
                self.c.report(
                    format!("tables[{i}].strategy"),
                    format!("unknown strategy \"{written}\": use hash, range or list"),
                );
                return None;
            }
        };
        let misplaced = [
            ("ranges", "range", !entry.ranges.is_empty()),
            ("lists", "list", !entry.lists.is_empty()),
            ("list_default", "list", entry.list_default.is_some()),
        ];
        let mut clean = true;
        for (key, owner, given) in misplaced {
            if given && written != owner {
                self.c.report(
                    format!("tables[{i}].{key}"),
                    format!("only for strategy = \"{owner}\" (this table's is \"{written}\")"),
                );
                clean = false;
            }
        }
        strategy.filter(|_| clean)
    }

    /// Range rules, sorted by lower bound; bounds must parse as the key
    /// type, hold at least one key, and no two rules may overlap.
    fn range_rules(
        &mut self,
        i: usize,
        entries: &[RangeEntry],
        key_type: Option<KeyType>,
    ) -> Option<Strategy> {
        let at = format!("tables[{i}].ranges");
        if entries.is_empty() {
            self.c
                .report(&at, "strategy \"range\" needs at least one range");
            return None;
        }
        let mut rules: Vec<(usize, RangeRule)> = Vec::new();
        let mut complete = true;
        for (j, entry) in entries.iter().enumerate() {
            let rule_at = format!("{at}[{j}]");
            let shard = self.shard(&format!("{rule_at}.shard"), &entry.shard);
            let from = self.bound(&format!("{rule_at}.from"), entry.from.as_ref(), key_type);
            let to = self.bound(&format!("{rule_at}.to"), entry.to.as_ref(), key_type);
            let (Some(shard), Some(from), Some(to)) = (shard, from, to) else {
                complete = false;
                continue;
            };
            if let (Some(low), Some(high)) = (&from, &to)
                && low >= high
            {
                self.c.report(
                    &rule_at,
                    format!("from \"{low}\" is not below to \"{high}\": the range holds no key"),
                );
                complete = false;
                continue;
            }
            rules.push((j, RangeRule { from, to, shard }));
        }
        for (n, (first, a)) in rules.iter().enumerate() {
            for (second, b) in &rules[n + 1..] {
                if let Some(common) = overlap(a, b) {
                    self.c.report(
                        format!("{at}[{second}]"),
                        format!("overlaps ranges[{first}]: {common} fall in both"),
                    );
                    complete = false;
                }
            }
        }
        let mut rules: Vec<RangeRule> = rules.into_iter().map(|(_, rule)| rule).collect();
        rules.sort_by(|a, b| a.from.cmp(&b.from));
        complete.then_some(Strategy::Range(rules))
    }

    /// A range bound: `Some(None)` when absent (unbounded), `None` when it
    /// cannot be read (reported, unless the key type itself was bad).
    fn bound(
        &mut self,
        location: &str,
        written: Option<&Literal>,
        key_type: Option<KeyType>,
    ) -> Option<Option<OwnedKey>> {
        match written {
            None => Some(None),
            Some(literal) => self.literal(location, literal, key_type?).map(Some),
        }
    }

    /// A key literal parsed as the key type, as the server would.
    fn literal(
        &mut self,
        location: &str,
        written: &Literal,
        key_type: KeyType,
    ) -> Option<OwnedKey> {
        let text = written.text();
        let key = key::parse_text(key_type, &text);
        if key.is_none() {
            let message = format!("\"{text}\" is not a valid {}", key_type.sql_name());
            self.c.report(location, message);
        }
        key
    }

    /// List rules: values must parse as the key type and appear once in
    /// the whole table (compared by canonical text, so `7` and `"07"` are
    /// the same integer).
    fn list_rules(
        &mut self,
        i: usize,
        entry: &TableEntry,
        key_type: Option<KeyType>,
    ) -> Option<Strategy> {
        let at = format!("tables[{i}].lists");
        let mut complete = !entry.lists.is_empty();
        if !complete {
            self.c
                .report(&at, "strategy \"list\" needs at least one list");
        }
        // Canonical value -> (lists entry, shard).
        let mut listed: HashMap<String, (usize, Option<usize>)> = HashMap::new();
        for (j, list) in entry.lists.iter().enumerate() {
            let list_at = format!("{at}[{j}]");
            let shard = self.shard(&format!("{list_at}.shard"), &list.shard);
            complete &= shard.is_some();
            if list.values.is_empty() {
                self.c
                    .report(format!("{list_at}.values"), "must list at least one value");
                complete = false;
            }
            let Some(key_type) = key_type else {
                complete = false;
                continue;
            };
            for (k, written) in list.values.iter().enumerate() {
                let value_at = format!("{list_at}.values[{k}]");
                let Some(value) = self.literal(&value_at, written, key_type) else {
                    complete = false;
                    continue;
                };
                match listed.entry(value.to_string()) {
                    Entry::Occupied(earlier) => {
                        let message = format!(
                            "value \"{}\" is already listed in lists[{}]",
                            earlier.key(),
                            earlier.get().0
                        );
                        self.c.report(value_at, message);
                        complete = false;
                    }
                    Entry::Vacant(slot) => {
                        slot.insert((j, shard));
                    }
                }
            }
        }
        let default = match &entry.list_default {
            Some(name) => {
                let shard = self.shard(&format!("tables[{i}].list_default"), name);
                complete &= shard.is_some();
                shard
            }
            None => None,
        };
        let values = listed
            .into_iter()
            .map(|(value, (_, shard))| shard.map(|shard| (value, shard)))
            .collect::<Option<HashMap<String, usize>>>();
        values
            .filter(|_| complete)
            .map(|values| Strategy::List { values, default })
    }

    /// Tables of one co-location group must place equal keys on the same
    /// shard: same key type, same strategy, same rules.
    fn check_groups(&mut self, tables: &[IndexedTable]) {
        let mut first_of_group: HashMap<&str, &IndexedTable> = HashMap::new();
        for indexed in tables {
            let (i, table) = indexed;
            let Some((first_i, first)) = first_of_group.get(table.group.as_str()).copied() else {
                first_of_group.insert(&table.group, indexed);
                continue;
            };
            let difference = if table.key_type != first.key_type {
                format!(
                    "key type {} differs from {}",
                    table.key_type.sql_name(),
                    first.key_type.sql_name()
                )
            } else if discriminant(&table.strategy) != discriminant(&first.strategy) {
                format!(
                    "strategy {} differs from {}",
                    table.strategy.name(),
                    first.strategy.name()
                )
            } else if table.strategy != first.strategy {
                format!("its {} rules differ from those", table.strategy.name())
            } else {
                continue;
            };
            self.c.report(
                format!("tables[{i}].group"),
                format!(
                    "group \"{}\": {difference} of {} (tables[{first_i}]); co-located tables must place equal keys on the same shard",
                    table.group, first.name
                ),
            );
        }
    }

    /// Reference table names, normalized; each named once and not sharded.
    fn reference_tables(
        &mut self,
        written: &[String],
        tables: &[IndexedTable],
    ) -> Option<Vec<String>> {
        let mut names: Vec<String> = Vec::new();
        let mut complete = true;
        for (i, text) in written.iter().enumerate() {
            let at = format!("reference_tables[{i}]");
            let Some(name) = self.table_name(&at, text) else {
                complete = false;
                continue;
            };
            let conflict = if let Some(earlier) = names.iter().position(|n| *n == name) {
                Some(format!(
                    "table {name} is already listed as reference_tables[{earlier}]"
                ))
            } else {
                tables.iter().find(|(_, t)| t.name == name).map(|(j, _)| {
                    format!(
                        "table {name} is also sharded (tables[{j}]): a table is either sharded or a reference table"
                    )
                })
            };
            match conflict {
                Some(message) => {
                    self.c.report(at, message);
                    complete = false;
                }
                None => names.push(name),
            }
        }
        complete.then_some(names)
    }
}

/// The keys two range rules share, described for a message, or `None`
/// when they are disjoint.
fn overlap(a: &RangeRule, b: &RangeRule) -> Option<String> {
    let low = a.from.as_ref().max(b.from.as_ref());
    let high = match (&a.to, &b.to) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (Some(x), None) | (None, Some(x)) => Some(x),
        (None, None) => None,
    };
    if let (Some(low), Some(high)) = (low, high)
        && low >= high
    {
        return None;
    }
    let low = low.map_or("all keys".to_string(), |k| format!("keys from \"{k}\""));
    let high = high.map_or(String::new(), |k| format!(" below \"{k}\""));
    Some(format!("{low}{high}"))
}

/// `bucket 7` or `buckets 3-9`.
fn describe_buckets(first: u32, last: u32) -> String {
    if first == last {
        format!("bucket {first}")
    } else {
        format!("buckets {first}-{last}")
    }
}

/// Consecutive bucket numbers grouped by a tag: `(tag, first, last)` runs in
/// the order they were pushed.
struct Runs<T>(Vec<(T, u32, u32)>);

impl<T> Default for Runs<T> {
    fn default() -> Self {
        Runs(Vec::new())
    }
}

impl<T: PartialEq> Runs<T> {
    fn push(&mut self, tag: T, bucket: u32) {
        if let Some((last_tag, _, last)) = self.0.last_mut()
            && *last_tag == tag
            && last.checked_add(1) == Some(bucket)
        {
            *last = bucket;
        } else {
            self.0.push((tag, bucket, bucket));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Problem;
    use crate::sharding::map::ShardMap;

    const SHARDS: [&str; 2] = ["s0", "s1"];

    /// A valid head: 4 buckets, two shards.
    const HEAD: &str = r#"
        buckets = 4
        default_shard = "s0"
        bucket_ranges = [{ buckets = "0-1", shard = "s0" }, { buckets = "2-3", shard = "s1" }]
    "#;

    fn problems(text: &str) -> Vec<Problem> {
        let shards: Vec<String> = SHARDS.iter().map(|s| s.to_string()).collect();
        match ShardMap::from_toml(text, &shards) {
            Ok(map) => panic!("expected problems, the map loaded: {map:#?}"),
            Err(problems) => problems,
        }
    }

    /// Problems of a map made of [`HEAD`] and `tables`.
    fn table_problems(tables: &str) -> Vec<Problem> {
        problems(&format!("{HEAD}\n{tables}"))
    }

    /// Asserts the exact problem list, as `location: message` lines.
    fn assert_problems(found: Vec<Problem>, expected: &[&str]) {
        let found: Vec<String> = found.iter().map(|p| p.to_string()).collect();
        assert_eq!(found, expected, "\nfound:\n{}", found.join("\n"));
    }

    #[test]
    fn bucket_count_must_be_positive_and_bounded() {
        assert_problems(
            problems(
                r#"buckets = 0
                default_shard = "s0""#,
            ),
            &["buckets: must be greater than 0"],
        );
        assert_problems(
            problems(
                r#"buckets = 2000000
                default_shard = "s0""#,
            ),
            &["buckets: 2000000 is more than the limit of 1048576"],
        );
    }

    #[test]
    fn every_bucket_is_assigned_exactly_once() {
        let text = r#"
            buckets = 16
            default_shard = "s0"
            [[bucket_ranges]]
            buckets = "0-7"
            shard = "s0"
            [[bucket_ranges]]
            buckets = "5-9"
            shard = "s1"
            [[bucket_ranges]]
            buckets = 12
            shard = "s1"
            [[bucket_ranges]]
            buckets = "9-12"
            shard = "s1"
            [[bucket_ranges]]
            buckets = " 15 - 15 "
            shard = "s0"
        "#;
        assert_problems(
            problems(text),
            &[
                "bucket_ranges[1].buckets: buckets 5-7 already assigned by bucket_ranges[0]",
                "bucket_ranges[3].buckets: bucket 9 already assigned by bucket_ranges[1]",
                "bucket_ranges[3].buckets: bucket 12 already assigned by bucket_ranges[2]",
                "bucket_ranges: buckets 13-14 assigned to no shard",
            ],
        );
    }

    #[test]
    fn bucket_ranges_must_parse_fit_and_name_known_shards() {
        let text = r#"
            buckets = 8
            default_shard = "s9"
            bucket_ranges = [
                { buckets = "0-3", shard = "s0" },
                { buckets = "six", shard = "s1" },
                { buckets = "5-4", shard = "s1" },
                { buckets = -1, shard = "s1" },
                { buckets = "6-9", shard = "s1" },
                { buckets = "4-5", shard = "nope" },
            ]
        "#;
        assert_problems(
            problems(text),
            &[
                r#"default_shard: unknown shard "s9" (the config's shards: s0, s1)"#,
                r#"bucket_ranges[1].buckets: "six" is not a bucket range: write "first-last" (e.g. "0-511") or one bucket number"#,
                "bucket_ranges[2].buckets: the first bucket 5 comes after the last 4",
                r#"bucket_ranges[3].buckets: "-1" is not a bucket range: write "first-last" (e.g. "0-511") or one bucket number"#,
                "bucket_ranges[4].buckets: buckets 6-9 beyond the last bucket 7",
                r#"bucket_ranges[5].shard: unknown shard "nope" (the config's shards: s0, s1)"#,
                "bucket_ranges: buckets 6-7 assigned to no shard",
            ],
        );
    }

    #[test]
    fn table_names_keys_types_and_strategies_are_checked() {
        let tables = r#"
            [[tables]]
            name = "Clients"
            key = "client_id"
            type = "BIGINT"
            [[tables]]
            name = "public.clients"
            key = "id"
            type = "bigint"
            [[tables]]
            name = "a.b.c"
            key = " "
            type = "float"
            strategy = "random"
            [[tables]]
            name = "t"
            key = "two words"
            type = "text"
            ranges = [{ shard = "s0" }]
            lists = [{ values = ["x"], shard = "s0" }]
            list_default = "s1"
            [[tables]]
            name = "u"
            key = "k"
            type = "int8"
            group = " "
        "#;
        assert_problems(
            table_problems(tables),
            &[
                "tables[1].name: table public.clients is already named by tables[0]",
                r#"tables[2].name: "a.b.c" is not a table name: write table or schema.table (double-quote parts that need it)"#,
                "tables[2].key: must name the key column",
                r#"tables[2].type: unknown key type "float": use bigint, integer, text or uuid"#,
                r#"tables[2].strategy: unknown strategy "random": use hash, range or list"#,
                r#"tables[3].key: "two words" is not a column name"#,
                r#"tables[3].ranges: only for strategy = "range" (this table's is "hash")"#,
                r#"tables[3].lists: only for strategy = "list" (this table's is "hash")"#,
                r#"tables[3].list_default: only for strategy = "list" (this table's is "hash")"#,
                "tables[4].group: must not be empty (omit it instead)",
            ],
        );
    }

    #[test]
    fn range_rules_must_parse_be_nonempty_and_disjoint() {
        let tables = r#"
            [[tables]]
            name = "none"
            key = "k"
            type = "integer"
            strategy = "range"
            [[tables]]
            name = "r"
            key = "k"
            type = "integer"
            strategy = "range"
            ranges = [
                { from = 0, to = 100, shard = "s0" },
                { from = "abc", shard = "s1" },
                { from = 10, to = 10, shard = "s1" },
                { from = 50, to = 150, shard = "s1" },
                { to = 5, shard = "s1" },
                { from = 3000000000, shard = "s1" },
                { from = 200, shard = "s2" },
                { from = 120, shard = "s1" },
            ]
        "#;
        assert_problems(
            table_problems(tables),
            &[
                r#"tables[0].ranges: strategy "range" needs at least one range"#,
                r#"tables[1].ranges[1].from: "abc" is not a valid integer"#,
                r#"tables[1].ranges[2]: from "10" is not below to "10": the range holds no key"#,
                r#"tables[1].ranges[5].from: "3000000000" is not a valid integer"#,
                r#"tables[1].ranges[6].shard: unknown shard "s2" (the config's shards: s0, s1)"#,
                r#"tables[1].ranges[3]: overlaps ranges[0]: keys from "50" below "100" fall in both"#,
                r#"tables[1].ranges[4]: overlaps ranges[0]: keys from "0" below "5" fall in both"#,
                r#"tables[1].ranges[7]: overlaps ranges[3]: keys from "120" below "150" fall in both"#,
            ],
        );
    }

    #[test]
    fn unbounded_ranges_overlap_each_other() {
        let tables = r#"
            [[tables]]
            name = "r"
            key = "k"
            type = "text"
            strategy = "range"
            ranges = [{ shard = "s0" }, { to = "m", shard = "s1" }, { from = "x", shard = "s1" }]
        "#;
        assert_problems(
            table_problems(tables),
            &[
                r#"tables[0].ranges[1]: overlaps ranges[0]: all keys below "m" fall in both"#,
                r#"tables[0].ranges[2]: overlaps ranges[0]: keys from "x" fall in both"#,
            ],
        );
    }

    #[test]
    fn list_rules_must_parse_and_list_each_value_once() {
        let tables = r#"
            [[tables]]
            name = "none"
            key = "k"
            type = "text"
            strategy = "list"
            list_default = "s7"
            [[tables]]
            name = "l"
            key = "k"
            type = "integer"
            strategy = "list"
            lists = [
                { values = [7, "8"], shard = "s0" },
                { values = ["07", "x", 9, 9], shard = "s1" },
                { values = [], shard = "s1" },
                { values = [10], shard = "s3" },
            ]
            [[tables]]
            name = "u"
            key = "k"
            type = "uuid"
            strategy = "list"
            lists = [
                { values = ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"], shard = "s0" },
                { values = ["A0EEBC999C0B4EF8BB6D6BB9BD380A11"], shard = "s1" },
            ]
        "#;
        assert_problems(
            table_problems(tables),
            &[
                r#"tables[0].lists: strategy "list" needs at least one list"#,
                r#"tables[0].list_default: unknown shard "s7" (the config's shards: s0, s1)"#,
                r#"tables[1].lists[1].values[0]: value "7" is already listed in lists[0]"#,
                r#"tables[1].lists[1].values[1]: "x" is not a valid integer"#,
                r#"tables[1].lists[1].values[3]: value "9" is already listed in lists[1]"#,
                "tables[1].lists[2].values: must list at least one value",
                r#"tables[1].lists[3].shard: unknown shard "s3" (the config's shards: s0, s1)"#,
                r#"tables[2].lists[1].values[0]: value "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11" is already listed in lists[0]"#,
            ],
        );
    }

    #[test]
    fn group_members_must_agree() {
        let tables = r#"
            [[tables]]
            name = "a"
            key = "k"
            type = "bigint"
            group = "g"
            [[tables]]
            name = "b"
            key = "other_name_is_fine"
            type = "integer"
            group = "g"
            [[tables]]
            name = "c"
            key = "k"
            type = "bigint"
            strategy = "list"
            lists = [{ values = [1], shard = "s0" }]
            group = "g"
            [[tables]]
            name = "d"
            key = "k"
            type = "bigint"
            group = "g"
            [[tables]]
            name = "r1"
            key = "k"
            type = "text"
            strategy = "range"
            ranges = [{ to = "m", shard = "s0" }, { from = "m", shard = "s1" }]
            group = "r"
            [[tables]]
            name = "r2"
            key = "k"
            type = "text"
            strategy = "range"
            ranges = [{ from = "m", shard = "s1" }, { to = "m", shard = "s0" }]
            group = "r"
            [[tables]]
            name = "r3"
            key = "k"
            type = "text"
            strategy = "range"
            ranges = [{ to = "n", shard = "s0" }, { from = "n", shard = "s1" }]
            group = "r"
        "#;
        let suffix = "co-located tables must place equal keys on the same shard";
        let expected = [
            format!(
                r#"tables[1].group: group "g": key type integer differs from bigint of public.a (tables[0]); {suffix}"#
            ),
            format!(
                r#"tables[2].group: group "g": strategy list differs from hash of public.a (tables[0]); {suffix}"#
            ),
            format!(
                r#"tables[6].group: group "r": its range rules differ from those of public.r1 (tables[4]); {suffix}"#
            ),
        ];
        let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
        assert_problems(table_problems(tables), &expected);
    }

    #[test]
    fn reference_tables_are_named_once_and_not_sharded() {
        let text = format!(
            r#"reference_tables = ["assets", "public.Assets", "Clients", "x.", "ref.\"Rates\"", "ref.rates"]
            {HEAD}
            [[tables]]
            name = "clients"
            key = "id"
            type = "bigint""#
        );
        assert_problems(
            problems(&text),
            &[
                "reference_tables[1]: table public.assets is already listed as reference_tables[0]",
                "reference_tables[2]: table public.clients is also sharded (tables[0]): a table is either sharded or a reference table",
                r#"reference_tables[3]: "x." is not a table name: write table or schema.table (double-quote parts that need it)"#,
            ],
        );
    }

    #[test]
    fn syntax_errors_have_a_line_and_column() {
        let text =
            format!("{HEAD}\n[[tables]]\nname = \"t\"\nkey = \"k\"\ntype = \"text\"\nsise = 3\n");
        let found = problems(&text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].location, "line 10, column 1");
        assert!(
            found[0].message.contains("unknown field `sise`"),
            "{found:?}"
        );
        let found = problems("buckets = \n");
        assert_eq!(found[0].location, "line 1, column 11");
        let found = problems("default_shard = \"s0\"\n");
        assert!(
            found[0].message.contains("missing field `buckets`"),
            "{found:?}"
        );
    }

    #[test]
    fn a_valid_map_reports_nothing() {
        let shards: Vec<String> = SHARDS.iter().map(|s| s.to_string()).collect();
        let map = ShardMap::from_toml(HEAD, &shards).expect("valid");
        assert_eq!(map.bucket_owner, vec![0, 0, 1, 1]);
        assert_eq!(map.version, 1);
        assert!(map.tables.is_empty());
    }
}
