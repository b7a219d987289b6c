//! Turns loaded inputs into `cost.json` and `comparison.json` (pure: no I/O, no clock).

use std::collections::BTreeMap;

use super::math::{self, LatencySlo, LevelLatency, ListPrice, TokenMix};
use super::pricing::ApiPrice;
use super::settings::{CostSettings, PriceTier};
use crate::results::bench::BenchSummary;
use crate::results::cost::*;
use crate::results::eval::Retention;
use crate::steps::bench::uncertainty::{BenchIntervals, Interval};

/// Everything the cost model reads, already loaded and checked.
#[derive(Debug, Clone)]
pub struct LoadedInputs {
    /// Bench summaries per label, with the path each was read from.
    pub bench: BTreeMap<String, (String, BenchSummary)>,
    /// The retention file and its path, when configured.
    pub retention: Option<(String, Retention)>,
    /// API prices, in comparison order.
    pub prices: Vec<ApiPrice>,
    /// The pricing files read.
    pub pricing_files: Vec<String>,
    /// Each bench label's `intervals.json`, where its bench wrote one.
    pub intervals: BTreeMap<String, BenchIntervals>,
}

/// Builds both result files. `metadata` is the provenance object both carry; `origin` names the
/// settings block (`settings:<step id>`) that settings figures are echoed from.
pub fn build(
    settings: &CostSettings,
    inputs: &LoadedInputs,
    metadata: CostMetadata,
    origin: &str,
) -> CostReport {
    let labels: BTreeMap<String, LabelCost> = inputs
        .bench
        .iter()
        .map(|(label, (file, summary))| {
            let intervals = inputs.intervals.get(label);
            (
                label.clone(),
                label_cost(settings, (file, summary), intervals),
            )
        })
        .collect();
    let (candidate_file, candidate_summary) = inputs
        .bench
        .get(&settings.candidate)
        .expect("CostSettings::validate checks that `candidate` is a key of `bench`");
    let candidate = &labels[&settings.candidate];
    let mix = TokenMix {
        input_tokens: candidate_summary
            .levels
            .iter()
            .map(|l| l.total_input_tokens)
            .sum::<u64>() as f64,
        output_tokens: candidate_summary
            .levels
            .iter()
            .map(|l| l.total_output_tokens)
            .sum::<u64>() as f64,
    };
    let inputs_echo = echo_inputs(settings, inputs, origin, candidate_file, mix);
    let comparison = compare(settings, inputs, candidate, mix, metadata.clone());
    let cost = CostFile {
        schema_version: crate::results::SCHEMA_VERSION,
        rehearsal: comparison.rehearsal.clone(),
        metadata,
        formula: formula(),
        inputs: inputs_echo,
        candidate: settings.candidate.clone(),
        labels,
    };
    CostReport { cost, comparison }
}

fn formula() -> Formula {
    Formula {
        usd_per_1m_tokens: "gpu_hourly_usd * 1e6 / (3600 * sustained_tokens_per_s * utilization)".into(),
        source: "Forge issue 6 seed formula; serving-eval-quant-pricing.md §5.5 (cost_per_1M_out = price_per_hour / (3600 × output_tok_per_s) × 1e6; effective price at utilization U = price_per_hour / U)".into(),
        api_blend: "(input_tokens * input_price + output_tokens * output_price) / (input_tokens + output_tokens), with the candidate sweep's measured token counts; per 1M output of the workload = output_price + (input/output) * input_price".into(),
        break_even: "gpu_hourly_usd * hours_per_month * 1e6 / api_blended_usd_per_1m_total tokens per month; reachable when one GPU serves that volume at the SLO level (or the peak when no level meets the SLO)".into(),
    }
}

fn latency(summary: &BenchSummary) -> Vec<LevelLatency> {
    summary
        .levels
        .iter()
        .map(|l| LevelLatency {
            output_throughput: l.output_throughput.unwrap_or(0.0),
            p99_ttft_ms: l.p99_ttft_ms,
            p99_tpot_ms: l.p99_tpot_ms,
            failed: l.failed,
        })
        .collect()
}

fn slo(settings: &CostSettings) -> LatencySlo {
    LatencySlo {
        p99_ttft_ms: settings.slo.p99_ttft_ms,
        p99_tpot_ms: settings.slo.p99_tpot_ms,
    }
}

