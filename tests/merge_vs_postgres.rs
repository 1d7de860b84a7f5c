//! Proves the cross-shard merge engine against real PostgreSQL: a table's
//! rows are split over three tables (three simulated shards), each query's
//! per-shard SQL runs on every part, `Merger` combines the parts' rows, and
//! the result must equal the original query over the whole table: the same
//! column types in the RowDescription, and byte-identical DataRows, in text
//! and in binary result format.
//!
//! The shard SQL and merge plans are written by hand here, as the scatter
//! planner would produce them. A tiny raw-protocol client (unix socket,
//! trust login) is used so the test sees the exact bytes Postgres sends.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use shardwire::localcluster::{ClusterOptions, LocalCluster};
use shardwire::net::messages::{error_field, put_cstr, put_message, split_cstr, tag};
use shardwire::scatter::{ColumnMerge, CompareOp, Filter, MergeSpec, Merger, ScatterPlan, SortKey};

/// Simulated shards.
const SHARDS: usize = 3;
/// Text and binary result format codes.
const FORMATS: [i16; 2] = [0, 1];

/// The whole table: 300 rows of every type under test, NULLs in each
/// column, special float and date values, text outside ASCII, numerics of
/// several scales (without trailing zeros, so equal values print alike),
/// and a uuid with few distinct values (`ug`) to group by.
const SETUP: &str = "
SELECT setseed(0.25);
CREATE TABLE items AS
SELECT id,
  CASE WHEN id % 11 = 0 THEN NULL ELSE id % 7 END AS g,
  CASE WHEN id % 13 = 0 THEN NULL ELSE (random() * 2000 - 1000)::int4 END AS i4,
  CASE WHEN id % 17 = 0 THEN NULL ELSE ((random() * 2 - 1) * 4e17)::int8 END AS i8,
  CASE WHEN id % 19 = 0 THEN NULL
       ELSE trim_scale(round((random() * 2e6 - 1e6)::numeric, id % 5)) END AS n,
  CASE WHEN id % 23 = 0 THEN NULL ELSE round(random() * 4000 - 2000) / 4.0 END::float8 AS f8,
  CASE WHEN id % 29 = 0 THEN NULL ELSE round(random() * 400 - 200) / 2.0 END::float4 AS f4,
  CASE WHEN id % 31 = 0 THEN NULL
       WHEN id % 37 = 1 THEN 'NaN' WHEN id % 37 = 2 THEN 'Infinity'
       WHEN id % 37 = 3 THEN '-Infinity' WHEN id % 37 = 4 THEN '-0'
       WHEN id % 37 = 5 THEN '1e300' WHEN id % 37 = 6 THEN '1.5e-7'
       ELSE (random() * 1e6 - 5e5)::text END::float8 AS fx,
  CASE WHEN id % 41 = 0 THEN NULL
       ELSE (ARRAY['a', 'B', 'é', '', 'ab', 'a ', 'Zz', 'ß', '~', '0'])[1 + (random() * 9)::int]
  END AS t,
  CASE WHEN id % 43 = 0 THEN NULL WHEN id % 47 = 0 THEN 'infinity'::date
       WHEN id % 53 = 0 THEN '-infinity'::date WHEN id % 59 = 0 THEN '0044-03-15 BC'::date
       ELSE date '1990-01-01' + (random() * 20000)::int END AS d,
  CASE WHEN id % 61 = 0 THEN NULL WHEN id % 67 = 0 THEN 'infinity'::timestamptz
       ELSE timestamptz '1890-01-01 00:00:00+00'
            + (random() * 4e9)::bigint * interval '1 second'
            + (random() * 1e6)::int * interval '1 microsecond' END AS ts,
  CASE WHEN id % 71 = 0 THEN NULL ELSE md5(random()::text)::uuid END AS u,
  CASE WHEN id % 73 = 0 THEN NULL ELSE md5((id % 17)::text)::uuid END AS ug
FROM generate_series(1, 300) AS id;
CREATE TABLE items_0 AS SELECT * FROM items WHERE id % 3 = 0;
CREATE TABLE items_1 AS SELECT * FROM items WHERE id % 3 = 1;
CREATE TABLE items_2 AS SELECT * FROM items WHERE id % 3 = 2;
";

