//! The data the report templates see: the headline, the tables behind every chart, the
//! methodology figures and links to every input. Numbers arrive pre-formatted.

use serde::Serialize;

use super::format::{mtok, opt, percent, usd};
use crate::results::bench::BenchSummary;
use crate::results::cost::{ComparisonFile, CostFile};
use crate::results::eval::Retention;
use crate::results::metadata::Metadata;

/// Everything a report template can use.
#[derive(Debug, Clone, Serialize)]
pub struct ReportContext {
    /// Report title.
    pub title: String,
    /// Profile the results came from.
    pub profile: String,
    /// Provenance caption (hardware, engine, model SHA, date) of the candidate's bench.
    pub provenance: String,
    /// How each model's weights were served, one sentence per label that recorded it
    /// (`awq: served dequantized to BF16: ...`).
    pub weights: Vec<String>,
    /// The one-sentence answer's figures.
    pub headline: Headline,
    /// Self-hosted summary rows (headline, sensitivity, SLO level).
    pub self_hosted: Vec<SelfHostedRow>,
    /// Per-level rows per label (charts 1-3 and the per-level cost).
    pub labels: Vec<LabelTable>,
    /// Cost of the candidate's peak at utilization 0.1 ... 1.0.
    pub utilization_curve: Vec<[String; 3]>,
    /// API comparison rows (chart 4).
    pub apis: Vec<ApiRow>,
    /// The candidate's cost under each listed price of the GPU, the headline price first.
    pub tiers: Vec<super::tiers::TierRow>,
    /// Retention rows (chart 5), empty when quality was not measured.
    pub retention: Vec<RetentionRow>,
    /// Methodology figures.
    pub method: Method,
    /// Charts: name, title, link to PNG and SVG, inline SVG (HTML only).
    pub charts: Vec<ChartRef>,
    /// The server's own view per label: `/metrics` peaks and rates per level, and its chart.
    pub server: Vec<super::server::ServerTable>,
    /// Every input file: (description, link).
    pub inputs: Vec<(String, String)>,
    /// Decode roofline rows (chart 1's ceiling): label, GB/s, GB per step, tok/s at c = 1.
    pub roofline: Vec<[String; 4]>,
    /// The rehearsal banner (`rehearsal: CPU figures, not a decision`) from `cost.json`.
    pub rehearsal: Option<String>,
    /// A warning when the last gated run skipped the rehearsal gate.
    pub gate_warning: Option<String>,
    /// Which rehearsal gated these results.
    pub gated_by: Option<String>,
    /// The bench intervals and where they are too wide to decide (empty without intervals).
    pub uncertainty: super::uncertainty::Uncertainty,
}

/// The headline answer's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Headline {
    /// GPU name.
    pub gpu: String,
    /// GPU price per hour.
    pub gpu_hourly: String,
    /// What that price buys, in words (`on-demand pod`); empty in results written before Forge
    /// recorded it.
    pub gpu_price_product: String,
    /// Always-on monthly cost.
    pub gpu_monthly: String,
    /// Candidate label.
    pub candidate: String,
    /// The API compared against (`gpt-4o-mini`).
    pub api: String,
    /// Break-even volume in M tokens/month, when the API has a price.
    pub break_even: Option<String>,
    /// Whether one GPU can serve the break-even volume at the basis level.
    pub reachable: bool,
    /// Capacity of one GPU at the basis level (M tokens/month).
    pub capacity: String,
    /// `slo` or `peak`.
    pub basis: String,
    /// Concurrency of the basis level.
    pub concurrency: u32,
    /// p99 TTFT objective (ms).
    pub slo_ttft_ms: String,
    /// p99 TPOT objective (ms).
    pub slo_tpot_ms: String,
    /// p99 TTFT measured at the basis level (ms).
    pub ttft_ms: String,
    /// Self-hosted $/1M total tokens at the basis level.
    pub self_cost: String,
    /// The API's blended $/1M total tokens.
    pub api_cost: String,
    /// Quality retention, when measured (`94.3%`).
    pub retention: Option<String>,
    /// Its standard error (`9.7%`).
    pub retention_stderr: Option<String>,
    /// Baseline label (`bf16`).
    pub baseline: String,
}