/// A bench label's result files as the cost model reads them: the summary's path, the summary,
/// and its intervals when written.
type Bench<'a> = (&'a str, &'a BenchSummary, Option<&'a BenchIntervals>);

/// $/1M output over the level's throughput interval: $/1M falls as throughput rises, so the
/// interval's ends map to the other ends (`Interval::map_monotone`).
fn per_million_interval(
    intervals: Option<&BenchIntervals>,
    concurrency: u32,
    hourly: f64,
    utilization: f64,
) -> Option<Interval> {
    let throughput = intervals?.level(concurrency)?.output_throughput?;
    (throughput.lo > 0.0)
        .then(|| throughput.map_monotone(|t| math::usd_per_million(hourly, t, utilization)))
}

fn point(settings: &CostSettings, bench: Bench, index: usize, utilization: f64) -> CostPoint {
    let (file, summary, intervals) = bench;
    let level = &summary.levels[index];
    // read_bench_summary rejected levels without positive throughputs.
    let output = level.output_throughput.unwrap_or(f64::NAN);
    let total = level.total_token_throughput.unwrap_or(f64::NAN);
    let hourly = settings.gpu.hourly_usd;
    CostPoint {
        max_concurrency: level.max_concurrency,
        utilization,
        output_throughput: Sourced::new(output, file, format!("levels[{index}].output_throughput")),
        total_token_throughput: Sourced::new(
            total,
            file,
            format!("levels[{index}].total_token_throughput"),
        ),
        usd_per_1m_output: math::usd_per_million(hourly, output, utilization),
        usd_per_1m_total: math::usd_per_million(hourly, total, utilization),
        usd_per_1m_output_interval: per_million_interval(
            intervals,
            level.max_concurrency,
            hourly,
            utilization,
        ),
    }
}

fn label_cost(
    settings: &CostSettings,
    (file, summary): (&str, &BenchSummary),
    intervals: Option<&BenchIntervals>,
) -> LabelCost {
    let bench: Bench = (file, summary, intervals);
    let lat = latency(summary);
    let slo = slo(settings);
    let peak = math::peak(&lat).expect("read_bench_summary rejects an empty sweep");
    let headline_u = settings.utilization.headline;
    let levels = summary
        .levels
        .iter()
        .zip(&lat)
        .enumerate()
        .map(|(index, (level, l))| {
            let p = point(settings, bench, index, headline_u);
            LevelCost {
                max_concurrency: level.max_concurrency,
                output_throughput: p.output_throughput.value,
                total_token_throughput: p.total_token_throughput.value,
                usd_per_1m_output: p.usd_per_1m_output,
                usd_per_1m_total: p.usd_per_1m_total,
                usd_per_1m_output_interval: p.usd_per_1m_output_interval,
                p99_ttft_ms: level.p99_ttft_ms,
                p99_tpot_ms: level.p99_tpot_ms,
                meets_slo: slo.is_met_by(l),
                failed: level.failed,
                client_kept_up: level.client_kept_up,
            }
        })
        .collect();
    LabelCost {
        bench_file: file.to_string(),
        headline: point(settings, bench, peak, headline_u),
        sensitivity: point(settings, bench, peak, settings.utilization.sensitivity),
        slo: math::cheapest_meeting_slo(&lat, slo).map(|i| point(settings, bench, i, headline_u)),
        levels,
        utilization_curve: math::utilization_curve()
            .into_iter()
            .map(|u| point(settings, bench, peak, u))
            .collect(),
    }
}

fn summary_of(settings: &CostSettings, label: &LabelCost, p: &CostPoint) -> CostSummary {
    let level = label
        .levels
        .iter()
        .find(|l| l.max_concurrency == p.max_concurrency);
    CostSummary {
        max_concurrency: p.max_concurrency,
        utilization: p.utilization,
        usd_per_1m_output: p.usd_per_1m_output,
        usd_per_1m_total: p.usd_per_1m_total,
        usd_per_1m_output_interval: p.usd_per_1m_output_interval,
        capacity_tokens_per_month: math::monthly_capacity(
            p.total_token_throughput.value * p.utilization,
            settings.hours_per_month,
        ),
        p99_ttft_ms: level.and_then(|l| l.p99_ttft_ms),
        p99_tpot_ms: level.and_then(|l| l.p99_tpot_ms),
    }
}

