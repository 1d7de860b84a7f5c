//! Read/write classification on a table of statements, role hints, and
//! the role choice for every combination of access, hint and transaction.

use std::collections::HashMap;

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use crate::router::{analyze, analyze_with_functions};
use crate::sharding::map::ShardMap;

use super::*;

use Access::{Read, Write};

/// Functions a test config declares read-only.
fn configured() -> ReadOnlyFunctions {
    ReadOnlyFunctions::new(&["safe_report".to_string(), "Reports.Total".to_string()])
}

/// The access of the one statement `sql` parses to.
fn access_of(sql: &str) -> Result<Access, String> {
    let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).map_err(|e| e.to_string())?;
    match statements.as_slice() {
        [statement] => Ok(statement_access(statement, &configured())),
        other => Err(format!("{} statements", other.len())),
    }
}

/// Queries that only read, with only read-only functions.
const READS: &[&str] = &[
    "select 1",
    "SELECT * FROM t",
    "select a, b from t where a = 1 and b > 2",
    "select * from t where id = $1",
    "select * from t join u on t.id = u.tid",
    "select * from t left join u using (id) where u.id is null",
    "select * from t, lateral (select * from u where u.id = t.id) x",
    "select * from t where id in (select tid from u)",
    "select * from t where exists (select 1 from u where u.id = t.id)",
    "select (select max(x) from u) from t",
    "select * from (select * from t) s",
    "select array(select id from t)",
    "select exists(select 1 from t)",
    "with x as (select * from t) select * from x",
    "WITH a AS (SELECT 1), b AS (SELECT * FROM a) SELECT * FROM b",
    "with recursive r(n) as (select 1 union all select n + 1 from r where n < 10) select * from r",
    "select 1 union select 2",
    "select a from t intersect select a from u",
    "select a from t except all select a from u",
    "values (1, 'a'), (2, 'b')",
    "select * from (values (1), (2)) v(x)",
    "select * from t order by lower(name) limit 10 offset 5",
    "select * from t fetch first 5 rows only",
    "select distinct on (a) a, b from t order by a, b desc",
    "select case when a > 0 then 'p' else 'n' end from t",
    "select cast(x as int), x::text, y::jsonb from t",
    "select * from t where a between 1 and 2 and b like 'x%' and c is not null",
    "select x from t where x = any(array[1, 2])",
    "select count(*), sum(x), avg(x), min(x), max(x) from t group by y having count(*) > 1",
    "select string_agg(name, ',' order by name), array_agg(x), json_agg(t), bool_and(f) from t",
    "select count(*) filter (where x > 0) from t",
    "select percentile_cont(0.5) within group (order by x) from t",
    "select row_number() over (partition by a order by b), rank() over w, lag(x) over w, \
     lead(x, 2) over w from t window w as (order by b)",
    "select abs(x), round(x, 2), ceil(x), floor(x), sqrt(x), power(x, 2), random() from t",
    "select lower(s), upper(s), length(s), substr(s, 1, 3), concat(a, b), format('%s', a), \
     replace(s, 'a', 'b') from t",
    "select regexp_replace(s, 'a+', 'b'), split_part(s, ',', 2), regexp_matches(s, 'x') from t",
    "select substring(s from 2 for 3), position('a' in s), trim(both 'x' from s), \
     overlay(s placing 'a' from 1) from t",
    "select now(), current_timestamp, current_date, localtimestamp, clock_timestamp(), \
     date_trunc('day', ts), extract(year from ts), date_part('month', ts), age(ts) from t",
    "select make_date(2024, 1, 2), to_char(now(), 'YYYY'), to_date('2024-01-01', 'YYYY-MM-DD'), \
     to_timestamp(0)",
    "select now() at time zone 'utc'",
    "select jsonb_build_object('a', 1), to_jsonb(t), jsonb_set(j, '{a}', '1'), \
     json_extract_path_text(j, 'a') from t",
    "select * from jsonb_each('{\"a\": 1}'::jsonb)",
    "select array_length(arr, 1), array_append(arr, 1), cardinality(arr), \
     array_to_string(arr, ',') from t",
    "select coalesce(a, 0), nullif(b, 0), greatest(a, b), least(a, b) from t",
    "select row(1, 2)",
    "select * from generate_series(1, 10) g",
    "select * from unnest(array[1, 2, 3]) as u(x)",
    "select unnest(arr) from t",
    "select * from t, lateral generate_series(1, t.n) g",
    "select version(), current_user, session_user, current_database(), current_schema(), \
     pg_backend_pid(), pg_is_in_recovery(), pg_last_wal_replay_lsn()",
    "select pg_size_pretty(pg_total_relation_size('t')), pg_relation_size('t')",
    "select has_table_privilege('t', 'select'), has_schema_privilege('public', 'usage')",
    "select gen_random_uuid(), md5('x'), sha256('x'::bytea), encode(d, 'hex'), decode('00', 'hex')",
    "select to_tsvector('english', body) @@ to_tsquery('cat') from docs",
    "select current_setting('search_path'), pg_typeof(1), format_type(23, null)",
    "select inet_server_addr(), pg_postmaster_start_time()",
    "select pg_sleep(0.1)",
    "select json_agg(x) from (select * from t order by id) x",
    "select pg_catalog.now(), pg_catalog.lower('X')",
    "select \"now\"()",
    "SELECT NOW(), Lower('X')",
    // Configured functions: unqualified, qualified, in FROM, any case.
    "select safe_report(1)",
    "SELECT Safe_Report(1)",
    "select reports.total(id) from t",
    "select REPORTS.TOTAL(1)",
    "select * from reports.total(3)",
    "select * from t where safe_report(t.id) > 0 order by reports.total(t.id)",
    // SHOW, EXPLAIN of reads, read-only transactions.
    "show search_path",
    "show all",
    "SHOW transaction isolation level",
    "explain select * from t",
    "explain verbose select 1",
    "explain analyze select * from t",
    "explain (analyze, buffers) select count(*) from t",
    "begin read only",
    "begin transaction read only",
    "start transaction read only",
    "start transaction isolation level repeatable read, read only",
    "begin isolation level repeatable read read only",
    "begin isolation level read committed read only",
];