/// A minimal frontend over the server's unix socket.
struct RawClient {
    stream: UnixStream,
}

/// What one extended-protocol query returned: message bodies.
struct QueryResult {
    row_description: Vec<u8>,
    rows: Vec<Vec<u8>>,
}

impl RawClient {
    /// Logs in as the superuser (trust on the socket), with a TimeZone that
    /// has fractional and historical offsets.
    fn connect(cluster: &LocalCluster) -> RawClient {
        let path = cluster
            .socket_dir()
            .join(format!(".s.PGSQL.{}", cluster.port()));
        let stream = UnixStream::connect(&path).expect("connect to the unix socket");
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .expect("read timeout");
        let mut client = RawClient { stream };
        let mut body = BytesMut::new();
        body.put_i32(196_608);
        for (name, value) in [
            ("user", "postgres"),
            ("database", "postgres"),
            ("TimeZone", "Asia/Kolkata"),
        ] {
            put_cstr(&mut body, name.as_bytes());
            put_cstr(&mut body, value.as_bytes());
        }
        body.put_u8(0);
        let mut startup = BytesMut::new();
        startup.put_i32(body.len() as i32 + 4);
        startup.put_slice(&body);
        client.send(&startup);
        client.until_ready(|_, _| {});
        client
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to the server");
    }

    fn read_message(&mut self) -> (u8, Vec<u8>) {
        let mut header = [0u8; 5];
        self.stream.read_exact(&mut header).expect("read a header");
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        let mut body = vec![0u8; len - 4];
        self.stream.read_exact(&mut body).expect("read a body");
        (header[0], body)
    }

    /// Reads messages up to ReadyForQuery, handing each to `each`; panics
    /// on an ErrorResponse.
    fn until_ready(&mut self, mut each: impl FnMut(u8, Vec<u8>)) {
        loop {
            let (tag, body) = self.read_message();
            match tag {
                b'Z' => return,
                b'E' => panic!("server error: {}", error_field(&body, b'M').unwrap_or("?")),
                _ => each(tag, body),
            }
        }
    }

    /// Runs SQL with the simple protocol, ignoring its results.
    fn execute(&mut self, sql: &str) {
        let mut out = BytesMut::new();
        put_message(&mut out, tag::QUERY, |b| put_cstr(b, sql.as_bytes()));
        self.send(&out);
        self.until_ready(|_, _| {});
    }

    /// Runs a query with the extended protocol, all result columns in
    /// `format`.
    fn query(&mut self, sql: &str, format: i16) -> QueryResult {
        let mut out = BytesMut::new();
        put_message(&mut out, tag::PARSE, |b| {
            put_cstr(b, b"");
            put_cstr(b, sql.as_bytes());
            b.put_i16(0);
        });
        put_message(&mut out, tag::BIND, |b| {
            put_cstr(b, b"");
            put_cstr(b, b"");
            b.put_i16(0);
            b.put_i16(0);
            b.put_i16(1);
            b.put_i16(format);
        });
        put_message(&mut out, tag::DESCRIBE, |b| {
            b.put_u8(b'P');
            put_cstr(b, b"");
        });
        put_message(&mut out, tag::EXECUTE, |b| {
            put_cstr(b, b"");
            b.put_i32(0);
        });
        put_message(&mut out, tag::SYNC, |_| {});
        self.send(&out);
        let mut result = QueryResult {
            row_description: Vec::new(),
            rows: Vec::new(),
        };
        self.until_ready(|tag, body| match tag {
            b'T' => result.row_description = body,
            b'D' => result.rows.push(body),
            _ => {}
        });
        result
    }
}

/// (name, type OID, typlen, typmod, format) of each RowDescription field:
/// what the client sees of a column apart from its source table.
fn column_types(body: &[u8]) -> Vec<(String, u32, i16, i32, i16)> {
    let count = i16::from_be_bytes([body[0], body[1]]);
    let mut rest = &body[2..];
    (0..count)
        .map(|_| {
            let (name, tail) = split_cstr(rest).expect("field name");
            let word = |at: usize, len: usize| &tail[at..at + len];
            let field = (
                String::from_utf8_lossy(name).into_owned(),
                u32::from_be_bytes(word(6, 4).try_into().unwrap()),
                i16::from_be_bytes(word(10, 2).try_into().unwrap()),
                i32::from_be_bytes(word(12, 4).try_into().unwrap()),
                i16::from_be_bytes(word(16, 2).try_into().unwrap()),
            );
            rest = &tail[18..];
            field
        })
        .collect()
}

