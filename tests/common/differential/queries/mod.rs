//! The generated queries: several hundred, in categories, each with what the
//! comparison must know about it (its parameters and how much of its row
//! order is determined), fixed by a seed.

mod aggregate;
mod catalog;
mod errors;
mod generator;
mod join;
mod lookup;
mod order;

use super::compare::Ordering;
use super::dataset::Dataset;
use super::params::Param;

pub use generator::Gen;

/// What a query exercises; results are counted per category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    /// Equality on the sharding key (one shard), literal or `$1`.
    PointLookup,
    /// Range predicates on key and non-key columns.
    Range,
    /// IN lists and `= ANY($1)`, keys spanning shards.
    InList,
    /// Aggregates without GROUP BY.
    Aggregate,
    /// GROUP BY with HAVING / ORDER BY / LIMIT / OFFSET.
    GroupBy,
    /// SELECT DISTINCT.
    Distinct,
    /// ORDER BY on several columns, directions, NULLS FIRST/LAST, LIMIT.
    OrderBy,
    /// Joins of the co-located customers and orders (and a few joins that
    /// are not co-located, which must be refused or answered right).
    ColocatedJoin,
    /// Joins with (and queries of) the reference table.
    ReferenceJoin,
    /// Queries the single Postgres refuses: the proxy must give the same
    /// SQLSTATE.
    Errors,
}

impl Category {
    /// Every category, in report order.
    pub const ALL: [Category; 10] = [
        Category::PointLookup,
        Category::Range,
        Category::InList,
        Category::Aggregate,
        Category::GroupBy,
        Category::Distinct,
        Category::OrderBy,
        Category::ColocatedJoin,
        Category::ReferenceJoin,
        Category::Errors,
    ];

    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Category::PointLookup => "point lookup",
            Category::Range => "range",
            Category::InList => "IN list",
            Category::Aggregate => "aggregate",
            Category::GroupBy => "GROUP BY",
            Category::Distinct => "DISTINCT",
            Category::OrderBy => "ORDER BY",
            Category::ColocatedJoin => "co-located join",
            Category::ReferenceJoin => "reference join",
            Category::Errors => "errors",
        }
    }
}

/// The protocol a query is sent with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// Simple Query: one message, text results.
    Simple,
    /// Parse/Bind/Execute: parameters, binary results.
    Extended,
}

impl Protocol {
    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Simple => "simple",
            Protocol::Extended => "extended",
        }
    }
}

/// One generated query.
#[derive(Debug, Clone)]
pub struct Query {
    /// What it exercises.
    pub category: Category,
    /// The SQL text.
    pub sql: String,
    /// Values of `$1..` (extended protocol only).
    pub params: Vec<Param>,
    /// How much of the row order the SQL determines.
    pub ordering: Ordering,
}

impl Query {
    /// A query whose row order does not matter, without parameters.
    pub fn new(category: Category, sql: impl Into<String>) -> Query {
        Query {
            category,
            sql: sql.into(),
            params: Vec::new(),
            ordering: Ordering::Unordered,
        }
    }

    /// Its ORDER BY determines the order completely.
    pub fn total(self) -> Query {
        self.ordered(Ordering::Total)
    }

    /// Its ORDER BY sorts by these output columns, ties possible.
    pub fn sorted_by(self, keys: Vec<usize>) -> Query {
        self.ordered(Ordering::SortedBy(keys))
    }

    /// Its row order is `ordering`.
    pub fn ordered(mut self, ordering: Ordering) -> Query {
        self.ordering = ordering;
        self
    }

    /// It takes these parameters.
    pub fn with_params(mut self, params: Vec<Param>) -> Query {
        self.params = params;
        self
    }

    /// The protocols it runs with: both, unless it has parameters (which
    /// only the extended protocol can carry).
    pub fn protocols(&self) -> &'static [Protocol] {
        if self.params.is_empty() {
            &[Protocol::Simple, Protocol::Extended]
        } else {
            &[Protocol::Extended]
        }
    }
}

/// Rounds of the generators: each round draws new random values, so the
/// suite holds well over 500 distinct queries.
const ROUNDS: usize = 2;

/// All queries over `data`, fixed by `seed`, without duplicates (the fixed
/// cases of a generator repeat from round to round).
pub fn generate(data: &Dataset, seed: u64) -> Vec<Query> {
    let mut g = Gen::new(data, seed);
    let mut out = Vec::new();
    for _ in 0..ROUNDS {
        lookup::point_lookups(&mut g, &mut out);
        lookup::ranges(&mut g, &mut out);
        lookup::in_lists(&mut g, &mut out);
        aggregate::aggregates(&mut g, &mut out);
        aggregate::group_bys(&mut g, &mut out);
        aggregate::distincts(&mut g, &mut out);
        order::order_bys(&mut g, &mut out);
        join::colocated_joins(&mut g, &mut out);
        join::reference_joins(&mut g, &mut out);
        errors::errors(&mut g, &mut out);
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|q| seen.insert(format!("{}\u{0}{:?}", q.sql, q.params)));
    out
}
