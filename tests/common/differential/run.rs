//! Running the queries on both sides and comparing the answers.

use std::time::Duration;

use tokio_postgres::Client;

use super::answer::{self, Answer};
use super::compare::{Verdict, compare};
use super::outcome::Outcome;
use super::queries::{Category, Protocol, Query};
use crate::common::connect;

/// A query without an answer after this long counts as failed (a liveness
/// guard against a hung proxy, not a timing assertion).
const QUERY_DEADLINE: Duration = Duration::from_secs(30);

/// One side of the comparison: a server (or the proxy) and a connection to
/// it, re-opened when a query broke it, so one failure does not hide the
/// answers to every later query.
pub struct Side {
    conninfo: String,
    client: Client,
}

impl Side {
    /// Connects to `conninfo`.
    pub async fn connect(conninfo: String) -> Side {
        let client = connect(&conninfo)
            .await
            .unwrap_or_else(|e| panic!("connect to {conninfo}: {e}"));
        Side { conninfo, client }
    }

    /// The open connection (for loading data).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Runs `query` with `protocol`.
    pub async fn run(&mut self, query: &Query, protocol: Protocol) -> Answer {
        let call = async {
            match protocol {
                Protocol::Simple => answer::simple(&self.client, &query.sql).await,
                Protocol::Extended => {
                    answer::extended(&self.client, &query.sql, &query.params).await
                }
            }
        };
        let answer = tokio::time::timeout(QUERY_DEADLINE, call)
            .await
            .unwrap_or_else(|_| Answer::failure(format!("no answer within {QUERY_DEADLINE:?}")));
        if matches!(answer, Answer::Error { code: None, .. })
            && let Ok(client) = connect(&self.conninfo).await
        {
            self.client = client;
        }
        answer
    }
}

/// Runs every query with each of its protocols on `reference` (the single
/// Postgres) and `target` (the proxy), comparing each pair of answers.
pub async fn run_all(reference: &mut Side, target: &mut Side, queries: &[Query]) -> Outcome {
    let mut outcome = Outcome::default();
    for query in queries {
        for &protocol in query.protocols() {
            let (expected, actual) =
                tokio::join!(reference.run(query, protocol), target.run(query, protocol));
            let verdict = match (&expected, query.category) {
                (Answer::Rows { .. }, Category::Errors) => Verdict::Mismatch(
                    "test generator bug: the single Postgres answers a query meant to fail"
                        .to_string(),
                ),
                _ => compare(&expected, &actual, &query.ordering),
            };
            outcome.record(query.category, protocol, &verdict, || {
                format!(
                    "  [{} / {}] {}\n  params: {:?}\n  order: {:?}\n  single Postgres: {expected}\n  proxy: {actual}",
                    query.category.name(),
                    protocol.name(),
                    query.sql,
                    query.params,
                    query.ordering
                )
            });
        }
    }
    outcome
}
