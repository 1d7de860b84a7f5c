//! Completing a plan whose select list has `*` once the shards have said
//! how many columns they return.

use crate::scatter::{ColumnMerge, Filter, ScatterPlan};

impl ScatterPlan {
    /// The plan for shards that return `shard_columns` columns: a `*`
    /// expansion becomes that many plain columns and the column numbers
    /// after it move up. The router calls it when the first shard's
    /// RowDescription arrives; an error means the shards' columns cannot be
    /// those of this plan (the text suits an XX000 error).
    pub fn for_shard_columns(&self, shard_columns: usize) -> Result<ScatterPlan, String> {
        let planned = self.merge.columns.len();
        let mismatch = || {
            format!(
                "the shards returned {shard_columns} columns where the cross-shard plan expects \
                 {} {planned}",
                if self.wildcard_at.is_some() {
                    "at least"
                } else {
                    "exactly"
                }
            )
        };
        let Some(at) = self.wildcard_at else {
            return if shard_columns == planned {
                Ok(self.clone())
            } else {
                Err(mismatch())
            };
        };
        let extra = shard_columns.checked_sub(planned).ok_or_else(mismatch)?;
        let shift = |column: usize| if column >= at { column + extra } else { column };
        let mut plan = self.clone();
        plan.wildcard_at = None;
        plan.visible_columns += extra;
        let mut columns: Vec<ColumnMerge> = self
            .merge
            .columns
            .iter()
            .map(|merge| match *merge {
                ColumnMerge::AvgSum { count_column } => ColumnMerge::AvgSum {
                    count_column: shift(count_column),
                },
                other => other,
            })
            .collect();
        let tail = columns.split_off(at.min(columns.len()));
        columns.extend(std::iter::repeat_n(ColumnMerge::Group, extra));
        columns.extend(tail);
        plan.merge.columns = columns;
        for key in &mut plan.merge.order_by {
            key.column = shift(key.column);
        }
        if let Some(having) = &mut plan.merge.having {
            shift_filter(having, &shift);
        }
        Ok(plan)
    }
}

/// Renumbers the columns a HAVING filter tests.
fn shift_filter(filter: &mut Filter, shift: &dyn Fn(usize) -> usize) {
    match filter {
        Filter::And(left, right) | Filter::Or(left, right) => {
            shift_filter(left, shift);
            shift_filter(right, shift);
        }
        Filter::Not(inner) => shift_filter(inner, shift),
        Filter::Compare { column, .. } => *column = shift(*column),
    }
}