fn compare(
    settings: &CostSettings,
    inputs: &LoadedInputs,
    candidate: &LabelCost,
    mix: TokenMix,
    metadata: CostMetadata,
) -> ComparisonFile {
    let self_hosted = SelfHosted {
        headline: summary_of(settings, candidate, &candidate.headline),
        sensitivity: summary_of(settings, candidate, &candidate.sensitivity),
        slo: candidate
            .slo
            .as_ref()
            .map(|p| summary_of(settings, candidate, p)),
    };
    let monthly = settings.gpu.hourly_usd * settings.hours_per_month;
    let (basis, basis_point) = match &self_hosted.slo {
        Some(slo) => ("slo", slo.clone()),
        None => ("peak", self_hosted.headline.clone()),
    };
    let apis = inputs
        .prices
        .iter()
        .map(|price| {
            let list = ListPrice {
                input: price.input_per_1m,
                output: price.output_per_1m,
                cached_input: price.cached_input_per_1m,
            };
            let blended = list.blended_per_million_total(mix, settings.cached_input_share);
            let break_even = math::break_even_tokens(monthly, blended).map(|tokens| BreakEven {
                tokens_per_month: tokens,
                output_tokens_per_month: tokens * (1.0 - mix.input_share()),
                capacity_basis: basis.to_string(),
                capacity_tokens_per_month: basis_point.capacity_tokens_per_month,
                reachable: tokens <= basis_point.capacity_tokens_per_month,
            });
            let field = |name: &str| format!("models[{}].{name}", price.index);
            ApiComparison {
                provider: price.provider.clone(),
                model: price.model.clone(),
                input_per_1m: Sourced::new(price.input_per_1m, &price.file, field("input_per_1m")),
                output_per_1m: Sourced::new(
                    price.output_per_1m,
                    &price.file,
                    field("output_per_1m"),
                ),
                cached_input_per_1m: price
                    .cached_input_per_1m
                    .map(|v| Sourced::new(v, &price.file, field("cached_input_per_1m"))),
                source: price.source.clone(),
                checked: price.checked.clone(),
                blended_usd_per_1m_total: blended,
                usd_per_1m_output_of_workload: list
                    .per_million_output_of_workload(mix, settings.cached_input_share),
                api_over_self_hosted_headline: blended / self_hosted.headline.usd_per_1m_total,
                api_over_self_hosted_slo: self_hosted
                    .slo
                    .as_ref()
                    .map(|s| blended / s.usd_per_1m_total),
                break_even,
            }
        })
        .collect::<Vec<ApiComparison>>();
    let price_tiers = tiers(settings, &self_hosted, &apis);
    ComparisonFile {
        schema_version: crate::results::SCHEMA_VERSION,
        rehearsal: settings
            .rehearsal
            .then(|| super::settings::REHEARSAL_BANNER.to_string()),
        metadata,
        candidate: settings.candidate.clone(),
        gpu_name: settings.gpu.name.clone(),
        gpu_hourly_usd: settings.gpu.hourly_usd,
        gpu_monthly_usd: monthly,
        gpu_price_product: settings.gpu.price_product.clone(),
        price_tiers,
        workload: Workload {
            input_tokens: mix.input_tokens as u64,
            output_tokens: mix.output_tokens as u64,
            input_per_output: mix.input_per_output(),
            input_share: mix.input_share(),
        },
        self_hosted,
        quality: inputs.retention.as_ref().map(|(_, r)| Quality {
            baseline: r.baseline.clone(),
            candidate: r.candidate.clone(),
            mean_retention: r.summary.mean_retention,
            mean_retention_stderr: r.summary.mean_retention_stderr,
            mean_delta_points: r.summary.mean_delta_points,
        }),
        apis,
    }
}

