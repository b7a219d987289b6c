//! The server's own view of a sweep: the `/metrics` series each level recorded (`scrape.rs`),
//! read back from the level files a `summary.json` names, and the figures derived from them.
//! Gauges are summarized by their peak, counters by their increase; nothing is interpolated or
//! extrapolated. The charts step draws these series, the report step tabulates the figures.

use std::path::Path;

use serde::Deserialize;

use super::scrape::ServerMetrics;
use crate::results::ReadError;
use crate::results::bench::BenchSummary;
use crate::steps::cost::inputs::InputError;

/// One level's recorded series.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelSeries {
    /// The level's concurrency.
    pub max_concurrency: u32,
    /// The series as the bench step wrote them (at least one scrape).
    pub metrics: ServerMetrics,
}

/// What a sweep recorded of the server: the levels with series, in the summary's order, and
/// one note per level without.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SweepSeries {
    /// Levels with at least one successful scrape.
    pub levels: Vec<LevelSeries>,
    /// Why a level has no series (`c=8: no \`c8.json\` next to the summary`).
    pub missing: Vec<String>,
}

/// The part of a level file (`c<N>.json`, [`crate::results::bench::LevelFile`]) the server view
/// reads.
#[derive(Deserialize)]
struct LevelFile {
    /// Absent in files from before the scrape existed.
    #[serde(default)]
    server_metrics: Option<ServerMetrics>,
}

impl crate::results::Versioned for LevelFile {
    const WHAT: &'static str = crate::results::bench::LEVEL_FILE;
}

/// Reads the series of every level `summary` lists from the level files next to `summary_path`.
/// A level without series (file absent, scraping off, every scrape failed) becomes a note; a level
/// file that exists but cannot be read or parsed is an error naming it.
pub fn read_sweep(summary_path: &Path, summary: &BenchSummary) -> Result<SweepSeries, InputError> {
    let dir = summary_path.parent().unwrap_or(Path::new(""));
    let mut out = SweepSeries::default();
    for level in &summary.levels {
        let c = level.max_concurrency;
        if level.file.is_empty() {
            out.missing
                .push(format!("c={c}: the summary names no level file"));
            continue;
        }
        let path = dir.join(&level.file);
        let parsed: LevelFile = match crate::results::read_json(&path) {
            Ok(parsed) => parsed,
            Err(ReadError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                let file = &level.file;
                out.missing
                    .push(format!("c={c}: no `{file}` next to the summary"));
                continue;
            }
            Err(ReadError::Read { path, source }) => return Err(InputError::Read { path, source }),
            Err(other) => return Err(InputError::Invalid(other)),
        };
        match parsed.server_metrics {
            Some(metrics) if !metrics.t.is_empty() => out.levels.push(LevelSeries {
                max_concurrency: c,
                metrics,
            }),
            Some(metrics) => out.missing.push(format!(
                "c={c}: every scrape of `{}` failed ({})",
                metrics.url,
                metrics.last_error.as_deref().unwrap_or("no error recorded")
            )),
            None => out.missing.push(format!(
                "c={c}: `{}` recorded no server metrics (`scrape_metrics = false`, or the vLLM driver)",
                level.file
            )),
        }
    }
    Ok(out)
}

/// A level's figures from its series; `None` where the series was not recorded (or, for rates,
/// has fewer than two samples).
#[derive(Debug, Clone, PartialEq)]
pub struct LevelServerStats {
    /// The level's concurrency.
    pub max_concurrency: u32,
    /// Successful scrapes.
    pub scrapes: usize,
    /// Seconds from the first to the last scrape: the window the figures cover.
    pub window_s: f64,
    /// Most requests running at once (`running`).
    pub peak_running: Option<f64>,
    /// Most requests waiting at once (`waiting`).
    pub peak_waiting: Option<f64>,
    /// Highest KV-cache usage, as a fraction (`kv_cache_usage`; vLLM: "1 means 100 percent").
    pub peak_kv_cache_usage: Option<f64>,
    /// Preemptions during the window (increase of `preemptions_total`).
    pub preemptions: Option<f64>,
    /// Generated tokens per second over the window (`generation_tokens_total`).
    pub generation_tokens_per_s: Option<f64>,
    /// Prompt tokens per second over the window (`prompt_tokens_total`).
    pub prompt_tokens_per_s: Option<f64>,
}