/// The DataRow messages for row bodies.
fn data_rows(bodies: &[Vec<u8>]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for body in bodies {
        put_message(&mut out, b'D', |b| b.put_slice(body));
    }
    out.to_vec()
}

/// One query and its hand-written plan.
struct Case {
    /// The query over the whole table `items`.
    whole: &'static str,
    /// What each shard runs; `{t}` stands for the shard's table.
    shard: &'static str,
    visible: usize,
    merge: MergeSpec,
}

/// Runs `case` whole and split, merges, and compares.
fn check(client: &mut RawClient, case: &Case, format: i16) {
    let whole = client.query(case.whole, format);
    assert!(
        !whole.rows.is_empty(),
        "{}: a case without rows proves little",
        case.whole
    );
    let parts: Vec<QueryResult> = (0..SHARDS)
        .map(|k| client.query(&case.shard.replace("{t}", &format!("items_{k}")), format))
        .collect();
    let plan = ScatterPlan {
        wildcard_at: None,
        shard_sql: case.shard.to_string(),
        visible_columns: case.visible,
        merge: case.merge.clone(),
    };
    let mut merger = Merger::new(&plan, &parts[0].row_description, SHARDS, 64 << 20)
        .unwrap_or_else(|e| panic!("{}: {e}", case.whole));
    for (shard, part) in parts.iter().enumerate() {
        for row in &part.rows {
            merger
                .push_row(shard, row)
                .unwrap_or_else(|e| panic!("{}: {e}", case.whole));
        }
    }
    let mut description = BytesMut::new();
    merger.write_row_description(&mut description);
    let mut out = BytesMut::new();
    let count = merger
        .finish(&mut out)
        .unwrap_or_else(|e| panic!("{}: {e}", case.whole));
    assert_eq!(
        column_types(&description[5..]),
        column_types(&whole.row_description),
        "{} (format {format}): column types",
        case.whole
    );
    let expected = data_rows(&whole.rows);
    if out[..] != expected[..] {
        let merged = split_rows(&out);
        let first_difference = merged
            .iter()
            .zip(&whole.rows)
            .position(|(a, b)| a != b)
            .unwrap_or(merged.len().min(whole.rows.len()));
        panic!(
            "{} (format {format}): {} merged rows, {} expected; first difference at row {first_difference}:\n merged   {:?}\n expected {:?}",
            case.whole,
            merged.len(),
            whole.rows.len(),
            merged
                .get(first_difference)
                .map(|r| String::from_utf8_lossy(r).into_owned()),
            whole
                .rows
                .get(first_difference)
                .map(|r| String::from_utf8_lossy(r).into_owned()),
        );
    }
    assert_eq!(count, whole.rows.len() as u64);
}

/// Bodies of the DataRow messages in `out`.
fn split_rows(mut out: &[u8]) -> Vec<Vec<u8>> {
    let mut rows = Vec::new();
    while out.len() >= 5 {
        let len = u32::from_be_bytes([out[1], out[2], out[3], out[4]]) as usize;
        rows.push(out[5..1 + len].to_vec());
        out = &out[1 + len..];
    }
    rows
}

fn key(column: usize, descending: bool, nulls_first: bool) -> SortKey {
    SortKey {
        column,
        descending,
        nulls_first,
    }
}

fn asc(column: usize) -> SortKey {
    key(column, false, false)
}

fn desc(column: usize) -> SortKey {
    key(column, true, true)
}

fn plain(columns: usize, order_by: Vec<SortKey>) -> MergeSpec {
    MergeSpec {
        columns: vec![ColumnMerge::Group; columns],
        order_by,
        ..MergeSpec::default()
    }
}

fn grouped(columns: Vec<ColumnMerge>, order_by: Vec<SortKey>) -> MergeSpec {
    MergeSpec {
        columns,
        grouped: true,
        order_by,
        ..MergeSpec::default()
    }
}