/// The candidate's cost under every listed price of the GPU, the headline price first. Cost is
/// linear in the hourly price, so each tier scales the headline figures by `tier / headline`.
fn tiers(settings: &CostSettings, hosted: &SelfHosted, apis: &[ApiComparison]) -> Vec<TierCost> {
    let g = &settings.gpu;
    let headline = PriceTier {
        product: g.price_product.clone(),
        hourly_usd: g.hourly_usd,
        source: g.price_source.clone(),
        date: g.price_date.clone(),
        note: g.price_note.clone(),
    };
    std::iter::once((true, &headline))
        .chain(g.price_tiers.iter().map(|t| (false, t)))
        .map(|(is_headline, t)| {
            let scale = t.hourly_usd / g.hourly_usd;
            let basis = hosted.slo.as_ref().unwrap_or(&hosted.headline);
            TierCost {
                price: t.clone(),
                headline: is_headline,
                gpu_monthly_usd: t.hourly_usd * settings.hours_per_month,
                usd_per_1m_output: hosted.headline.usd_per_1m_output * scale,
                usd_per_1m_total: hosted.headline.usd_per_1m_total * scale,
                slo_usd_per_1m_total: hosted.slo.as_ref().map(|s| s.usd_per_1m_total * scale),
                api_over_self_hosted: apis
                    .iter()
                    .map(|a| {
                        let ratio = a.blended_usd_per_1m_total / (basis.usd_per_1m_total * scale);
                        (a.model.clone(), ratio)
                    })
                    .collect(),
            }
        })
        .collect()
}

fn echo_inputs(
    settings: &CostSettings,
    inputs: &LoadedInputs,
    origin: &str,
    candidate_file: &str,
    mix: TokenMix,
) -> CostInputs {
    let s = |field: &str| (origin.to_string(), field.to_string());
    let from = |v: f64, field: &str| {
        let (file, field) = s(field);
        Sourced::new(v, file, field)
    };
    let text = |v: &str, field: &str| {
        let (file, field) = s(field);
        Sourced::new(v.to_string(), file, field)
    };
    let retention = inputs.retention.as_ref();
    CostInputs {
        gpu_name: text(&settings.gpu.name, "gpu.name"),
        gpu_hourly_usd: from(settings.gpu.hourly_usd, "gpu.hourly_usd"),
        gpu_price_product: Some(text(&settings.gpu.price_product, "gpu.price_product")),
        gpu_price_note: (!settings.gpu.price_note.is_empty())
            .then(|| text(&settings.gpu.price_note, "gpu.price_note")),
        gpu_price_source: text(&settings.gpu.price_source, "gpu.price_source"),
        gpu_price_date: text(&settings.gpu.price_date, "gpu.price_date"),
        gpu_memory_bandwidth_gbs: settings
            .gpu
            .memory_bandwidth_gbs
            .map(|v| from(v, "gpu.memory_bandwidth_gbs")),
        hours_per_month: from(settings.hours_per_month, "hours_per_month"),
        utilization_headline: from(settings.utilization.headline, "utilization.headline"),
        utilization_sensitivity: from(settings.utilization.sensitivity, "utilization.sensitivity"),
        slo_p99_ttft_ms: from(settings.slo.p99_ttft_ms, "slo.p99_ttft_ms"),
        slo_p99_tpot_ms: from(settings.slo.p99_tpot_ms, "slo.p99_tpot_ms"),
        cached_input_share: from(settings.cached_input_share, "cached_input_share"),
        workload_input_tokens: Sourced::new(
            mix.input_tokens as u64,
            candidate_file,
            "sum(levels[*].total_input_tokens)",
        ),
        workload_output_tokens: Sourced::new(
            mix.output_tokens as u64,
            candidate_file,
            "sum(levels[*].total_output_tokens)",
        ),
        mean_retention: retention
            .map(|(f, r)| Sourced::new(r.summary.mean_retention, f, "summary.mean_retention")),
        mean_retention_stderr: retention.and_then(|(f, r)| {
            r.summary
                .mean_retention_stderr
                .map(|v| Sourced::new(v, f, "summary.mean_retention_stderr"))
        }),
        bench_files: inputs
            .bench
            .iter()
            .map(|(k, (f, _))| (k.clone(), f.clone()))
            .collect(),
        retention_file: retention.map(|(f, _)| f.clone()),
        pricing_files: inputs.pricing_files.clone(),
    }
}
