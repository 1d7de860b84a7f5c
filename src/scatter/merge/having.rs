//! HAVING, evaluated by the proxy on merged groups with SQL's three-valued
//! logic (a comparison with NULL is unknown, and only true keeps a group).

use std::cmp::Ordering;

use super::rows::RowRef;
use crate::net::messages::PgError;
use crate::scatter::value::{ColumnType, Value};
use crate::scatter::{CompareOp, Filter};

/// A [`Filter`] with its literals parsed for the columns they meet.
#[derive(Debug, Clone)]
pub(super) enum HavingFilter {
    /// Both hold.
    And(Box<HavingFilter>, Box<HavingFilter>),
    /// Either holds.
    Or(Box<HavingFilter>, Box<HavingFilter>),
    /// Negation.
    Not(Box<HavingFilter>),
    /// A merged column against a literal of a comparable type.
    Compare {
        column: usize,
        column_type: ColumnType,
        op: CompareOp,
        literal: Value<'static>,
    },
}

impl HavingFilter {
    /// Prepares `filter` over merged columns of `types`.
    pub fn new(filter: &Filter, types: &[ColumnType]) -> Result<HavingFilter, PgError> {
        let both = |a: &Filter, b: &Filter| -> Result<_, PgError> {
            Ok((
                Box::new(HavingFilter::new(a, types)?),
                Box::new(HavingFilter::new(b, types)?),
            ))
        };
        Ok(match filter {
            Filter::And(a, b) => {
                let (a, b) = both(a, b)?;
                HavingFilter::And(a, b)
            }
            Filter::Or(a, b) => {
                let (a, b) = both(a, b)?;
                HavingFilter::Or(a, b)
            }
            Filter::Not(inner) => HavingFilter::Not(Box::new(HavingFilter::new(inner, types)?)),
            Filter::Compare {
                column,
                op,
                literal,
            } => {
                let column_type = *types
                    .get(*column)
                    .ok_or_else(|| super::plan_error("a HAVING column does not exist"))?;
                if !column_type.has_ordering() {
                    return Err(column_type.unsupported("filtering (HAVING)"));
                }
                HavingFilter::Compare {
                    column: *column,
                    column_type,
                    op: *op,
                    literal: column_type.parse_literal(literal)?,
                }
            }
        })
    }

    /// Whether the group in `row` is kept (the condition is true, not false
    /// or unknown).
    pub fn accepts(&self, row: RowRef<'_>) -> Result<bool, PgError> {
        Ok(self.evaluate(row)? == Some(true))
    }

    /// The condition's truth value; `None` is SQL's unknown.
    fn evaluate(&self, row: RowRef<'_>) -> Result<Option<bool>, PgError> {
        Ok(match self {
            HavingFilter::And(a, b) => match (a.evaluate(row)?, b.evaluate(row)?) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            },
            HavingFilter::Or(a, b) => match (a.evaluate(row)?, b.evaluate(row)?) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            },
            HavingFilter::Not(inner) => inner.evaluate(row)?.map(|v| !v),
            HavingFilter::Compare {
                column,
                column_type,
                op,
                literal,
            } => match row.field(*column) {
                None => None,
                Some(raw) => Some(holds(*op, column_type.decode(raw)?.compare(literal))),
            },
        })
    }
}

/// Whether `op` holds for a comparison that came out `order`.
fn holds(op: CompareOp, order: Ordering) -> bool {
    match op {
        CompareOp::Eq => order.is_eq(),
        CompareOp::NotEq => order.is_ne(),
        CompareOp::Lt => order.is_lt(),
        CompareOp::LtEq => order.is_le(),
        CompareOp::Gt => order.is_gt(),
        CompareOp::GtEq => order.is_ge(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::rows::scan_data_row;
    use super::super::rows::test_support::data_row;
    use super::*;
    use crate::scatter::value::{Format, oid};

    fn compare(column: usize, op: CompareOp, literal: &str) -> Filter {
        Filter::Compare {
            column,
            op,
            literal: literal.to_string(),
        }
    }

    fn check(filter: &Filter, fields: &[Option<&[u8]>]) -> bool {
        let types = [
            ColumnType::new(oid::NUMERIC, Format::Text),
            ColumnType::new(oid::TEXT, Format::Text),
        ];
        let body = data_row(fields);
        let mut starts = Vec::new();
        scan_data_row(&body, 2, &mut starts).unwrap();
        HavingFilter::new(filter, &types)
            .unwrap()
            .accepts(RowRef::new(&body, &starts))
            .unwrap()
    }

    #[test]
    fn comparisons_and_three_valued_logic() {
        let gt = compare(0, CompareOp::Gt, "2.5");
        assert!(check(&gt, &[Some(b"3"), None]));
        assert!(!check(&gt, &[Some(b"2.50"), None]));
        assert!(!check(&gt, &[None, None]), "NULL > 2.5 is unknown");
        let not_gt = Filter::Not(Box::new(gt.clone()));
        assert!(!check(&not_gt, &[None, None]), "NOT unknown is unknown");
        let name = compare(1, CompareOp::Eq, "'b'");
        let either = Filter::Or(Box::new(gt.clone()), Box::new(name.clone()));
        assert!(check(&either, &[None, Some(b"b")]), "unknown OR true");
        let both = Filter::And(Box::new(gt), Box::new(name));
        assert!(!check(&both, &[Some(b"9"), Some(b"c")]));
        assert!(check(&both, &[Some(b"9"), Some(b"b")]));
        for (op, expected) in [
            (CompareOp::Eq, true),
            (CompareOp::NotEq, false),
            (CompareOp::Lt, false),
            (CompareOp::LtEq, true),
            (CompareOp::GtEq, true),
        ] {
            assert_eq!(
                check(&compare(0, op, "1"), &[Some(b"1.000"), None]),
                expected
            );
        }
    }

    #[test]
    fn unusable_filters_are_refused() {
        let json = [ColumnType::new(oid::JSON, Format::Text)];
        let err = HavingFilter::new(&compare(0, CompareOp::Eq, "1"), &json).unwrap_err();
        assert_eq!(err.code, "0A000");
        let err = HavingFilter::new(&compare(3, CompareOp::Eq, "1"), &json).unwrap_err();
        assert_eq!(err.code, "XX000");
    }
}