impl LevelServerStats {
    /// Derives the figures of one level.
    pub fn of(level: &LevelSeries) -> Self {
        let m = &level.metrics;
        let column = |name: &str| m.series.get(name).map(Vec::as_slice);
        let gauge = |name: &str| column(name).and_then(peak);
        let rate = |name: &str| column(name).and_then(|c| mean_rate(&m.t, c));
        LevelServerStats {
            max_concurrency: level.max_concurrency,
            scrapes: m.t.len(),
            window_s: match (m.t.first(), m.t.last()) {
                (Some(first), Some(last)) => last - first,
                _ => 0.0,
            },
            peak_running: gauge("running"),
            peak_waiting: gauge("waiting"),
            peak_kv_cache_usage: gauge("kv_cache_usage"),
            preemptions: column("preemptions_total").and_then(increase),
            generation_tokens_per_s: rate("generation_tokens_total"),
            prompt_tokens_per_s: rate("prompt_tokens_total"),
        }
    }
}

/// The largest recorded value of a gauge, or `None` when no scrape recorded it.
pub fn peak(column: &[Option<f64>]) -> Option<f64> {
    column.iter().flatten().copied().reduce(f64::max)
}

/// The recorded (time, value) samples of a column, skipping scrapes that lacked it.
fn samples<'a>(t: &'a [f64], column: &'a [Option<f64>]) -> impl Iterator<Item = (f64, f64)> + 'a {
    t.iter().zip(column).filter_map(|(t, v)| v.map(|v| (*t, v)))
}

/// How much a counter grew between two samples. A drop means the server restarted and the
/// counter began again at zero, as Prometheus' `increase()` treats counter resets
/// (<https://prometheus.io/docs/prometheus/latest/querying/functions/#increase>).
fn step(before: f64, after: f64) -> f64 {
    if after >= before {
        after - before
    } else {
        after
    }
}

/// A counter's increase over its recorded samples (no extrapolation to the window's edges), or
/// `None` with fewer than two samples.
pub fn increase(column: &[Option<f64>]) -> Option<f64> {
    let values: Vec<f64> = column.iter().flatten().copied().collect();
    (values.len() >= 2).then(|| values.windows(2).map(|w| step(w[0], w[1])).sum())
}

/// A counter's mean rate per second: its increase over the time between its first and last
/// recorded samples; `None` with fewer than two samples or no time between them.
pub fn mean_rate(t: &[f64], column: &[Option<f64>]) -> Option<f64> {
    let points: Vec<(f64, f64)> = samples(t, column).collect();
    let (first, last) = (points.first()?, points.last()?);
    let seconds = last.0 - first.0;
    if points.len() < 2 || seconds <= 0.0 {
        return None;
    }
    let total: f64 = points.windows(2).map(|w| step(w[0].1, w[1].1)).sum();
    Some(total / seconds)
}

/// A counter's rate between each recorded sample and the one before it, aligned with `t`
/// (`None` for the first sample, a scrape that lacked it, or no time between the two).
pub fn interval_rates(t: &[f64], column: &[Option<f64>]) -> Vec<Option<f64>> {
    let mut previous: Option<(f64, f64)> = None;
    t.iter()
        .zip(column)
        .map(|(&time, value)| {
            let value = (*value)?;
            let rate = previous
                .filter(|(before, _)| time > *before)
                .map(|(before, v)| step(v, value) / (time - before));
            previous = Some((time, value));
            rate
        })
        .collect()
}

#[cfg(test)]
mod tests;