/// One self-hosted summary row.
#[derive(Debug, Clone, Serialize)]
pub struct SelfHostedRow {
    /// What the row is (`peak @ 100%`).
    pub name: String,
    /// Concurrency.
    pub concurrency: u32,
    /// $/1M output tokens.
    pub per_output: String,
    /// $/1M total tokens.
    pub per_total: String,
    /// Capacity (M tokens/month).
    pub capacity: String,
}

/// A label's per-level table.
#[derive(Debug, Clone, Serialize)]
pub struct LabelTable {
    /// Model label.
    pub label: String,
    /// Bench summary link.
    pub link: String,
    /// Rows: concurrency, output tok/s, total tok/s, TTFT p50, p99, TPOT p50, p99, $/1M out, $/1M total, SLO met.
    pub rows: Vec<Vec<String>>,
}

/// One API row.
#[derive(Debug, Clone, Serialize)]
pub struct ApiRow {
    /// Provider.
    pub provider: String,
    /// Model.
    pub model: String,
    /// Input / cached input / output list prices.
    pub list: String,
    /// Blended $/1M total at the measured mix.
    pub blended: String,
    /// $ for the work yielding 1M output tokens.
    pub per_output: String,
    /// API price / self-hosted price at the basis level.
    pub ratio: String,
    /// Break-even volume.
    pub break_even: String,
    /// Whether one GPU reaches it.
    pub reachable: String,
    /// Date checked.
    pub checked: String,
    /// Source URL.
    pub source: String,
}

/// One retention row.
#[derive(Debug, Clone, Serialize)]
pub struct RetentionRow {
    /// Task.
    pub task: String,
    /// Metric.
    pub metric: String,
    /// Baseline score ± stderr.
    pub baseline: String,
    /// Candidate score ± stderr.
    pub candidate: String,
    /// Retention ± stderr.
    pub retention: String,
    /// Delta in points.
    pub delta: String,
}

/// Methodology figures.
#[derive(Debug, Clone, Serialize)]
pub struct Method {
    /// The cost formula.
    pub formula: String,
    /// Its source.
    pub formula_source: String,
    /// How API prices were blended.
    pub blend: String,
    /// How break-even was computed.
    pub break_even: String,
    /// GPU price source and date.
    pub gpu_price_source: String,
    /// Date the GPU price was checked.
    pub gpu_price_date: String,
    /// What a reader should know about the GPU price; empty when nothing.
    pub gpu_price_note: String,
    /// Measured input:output ratio.
    pub mix: String,
    /// Headline utilization.
    pub utilization: String,
    /// Sensitivity utilization.
    pub sensitivity: String,
    /// Hours billed per month.
    pub hours_per_month: String,
}

/// A chart the report shows.
#[derive(Debug, Clone, Serialize)]
pub struct ChartRef {
    /// File stem (`throughput`).
    pub name: String,
    /// Link to the PNG.
    pub png: String,
    /// Link to the SVG.
    pub svg: String,
    /// The SVG document, inlined by the HTML template.
    pub inline_svg: String,
}

/// The loaded inputs the context is built from.
#[derive(Debug, Clone)]
pub struct Sources {
    /// `cost.json`.
    pub cost: CostFile,
    /// `comparison.json`.
    pub comparison: ComparisonFile,
    /// Bench summaries per label with their links.
    pub bench: Vec<(String, String, BenchSummary)>,
    /// Retention with its link.
    pub retention: Option<(String, Retention)>,
}

