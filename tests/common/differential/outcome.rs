//! Counting the verdicts per category and protocol, the printed summary,
//! and the suite's pass criteria: no mismatch, enough queries, refusals a
//! minority, and equal answers in every category and protocol (so the
//! suite cannot pass by refusing whole kinds of queries).

use std::collections::BTreeMap;
use std::fmt::Write;

use super::compare::Verdict;
use super::queries::{Category, Protocol};

/// Fewest query runs (query × protocol) the suite must make.
pub const MIN_RUNS: usize = 500;
/// Largest share of runs the proxy may refuse with 0A000, in percent.
pub const MAX_REJECTED_PERCENT: usize = 20;

/// Verdict counts of one category and protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Same answer.
    pub equal: usize,
    /// Refused with 0A000.
    pub rejected: usize,
    /// Wrong answer or wrong error.
    pub mismatched: usize,
}

/// Everything a suite run found.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Counts per category and protocol.
    pub counts: BTreeMap<(Category, Protocol), Counts>,
    /// A report of each mismatch: the query, both answers, the difference.
    pub mismatches: Vec<String>,
}

impl Outcome {
    /// Records the verdict of one run; `details` describes the run for a
    /// mismatch report (called only then).
    pub fn record(
        &mut self,
        category: Category,
        protocol: Protocol,
        verdict: &Verdict,
        details: impl FnOnce() -> String,
    ) {
        let counts = self.counts.entry((category, protocol)).or_default();
        match verdict {
            Verdict::Equal => counts.equal += 1,
            Verdict::Rejected => counts.rejected += 1,
            Verdict::Mismatch(difference) => {
                counts.mismatched += 1;
                self.mismatches.push(format!("{difference}\n{}", details()));
            }
        }
    }

    fn total(&self) -> Counts {
        self.counts.values().fold(Counts::default(), |a, c| Counts {
            equal: a.equal + c.equal,
            rejected: a.rejected + c.rejected,
            mismatched: a.mismatched + c.mismatched,
        })
    }

    /// The summary table: equal / rejected (0A000) / mismatched runs per
    /// category and protocol, and the totals.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "{:<16} {:<9} {:>6} {:>9} {:>11}\n",
            "category", "protocol", "equal", "rejected", "mismatched"
        );
        let mut line = |name: &str, protocol: &str, c: &Counts| {
            let _ = writeln!(
                out,
                "{name:<16} {protocol:<9} {:>6} {:>9} {:>11}",
                c.equal, c.rejected, c.mismatched
            );
        };
        for ((category, protocol), counts) in &self.counts {
            line(category.name(), protocol.name(), counts);
        }
        line("total", "", &self.total());
        out
    }

    /// Why the run fails, if it does: every mismatch, too few runs, too
    /// many refusals, or a category or protocol without an equal answer.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = self.mismatches.clone();
        let total = self.total();
        let runs = total.equal + total.rejected + total.mismatched;
        if runs < MIN_RUNS {
            problems.push(format!("only {runs} query runs, fewer than {MIN_RUNS}"));
        }
        if total.rejected * 100 >= runs * MAX_REJECTED_PERCENT {
            problems.push(format!(
                "{} of {runs} runs refused with 0A000: {MAX_REJECTED_PERCENT}% or more",
                total.rejected
            ));
        }
        for category in Category::ALL {
            let equal: usize = self
                .counts
                .iter()
                .filter(|((c, _), _)| *c == category)
                .map(|(_, n)| n.equal)
                .sum();
            if equal == 0 {
                problems.push(format!("no equal answer in category {}", category.name()));
            }
        }
        for protocol in [Protocol::Simple, Protocol::Extended] {
            let equal: usize = self
                .counts
                .iter()
                .filter(|((_, p), _)| *p == protocol)
                .map(|(_, n)| n.equal)
                .sum();
            if equal == 0 {
                problems.push(format!(
                    "no equal answer with the {} protocol",
                    protocol.name()
                ));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An outcome of `equal` and `rejected` runs spread over every category
    /// and both protocols.
    fn spread(equal: usize, rejected: usize) -> Outcome {
        let mut outcome = Outcome::default();
        let slots: Vec<(Category, Protocol)> = Category::ALL
            .iter()
            .flat_map(|&c| [(c, Protocol::Simple), (c, Protocol::Extended)])
            .collect();
        for i in 0..equal {
            let (c, p) = slots[i % slots.len()];
            outcome.record(c, p, &Verdict::Equal, String::new);
        }
        for i in 0..rejected {
            let (c, p) = slots[i % slots.len()];
            outcome.record(c, p, &Verdict::Rejected, String::new);
        }
        outcome
    }

    #[test]
    fn passes_only_with_enough_equal_answers_and_no_mismatch() {
        assert_eq!(spread(600, 50).problems(), Vec::<String>::new());
        assert!(!spread(100, 0).problems().is_empty(), "too few runs");
        assert!(!spread(500, 200).problems().is_empty(), "too many refusals");
        let mut one_wrong = spread(600, 0);
        one_wrong.record(
            Category::Range,
            Protocol::Simple,
            &Verdict::Mismatch("x".into()),
            || "query".into(),
        );
        assert_eq!(one_wrong.problems().len(), 1);
        let mut no_errors_equal = Outcome::default();
        for _ in 0..600 {
            no_errors_equal.record(
                Category::Range,
                Protocol::Simple,
                &Verdict::Equal,
                String::new,
            );
            no_errors_equal.record(
                Category::Range,
                Protocol::Extended,
                &Verdict::Equal,
                String::new,
            );
        }
        no_errors_equal.record(
            Category::Errors,
            Protocol::Simple,
            &Verdict::Rejected,
            String::new,
        );
        assert!(
            no_errors_equal
                .problems()
                .iter()
                .any(|p| p.contains("errors"))
        );
    }
}
