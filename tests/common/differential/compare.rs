//! Comparing the proxy's answer with the single Postgres' answer.
//!
//! Rows must be the same multiset; how much of their order must match
//! depends on what the query's ORDER BY determines:
//! - no ORDER BY: nothing (rows are compared sorted);
//! - an ORDER BY with possible ties over output columns `keys`: the
//!   sequence of those columns' values must match row for row (any correct
//!   sort yields the same sequence), and the full rows as multisets (rows
//!   within a tie may come in any order);
//! - an ORDER BY that fully determines the order (it ends in a unique key,
//!   or covers every output column of a DISTINCT or GROUP BY result): the
//!   exact sequence. Only such queries use LIMIT/OFFSET, since under ties
//!   LIMIT may legitimately keep different rows.
//!
//! The proxy may instead refuse with SQLSTATE 0A000 (feature not
//! supported); any other error, or any difference, is a mismatch. When the
//! single Postgres fails, the proxy must fail with the same SQLSTATE.

use super::answer::{Answer, Column, Row, format_row};

/// The SQLSTATE with which the proxy refuses what it cannot answer exactly.
pub const FEATURE_NOT_SUPPORTED: &str = "0A000";

/// How much of the row order a query determines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ordering {
    /// No ORDER BY: rows compared as multisets.
    Unordered,
    /// ORDER BY over these output columns (0-based), ties possible.
    SortedBy(Vec<usize>),
    /// The order is fully determined: rows compared in sequence.
    Total,
}

/// The outcome of one comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Same answer (or the same SQLSTATE).
    Equal,
    /// The proxy refused with 0A000.
    Rejected,
    /// A wrong answer or a wrong error; says what differs.
    Mismatch(String),
}

/// Compares the proxy's answer (`actual`) with the single Postgres'
/// (`expected`) for a query whose order is `ordering`.
pub fn compare(expected: &Answer, actual: &Answer, ordering: &Ordering) -> Verdict {
    match (expected, actual) {
        (_, Answer::Error { code: None, .. }) | (Answer::Error { code: None, .. }, _) => {
            Verdict::Mismatch("a client-side failure (no SQLSTATE)".to_string())
        }
        (Answer::Error { code: Some(a), .. }, Answer::Error { code: Some(b), .. }) if a == b => {
            Verdict::Equal
        }
        (
            _,
            Answer::Error {
                code: Some(code), ..
            },
        ) if code == FEATURE_NOT_SUPPORTED => Verdict::Rejected,
        (Answer::Error { code: Some(a), .. }, Answer::Error { code: Some(b), .. }) => {
            Verdict::Mismatch(format!("SQLSTATE {b} where the single Postgres gives {a}"))
        }
        (Answer::Error { .. }, Answer::Rows { .. }) => {
            Verdict::Mismatch("rows where the single Postgres fails".to_string())
        }
        (Answer::Rows { .. }, Answer::Error { .. }) => {
            Verdict::Mismatch("an error where the single Postgres answers".to_string())
        }
        (
            Answer::Rows {
                columns: expected_columns,
                rows: expected_rows,
                tag_rows: expected_tag,
            },
            Answer::Rows {
                columns,
                rows,
                tag_rows,
            },
        ) => {
            match compare_result_sets((expected_columns, expected_rows), (columns, rows), ordering)
            {
                Some(difference) => Verdict::Mismatch(difference),
                None if expected_tag != tag_rows => Verdict::Mismatch(format!(
                    "command tag counts {tag_rows:?}, expected {expected_tag:?}"
                )),
                None => Verdict::Equal,
            }
        }
    }
}

/// The first difference between two result sets, if any.
fn compare_result_sets(
    (expected_columns, expected): (&[Column], &[Row]),
    (columns, actual): (&[Column], &[Row]),
    ordering: &Ordering,
) -> Option<String> {
    if expected_columns != columns {
        return Some(format!(
            "columns {columns:?}, expected {expected_columns:?}"
        ));
    }
    if expected.len() != actual.len() {
        let detail = multiset_difference(expected, actual).unwrap_or_default();
        return Some(format!(
            "{} rows, expected {}; {detail}",
            actual.len(),
            expected.len()
        ));
    }
    match ordering {
        Ordering::Total => first_difference(expected, actual, "row"),
        Ordering::SortedBy(keys) => {
            assert!(
                keys.iter().all(|&k| k < columns.len()),
                "test generator bug: sort keys {keys:?} outside {} columns",
                columns.len()
            );
            let project = |rows: &[Row]| -> Vec<Row> {
                rows.iter()
                    .map(|row| keys.iter().map(|&k| row[k].clone()).collect())
                    .collect()
            };
            first_difference(&project(expected), &project(actual), "sort key of row")
                .or_else(|| multiset_difference(expected, actual))
        }
        Ordering::Unordered => multiset_difference(expected, actual),
    }
}

/// Where two equally long row sequences first differ.
fn first_difference(expected: &[Row], actual: &[Row], what: &str) -> Option<String> {
    let (i, (e, a)) = expected
        .iter()
        .zip(actual)
        .enumerate()
        .find(|(_, (e, a))| e != a)?;
    Some(format!(
        "{what} {i} is {}, expected {}",
        format_row(a),
        format_row(e)
    ))
}