/// Builds the headline against `api` (the first API when `None` or unknown).
pub fn headline(s: &Sources, api: Option<&str>) -> Headline {
    let c = &s.comparison;
    let row = api
        .and_then(|a| c.apis.iter().find(|r| r.model == a))
        .or_else(|| c.apis.first());
    let basis = c
        .self_hosted
        .slo
        .as_ref()
        .unwrap_or(&c.self_hosted.headline);
    let be = row.and_then(|r| r.break_even.as_ref());
    let inputs = &s.cost.inputs;
    Headline {
        gpu: c.gpu_name.clone(),
        gpu_hourly: usd(c.gpu_hourly_usd),
        gpu_price_product: super::tiers::product_words(&c.gpu_price_product),
        gpu_monthly: usd(c.gpu_monthly_usd),
        candidate: c.candidate.clone(),
        api: row.map_or("-".into(), |r| r.model.clone()),
        break_even: be.map(|b| mtok(b.tokens_per_month)),
        reachable: be.is_some_and(|b| b.reachable),
        capacity: mtok(basis.capacity_tokens_per_month),
        basis: if c.self_hosted.slo.is_some() {
            "slo".into()
        } else {
            "peak".into()
        },
        concurrency: basis.max_concurrency,
        slo_ttft_ms: format!("{}", inputs.slo_p99_ttft_ms.value),
        slo_tpot_ms: format!("{}", inputs.slo_p99_tpot_ms.value),
        ttft_ms: opt(basis.p99_ttft_ms, 0),
        self_cost: usd(basis.usd_per_1m_total),
        api_cost: row.map_or("-".into(), |r| usd(r.blended_usd_per_1m_total)),
        retention: c.quality.as_ref().map(|q| percent(q.mean_retention)),
        retention_stderr: c
            .quality
            .as_ref()
            .and_then(|q| q.mean_retention_stderr.map(percent)),
        baseline: c
            .quality
            .as_ref()
            .map_or("baseline".into(), |q| q.baseline.clone()),
    }
}

/// The per-level table of one label.
pub fn label_table(cost: &CostFile, label: &str, link: &str, summary: &BenchSummary) -> LabelTable {
    let costs = cost.labels.get(label);
    let rows = summary
        .levels
        .iter()
        .map(|l| {
            let lc = costs.and_then(|c| {
                c.levels
                    .iter()
                    .find(|x| x.max_concurrency == l.max_concurrency)
            });
            vec![
                l.max_concurrency.to_string(),
                opt(l.output_throughput, 1),
                opt(l.total_token_throughput, 1),
                opt(l.median_ttft_ms, 1),
                opt(l.p99_ttft_ms, 1),
                opt(l.median_tpot_ms, 2),
                opt(l.p99_tpot_ms, 2),
                lc.map_or("-".into(), |c| usd(c.usd_per_1m_output)),
                lc.map_or("-".into(), |c| usd(c.usd_per_1m_total)),
                lc.map_or("-".into(), |c| {
                    if c.meets_slo {
                        "yes".into()
                    } else {
                        "no".into()
                    }
                }),
            ]
        })
        .collect();
    LabelTable {
        label: label.to_string(),
        link: link.to_string(),
        rows,
    }
}

/// API rows against the basis level's price.
pub fn api_rows(c: &ComparisonFile) -> Vec<ApiRow> {
    c.apis
        .iter()
        .map(|a| {
            let cached = a
                .cached_input_per_1m
                .as_ref()
                .map_or("-".into(), |v| usd(v.value));
            let ratio = a
                .api_over_self_hosted_slo
                .unwrap_or(a.api_over_self_hosted_headline);
            ApiRow {
                provider: a.provider.clone(),
                model: a.model.clone(),
                list: format!(
                    "{} / {} / {}",
                    usd(a.input_per_1m.value),
                    cached,
                    usd(a.output_per_1m.value)
                ),
                blended: usd(a.blended_usd_per_1m_total),
                per_output: usd(a.usd_per_1m_output_of_workload),
                ratio: format!("{ratio:.2}x"),
                break_even: a
                    .break_even
                    .as_ref()
                    .map_or("never (free)".into(), |b| mtok(b.tokens_per_month)),
                reachable: a.break_even.as_ref().map_or("-".into(), |b| {
                    if b.reachable {
                        "yes".into()
                    } else {
                        "no".into()
                    }
                }),
                checked: a.checked.clone(),
                source: a.source.clone(),
            }
        })
        .collect()
}