fn cases() -> Vec<Case> {
    use ColumnMerge::{AvgSum, Count, Group, Max, Min, Sum};
    vec![
        Case {
            whole: "SELECT g, avg(i4) AS a4, avg(i8) AS a8, avg(n) AS an, avg(f8) AS af8, \
                    avg(f4) AS af4 FROM items GROUP BY g ORDER BY g",
            shard: "SELECT g, sum(i4) AS a4, sum(i8) AS a8, sum(n) AS an, sum(f8) AS af8, \
                    sum(f4) AS af4, count(i4), count(i8), count(n), count(f8), count(f4) \
                    FROM {t} GROUP BY g",
            visible: 6,
            merge: grouped(
                vec![
                    Group,
                    AvgSum { count_column: 6 },
                    AvgSum { count_column: 7 },
                    AvgSum { count_column: 8 },
                    AvgSum { count_column: 9 },
                    AvgSum { count_column: 10 },
                    Count,
                    Count,
                    Count,
                    Count,
                    Count,
                ],
                vec![asc(0)],
            ),
        },
        Case {
            // AVG over small groups: many different quotient scales.
            whole: "SELECT id % 41 AS k, avg(i4) AS a4, avg(n) AS an FROM items \
                    GROUP BY id % 41 ORDER BY k",
            shard: "SELECT id % 41 AS k, sum(i4) AS a4, sum(n) AS an, count(i4), count(n) \
                    FROM {t} GROUP BY id % 41",
            visible: 3,
            merge: grouped(
                vec![
                    Group,
                    AvgSum { count_column: 3 },
                    AvgSum { count_column: 4 },
                    Count,
                    Count,
                ],
                vec![asc(0)],
            ),
        },
        Case {
            whole: "SELECT g, sum(i4) AS s4, sum(i8) AS s8, sum(n) AS sn, sum(f4) AS sf4, \
                    sum(f8) AS sf8, count(*) AS c FROM items GROUP BY g ORDER BY g DESC",
            shard: "SELECT g, sum(i4) AS s4, sum(i8) AS s8, sum(n) AS sn, sum(f4) AS sf4, \
                    sum(f8) AS sf8, count(*) AS c FROM {t} GROUP BY g",
            visible: 7,
            merge: grouped(vec![Group, Sum, Sum, Sum, Sum, Sum, Count], vec![desc(0)]),
        },
        Case {
            whole: "SELECT g, min(t) AS mint, max(t) AS maxt, min(d) AS mind, max(d) AS maxd, \
                    min(ts) AS mints, max(ts) AS maxts, min(n) AS minn, max(n) AS maxn, \
                    min(fx) AS minfx, max(fx) AS maxfx FROM items GROUP BY g ORDER BY g NULLS FIRST",
            shard: "SELECT g, min(t) AS mint, max(t) AS maxt, min(d) AS mind, max(d) AS maxd, \
                    min(ts) AS mints, max(ts) AS maxts, min(n) AS minn, max(n) AS maxn, \
                    min(fx) AS minfx, max(fx) AS maxfx FROM {t} GROUP BY g",
            visible: 11,
            merge: grouped(
                vec![Group, Min, Max, Min, Max, Min, Max, Min, Max, Min, Max],
                vec![key(0, false, true)],
            ),
        },
        Case {
            whole: "SELECT count(*) AS c, sum(i8) AS s, avg(n) AS a, min(t) AS mi, \
                    max(ts) AS ma, count(u) AS cu FROM items",
            shard: "SELECT count(*) AS c, sum(i8) AS s, sum(n) AS a, min(t) AS mi, \
                    max(ts) AS ma, count(u) AS cu, count(n) FROM {t}",
            visible: 6,
            merge: grouped(
                vec![
                    Count,
                    Sum,
                    AvgSum { count_column: 6 },
                    Min,
                    Max,
                    Count,
                    Count,
                ],
                vec![],
            ),
        },
        Case {
            whole: "SELECT count(*) AS c, sum(i8) AS s, avg(n) AS a, min(t) AS mi \
                    FROM items WHERE false",
            shard: "SELECT count(*) AS c, sum(i8) AS s, sum(n) AS a, min(t) AS mi, count(n) \
                    FROM {t} WHERE false",
            visible: 4,
            merge: grouped(
                vec![Count, Sum, AvgSum { count_column: 4 }, Min, Count],
                vec![],
            ),
        },
        Case {
            whole: "SELECT t, count(*) AS c, sum(f8) AS s FROM items GROUP BY t ORDER BY t",
            shard: "SELECT t, count(*) AS c, sum(f8) AS s FROM {t} GROUP BY t",
            visible: 3,
            merge: grouped(vec![Group, Count, Sum], vec![asc(0)]),
        },
        Case {
            whole: "SELECT ug, min(d) AS mind, max(ts) AS maxts, count(*) AS c FROM items \
                    GROUP BY ug ORDER BY ug DESC",
            shard: "SELECT ug, min(d) AS mind, max(ts) AS maxts, count(*) AS c FROM {t} \
                    GROUP BY ug",
            visible: 4,
            merge: grouped(vec![Group, Min, Max, Count], vec![desc(0)]),
        },
        Case {
            whole: "SELECT date_trunc('year', d)::date AS y, count(*) AS c, sum(n) AS s \
                    FROM items GROUP BY 1 ORDER BY 1 DESC NULLS LAST",
            shard: "SELECT date_trunc('year', d)::date AS y, count(*) AS c, sum(n) AS s \
                    FROM {t} GROUP BY 1",
            visible: 3,
            merge: grouped(vec![Group, Count, Sum], vec![key(0, true, false)]),
        },
        Case {
            whole: "SELECT g, sum(i8) AS s FROM items GROUP BY g \
                    HAVING count(*) > 30 AND NOT sum(i8) < -300000000000000000 ORDER BY s",
            shard: "SELECT g, sum(i8) AS s, count(*) FROM {t} GROUP BY g",
            visible: 2,
            merge: MergeSpec {
                having: Some(Filter::And(
                    Box::new(Filter::Compare {
                        column: 2,
                        op: CompareOp::Gt,
                        literal: "30".into(),
                    }),
                    Box::new(Filter::Not(Box::new(Filter::Compare {
                        column: 1,
                        op: CompareOp::Lt,
                        literal: "-300000000000000000".into(),
                    }))),
                )),
                ..grouped(vec![Group, Sum, Count], vec![asc(1)])
            },
        },
        Case {
            whole: "SELECT id, n, t FROM items ORDER BY n DESC NULLS FIRST, id",
            shard: "SELECT id, n, t FROM {t} ORDER BY n DESC NULLS FIRST, id",
            visible: 3,
            merge: plain(3, vec![desc(1), asc(0)]),
        },
        Case {
            whole: "SELECT id, ts FROM items ORDER BY ts NULLS FIRST, id LIMIT 20 OFFSET 5",
            shard: "SELECT id, ts FROM {t} ORDER BY ts NULLS FIRST, id LIMIT 25",
            visible: 2,
            merge: MergeSpec {
                offset: 5,
                limit: Some(20),
                ..plain(2, vec![key(1, false, true), asc(0)])
            },
        },
        Case {
            whole: "SELECT id FROM items ORDER BY t DESC, id",
            shard: "SELECT id, t FROM {t} ORDER BY t DESC, id",
            visible: 1,
            merge: plain(2, vec![desc(1), asc(0)]),
        },
        Case {
            whole: "SELECT id, d, u FROM items ORDER BY d, u DESC, id",
            shard: "SELECT id, d, u FROM {t} ORDER BY d, u DESC, id",
            visible: 3,
            merge: plain(3, vec![asc(1), desc(2), asc(0)]),
        },
        Case {
            whole: "SELECT id, fx, f4 FROM items ORDER BY fx DESC NULLS LAST, f4, id",
            shard: "SELECT id, fx, f4 FROM {t} ORDER BY fx DESC NULLS LAST, f4, id",
            visible: 3,
            merge: plain(3, vec![key(1, true, false), asc(2), asc(0)]),
        },
        Case {
            whole: "SELECT i8, u, i4 FROM items ORDER BY u NULLS FIRST, i8",
            shard: "SELECT i8, u, i4 FROM {t} ORDER BY u NULLS FIRST, i8",
            visible: 3,
            merge: plain(3, vec![key(1, false, true), asc(0)]),
        },
        Case {
            whole: "SELECT DISTINCT g, i4 % 3 AS m FROM items ORDER BY m, g LIMIT 12 OFFSET 2",
            shard: "SELECT DISTINCT g, i4 % 3 AS m FROM {t} ORDER BY m, g",
            visible: 2,
            merge: MergeSpec {
                distinct: true,
                offset: 2,
                limit: Some(12),
                ..plain(2, vec![asc(1), asc(0)])
            },
        },
    ]
}