/// A row whose count differs between the two multisets, if any.
fn multiset_difference(expected: &[Row], actual: &[Row]) -> Option<String> {
    let mut expected = expected.to_vec();
    let mut actual = actual.to_vec();
    expected.sort();
    actual.sort();
    let (e, a) = expected.iter().zip(&actual).find(|(e, a)| e != a)?;
    Some(format!(
        "rows differ as multisets: sorted, the proxy has {} where the single Postgres has {}",
        format_row(a),
        format_row(e)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(data: &[&[Option<&str>]]) -> Vec<Row> {
        data.iter()
            .map(|r| r.iter().map(|v| v.map(str::to_string)).collect())
            .collect()
    }

    fn answer(data: &[&[Option<&str>]]) -> Answer {
        let width = data.first().map_or(2, |r| r.len());
        Answer::Rows {
            columns: (0..width)
                .map(|i| Column {
                    name: format!("c{i}"),
                    type_name: None,
                })
                .collect(),
            rows: rows(data),
            tag_rows: Some(data.len() as u64),
        }
    }

    fn error(code: &str) -> Answer {
        Answer::Error {
            code: Some(code.to_string()),
            message: "boom".to_string(),
        }
    }

    fn is_mismatch(v: &Verdict) -> bool {
        matches!(v, Verdict::Mismatch(_))
    }

    /// (key, payload) rows, two of them tied on key "1".
    fn tied() -> Answer {
        answer(&[
            &[Some("1"), Some("a")],
            &[Some("1"), Some("b")],
            &[Some("2"), None],
        ])
    }

    #[test]
    fn unordered_accepts_any_permutation_and_catches_wrong_rows() {
        let reordered = answer(&[
            &[Some("2"), None],
            &[Some("1"), Some("b")],
            &[Some("1"), Some("a")],
        ]);
        assert_eq!(
            compare(&tied(), &reordered, &Ordering::Unordered),
            Verdict::Equal
        );
        let wrong_value = answer(&[
            &[Some("2"), None],
            &[Some("1"), Some("b")],
            &[Some("1"), Some("x")],
        ]);
        assert!(is_mismatch(&compare(
            &tied(),
            &wrong_value,
            &Ordering::Unordered
        )));
        let null_for_value = answer(&[
            &[Some("2"), Some("")],
            &[Some("1"), Some("b")],
            &[Some("1"), Some("a")],
        ]);
        assert!(is_mismatch(&compare(
            &tied(),
            &null_for_value,
            &Ordering::Unordered
        )));
        let duplicated = answer(&[
            &[Some("1"), Some("a")],
            &[Some("1"), Some("a")],
            &[Some("2"), None],
        ]);
        assert!(is_mismatch(&compare(
            &tied(),
            &duplicated,
            &Ordering::Unordered
        )));
        let missing = answer(&[&[Some("1"), Some("a")], &[Some("2"), None]]);
        assert!(is_mismatch(&compare(
            &tied(),
            &missing,
            &Ordering::Unordered
        )));
    }

    #[test]
    fn sorted_by_allows_ties_in_any_order_but_not_a_wrong_order() {
        let ties_swapped = answer(&[
            &[Some("1"), Some("b")],
            &[Some("1"), Some("a")],
            &[Some("2"), None],
        ]);
        let keys = Ordering::SortedBy(vec![0]);
        assert_eq!(compare(&tied(), &ties_swapped, &keys), Verdict::Equal);
        let misordered = answer(&[
            &[Some("1"), Some("a")],
            &[Some("2"), None],
            &[Some("1"), Some("b")],
        ]);
        assert!(is_mismatch(&compare(&tied(), &misordered, &keys)));
        let wrong_payload = answer(&[
            &[Some("1"), Some("b")],
            &[Some("1"), Some("b")],
            &[Some("2"), None],
        ]);
        assert!(is_mismatch(&compare(&tied(), &wrong_payload, &keys)));
        assert!(is_mismatch(&compare(
            &tied(),
            &ties_swapped,
            &Ordering::Total
        )));
    }

    #[test]
    fn columns_and_tags_must_match() {
        let mut renamed = tied();
        if let Answer::Rows { columns, .. } = &mut renamed {
            columns[1].name = "sum".to_string();
        }
        assert!(is_mismatch(&compare(
            &tied(),
            &renamed,
            &Ordering::Unordered
        )));
        let mut retyped = tied();
        if let Answer::Rows { columns, .. } = &mut retyped {
            columns[0].type_name = Some("numeric".to_string());
        }
        assert!(is_mismatch(&compare(
            &tied(),
            &retyped,
            &Ordering::Unordered
        )));
        let mut wrong_tag = tied();
        if let Answer::Rows { tag_rows, .. } = &mut wrong_tag {
            *tag_rows = Some(7);
        }
        assert!(is_mismatch(&compare(
            &tied(),
            &wrong_tag,
            &Ordering::Unordered
        )));
    }

    #[test]
    fn errors_must_match_except_a_0a000_refusal() {
        assert_eq!(
            compare(&tied(), &error(FEATURE_NOT_SUPPORTED), &Ordering::Total),
            Verdict::Rejected
        );
        assert_eq!(
            compare(
                &error("22012"),
                &error(FEATURE_NOT_SUPPORTED),
                &Ordering::Total
            ),
            Verdict::Rejected
        );
        assert_eq!(
            compare(&error("22012"), &error("22012"), &Ordering::Unordered),
            Verdict::Equal
        );
        assert!(is_mismatch(&compare(
            &error("22012"),
            &error("XX000"),
            &Ordering::Unordered
        )));
        assert!(is_mismatch(&compare(
            &tied(),
            &error("57014"),
            &Ordering::Unordered
        )));
        assert!(is_mismatch(&compare(
            &error("42703"),
            &tied(),
            &Ordering::Unordered
        )));
        let failure = Answer::failure("connection closed");
        assert!(is_mismatch(&compare(
            &tied(),
            &failure,
            &Ordering::Unordered
        )));
        assert!(is_mismatch(&compare(
            &failure,
            &failure,
            &Ordering::Unordered
        )));
    }
}
