//! The report's "How sure these figures are" section: each bench label's 95 % intervals
//! (`intervals.json`, `docs/bench.md`) per level, and a sentence wherever an interval is too wide
//! to decide: the headline API's price inside the self-hosted $/1M interval, or the candidate's
//! and another label's throughput intervals overlapping at a level. Empty (and the section not
//! rendered) when no bench wrote intervals.

use std::collections::BTreeMap;

use serde::Serialize;

use super::context::Sources;
use super::format::usd;
use crate::steps::bench::uncertainty::{BenchIntervals, Interval};

/// The section's data; `tables` is empty when no bench label has intervals.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Uncertainty {
    /// How the intervals were drawn, one sentence.
    pub method: String,
    /// One table per label with intervals.
    pub tables: Vec<IntervalTable>,
    /// Where an interval is too wide to decide.
    pub notes: Vec<String>,
}

/// One label's intervals per level.
#[derive(Debug, Clone, Serialize)]
pub struct IntervalTable {
    /// The bench label.
    pub label: String,
    /// Concurrency, runs, requests, then `estimate [lo, hi]` for throughput, TTFT p50/p99,
    /// TPOT p50/p99 and $/1M output.
    pub rows: Vec<Vec<String>>,
}

/// `estimate [lo, hi]` with `decimals` decimals, or `-`.
fn span(i: Option<Interval>, decimals: usize) -> String {
    i.map_or("-".into(), |i| {
        format!(
            "{:.d$} [{:.d$}, {:.d$}]",
            i.estimate,
            i.lo,
            i.hi,
            d = decimals
        )
    })
}

fn usd_span(i: Option<Interval>) -> String {
    i.map_or("-".into(), |i| {
        format!("{} [{}, {}]", usd(i.estimate), usd(i.lo), usd(i.hi))
    })
}

/// The section from the sources and each label's intervals.
pub fn build(
    s: &Sources,
    intervals: &BTreeMap<String, BenchIntervals>,
    headline_api: Option<&str>,
) -> Uncertainty {
    let Some(first) = intervals.values().next() else {
        return Uncertainty::default();
    };
    let tables = s
        .bench
        .iter()
        .filter_map(|(label, _, _)| Some(table(s, label, intervals.get(label)?)))
        .collect();
    let mut notes: Vec<String> = headline_note(s, headline_api).into_iter().collect();
    notes.extend(overlap_notes(&s.cost.candidate, intervals));
    Uncertainty {
        method: format!(
            "{:.0} % intervals from a bootstrap over runs and requests ({} resamples, seed {}; docs/bench.md)",
            first.confidence * 100.0,
            first.resamples,
            first.seed
        ),
        tables,
        notes,
    }
}

fn table(s: &Sources, label: &str, intervals: &BenchIntervals) -> IntervalTable {
    let costs = s.cost.labels.get(label);
    let rows = intervals
        .levels
        .iter()
        .map(|l| {
            let per_m = costs
                .and_then(|c| {
                    c.levels
                        .iter()
                        .find(|x| x.max_concurrency == l.max_concurrency)
                })
                .and_then(|c| c.usd_per_1m_output_interval);
            vec![
                l.max_concurrency.to_string(),
                l.repeats.to_string(),
                l.requests.to_string(),
                span(l.output_throughput, 1),
                span(l.p50_ttft_ms, 1),
                span(l.p99_ttft_ms, 1),
                span(l.p50_tpot_ms, 2),
                span(l.p99_tpot_ms, 2),
                usd_span(per_m),
            ]
        })
        .collect();
    IntervalTable {
        label: label.to_string(),
        rows,
    }
}

/// The headline API's price per 1M output tokens of the workload inside the self-hosted
/// $/1M output interval at the headline level: the answer could go either way.
fn headline_note(s: &Sources, api: Option<&str>) -> Option<String> {
    let c = &s.comparison;
    let row = api
        .and_then(|a| c.apis.iter().find(|r| r.model == a))
        .or_else(|| c.apis.first())?;
    let basis = c
        .self_hosted
        .slo
        .as_ref()
        .unwrap_or(&c.self_hosted.headline);
    let interval = basis.usd_per_1m_output_interval?;
    let price = row.usd_per_1m_output_of_workload;
    interval.contains(price).then(|| {
        format!(
            "Too close to call at this sample size: {}'s {} per 1M output tokens of the workload lies inside self-hosted {}'s 95 % interval {} at concurrency {}. Run more repeats or prompts.",
            row.model,
            usd(price),
            c.candidate,
            usd_span(Some(interval)),
            basis.max_concurrency
        )
    })
}

/// The candidate's throughput interval overlapping another label's at the same level: which
/// is faster there is not decided.
fn overlap_notes(candidate: &str, intervals: &BTreeMap<String, BenchIntervals>) -> Vec<String> {
    let Some(ours) = intervals.get(candidate) else {
        return Vec::new();
    };
    let mut notes = Vec::new();
    for (other, theirs) in intervals.iter().filter(|(l, _)| l.as_str() != candidate) {
        for level in &ours.levels {
            let a = level.output_throughput;
            let b = theirs
                .level(level.max_concurrency)
                .and_then(|l| l.output_throughput);
            if let (Some(a), Some(b)) = (a, b)
                && a.overlaps(&b)
            {
                notes.push(format!(
                    "Too close to call at this sample size: {candidate} and {other} output throughput at concurrency {}: {} vs {} tok/s overlap. Run more repeats or prompts.",
                    level.max_concurrency,
                    span(Some(a), 1),
                    span(Some(b), 1)
                ));
            }
        }
    }
    notes
}