/// Statements that go to the primary.
const WRITES: &[&str] = &[
    // Each primary-only function.
    "select nextval('s')",
    "select setval('s', 1)",
    "select currval('s')",
    "select lastval()",
    "select pg_advisory_lock(1)",
    "select pg_advisory_xact_lock(1)",
    "select pg_advisory_lock_shared(1)",
    "select pg_advisory_unlock(1)",
    "select pg_advisory_unlock_all()",
    "select pg_try_advisory_lock(1)",
    "select pg_try_advisory_xact_lock_shared(1)",
    "select set_config('a.b', 'c', false)",
    "select txid_current()",
    "select pg_current_xact_id()",
    "select pg_current_wal_lsn()",
    "select pg_switch_wal()",
    "select pg_create_restore_point('x')",
    "select lo_create(0)",
    "select lo_import('/tmp/x')",
    "select lo_unlink(1)",
    "select lo_put(1, 0, 'x')",
    "select lowrite(0, 'x')",
    "select pg_notify('c', 'x')",
    "select pg_promote()",
    "select pg_reload_conf()",
    "select pg_terminate_backend(1)",
    "select pg_cancel_backend(1)",
    "select pg_stat_reset()",
    "select pg_stat_reset_shared('bgwriter')",
    "select pg_create_physical_replication_slot('s')",
    "select pg_drop_replication_slot('s')",
    "select * from dblink('conn', 'select 1') as t(a int)",
    "select dblink_exec('conn', 'delete from t')",
    // Primary-only functions nested anywhere.
    "select abs(nextval('s'))",
    "select 1 + nextval('s')",
    "select coalesce(a, nextval('s')) from t",
    "select case when a then setval('s', 1) end from t",
    "select jsonb_build_object('a', lastval())",
    "select * from t where id = nextval('s')",
    "select * from t order by nextval('s')",
    "select x from t group by x having max(nextval('s')) > 0",
    "select count(*) filter (where nextval('s') > 0) from t",
    "select sum(x) over (order by nextval('s')) from t",
    "select * from t limit nextval('s')",
    "select (select nextval('s'))",
    "select * from t where exists (select pg_advisory_lock(t.id))",
    "select * from t where id in (select nextval('s'))",
    "select * from nextval('s')",
    "select * from t, lateral nextval('s') n",
    "with x as (select nextval('s')) select * from x",
    "select nextval('s') union select 1",
    "values (nextval('s'))",
    "select * from (values (setval('s', 1))) v",
    "select pg_catalog.nextval('s')",
    "select pg_catalog.set_config('a', 'b', true)",
    "select reports.total(nextval('s'))",
    // Functions not known to be read-only.
    "select my_func(1)",
    "select * from my_srf(1)",
    "select * from t where my_check(t.a)",
    "select public.safe_report(1)",
    "select other.total(1)",
    "select total(1)",
    "select public.now()",
    "select \"NOW\"()",
    "select a.b.c()",
    "select pg_catalog.my_func()",
    "explain select nextval('s')",
    // Row locks anywhere.
    "select * from t for update",
    "select * from t for share",
    "select * from t for update of t nowait",
    "select * from t for update skip locked",
    "select * from (select * from t for update) s",
    "select * from t where id in (select id from u for share)",
    "select exists (select 1 from t for update)",
    "with x as (select * from t for update) select * from x",
    "explain select * from t for update",
    // Creating a table.
    "select * into t2 from t",
    "select a into temp t3 from t",
    "with x as (select 1) select * into t4 from x",
    // Data-modifying CTEs and writes with WITH.
    "with x as (insert into t values (1) returning id) select * from x",
    "with x as (update t set a = 1 returning *) select count(*) from x",
    "with x as (delete from t returning *) select * from x",
    "with x as (select 1) insert into t select * from x",
    "with x as (select 1) update t set a = 1",
    "with x as (select 1) delete from t",
    // DML.
    "insert into t values (1)",
    "insert into t select * from u",
    "insert into t values (1) on conflict (id) do nothing",
    "insert into t values (1) returning *",
    "update t set a = 1 where id = 2",
    "update t set a = u.a from u where t.id = u.id",
    "delete from t where id = 1",
    "delete from t using u where t.id = u.id",
    "merge into t using s on t.id = s.id when matched then update set a = s.a \
     when not matched then insert values (s.id, s.a)",
    "merge into t using s on t.id = s.id when matched then delete",
    "explain insert into t values (1)",
    "explain analyze insert into t values (1)",
    "explain (analyze) delete from t",
    "explain analyze update t set a = 1",
    // DDL.
    "create table x (id int)",
    "create temporary table tt (a int)",
    "create table x as select * from t",
    "create index on t (a)",
    "create view v as select 1",
    "create materialized view mv as select 1",
    "refresh materialized view mv",
    "alter table t add column b int",
    "drop table t",
    "truncate t",
    "create sequence s",
    "create function f() returns int as 'select 1' language sql",
    "create schema s",
    "create extension pgcrypto",
    "grant select on t to u",
    "revoke select on t from u",
    "comment on table t is 'x'",
    // COPY, locks, maintenance, procedures, notifications.
    "copy t to stdout",
    "copy t from stdin",
    "copy (select 1) to stdout",
    "copy t to '/tmp/x'",
    "lock table t in access exclusive mode",
    "lock t",
    "vacuum t",
    "vacuum",
    "analyze t",
    "call p(1)",
    "listen c",
    "notify c",
    "notify c, 'payload'",
    "unlisten c",
    "unlisten *",
    // Settings.
    "set search_path = public",
    "set local statement_timeout = 0",
    "set shardwire.shard = 1",
    "set transaction read only",
    "reset all",
    "reset search_path",
    "discard all",
    // Transactions other than BEGIN READ ONLY.
    "begin",
    "begin transaction",
    "start transaction",
    "begin read write",
    "begin transaction read write",
    "begin isolation level serializable",
    "begin isolation level serializable read only",
    "start transaction read only, isolation level serializable",
    "begin read only, read write",
    "commit",
    "end",
    "rollback",
    "savepoint a",
    "release savepoint a",
    "rollback to savepoint a",
    // Prepared statements and cursors.
    "prepare p as select 1",
    "execute p",
    "deallocate p",
    "declare c cursor for select 1",
    "declare c cursor with hold for select * from t",
    "fetch next from c",
    "close c",
];

