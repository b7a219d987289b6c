//! How sure a level's headline figures are: percentile-bootstrap confidence intervals for output
//! throughput and p50/p99 TTFT and TPOT, written per bench step as `intervals.json`
//! (`docs/bench.md`, "Intervals"; schema in `docs/results.md`).
//!
//! Two-stage bootstrap (Davison & Hinkley, *Bootstrap Methods and their Application*, 1997,
//! §3.8, "Hierarchical data"): each resample draws the level's runs (`repeats`) with
//! replacement, then, within each drawn run, as many requests as it had, with replacement.
//! A resample's throughput is its output tokens over the summed measured durations of its drawn
//! runs (the pooled definition of `c<N>.json`); its percentiles are numpy's linear ones over its
//! successful requests (as `metrics.rs`). The interval is the 2.5th and 97.5th percentile of the
//! resampled figures (95 %). With one run, only the request mix varies: an interval then says
//! nothing about run-to-run drift (a fixed output length makes the throughput interval a point),
//! which is why the paid profiles run 3 repeats.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::metrics::percentile_sorted;
use super::record::RequestRecord;

pub use crate::results::intervals::{
    BenchIntervals, CONFIDENCE, FILE, Interval, IntervalsError, LevelIntervals, RESAMPLES,
};

/// One measured request as the bootstrap sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Output tokens (0 for a failed request, which counts towards no figure but throughput's
    /// denominator).
    pub output_tokens: u64,
    /// TTFT in ms, for a successful request.
    pub ttft_ms: Option<f64>,
    /// TPOT in ms, for a successful request with more than one output token.
    pub tpot_ms: Option<f64>,
}

/// One run of a level: its measured duration and its requests.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSample {
    /// Measured duration in seconds.
    pub duration_s: f64,
    /// Its requests.
    pub requests: Vec<Sample>,
}

/// A level's runs as the bootstrap sees them: records grouped by `repeat` (untagged records
/// belong to run 0), each run with its measured duration.
pub fn runs_of(records: &[RequestRecord], durations_s: &[f64]) -> Vec<RunSample> {
    let mut runs: Vec<RunSample> = durations_s
        .iter()
        .map(|&d| RunSample {
            duration_s: d,
            requests: Vec::new(),
        })
        .collect();
    for r in records {
        let k = r.repeat.unwrap_or(0) as usize;
        if let Some(run) = runs.get_mut(k) {
            run.requests.push(sample(r));
        }
    }
    runs
}

fn sample(r: &RequestRecord) -> Sample {
    let ok = r.success();
    Sample {
        output_tokens: if ok { u64::from(r.output_tokens) } else { 0 },
        ttft_ms: ok.then_some(r.ttft_s * 1000.0),
        tpot_ms: r.tpot_s().map(|s| s * 1000.0),
    }
}

/// The five figures of one (re)sample.
#[derive(Debug, Default)]
struct Figures {
    throughput: Option<f64>,
    ttft: (Option<f64>, Option<f64>),
    tpot: (Option<f64>, Option<f64>),
}

fn figures<'a>(picked: impl Iterator<Item = (f64, &'a [Sample])>) -> Figures {
    let (mut duration, mut tokens) = (0.0, 0u64);
    let (mut ttft, mut tpot) = (Vec::new(), Vec::new());
    for (d, requests) in picked {
        duration += d;
        for s in requests {
            tokens += s.output_tokens;
            ttft.extend(s.ttft_ms);
            tpot.extend(s.tpot_ms);
        }
    }
    Figures {
        throughput: (duration > 0.0).then(|| tokens as f64 / duration),
        ttft: p50_p99(&mut ttft),
        tpot: p50_p99(&mut tpot),
    }
}

fn p50_p99(values: &mut [f64]) -> (Option<f64>, Option<f64>) {
    if values.is_empty() {
        return (None, None);
    }
    values.sort_by(f64::total_cmp);
    (
        Some(percentile_sorted(values, 50.0)),
        Some(percentile_sorted(values, 99.0)),
    )
}

/// The intervals of one level from its runs: `resamples` two-stage bootstrap draws from
/// ChaCha8 seeded with `seed`, stream `concurrency`.
pub fn level_intervals(
    concurrency: u32,
    runs: &[RunSample],
    seed: u64,
    resamples: u32,
) -> LevelIntervals {
    let point = figures(runs.iter().map(|r| (r.duration_s, r.requests.as_slice())));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(u64::from(concurrency));
    let mut draws: [Vec<f64>; 5] = Default::default();
    let mut picked: Vec<(f64, Vec<Sample>)> = Vec::with_capacity(runs.len());
    for _ in 0..if runs.is_empty() { 0 } else { resamples } {
        picked.clear();
        for _ in 0..runs.len() {
            let run = &runs[rng.random_range(0..runs.len())];
            let n = run.requests.len();
            let requests = (0..n)
                .map(|_| run.requests[rng.random_range(0..n)])
                .collect();
            picked.push((run.duration_s, requests));
        }
        let f = figures(picked.iter().map(|(d, r)| (*d, r.as_slice())));
        let values = [f.throughput, f.ttft.0, f.ttft.1, f.tpot.0, f.tpot.1];
        for (draw, v) in draws.iter_mut().zip(values) {
            draw.extend(v);
        }
    }
    let [throughput, ttft50, ttft99, tpot50, tpot99] = draws;
    LevelIntervals {
        max_concurrency: concurrency,
        repeats: runs.len() as u32,
        requests: runs.iter().map(|r| r.requests.len() as u64).sum(),
        repeat_durations_s: runs.iter().map(|r| r.duration_s).collect(),
        output_throughput: interval(point.throughput, throughput),
        p50_ttft_ms: interval(point.ttft.0, ttft50),
        p99_ttft_ms: interval(point.ttft.1, ttft99),
        p50_tpot_ms: interval(point.tpot.0, tpot50),
        p99_tpot_ms: interval(point.tpot.1, tpot99),
    }
}

/// The percentile interval of the resampled values around `estimate`.
fn interval(estimate: Option<f64>, mut draws: Vec<f64>) -> Option<Interval> {
    let estimate = estimate?;
    if draws.is_empty() {
        return Some(Interval {
            estimate,
            lo: estimate,
            hi: estimate,
        });
    }
    draws.sort_by(f64::total_cmp);
    let tail = (1.0 - CONFIDENCE) / 2.0 * 100.0;
    Some(Interval {
        estimate,
        lo: percentile_sorted(&draws, tail),
        hi: percentile_sorted(&draws, 100.0 - tail),
    })
}

#[cfg(test)]
#[path = "uncertainty_tests.rs"]
mod tests;
