//! Chart-data shaping: result files in, plain series out (pure; `render.rs` draws them).

use std::collections::BTreeMap;

use crate::results::bench::BenchSummary;
use crate::results::cost::ComparisonFile;
use crate::results::eval::Retention;
use crate::results::metadata::{Metadata, short_sha};

use super::settings::RooflineSettings;
use crate::steps::bench::uncertainty::{BenchIntervals, Interval, LevelIntervals};

/// Each bench label's `intervals.json`, where its bench wrote one.
pub type Intervals = BTreeMap<String, BenchIntervals>;

/// A line series on a concurrency axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Legend text.
    pub name: String,
    /// (concurrency, value) points, in concurrency order.
    pub points: Vec<(f64, f64)>,
    /// Colour slot (one per model label).
    pub colour: usize,
    /// Dashed (p99, roofline) or solid (p50, throughput).
    pub dashed: bool,
    /// Draw point markers (measured data) or not (a model line).
    pub markers: bool,
    /// Error bars, (concurrency, low, high): the level's 95 % interval, where its bench wrote
    /// `intervals.json`; empty otherwise.
    pub bars: Vec<(f64, f64, f64)>,
}

/// A chart of lines against concurrency (log2 axis).
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    /// Title.
    pub title: String,
    /// Y axis description with unit.
    pub y_label: String,
    /// Series.
    pub lines: Vec<Line>,
    /// Concurrency levels measured (x ticks).
    pub levels: Vec<f64>,
    /// Top of the y axis.
    pub y_max: f64,
    /// Provenance caption.
    pub caption: String,
}

/// One bar of the cost chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Category label.
    pub name: String,
    /// USD per 1M tokens.
    pub value: f64,
    /// Self-hosted (true) or API (false).
    pub self_hosted: bool,
}

/// The cost chart: horizontal bars.
#[derive(Debug, Clone, PartialEq)]
pub struct BarChart {
    /// Title.
    pub title: String,
    /// X axis description with unit.
    pub x_label: String,
    /// Bars, top to bottom.
    pub bars: Vec<Bar>,
    /// Provenance caption.
    pub caption: String,
}

/// One task of the retention chart.
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionBar {
    /// Task (and metric) name.
    pub name: String,
    /// Retention in percent of baseline.
    pub percent: f64,
    /// Standard error in percentage points (0 when not reported).
    pub stderr: f64,
}

/// The retention chart.
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionChart {
    /// Title.
    pub title: String,
    /// Y axis description.
    pub y_label: String,
    /// Bars.
    pub bars: Vec<RetentionBar>,
    /// Y range (percent).
    pub y_range: (f64, f64),
    /// Provenance caption.
    pub caption: String,
}

/// A provenance caption for several labelled inputs: shared profile, hardware and engine, each
/// label's model SHA, and the latest date.
pub fn caption(inputs: &[(&str, &Metadata)]) -> String {
    let Some((_, first)) = inputs.first() else {
        return String::new();
    };
    let mut base = first.caption();
    // The caption ends with "| model sha X | date"; rebuild those two parts across inputs.
    if let Some(cut) = base.find(" | model sha") {
        base.truncate(cut);
    }
    let shas: Vec<String> = inputs
        .iter()
        .map(|(label, m)| {
            let sha = m
                .model
                .as_ref()
                .and_then(|m| m.sha.as_deref())
                .map_or("?", short_sha);
            format!("{label} {sha}")
        })
        .collect();
    let date = inputs
        .iter()
        .map(|(_, m)| m.date.as_str())
        .max()
        .unwrap_or("");
    // A model not served in its own format says so on every chart it appears in.
    let served: String = inputs
        .iter()
        .filter_map(|(label, m)| {
            let weights = m.model.as_ref()?.weights.as_ref()?;
            (weights.format != "int4").then(|| format!(" | {label} served as {}", weights.format))
        })
        .collect();
    format!("{base} | model sha {}{served} | {date}", shas.join(", "))
}

fn levels(bench: &[(String, BenchSummary)]) -> Vec<f64> {
    let mut all: Vec<f64> = bench
        .iter()
        .flat_map(|(_, s)| s.levels.iter().map(|l| f64::from(l.max_concurrency)))
        .collect();
    all.sort_by(f64::total_cmp);
    all.dedup();
    all
}

fn metas(bench: &[(String, BenchSummary)]) -> Vec<(&str, &Metadata)> {
    bench
        .iter()
        .map(|(l, s)| (l.as_str(), &s.metadata.common))
        .collect()
}

