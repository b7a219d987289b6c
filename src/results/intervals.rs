//! `intervals.json`: how sure each level's headline figures are, written by the bench step beside
//! its `summary.json` (the bootstrap that fills it: `src/steps/bench/uncertainty.rs`; the file:
//! `docs/results.md`).

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Bootstrap resamples per level.
pub const RESAMPLES: u32 = 1000;
/// The intervals' confidence level.
pub const CONFIDENCE: f64 = 0.95;
/// The file each bench step writes beside `summary.json`.
pub const FILE: &str = "intervals.json";

/// A point estimate with its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Interval {
    /// The figure over all requests (equal to the one in `c<N>.json`).
    pub estimate: f64,
    /// Lower end.
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
}

impl Interval {
    /// Whether the two intervals share any value.
    pub fn overlaps(&self, other: &Interval) -> bool {
        self.lo <= other.hi && other.lo <= self.hi
    }

    /// Whether `value` lies within the interval (ends included).
    pub fn contains(&self, value: f64) -> bool {
        self.lo <= value && value <= self.hi
    }

    /// The interval of `f(x)` for a monotone `f`: its ends mapped, ordered low to high.
    pub fn map_monotone(&self, f: impl Fn(f64) -> f64) -> Interval {
        let (a, b) = (f(self.lo), f(self.hi));
        Interval {
            estimate: f(self.estimate),
            lo: a.min(b),
            hi: a.max(b),
        }
    }
}

/// The intervals of one level; a figure is `null` when the level has no value for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LevelIntervals {
    /// The level's concurrency.
    pub max_concurrency: u32,
    /// Runs of the level.
    pub repeats: u32,
    /// Measured requests over all runs.
    pub requests: u64,
    /// Each run's measured duration, seconds (their sum is `duration` in `c<N>.json`).
    pub repeat_durations_s: Vec<f64>,
    /// Output tokens per second.
    pub output_throughput: Option<Interval>,
    /// Median TTFT, ms.
    pub p50_ttft_ms: Option<Interval>,
    /// 99th percentile TTFT, ms.
    pub p99_ttft_ms: Option<Interval>,
    /// Median TPOT, ms.
    pub p50_tpot_ms: Option<Interval>,
    /// 99th percentile TPOT, ms.
    pub p99_tpot_ms: Option<Interval>,
}

/// `intervals.json`: every level's intervals and how they were drawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BenchIntervals {
    /// The file's shape ([`super::SCHEMA_VERSION`]); absent (read as 1) in files written before
    /// Forge recorded it.
    #[serde(default = "super::first_version")]
    pub schema_version: u32,
    /// What is resampled.
    pub method: String,
    /// The bench step's `seed`; level `c` draws from ChaCha8 seeded with it, stream `c`.
    pub seed: u64,
    /// Resamples per level.
    pub resamples: u32,
    /// Confidence level of every interval.
    pub confidence: f64,
    /// One entry per level run, sorted by concurrency.
    pub levels: Vec<LevelIntervals>,
}

impl BenchIntervals {
    /// An empty set drawn with `seed` and the fixed resamples and confidence.
    pub fn new(seed: u64) -> Self {
        BenchIntervals {
            schema_version: super::SCHEMA_VERSION,
            method: "bootstrap: runs (repeats) with replacement, then requests within each run with replacement; percentile interval".into(),
            seed,
            resamples: RESAMPLES,
            confidence: CONFIDENCE,
            levels: Vec::new(),
        }
    }

    /// The intervals of the level at `concurrency`, if it ran.
    pub fn level(&self, concurrency: u32) -> Option<&LevelIntervals> {
        self.levels
            .iter()
            .find(|l| l.max_concurrency == concurrency)
    }

    /// Write `intervals.json` into `dir` atomically.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        super::write_json(&dir.join(FILE), self)
    }

    /// Read `dir/intervals.json`; `Ok(None)` when the bench wrote none (results from before
    /// Forge computed intervals).
    pub fn read(dir: &Path) -> Result<Option<Self>, IntervalsError> {
        let path = dir.join(FILE);
        if !path.exists() {
            return Ok(None);
        }
        super::read_json(&path).map(Some).map_err(IntervalsError)
    }
}

/// An `intervals.json` that exists but cannot be used (it names the file).
#[derive(Debug, thiserror::Error)]
#[error("{0}\nhint: rerun the bench step that writes it")]
pub struct IntervalsError(#[from] pub super::ReadError);

impl super::Versioned for BenchIntervals {
    const WHAT: &'static str = "bench intervals.json";
}
