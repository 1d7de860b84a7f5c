//! Routing COPY: client-side data into or out of a table, or out of a
//! query.

use crate::net::messages::PgError;
use crate::router::analysis::Dml;
use crate::router::copy::{CopyDirection, CopyStatement};
use crate::scatter::{ColumnMerge, ScatterPlan};
use crate::sharding::map::TableClass;

use super::{Route, Router, everywhere, unsupported};

impl Router<'_> {
    pub(super) fn copy(&self, copy: &CopyStatement) -> Result<Route, PgError> {
        let CopyStatement::Table {
            table,
            client_side,
            direction,
        } = copy
        else {
            return Ok(Route::Single(self.map.default_shard));
        };
        let server_side = || {
            unsupported(format!(
                "COPY of {table} with a server-side file or program is not supported through shardwire"
            ))
            .with_hint("use COPY ... FROM STDIN / TO STDOUT (psql's \\copy)")
        };
        match (self.map.table(table), direction) {
            (TableClass::Unsharded, _) | (TableClass::Reference, CopyDirection::Out) => {
                Ok(Route::Single(self.map.default_shard))
            }
            (TableClass::Reference, CopyDirection::In) => match client_side {
                Some(_) => Ok(everywhere(self.map)),
                None => Err(server_side()),
            },
            (TableClass::Sharded(sharded), direction) => {
                let Some(target) = client_side else {
                    return Err(server_side());
                };
                let shards = self.map.shards_of(sharded);
                if let [shard] = shards.as_slice() {
                    return Ok(Route::Single(*shard));
                }
                // Without a column list the key is in the table's own column
                // order, which the session reads from a shard.
                let has_key = target
                    .columns
                    .as_ref()
                    .is_none_or(|c| c.contains(&sharded.key_column));
                match direction {
                    CopyDirection::Out => match self.hinted_row_shard(sharded)? {
                        Some(shard) => Ok(Route::Single(shard)),
                        None => Ok(Route::Concat { shards }),
                    },
                    CopyDirection::In if has_key => Ok(Route::SplitCopy { shards }),
                    CopyDirection::In => match self.hinted_row_shard(sharded)? {
                        Some(shard) => Ok(Route::Single(shard)),
                        None => Err(unsupported(format!(
                            "COPY into sharded table {} needs its sharding key {} among the columns",
                            sharded.name, sharded.key_column
                        ))
                        .with_hint(format!(
                            "write COPY {} ({}, ...) FROM STDIN",
                            sharded.name, sharded.key_column
                        ))),
                    },
                }
            }
        }
    }

    /// `COPY (query) TO`: single-shard, or concatenated when the query
    /// needs no merging.
    pub(super) fn copy_query(&self, dml: &Dml) -> Result<Route, PgError> {
        match self.dml(dml)? {
            Route::Scatter { shards, plan } if is_concatenation(&plan) => Ok(Route::Concat { shards }),
            Route::Scatter { .. } => Err(unsupported(
                "COPY (query) TO across shards supports only queries without ORDER BY, aggregates, DISTINCT, LIMIT or OFFSET",
            )
            .with_hint("use a SELECT, or constrain the query to one shard")),
            other => Ok(other),
        }
    }
}

/// Whether a scatter plan merges by plain concatenation.
fn is_concatenation(plan: &ScatterPlan) -> bool {
    let merge = &plan.merge;
    !merge.grouped
        && merge.having.is_none()
        && merge.order_by.is_empty()
        && !merge.distinct
        && merge.offset == 0
        && merge.limit.is_none()
        && merge.columns.iter().all(|c| *c == ColumnMerge::Group)
        && plan.visible_columns == merge.columns.len()
}