/// Chart 1: measured output throughput per label, and per label the memory-bound decode
/// roofline `c × bandwidth / bytes per step` (each decode step reads the weights once for the
/// whole batch; KV-cache reads are ignored, so it is an upper bound), clipped at the axis top.
pub fn throughput(
    bench: &[(String, BenchSummary)],
    intervals: &Intervals,
    roofline: Option<&RooflineSettings>,
    title: &str,
) -> LineChart {
    let levels = levels(bench);
    let mut lines = Vec::new();
    let mut measured_max: f64 = 0.0;
    for (colour, (label, summary)) in bench.iter().enumerate() {
        let points: Vec<(f64, f64)> = summary
            .levels
            .iter()
            .filter_map(|l| {
                l.output_throughput
                    .map(|t| (f64::from(l.max_concurrency), t))
            })
            .collect();
        let bars = bars(intervals.get(label), |l| l.output_throughput.as_ref());
        measured_max = points
            .iter()
            .map(|p| p.1)
            .chain(bars.iter().map(|b| b.2))
            .fold(measured_max, f64::max);
        lines.push(Line {
            name: format!("{label} measured"),
            points,
            colour,
            dashed: false,
            markers: true,
            bars,
        });
    }
    let ceilings: Vec<(usize, String, f64)> = roofline
        .map(|r| {
            bench
                .iter()
                .enumerate()
                .filter_map(|(colour, (label, _))| {
                    let gb = *r.bytes_per_token_gb.get(label)?;
                    (gb > 0.0).then(|| {
                        (
                            colour,
                            format!(
                                "{label} roofline: c × {} GB/s ÷ {gb} GB",
                                r.memory_bandwidth_gbs
                            ),
                            r.memory_bandwidth_gbs / gb,
                        )
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    // The axis shows every measured point and at least the single-stream ceiling of each model.
    let single_max = ceilings.iter().map(|c| c.2).fold(0.0, f64::max);
    let y_max = nice_top(measured_max.max(single_max) * 1.1);
    for (colour, name, per_stream) in ceilings {
        let points = roofline_points(&levels, per_stream, y_max);
        lines.push(Line {
            name,
            points,
            colour,
            dashed: true,
            markers: false,
            bars: Vec::new(),
        });
    }
    let caption = with_bars_note(caption(&metas(bench)), &lines);
    LineChart {
        title: title.to_string(),
        y_label: "output throughput (tokens/s)".into(),
        lines,
        levels,
        y_max,
        caption,
    }
}

/// A line's error bars from a label's intervals: one per level with a value for `figure`.
fn bars(
    intervals: Option<&BenchIntervals>,
    figure: impl Fn(&LevelIntervals) -> Option<&Interval>,
) -> Vec<(f64, f64, f64)> {
    intervals
        .map(|i| {
            i.levels
                .iter()
                .filter_map(|l| {
                    let iv = figure(l)?;
                    (iv.lo.is_finite() && iv.hi.is_finite())
                        .then(|| (f64::from(l.max_concurrency), iv.lo, iv.hi))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The caption, saying what the error bars are when a line has any.
fn with_bars_note(caption: String, lines: &[Line]) -> String {
    if lines.iter().any(|l| !l.bars.is_empty()) {
        format!("{caption} | bars: 95 % bootstrap intervals (intervals.json)")
    } else {
        caption
    }
}

/// Points of `y = c × per_stream` over the measured levels, ending where it meets `y_max`.
pub fn roofline_points(levels: &[f64], per_stream: f64, y_max: f64) -> Vec<(f64, f64)> {
    let mut points = Vec::new();
    for &c in levels {
        let y = c * per_stream;
        if y > y_max {
            points.push((y_max / per_stream, y_max));
            break;
        }
        points.push((c, y));
    }
    points
}

/// Which latency chart to shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Latency {
    /// Time to first token.
    Ttft,
    /// Time per output token.
    Tpot,
}

/// Charts 2 and 3: p50 (solid) and p99 (dashed) per label.
pub fn latency(
    bench: &[(String, BenchSummary)],
    intervals: &Intervals,
    which: Latency,
    title: &str,
) -> LineChart {
    let mut lines = Vec::new();
    let mut top: f64 = 0.0;
    for (colour, (label, summary)) in bench.iter().enumerate() {
        for (pct, dashed) in [("p50", false), ("p99", true)] {
            let points: Vec<(f64, f64)> = summary
                .levels
                .iter()
                .filter_map(|l| {
                    let v = match (which, dashed) {
                        (Latency::Ttft, false) => l.median_ttft_ms,
                        (Latency::Ttft, true) => l.p99_ttft_ms,
                        (Latency::Tpot, false) => l.median_tpot_ms,
                        (Latency::Tpot, true) => l.p99_tpot_ms,
                    };
                    v.map(|v| (f64::from(l.max_concurrency), v))
                })
                .collect();
            let bars = bars(intervals.get(label), |l| match (which, dashed) {
                (Latency::Ttft, false) => l.p50_ttft_ms.as_ref(),
                (Latency::Ttft, true) => l.p99_ttft_ms.as_ref(),
                (Latency::Tpot, false) => l.p50_tpot_ms.as_ref(),
                (Latency::Tpot, true) => l.p99_tpot_ms.as_ref(),
            });
            top = points
                .iter()
                .map(|p| p.1)
                .chain(bars.iter().map(|b| b.2))
                .fold(top, f64::max);
            lines.push(Line {
                name: format!("{label} {pct}"),
                points,
                colour,
                dashed,
                markers: true,
                bars,
            });
        }
    }
    let y_label = match which {
        Latency::Ttft => "time to first token (ms)",
        Latency::Tpot => "time per output token (ms)",
    };
    let caption = with_bars_note(caption(&metas(bench)), &lines);
    LineChart {
        title: title.to_string(),
        y_label: y_label.into(),
        lines,
        levels: levels(bench),
        y_max: nice_top(top * 1.1),
        caption,
    }
}

/// Chart 4: self-hosted $/1M total tokens (peak at headline and sensitivity utilization, SLO
/// level) then each API's blended price at the measured input:output mix.
pub fn cost(comparison: &ComparisonFile, apis: Option<&[String]>, title: &str) -> BarChart {
    let sh = &comparison.self_hosted;
    let pct = |u: f64| (u * 100.0).round();
    let mut bars = vec![
        Bar {
            name: format!(
                "{} @{}% (c={})",
                comparison.candidate,
                pct(sh.headline.utilization),
                sh.headline.max_concurrency
            ),
            value: sh.headline.usd_per_1m_total,
            self_hosted: true,
        },
        Bar {
            name: format!(
                "{} @{}% (c={})",
                comparison.candidate,
                pct(sh.sensitivity.utilization),
                sh.sensitivity.max_concurrency
            ),
            value: sh.sensitivity.usd_per_1m_total,
            self_hosted: true,
        },
    ];
    if let Some(slo) = &sh.slo {
        bars.push(Bar {
            name: format!(
                "{} SLO level (c={})",
                comparison.candidate, slo.max_concurrency
            ),
            value: slo.usd_per_1m_total,
            self_hosted: true,
        });
    }
    let shown: Vec<_> = match apis {
        Some(names) => names
            .iter()
            .filter_map(|n| comparison.apis.iter().find(|a| &a.model == n))
            .collect(),
        None => comparison.apis.iter().collect(),
    };
    bars.extend(shown.into_iter().map(|a| Bar {
        name: a.model.clone(),
        value: a.blended_usd_per_1m_total,
        self_hosted: false,
    }));
    let meta = &comparison.metadata.common;
    let mix = format!("{:.2}:1", comparison.workload.input_per_output);
    BarChart {
        title: title.to_string(),
        x_label: format!(
            "USD per 1M tokens (input + output, measured input:output {mix}; {} at ${}/h)",
            comparison.gpu_name, comparison.gpu_hourly_usd
        ),
        bars,
        caption: caption(&[(comparison.candidate.as_str(), meta)]),
    }
}

/// Chart 5: retention per task in percent, with stderr error bars.
pub fn retention(retention: &Retention, title: &str) -> RetentionChart {
    let bars: Vec<RetentionBar> = retention
        .tasks
        .iter()
        .map(|t| RetentionBar {
            name: t.task.clone(),
            percent: t.retention * 100.0,
            stderr: t.retention_stderr.unwrap_or(0.0) * 100.0,
        })
        .collect();
    let low = bars
        .iter()
        .map(|b| b.percent - b.stderr)
        .fold(100.0, f64::min);
    let high = bars
        .iter()
        .map(|b| b.percent + b.stderr)
        .fold(100.0, f64::max);
    let y_range = ((low / 10.0).floor() * 10.0 - 5.0).max(0.0);
    RetentionChart {
        title: title.to_string(),
        y_label: format!(
            "{} score as % of {} (± 1 stderr)",
            retention.candidate, retention.baseline
        ),
        bars,
        y_range: (y_range, (high / 10.0).ceil() * 10.0 + 5.0),
        caption: caption(&[(retention.candidate.as_str(), &retention.metadata.common)]),
    }
}

/// A round axis top at or above `v`: the next multiple of 2.5 × 10^(k-1), with 10^k <= v.
pub fn nice_top(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let step = 10f64.powf(v.log10().floor() - 1.0) * 2.5;
    (v / step).ceil() * step
}