#[test]
fn merged_results_equal_postgres_over_the_whole_table() {
    let cluster = LocalCluster::start_temp(&ClusterOptions::for_tests()).expect("start cluster");
    let mut client = RawClient::connect(&cluster);
    client.execute(SETUP);
    for case in cases() {
        for format in FORMATS {
            check(&mut client, &case, format);
        }
    }
}

#[test]
fn avg_matches_postgres_numeric_division_for_many_sums_and_counts() {
    // For (sum, count) pairs across magnitudes and scales, the merged AVG
    // must equal Postgres' `sum::numeric / count` (what its AVG computes
    // from its own sum and count), in text and binary.
    let cluster = LocalCluster::start_temp(&ClusterOptions::for_tests()).expect("start cluster");
    let mut client = RawClient::connect(&cluster);
    let sums = [
        "0",
        "1",
        "-1",
        "7",
        "9999",
        "10000",
        "12345.678",
        "-0.5",
        "0.0001",
        "0.00000001",
        "99999999",
        "123456789012345678901234567890",
        "-98765.4321",
        "1e-20",
        "5e15",
        "33333333.3333",
        "2",
        "0.1234567",
    ];
    let counts: [i64; 9] = [1, 2, 3, 7, 9, 10000, 10001, 123456, 9_999_999_999];
    let mut values = Vec::new();
    for sum in sums {
        for count in counts {
            values.push(format!("({sum}::numeric, {count}::int8)"));
        }
    }
    // Shard 0 holds each pair's sum and count, shard 1 an empty part (sum
    // NULL, count 0), so the merged AVG is sum / count.
    let shard_sql = |part: u8| {
        format!(
            "SELECT k, sum(s) AS avg, sum(c)::int8 AS c FROM (SELECT row_number() OVER () AS k, \
             CASE WHEN {part} = 0 THEN s END AS s, CASE WHEN {part} = 0 THEN c ELSE 0 END AS c \
             FROM (VALUES {}) v(s, c)) q GROUP BY k ORDER BY k",
            values.join(", ")
        )
    };
    let whole_sql = format!(
        "SELECT k, s / c AS avg FROM (SELECT row_number() OVER () AS k, s, c \
         FROM (VALUES {}) v(s, c)) q ORDER BY k",
        values.join(", ")
    );
    let plan = ScatterPlan {
        wildcard_at: None,
        shard_sql: String::new(),
        visible_columns: 2,
        merge: grouped(
            vec![
                ColumnMerge::Group,
                ColumnMerge::AvgSum { count_column: 2 },
                ColumnMerge::Count,
            ],
            vec![asc(0)],
        ),
    };
    for format in FORMATS {
        let whole = client.query(&whole_sql, format);
        let parts = [
            client.query(&shard_sql(0), format),
            client.query(&shard_sql(1), format),
        ];
        let mut merger = Merger::new(&plan, &parts[0].row_description, 2, 64 << 20).unwrap();
        for (shard, part) in parts.iter().enumerate() {
            for row in &part.rows {
                merger.push_row(shard, row).unwrap();
            }
        }
        let mut out = BytesMut::new();
        merger.finish(&mut out).unwrap();
        let merged = split_rows(&out);
        assert_eq!(merged.len(), whole.rows.len());
        for (i, (merged, expected)) in merged.iter().zip(&whole.rows).enumerate() {
            assert_eq!(
                merged,
                expected,
                "format {format}, pair {}: merged {:?}, Postgres {:?}",
                values[i],
                String::from_utf8_lossy(merged),
                String::from_utf8_lossy(expected)
            );
        }
    }
}
