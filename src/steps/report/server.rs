//! The report's server view: per model label and level, what vLLM's own `/metrics` series
//! recorded (peaks of the gauges, increases of the counters), beside the client's throughput.

use serde::Serialize;

use super::context::ChartRef;
use super::format::{opt, percent};
use crate::results::bench::BenchSummary;
use crate::steps::bench::server_view::{LevelServerStats, SweepSeries};

/// One label's server-view table.
#[derive(Debug, Clone, Serialize)]
pub struct ServerTable {
    /// Model label.
    pub label: String,
    /// Rows, one per level with series: concurrency, peak running, peak waiting, peak KV-cache
    /// usage, preemptions, server generation tok/s, client output tok/s, scrapes, window (s).
    pub rows: Vec<Vec<String>>,
    /// Levels without series, one sentence each (`c=8: no \`c8.json\` next to the summary`).
    pub missing: Vec<String>,
    /// The label's server-view chart, when the charts step drew one.
    pub chart: Option<ChartRef>,
}

/// The server-view table of one label; `-` where a series was not recorded.
pub fn server_table(
    label: &str,
    summary: &BenchSummary,
    sweep: &SweepSeries,
    chart: Option<ChartRef>,
) -> ServerTable {
    let rows = sweep
        .levels
        .iter()
        .map(|level| {
            let s = LevelServerStats::of(level);
            let client = summary
                .levels
                .iter()
                .find(|l| l.max_concurrency == s.max_concurrency)
                .and_then(|l| l.output_throughput);
            vec![
                s.max_concurrency.to_string(),
                opt(s.peak_running, 0),
                opt(s.peak_waiting, 0),
                s.peak_kv_cache_usage.map_or("-".into(), percent),
                opt(s.preemptions, 0),
                opt(s.generation_tokens_per_s, 1),
                opt(client, 1),
                s.scrapes.to_string(),
                format!("{:.1}", s.window_s),
            ]
        })
        .collect();
    ServerTable {
        label: label.to_string(),
        rows,
        missing: sweep.missing.clone(),
        chart,
    }
}