/// Retention rows.
pub fn retention_rows(r: &Retention) -> Vec<RetentionRow> {
    let pm = |v: f64, e: Option<f64>| e.map_or(format!("{v:.4}"), |e| format!("{v:.4} ± {e:.4}"));
    r.tasks
        .iter()
        .map(|t| RetentionRow {
            task: t.task.clone(),
            metric: t.metric.clone(),
            baseline: pm(t.baseline, t.baseline_stderr),
            candidate: pm(t.candidate, t.candidate_stderr),
            retention: t.retention_stderr.map_or(percent(t.retention), |e| {
                format!("{} ± {}", percent(t.retention), percent(e))
            }),
            delta: format!("{:+.2}", t.delta_points),
        })
        .collect()
}

/// Methodology figures from `cost.json`.
pub fn method(cost: &CostFile, c: &ComparisonFile) -> Method {
    let i = &cost.inputs;
    Method {
        formula: cost.formula.usd_per_1m_tokens.clone(),
        formula_source: cost.formula.source.clone(),
        blend: cost.formula.api_blend.clone(),
        break_even: cost.formula.break_even.clone(),
        gpu_price_source: i.gpu_price_source.value.clone(),
        gpu_price_date: i.gpu_price_date.value.clone(),
        gpu_price_note: i
            .gpu_price_note
            .as_ref()
            .map_or(String::new(), |n| n.value.clone()),
        mix: format!(
            "{:.2}:1 ({} input / {} output tokens)",
            c.workload.input_per_output, c.workload.input_tokens, c.workload.output_tokens
        ),
        utilization: percent(i.utilization_headline.value),
        sensitivity: percent(i.utilization_sensitivity.value),
        hours_per_month: format!("{}", i.hours_per_month.value),
    }
}

/// The self-hosted summary rows.
pub fn self_hosted_rows(c: &ComparisonFile) -> Vec<SelfHostedRow> {
    let sh = &c.self_hosted;
    let mut rows = vec![("peak", &sh.headline), ("peak", &sh.sensitivity)];
    if let Some(slo) = &sh.slo {
        rows.push(("SLO level", slo));
    }
    rows.into_iter()
        .map(|(what, s)| SelfHostedRow {
            name: format!("{what} @ {}", percent(s.utilization)),
            concurrency: s.max_concurrency,
            per_output: usd(s.usd_per_1m_output),
            per_total: usd(s.usd_per_1m_total),
            capacity: mtok(s.capacity_tokens_per_month),
        })
        .collect()
}

/// One sentence per bench label whose metadata says how its weights were served.
pub fn weights(s: &Sources) -> Vec<String> {
    s.bench
        .iter()
        .filter_map(|(label, _, b)| {
            let weights = b.metadata.common.model.as_ref()?.weights.as_ref()?;
            Some(format!("{label}: {}", weights.describe()))
        })
        .collect()
}

/// The caption of the candidate's bench, or an empty string.
pub fn provenance(s: &Sources) -> String {
    let candidate = &s.comparison.candidate;
    s.bench
        .iter()
        .find(|(label, _, _)| label == candidate)
        .map_or_else(
            || Metadata::default().caption(),
            |(_, _, b)| b.metadata.common.caption(),
        )
}

/// Chart 1's ceiling per label: `bandwidth / bytes per step` at concurrency 1 (see
/// `charts::data::throughput`).
pub fn roofline_rows(
    r: Option<&crate::steps::charts::settings::RooflineSettings>,
) -> Vec<[String; 4]> {
    let Some(r) = r else { return Vec::new() };
    r.bytes_per_token_gb
        .iter()
        .filter(|(_, gb)| **gb > 0.0)
        .map(|(label, gb)| {
            [
                label.clone(),
                format!("{}", r.memory_bandwidth_gbs),
                format!("{gb}"),
                format!("{:.1}", r.memory_bandwidth_gbs / gb),
            ]
        })
        .collect()
}