#[test]
fn classifies_a_table_of_statements() {
    let cases = READS
        .iter()
        .map(|sql| (*sql, Read))
        .chain(WRITES.iter().map(|sql| (*sql, Write)));
    let mut failures = Vec::new();
    let mut count = 0;
    for (sql, expected) in cases {
        count += 1;
        match access_of(sql) {
            Ok(found) if found == expected => {}
            Ok(found) => failures.push(format!("{sql}: {found:?}, expected {expected:?}")),
            Err(error) => failures.push(format!("{sql}: does not parse alone: {error}")),
        }
    }
    assert!(count >= 150, "only {count} cases");
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn default_functions_are_the_built_ins_only() {
    let statement = |sql| Parser::parse_sql(&PostgreSqlDialect {}, sql).expect("parses");
    let defaults = ReadOnlyFunctions::default();
    let built_in = statement("select now(), count(*) from t");
    let custom = statement("select safe_report(1)");
    assert_eq!(statement_access(&built_in[0], &defaults), Read);
    assert_eq!(statement_access(&custom[0], &defaults), Write);
    assert_eq!(statement_access(&custom[0], &configured()), Read);
}

/// A map with one shard and no tables: enough for `analyze`.
fn one_shard() -> ShardMap {
    ShardMap {
        version: 1,
        shards: vec![0],
        default_shard: 0,
        buckets: 1,
        bucket_owner: vec![0],
        tables: HashMap::new(),
        reference_tables: Vec::new(),
        allow_keyless_writes: false,
    }
}

/// The access of each statement of `sql` through the cached analysis.
fn analyzed(sql: &str) -> Vec<Access> {
    analyze_with_functions(sql, &one_shard(), &configured())
        .statements
        .iter()
        .map(|statement| statement.access)
        .collect()
}

#[test]
fn statements_that_do_not_parse_are_writes() {
    let unparsable = [
        "selec 1",
        "select * from",
        "do $$ begin perform 1; end $$",
        "table t",
        "select * from t for no key update",
        "select * from t for key share",
        "begin read only deferrable",
        "begin isolation level serializable read only deferrable",
        "select * from rows from (generate_series(1, 3))",
    ];
    for sql in unparsable {
        let analysis = analyze(sql, &one_shard());
        assert!(analysis.parse_error.is_some(), "{sql} parses");
        let access: Vec<Access> = analysis.statements.iter().map(|s| s.access).collect();
        assert_eq!(access, vec![Write], "{sql}");
    }
}

#[test]
fn analysis_records_access_per_statement_and_the_role_hint() {
    assert_eq!(
        analyzed("select 1; insert into t values (1); show all; explain select safe_report(1)"),
        vec![Read, Write, Read, Read]
    );
    assert_eq!(
        analyzed("begin read only; select 1; commit"),
        vec![Read, Read, Write]
    );
    assert_eq!(analyzed("select 1; selec 2"), vec![Read, Write]);
    let plain = analyze("select safe_report(1)", &one_shard());
    assert_eq!(plain.statements[0].access, Write);
    assert_eq!(plain.role_hint, None);

    let hinted = analyze(
        "/* shardwire: shard=0 */ /* shardwire: replica */ select nextval('s')",
        &one_shard(),
    );
    assert_eq!(hinted.role_hint, Some(RoleHint::Replica));
    assert_eq!(hinted.hint, Some(crate::router::Hint::Shard("0".into())));
    assert_eq!(hinted.statements[0].access, Write);
}

#[test]
fn finds_role_hints_in_comments() {
    let cases = [
        ("/* shardwire: primary */ select 1", Some(RoleHint::Primary)),
        ("select 1 -- ShardWire : REPLICA", Some(RoleHint::Replica)),
        ("/*shardwire:replica*/select 1", Some(RoleHint::Replica)),
        ("-- shardwire: primary\nselect 1", Some(RoleHint::Primary)),
        (
            "/*   SHARDWIRE   :   Primary   */ select 1",
            Some(RoleHint::Primary),
        ),
        (
            "/* other */ select /* shardwire: shard=eu */ 1 /* shardwire: replica */ \
             /* shardwire: primary */",
            Some(RoleHint::Replica),
        ),
        ("select 1", None),
        ("/* shardwire: shard=1 */ select 1", None),
        ("/* shardwire: replica=1 */ select 1", None),
        ("/* shardwire: primary replica */ select 1", None),
        ("/* shardwire: primary, shard=eu */ select 1", None),
        ("/* primary */ select 1", None),
        ("/* replica: shardwire */ select 1", None),
        ("select '/* shardwire: primary */'", None),
        ("select $$ -- shardwire: replica $$", None),
        ("select 'open /* shardwire: primary */", None),
    ];
    for (sql, expected) in cases {
        assert_eq!(find_role_hint(sql), expected, "{sql}");
    }
}

#[test]
fn chooses_roles_for_every_combination() {
    use RoleHint as H;
    use TxnAccess as T;
    let cases = [
        (Read, None, T::None, Role::Replica),
        (Write, None, T::None, Role::Primary),
        (Read, Some(H::Primary), T::None, Role::Primary),
        (Write, Some(H::Primary), T::None, Role::Primary),
        (Read, Some(H::Replica), T::None, Role::Replica),
        (Write, Some(H::Replica), T::None, Role::Replica),
        (Read, None, T::ReadOnly, Role::Replica),
        (Write, None, T::ReadOnly, Role::Replica),
        (Read, Some(H::Primary), T::ReadOnly, Role::Replica),
        (Write, Some(H::Primary), T::ReadOnly, Role::Replica),
        (Read, Some(H::Replica), T::ReadOnly, Role::Replica),
        (Write, Some(H::Replica), T::ReadOnly, Role::Replica),
        (Read, None, T::ReadWrite, Role::Primary),
        (Write, None, T::ReadWrite, Role::Primary),
        (Read, Some(H::Primary), T::ReadWrite, Role::Primary),
        (Write, Some(H::Primary), T::ReadWrite, Role::Primary),
        (Read, Some(H::Replica), T::ReadWrite, Role::Primary),
        (Write, Some(H::Replica), T::ReadWrite, Role::Primary),
    ];
    for (access, hint, txn, expected) in cases {
        assert_eq!(
            choose_role(access, hint, txn),
            expected,
            "{access:?} {hint:?} {txn:?}"
        );
    }
}
