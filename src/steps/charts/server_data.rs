//! Shaping of the "server view" charts: one per model label, the `/metrics` series the bench step
//! recorded during each level laid end to end on one time axis (pure; `server_render.rs` draws).

use crate::results::metadata::Metadata;
use crate::steps::bench::server_view::{SweepSeries, interval_rates};

use super::data::{caption, nice_top};

/// One series of a panel, broken where a scrape lacked it and between levels.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// Legend text.
    pub name: String,
    /// Colour slot.
    pub colour: usize,
    /// Runs of consecutive (seconds, value) points.
    pub segments: Vec<Vec<(f64, f64)>>,
}

/// One panel: a y axis and the traces drawn against it.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// Y axis description with unit.
    pub y_label: String,
    /// Top of the y axis.
    pub y_max: f64,
    /// Traces, in legend order.
    pub traces: Vec<Trace>,
}

/// A server-view chart: panels sharing one time axis, with each level's start marked.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerChart {
    /// Title.
    pub title: String,
    /// X axis description.
    pub x_label: String,
    /// End of the time axis (seconds).
    pub x_max: f64,
    /// Where each level starts on the time axis, and its concurrency.
    pub boundaries: Vec<(f64, u32)>,
    /// Panels, top to bottom.
    pub panels: Vec<Panel>,
    /// Provenance caption.
    pub caption: String,
}

/// What a panel shows: a recorded gauge (scaled) or the interval rate of a counter.
enum Source {
    Gauge(&'static str, f64),
    Rate(&'static str),
}

/// A panel's series: (legend, source, colour slot).
type PanelSeries = &'static [(&'static str, Source, usize)];

/// Panels and their series: (y label, series).
const PANELS: [(&str, PanelSeries); 4] = [
    (
        "requests",
        &[
            ("running", Source::Gauge("running", 1.0), 0),
            ("waiting", Source::Gauge("waiting", 1.0), 1),
        ],
    ),
    (
        "KV cache (%)",
        // vLLM's `kv_cache_usage_perc` is a fraction: "1 means 100 percent usage"
        // (vllm/v1/metrics/loggers.py).
        &[("KV-cache usage", Source::Gauge("kv_cache_usage", 100.0), 2)],
    ),
    // Generation and prompt rates get a panel each: prefill arrives in bursts many times the
    // decode rate, and on one axis it flattens the generation line.
    (
        "generation tok/s",
        &[(
            "generation tokens/s",
            Source::Rate("generation_tokens_total"),
            3,
        )],
    ),
    (
        "prompt tok/s",
        &[("prompt tokens/s", Source::Rate("prompt_tokens_total"), 5)],
    ),
];

/// The server view of one label's sweep, or `None` when no level recorded series. Levels sit end
/// to end in the summary's order, each from its first to its last scrape (the time between levels
/// was not scraped); a series a level lacked is simply absent there.
pub fn server(
    label: &str,
    metadata: &Metadata,
    sweep: &SweepSeries,
    title: &str,
) -> Option<ServerChart> {
    if sweep.levels.is_empty() {
        return None;
    }
    // Each level's x values: seconds since the first scrape of the sweep, levels end to end.
    let mut offset = 0.0;
    let mut boundaries = Vec::new();
    let mut xs: Vec<Vec<f64>> = Vec::new();
    for level in &sweep.levels {
        let t = &level.metrics.t;
        let first = t.first().copied().unwrap_or(0.0);
        boundaries.push((offset, level.max_concurrency));
        xs.push(t.iter().map(|v| offset + (v - first)).collect());
        offset += t.last().copied().unwrap_or(first) - first;
    }
    let panels = PANELS
        .iter()
        .map(|(y_label, sources)| {
            let traces: Vec<Trace> = sources
                .iter()
                .filter_map(|(name, source, colour)| {
                    let segments = segments(sweep, &xs, source);
                    (!segments.is_empty()).then(|| Trace {
                        name: name.to_string(),
                        colour: *colour,
                        segments,
                    })
                })
                .collect();
            let top = traces
                .iter()
                .flat_map(|t| t.segments.iter().flatten().map(|p| p.1))
                .fold(0.0, f64::max);
            Panel {
                y_label: y_label.to_string(),
                y_max: nice_top(top * 1.1),
                traces,
            }
        })
        .collect();
    Some(ServerChart {
        title: format!("{title}: {label}"),
        x_label: "seconds scraped (levels end to end, warmup included; dashed: level start)".into(),
        x_max: if offset > 0.0 { offset } else { 1.0 },
        boundaries,
        panels,
        caption: caption(&[(label, metadata)]),
    })
}

/// The recorded points of one source across the sweep, split at gaps and level boundaries.
fn segments(sweep: &SweepSeries, xs: &[Vec<f64>], source: &Source) -> Vec<Vec<(f64, f64)>> {
    let mut out = Vec::new();
    for (level, x) in sweep.levels.iter().zip(xs) {
        let m = &level.metrics;
        let values: Vec<Option<f64>> = match source {
            Source::Gauge(name, scale) => match m.series.get(*name) {
                Some(column) => column.iter().map(|v| v.map(|v| v * scale)).collect(),
                None => continue,
            },
            Source::Rate(name) => match m.series.get(*name) {
                Some(column) => interval_rates(&m.t, column),
                None => continue,
            },
        };
        let mut run: Vec<(f64, f64)> = Vec::new();
        for (x, value) in x.iter().zip(values) {
            match value {
                Some(v) => run.push((*x, v)),
                None if !run.is_empty() => out.push(std::mem::take(&mut run)),
                None => {}
            }
        }
        if !run.is_empty() {
            out.push(run);
        }
    }
    out
}

/// The chart's file stem for a label: `server-<label>`, with any character other than ASCII
/// letters, digits, `-`, `_` and `.` written as `_` so a label can never name another directory.
pub fn file_stem(label: &str) -> String {
    let safe: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("server-{safe}")
}
