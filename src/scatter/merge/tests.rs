//! Merger tests over hand-built RowDescription and DataRow bodies.

use bytes::BytesMut;

use super::Merger;
use super::rows::test_support::{data_row, row_description};
use crate::net::messages::PgError;
use crate::scatter::value::{Numeric, oid};
use crate::scatter::{ColumnMerge, CompareOp, Filter, MergeSpec, ScatterPlan, SortKey};

const TEXT: i16 = 0;
const BINARY: i16 = 1;

/// One field as sent: `None` is NULL.
type Field = Option<Vec<u8>>;

/// A text-format field.
fn t(text: &str) -> Field {
    Some(text.as_bytes().to_vec())
}

/// A binary bigint field.
fn int8(value: i64) -> Field {
    Some(value.to_be_bytes().to_vec())
}

/// A binary numeric field.
fn numeric(text: &str) -> Field {
    let mut out = Vec::new();
    Numeric::parse_text(text.as_bytes())
        .unwrap()
        .write_binary(&mut out)
        .unwrap();
    Some(out)
}

fn plan(visible: usize, merge: MergeSpec) -> ScatterPlan {
    ScatterPlan {
        wildcard_at: None,
        shard_sql: String::new(),
        visible_columns: visible,
        merge,
    }
}

fn key(column: usize, descending: bool, nulls_first: bool) -> SortKey {
    SortKey {
        column,
        descending,
        nulls_first,
    }
}

fn encode(row: &[Field]) -> Vec<u8> {
    let fields: Vec<Option<&[u8]>> = row.iter().map(|f| f.as_deref()).collect();
    data_row(&fields)
}

/// The DataRow messages in `out`, as field lists.
fn parse_data_rows(mut out: &[u8]) -> Vec<Vec<Field>> {
    let mut rows = Vec::new();
    while !out.is_empty() {
        assert_eq!(out[0], b'D');
        let len = u32::from_be_bytes(out[1..5].try_into().unwrap()) as usize;
        let body = &out[5..1 + len];
        let count = i16::from_be_bytes(body[..2].try_into().unwrap());
        let mut at = 2;
        let mut row = Vec::new();
        for _ in 0..count {
            let len = i32::from_be_bytes(body[at..at + 4].try_into().unwrap());
            at += 4;
            if len < 0 {
                row.push(None);
            } else {
                row.push(Some(body[at..at + len as usize].to_vec()));
                at += len as usize;
            }
        }
        assert_eq!(at, body.len());
        rows.push(row);
        out = &out[1 + len..];
    }
    rows
}

/// Merges the shards' rows (`shards[i]` from shard `i`) with a 1 MiB limit.
fn merge(
    plan: &ScatterPlan,
    columns: &[(&str, u32, i16, i16)],
    shards: &[Vec<Vec<Field>>],
) -> Result<Vec<Vec<Field>>, PgError> {
    merge_limited(plan, columns, shards, 1 << 20)
}

fn merge_limited(
    plan: &ScatterPlan,
    columns: &[(&str, u32, i16, i16)],
    shards: &[Vec<Vec<Field>>],
    max_bytes: usize,
) -> Result<Vec<Vec<Field>>, PgError> {
    let mut merger = Merger::new(plan, &row_description(columns), shards.len(), max_bytes)?;
    for (shard, rows) in shards.iter().enumerate() {
        for row in rows {
            merger.push_row(shard, &encode(row))?;
        }
    }
    let mut out = BytesMut::new();
    let count = merger.finish(&mut out)?;
    let rows = parse_data_rows(&out);
    assert_eq!(rows.len() as u64, count);
    Ok(rows)
}

/// Text rows shown as `a|b` with `∅` for NULL.
fn show(rows: &[Vec<Field>]) -> Vec<String> {
    rows.iter()
        .map(|row| {
            row.iter()
                .map(|f| {
                    f.as_ref()
                        .map_or("∅".into(), |v| String::from_utf8_lossy(v).into_owned())
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

/// Rows of text fields.
fn rows(rows: &[&[Option<&str>]]) -> Vec<Vec<Field>> {
    rows.iter()
        .map(|row| {
            row.iter()
                .map(|f| f.map(|s| s.as_bytes().to_vec()))
                .collect()
        })
        .collect()
}

const INT_AND_TEXT: &[(&str, u32, i16, i16)] =
    &[("n", oid::INT4, 4, TEXT), ("s", oid::TEXT, -1, TEXT)];

fn plain(columns: usize) -> Vec<ColumnMerge> {
    vec![ColumnMerge::Group; columns]
}

#[test]
fn concatenates_in_shard_order_with_offset_and_limit() {
    let shards = [
        rows(&[&[Some("1"), Some("a")], &[Some("2"), None]]),
        rows(&[]),
        rows(&[&[Some("3"), Some("c")]]),
    ];
    let all = plan(
        2,
        MergeSpec {
            columns: plain(2),
            ..MergeSpec::default()
        },
    );
    assert_eq!(
        show(&merge(&all, INT_AND_TEXT, &shards).unwrap()),
        ["1|a", "2|∅", "3|c"]
    );
    let paged = plan(
        1,
        MergeSpec {
            columns: plain(2),
            offset: 1,
            limit: Some(1),
            ..MergeSpec::default()
        },
    );
    assert_eq!(show(&merge(&paged, INT_AND_TEXT, &shards).unwrap()), ["2"]);
    let none = plan(
        2,
        MergeSpec {
            columns: plain(2),
            limit: Some(0),
            ..MergeSpec::default()
        },
    );
    assert!(merge(&none, INT_AND_TEXT, &shards).unwrap().is_empty());
}

#[test]
fn ordered_merge_hides_sort_columns_and_keeps_ties_in_shard_order() {
    // SELECT s FROM t ORDER BY n DESC NULLS LAST, s: n is a hidden column.
    let columns = &[("s", oid::TEXT, -1, TEXT), ("n", oid::INT8, 8, BINARY)];
    let shards = [
        vec![
            vec![t("a"), int8(10)],
            vec![t("b"), int8(5)],
            vec![t("z"), None],
        ],
        vec![
            vec![t("c"), int8(10)],
            vec![t("a"), int8(5)],
            vec![t("y"), None],
        ],
    ];
    let spec = MergeSpec {
        columns: plain(2),
        order_by: vec![key(1, true, false), key(0, false, false)],
        ..MergeSpec::default()
    };
    let merged = merge(&plan(1, spec.clone()), columns, &shards).unwrap();
    assert_eq!(show(&merged), ["a", "c", "a", "b", "y", "z"]);
    // Ties keep shard order: sorted by n alone, NULLS FIRST.
    let by_n = MergeSpec {
        order_by: vec![key(1, false, true)],
        offset: 1,
        limit: Some(3),
        ..spec
    };
    let shards = [
        vec![
            vec![t("z"), None],
            vec![t("b"), int8(5)],
            vec![t("a"), int8(10)],
        ],
        vec![
            vec![t("y"), None],
            vec![t("a"), int8(5)],
            vec![t("c"), int8(10)],
        ],
    ];
    let merged = merge(&plan(1, by_n), columns, &shards).unwrap();
    assert_eq!(show(&merged), ["y", "b", "a"]);
}

#[test]
fn distinct_uses_type_equality() {
    let columns = &[("x", oid::NUMERIC, -1, TEXT), ("f", oid::FLOAT8, 8, TEXT)];
    let shards = [
        rows(&[
            &[Some("1.0"), Some("-0")],
            &[Some("2"), Some("NaN")],
            &[None, None],
        ]),
        rows(&[
            &[Some("1.00"), Some("0")],
            &[Some("2"), Some("NaN")],
            &[None, None],
            &[Some("3"), Some("1")],
        ]),
    ];
    let spec = MergeSpec {
        columns: plain(2),
        distinct: true,
        ..MergeSpec::default()
    };
    let merged = merge(&plan(2, spec.clone()), columns, &shards).unwrap();
    assert_eq!(show(&merged), ["1.0|-0", "2|NaN", "∅|∅", "3|1"]);
    let paged = MergeSpec {
        order_by: vec![key(0, true, false)],
        offset: 1,
        limit: Some(2),
        ..spec
    };
    let shards = [
        rows(&[
            &[Some("3"), Some("1")],
            &[Some("2"), Some("NaN")],
            &[None, None],
        ]),
        rows(&[
            &[Some("3.0"), Some("1")],
            &[Some("2"), Some("NaN")],
            &[None, None],
        ]),
    ];
    let merged = merge(&plan(2, paged), columns, &shards).unwrap();
    assert_eq!(show(&merged), ["2|NaN", "∅|∅"]);
}

fn grouped(columns: Vec<ColumnMerge>) -> MergeSpec {
    MergeSpec {
        columns,
        grouped: true,
        ..MergeSpec::default()
    }
}

/// Columns of `SELECT g, count(*), sum(v), min(s), max(s), avg(v)` with
/// avg's count in a hidden column 6: g int4, count int8, sum int8 (of an
/// integer column), min/max text, avg's sum int8, avg's count int8.
fn aggregate_columns(format: i16) -> Vec<(&'static str, u32, i16, i16)> {
    vec![
        ("g", oid::INT4, 4, format),
        ("count", oid::INT8, 8, format),
        ("sum", oid::INT8, 8, format),
        ("min", oid::TEXT, -1, format),
        ("max", oid::TEXT, -1, format),
        ("avg", oid::INT8, 8, format),
        ("count", oid::INT8, 8, format),
    ]
}

fn aggregate_spec() -> MergeSpec {
    grouped(vec![
        ColumnMerge::Group,
        ColumnMerge::Count,
        ColumnMerge::Sum,
        ColumnMerge::Min,
        ColumnMerge::Max,
        ColumnMerge::AvgSum { count_column: 6 },
        ColumnMerge::Count,
    ])
}

#[test]
fn groups_combine_in_text_format() {
    let shards = [
        rows(&[
            &[
                Some("1"),
                Some("2"),
                Some("10"),
                Some("b"),
                Some("m"),
                Some("10"),
                Some("2"),
            ],
            &[None, Some("1"), None, None, None, None, Some("0")],
        ]),
        rows(&[
            &[
                Some("2"),
                Some("1"),
                Some("7"),
                Some("q"),
                Some("q"),
                Some("7"),
                Some("1"),
            ],
            &[
                Some("1"),
                Some("1"),
                Some("-3"),
                Some("a"),
                Some("c"),
                Some("-3"),
                Some("1"),
            ],
            &[
                None,
                Some("4"),
                Some("5"),
                Some("x"),
                Some("x"),
                Some("5"),
                Some("3"),
            ],
        ]),
    ];
    let merged = merge(
        &plan(6, aggregate_spec()),
        &aggregate_columns(TEXT),
        &shards,
    )
    .unwrap();
    assert_eq!(
        show(&merged),
        [
            "1|3|7|a|m|2.3333333333333333",
            "∅|5|5|x|x|1.6666666666666667",
            "2|1|7|q|q|7.0000000000000000",
        ]
    );
}

#[test]
fn groups_combine_in_binary_format() {
    let shards = [
        vec![vec![
            Some(1i32.to_be_bytes().to_vec()),
            int8(2),
            int8(10),
            t("b"),
            t("m"),
            int8(10),
            int8(2),
        ]],
        vec![vec![
            Some(1i32.to_be_bytes().to_vec()),
            int8(1),
            int8(-3),
            t("a"),
            t("c"),
            int8(-3),
            int8(1),
        ]],
    ];
    let merged = merge(
        &plan(6, aggregate_spec()),
        &aggregate_columns(BINARY),
        &shards,
    )
    .unwrap();
    assert_eq!(
        merged,
        [vec![
            Some(1i32.to_be_bytes().to_vec()),
            int8(3),
            int8(7),
            t("a"),
            t("m"),
            numeric("2.3333333333333333"),
        ]]
    );
}

#[test]
fn aggregates_without_group_by_return_one_row_even_for_no_input() {
    let columns = &aggregate_columns(TEXT)[1..];
    let spec = grouped(vec![
        ColumnMerge::Count,
        ColumnMerge::Sum,
        ColumnMerge::Min,
        ColumnMerge::Max,
        ColumnMerge::AvgSum { count_column: 5 },
        ColumnMerge::Count,
    ]);
    let merged = merge(&plan(5, spec.clone()), columns, &[vec![], vec![]]).unwrap();
    assert_eq!(show(&merged), ["0|∅|∅|∅|∅"]);
    let shards = [
        rows(&[&[Some("0"), None, None, None, None, Some("0")]]),
        rows(&[&[
            Some("2"),
            Some("9"),
            Some("k"),
            Some("k"),
            Some("9"),
            Some("2"),
        ]]),
    ];
    let merged = merge(&plan(5, spec), columns, &shards).unwrap();
    assert_eq!(show(&merged), ["2|9|k|k|4.5000000000000000"]);
    // With a GROUP BY, no input means no groups.
    let merged = merge(
        &plan(6, aggregate_spec()),
        &aggregate_columns(TEXT),
        &[vec![]],
    )
    .unwrap();
    assert!(merged.is_empty());
}

#[test]
fn group_keys_use_type_equality() {
    let columns = &[
        ("k", oid::NUMERIC, -1, TEXT),
        ("c", oid::BPCHAR, -1, TEXT),
        ("n", oid::INT8, 8, TEXT),
    ];
    let shards = [
        rows(&[
            &[Some("1.0"), Some("a "), Some("1")],
            &[None, None, Some("2")],
        ]),
        rows(&[
            &[Some("1.00"), Some("a"), Some("10")],
            &[None, None, Some("20")],
        ]),
    ];
    let spec = grouped(vec![
        ColumnMerge::Group,
        ColumnMerge::Group,
        ColumnMerge::Count,
    ]);
    let merged = merge(&plan(3, spec), columns, &shards).unwrap();
    assert_eq!(show(&merged), ["1.0|a |11", "∅|∅|22"]);
}

#[test]
fn sums_by_type() {
    let columns = &[
        ("n", oid::NUMERIC, -1, TEXT),
        ("r", oid::FLOAT4, 4, TEXT),
        ("d", oid::FLOAT8, 8, TEXT),
        ("avg", oid::FLOAT8, 8, TEXT),
        ("c", oid::INT8, 8, TEXT),
    ];
    let spec = grouped(vec![
        ColumnMerge::Sum,
        ColumnMerge::Sum,
        ColumnMerge::Sum,
        ColumnMerge::AvgSum { count_column: 4 },
        ColumnMerge::Count,
    ]);
    let shards = [
        rows(&[&[
            Some("1.25"),
            Some("0.5"),
            Some("1e+300"),
            Some("1.5"),
            Some("2"),
        ]]),
        rows(&[&[
            Some("-0.250"),
            Some("1e+06"),
            Some("1e+300"),
            Some("0.5"),
            Some("1"),
        ]]),
        rows(&[&[None, None, None, None, Some("0")]]),
    ];
    let merged = merge(&plan(4, spec.clone()), columns, &shards).unwrap();
    assert_eq!(
        show(&merged),
        ["1.000|1.0000005e+06|2e+300|0.6666666666666666"]
    );
    let mut out = BytesMut::new();
    let merger = Merger::new(
        &plan(4, spec.clone()),
        &row_description(columns),
        1,
        1 << 20,
    )
    .unwrap();
    merger.write_row_description(&mut out);
    let expected = row_description(&columns[..4]);
    assert_eq!(
        &out[5..],
        &expected[..],
        "a float AVG stays double precision"
    );

    let overflow = [
        rows(&[&[None, Some("3e+38"), None, None, Some("0")]]),
        rows(&[&[None, Some("3e+38"), None, None, Some("0")]]),
    ];
    let err = merge(&plan(4, spec.clone()), columns, &overflow).unwrap_err();
    assert_eq!(
        (err.code.as_str(), err.message.as_str()),
        ("22003", "value out of range: overflow")
    );
    let infinite = [
        rows(&[&[None, Some("Infinity"), Some("-Infinity"), None, Some("0")]]),
        rows(&[&[None, Some("3e+38"), Some("NaN"), None, Some("0")]]),
    ];
    let merged = merge(&plan(4, spec), columns, &infinite).unwrap();
    assert_eq!(show(&merged), ["∅|Infinity|NaN|∅"]);
}

#[test]
fn bigint_overflow_is_an_error() {
    let columns = &[("sum", oid::INT8, 8, BINARY)];
    let spec = grouped(vec![ColumnMerge::Sum]);
    let shards = [vec![vec![int8(i64::MAX)]], vec![vec![int8(1)]]];
    let err = merge(&plan(1, spec), columns, &shards).unwrap_err();
    assert_eq!(
        (err.code.as_str(), err.message.as_str()),
        ("22003", "bigint out of range")
    );
    let spec = grouped(vec![ColumnMerge::Count]);
    let err = merge(&plan(1, spec), columns, &shards).unwrap_err();
    assert_eq!(err.code, "22003");
    // AVG sums exactly: no overflow.
    let columns = &[("avg", oid::INT8, 8, TEXT), ("count", oid::INT8, 8, TEXT)];
    let spec = grouped(vec![
        ColumnMerge::AvgSum { count_column: 1 },
        ColumnMerge::Count,
    ]);
    let big = i64::MAX.to_string();
    let shards = [
        rows(&[&[Some(big.as_str()), Some("1")]]),
        rows(&[&[Some(big.as_str()), Some("1")]]),
    ];
    let merged = merge(&plan(1, spec), columns, &shards).unwrap();
    assert_eq!(show(&merged), ["9223372036854775807"]);
}

#[test]
fn having_order_and_limit_apply_after_grouping() {
    // SELECT g, sum(v) FROM t GROUP BY g HAVING count(*) > 1
    // ORDER BY sum(v) DESC LIMIT 2 OFFSET 1; count(*) is hidden.
    let columns = &[
        ("g", oid::TEXT, -1, TEXT),
        ("sum", oid::NUMERIC, -1, TEXT),
        ("count", oid::INT8, 8, TEXT),
    ];
    let mut spec = grouped(vec![
        ColumnMerge::Group,
        ColumnMerge::Sum,
        ColumnMerge::Count,
    ]);
    spec.having = Some(Filter::Compare {
        column: 2,
        op: CompareOp::Gt,
        literal: "1".into(),
    });
    spec.order_by = vec![key(1, true, true)];
    spec.offset = 1;
    spec.limit = Some(2);
    let shards = [
        rows(&[
            &[Some("a"), Some("1"), Some("1")],
            &[Some("b"), Some("5"), Some("2")],
            &[Some("c"), Some("9"), Some("1")],
        ]),
        rows(&[
            &[Some("a"), Some("2"), Some("1")],
            &[Some("d"), None, Some("2")],
            &[Some("e"), Some("4"), Some("2")],
        ]),
    ];
    // Groups passing HAVING: a (3), b (5), d (NULL), e (4); DESC puts NULL
    // first: d, b, e, a.
    let merged = merge(&plan(2, spec), columns, &shards).unwrap();
    assert_eq!(show(&merged), ["b|5", "e|4"]);
}

#[test]
fn row_description_retypes_avg_and_drops_hidden_columns() {
    let columns = &[
        ("avg", oid::INT8, 8, TEXT),
        ("f", oid::FLOAT4, 4, BINARY),
        ("n", oid::NUMERIC, -1, TEXT),
        ("c", oid::INT8, 8, TEXT),
    ];
    let spec = grouped(vec![
        ColumnMerge::AvgSum { count_column: 3 },
        ColumnMerge::AvgSum { count_column: 3 },
        ColumnMerge::AvgSum { count_column: 3 },
        ColumnMerge::Count,
    ]);
    let merger = Merger::new(&plan(3, spec), &row_description(columns), 2, 1 << 20).unwrap();
    let mut out = BytesMut::new();
    merger.write_row_description(&mut out);
    let expected = row_description(&[
        ("avg", oid::NUMERIC, -1, TEXT),
        ("f", oid::FLOAT8, 8, BINARY),
        ("n", oid::NUMERIC, -1, TEXT),
    ]);
    assert_eq!(out[0], b'T');
    assert_eq!(&out[5..], &expected[..]);
}

#[test]
fn byte_limit_counts_only_rows_that_can_be_returned() {
    let row: &[Option<&str>] = &[Some("1"), Some("a")];
    let shards = [rows(&[row; 100])];
    let all = plan(
        2,
        MergeSpec {
            columns: plain(2),
            ..MergeSpec::default()
        },
    );
    let err = merge_limited(&all, INT_AND_TEXT, &shards, 1000).unwrap_err();
    assert_eq!(err.code, "54000");
    assert_eq!(err.message, "cross-shard result exceeds 1000 bytes");
    let limited = plan(
        2,
        MergeSpec {
            columns: plain(2),
            limit: Some(5),
            ..MergeSpec::default()
        },
    );
    assert_eq!(
        merge_limited(&limited, INT_AND_TEXT, &shards, 1000)
            .unwrap()
            .len(),
        5
    );
}

#[test]
fn malformed_input_is_a_protocol_error() {
    let all = plan(
        2,
        MergeSpec {
            columns: plain(2),
            ..MergeSpec::default()
        },
    );
    let mut merger = Merger::new(&all, &row_description(INT_AND_TEXT), 1, 1 << 20).unwrap();
    let err = merger.push_row(0, &data_row(&[Some(b"1")])).unwrap_err();
    assert_eq!(err.code, "08P01");
    let mut overrun = data_row(&[Some(b"1"), Some(b"a")]);
    overrun.truncate(overrun.len() - 1);
    assert_eq!(merger.push_row(0, &overrun).unwrap_err().code, "08P01");
    assert_eq!(
        Merger::new(&all, &[0, 2, 1], 1, 100).unwrap_err().code,
        "08P01"
    );

    // A value that cannot be decoded fails at finish, leaving `out` as it
    // was.
    let sorted = plan(
        2,
        MergeSpec {
            columns: plain(2),
            order_by: vec![key(0, false, false)],
            ..MergeSpec::default()
        },
    );
    let mut merger = Merger::new(&sorted, &row_description(INT_AND_TEXT), 2, 1 << 20).unwrap();
    merger.push_row(0, &data_row(&[Some(b"1"), None])).unwrap();
    merger.push_row(1, &data_row(&[Some(b"x1"), None])).unwrap();
    let mut out = BytesMut::from(&b"kept"[..]);
    assert_eq!(merger.finish(&mut out).unwrap_err().code, "08P01");
    assert_eq!(&out[..], b"kept");
}

#[test]
fn unsupported_operations_are_refused_up_front() {
    let code = |columns: &[(&str, u32, i16, i16)], spec: MergeSpec| {
        Merger::new(&plan(1, spec), &row_description(columns), 1, 100)
            .unwrap_err()
            .code
    };
    let interval = &[("i", oid::INTERVAL, 16, TEXT)];
    assert_eq!(code(interval, grouped(vec![ColumnMerge::Sum])), "0A000");
    let money = &[("m", oid::MONEY, 8, TEXT)];
    assert_eq!(code(money, grouped(vec![ColumnMerge::Group])), "0A000");
    assert_eq!(code(money, grouped(vec![ColumnMerge::Max])), "0A000");
    let json = &[("j", oid::JSON, -1, TEXT)];
    let sort_json = MergeSpec {
        columns: plain(1),
        order_by: vec![key(0, false, false)],
        ..MergeSpec::default()
    };
    assert_eq!(code(json, sort_json), "0A000");
    let distinct_money = MergeSpec {
        columns: plain(1),
        distinct: true,
        ..MergeSpec::default()
    };
    assert_eq!(code(money, distinct_money), "0A000");
    let message = Merger::new(
        &plan(1, grouped(vec![ColumnMerge::Sum])),
        &row_description(interval),
        1,
        100,
    )
    .unwrap_err()
    .message;
    assert!(message.contains("interval"), "{message}");
    // Plans that do not fit the columns.
    let two = &[("a", oid::INT4, 4, TEXT), ("b", oid::INT4, 4, TEXT)];
    assert_eq!(
        code(
            two,
            MergeSpec {
                columns: plain(1),
                ..MergeSpec::default()
            }
        ),
        "XX000"
    );
    assert_eq!(
        code(
            &two[..1],
            MergeSpec {
                columns: vec![ColumnMerge::Sum],
                ..MergeSpec::default()
            }
        ),
        "XX000"
    );
    let bad_avg = grouped(vec![
        ColumnMerge::AvgSum { count_column: 1 },
        ColumnMerge::Sum,
    ]);
    assert_eq!(
        code(
            &[("a", oid::INT8, 8, TEXT), ("b", oid::INT8, 8, TEXT)],
            bad_avg
        ),
        "XX000"
    );
    // Opaque types pass through untouched when nothing compares them.
    let merged = merge(
        &plan(
            1,
            MergeSpec {
                columns: plain(1),
                ..MergeSpec::default()
            },
        ),
        money,
        &[rows(&[&[Some("$1.00")]])],
    )
    .unwrap();
    assert_eq!(show(&merged), ["$1.00"]);
}

#[test]
fn min_max_over_binary_types() {
    let columns = &[
        ("d", oid::DATE, 4, BINARY),
        ("d", oid::DATE, 4, BINARY),
        ("u", oid::UUID, 16, BINARY),
        ("f", oid::FLOAT8, 8, BINARY),
    ];
    let spec = grouped(vec![
        ColumnMerge::Min,
        ColumnMerge::Max,
        ColumnMerge::Max,
        ColumnMerge::Max,
    ]);
    let date = |days: i32| Some(days.to_be_bytes().to_vec());
    let float = |v: f64| Some(v.to_be_bytes().to_vec());
    let shards = [
        vec![vec![date(-5), date(-5), Some(vec![1; 16]), float(1.0)]],
        vec![vec![
            date(i32::MAX),
            date(i32::MAX),
            Some(vec![0xff; 16]),
            float(f64::NAN),
        ]],
        vec![vec![None, None, None, float(f64::INFINITY)]],
    ];
    let merged = merge(&plan(4, spec), columns, &shards).unwrap();
    assert_eq!(
        merged,
        [vec![
            date(-5),
            date(i32::MAX),
            Some(vec![0xff; 16]),
            float(f64::NAN)
        ]]
    );
}
