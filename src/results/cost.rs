//! What the cost step writes: `cost.json` (every figure with its origin, per-level and per-label
//! costs) and `comparison.json` (self-hosted against each API, with break-even volumes); the
//! charts, report and `forge compare` read them through the same types. Reference: `docs/cost.md`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Versioned;
use super::metadata::Metadata;
use crate::steps::bench::uncertainty::Interval;

/// A figure echoed with where it came from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[schemars(rename = "Sourced_{T}")]
pub struct Sourced<T> {
    /// The value used.
    pub value: T,
    /// The file it was read from (relative to the workspace), or `settings:<step id>`.
    pub file: String,
    /// The field inside that file (a JSON or TOML path).
    pub field: String,
}

impl<T> Sourced<T> {
    /// A figure read from `file` at `field`.
    pub fn new(value: T, file: impl Into<String>, field: impl Into<String>) -> Self {
        Self {
            value,
            file: file.into(),
            field: field.into(),
        }
    }
}

/// Both result files of one cost run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CostReport {
    /// The content of `cost.json`.
    pub cost: CostFile,
    /// The content of `comparison.json`.
    pub comparison: ComparisonFile,
}

/// `cost.json`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CostFile {
    /// The shape of this file ([`super::SCHEMA_VERSION`]); absent in files written before it was
    /// recorded, which have version 1's shape.
    #[serde(default = "super::first_version")]
    pub schema_version: u32,
    /// `rehearsal: CPU figures, not a decision` when the profile is a rehearsal; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rehearsal: Option<String>,
    /// Provenance (hardware, engine and model from the candidate's bench summary).
    pub metadata: CostMetadata,
    /// The formula used and its source.
    pub formula: Formula,
    /// Every input figure with its origin.
    pub inputs: CostInputs,
    /// The label whose cost is the headline.
    pub candidate: String,
    /// Costs per model label.
    pub labels: BTreeMap<String, LabelCost>,
}

/// `metadata` of `cost.json` and `comparison.json`: the run's provenance with the candidate's
/// hardware, engine and model as its bench summary recorded them, then when that sweep ran.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(default)]
pub struct CostMetadata {
    /// The shared keys; `date` is when the cost step ran.
    #[serde(flatten)]
    pub common: Metadata,
    /// The candidate bench summary's `metadata.date`.
    pub bench_date: String,
}

impl Versioned for CostFile {
    const WHAT: &'static str = "cost.json";
}

impl Versioned for ComparisonFile {
    const WHAT: &'static str = "comparison.json";
}

/// The formula and where it comes from.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Formula {
    /// The formula, in words.
    pub usd_per_1m_tokens: String,
    /// Its source.
    pub source: String,
    /// How API prices were blended.
    pub api_blend: String,
    /// How break-even volume was computed.
    pub break_even: String,
}

/// The inputs of the cost model.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CostInputs {
    /// GPU name.
    pub gpu_name: Sourced<String>,
    /// GPU price, USD per hour.
    pub gpu_hourly_usd: Sourced<f64>,
    /// What the GPU price buys (`on-demand-pod` ...); absent in files written before Forge
    /// recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_price_product: Option<Sourced<String>>,
    /// What a reader should know about the GPU price; absent when nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_price_note: Option<Sourced<String>>,
    /// Where the GPU price was read.
    pub gpu_price_source: Sourced<String>,
    /// When the GPU price was checked.
    pub gpu_price_date: Sourced<String>,
    /// GPU memory bandwidth (GB/s), when given.
    pub gpu_memory_bandwidth_gbs: Option<Sourced<f64>>,
    /// Hours billed per month for an always-on GPU.
    pub hours_per_month: Sourced<f64>,
    /// Headline utilization.
    pub utilization_headline: Sourced<f64>,
    /// Sensitivity utilization.
    pub utilization_sensitivity: Sourced<f64>,
    /// p99 TTFT objective (ms).
    pub slo_p99_ttft_ms: Sourced<f64>,
    /// p99 TPOT objective (ms).
    pub slo_p99_tpot_ms: Sourced<f64>,
    /// Share of API input assumed cached.
    pub cached_input_share: Sourced<f64>,
    /// The workload's measured prompt tokens (candidate sweep, all levels).
    pub workload_input_tokens: Sourced<u64>,
    /// The workload's measured generated tokens (candidate sweep, all levels).
    pub workload_output_tokens: Sourced<u64>,
    /// Mean quality retention of the candidate, when measured.
    pub mean_retention: Option<Sourced<f64>>,
    /// Its standard error, when reported.
    pub mean_retention_stderr: Option<Sourced<f64>>,
    /// Bench summaries read, per label.
    pub bench_files: BTreeMap<String, String>,
    /// Retention file read, when any.
    pub retention_file: Option<String>,
    /// Pricing files read.
    pub pricing_files: Vec<String>,
}

/// The cost of one model label.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LabelCost {
    /// The bench summary it came from.
    pub bench_file: String,
    /// Peak sustained output throughput at the headline utilization.
    pub headline: CostPoint,
    /// Peak at the sensitivity utilization.
    pub sensitivity: CostPoint,
    /// The cheapest level meeting the SLO, at the headline utilization; null when none does.
    pub slo: Option<CostPoint>,
    /// Every level at the headline utilization.
    pub levels: Vec<LevelCost>,
    /// The peak level's cost at utilization 0.1 ... 1.0.
    pub utilization_curve: Vec<CostPoint>,
}

/// A cost at one level and one utilization.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct CostPoint {
    /// Concurrency level.
    pub max_concurrency: u32,
    /// Share of paid time the GPU is busy.
    pub utilization: f64,
    /// Output tokens per second at this level (with its origin).
    pub output_throughput: Sourced<f64>,
    /// Input plus output tokens per second at this level (with its origin).
    pub total_token_throughput: Sourced<f64>,
    /// USD per 1M output tokens.
    pub usd_per_1m_output: f64,
    /// USD per 1M tokens, input and output together.
    pub usd_per_1m_total: f64,
    /// USD per 1M output tokens mapped from the bench's 95 % throughput interval
    /// (`intervals.json`); absent when the bench wrote none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usd_per_1m_output_interval: Option<Interval>,
}

/// One concurrency level's cost and latency.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct LevelCost {
    /// Concurrency level.
    pub max_concurrency: u32,
    /// Output tokens per second.
    pub output_throughput: f64,
    /// Input plus output tokens per second.
    pub total_token_throughput: f64,
    /// USD per 1M output tokens at the headline utilization.
    pub usd_per_1m_output: f64,
    /// USD per 1M tokens at the headline utilization.
    pub usd_per_1m_total: f64,
    /// USD per 1M output tokens mapped from the bench's 95 % throughput interval
    /// (`intervals.json`); absent when the bench wrote none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usd_per_1m_output_interval: Option<Interval>,
    /// p99 TTFT (ms).
    pub p99_ttft_ms: Option<f64>,
    /// p99 TPOT (ms).
    pub p99_tpot_ms: Option<f64>,
    /// Whether both latency objectives hold.
    pub meets_slo: bool,
    /// Requests that failed at this level.
    pub failed: u64,
    /// Whether the bench client kept its schedule (null when not recorded).
    pub client_kept_up: Option<bool>,
}

/// `comparison.json`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ComparisonFile {
    /// The shape of this file ([`super::SCHEMA_VERSION`]); absent in files written before it was
    /// recorded, which have version 1's shape.
    #[serde(default = "super::first_version")]
    pub schema_version: u32,
    /// The rehearsal banner (same as `cost.json`); absent for a real run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rehearsal: Option<String>,
    /// Provenance (same as `cost.json`).
    pub metadata: CostMetadata,
    /// The candidate label.
    pub candidate: String,
    /// GPU name.
    pub gpu_name: String,
    /// GPU price per hour.
    pub gpu_hourly_usd: f64,
    /// Always-on monthly cost: hourly × hours per month.
    pub gpu_monthly_usd: f64,
    /// What the headline price buys (`on-demand-pod` ...); empty in files written before Forge
    /// recorded it.
    #[serde(default)]
    pub gpu_price_product: String,
    /// The candidate's cost under each listed price of the GPU, the headline price first.
    #[serde(default)]
    pub price_tiers: Vec<TierCost>,
    /// The workload's measured token mix.
    pub workload: Workload,
    /// The candidate's self-hosted costs.
    pub self_hosted: SelfHosted,
    /// The candidate's quality, when measured.
    pub quality: Option<Quality>,
    /// One row per API model.
    pub apis: Vec<ApiComparison>,
}

/// The candidate's cost under one price of the GPU: the same measured throughput, another bill.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct TierCost {
    /// The price: product, USD per hour, source, date and note, as the settings give it.
    pub price: crate::steps::cost::settings::PriceTier,
    /// Whether this is the price every other figure uses.
    pub headline: bool,
    /// Always-on monthly cost at this price.
    pub gpu_monthly_usd: f64,
    /// USD per 1M output tokens at the peak level and the headline utilization.
    pub usd_per_1m_output: f64,
    /// USD per 1M tokens (input and output) at the peak level and the headline utilization.
    pub usd_per_1m_total: f64,
    /// USD per 1M tokens at the cheapest SLO-meeting level, when one exists.
    pub slo_usd_per_1m_total: Option<f64>,
    /// Each API's blended price over this tier's self-hosted price per 1M tokens (at the SLO
    /// level, else the peak); above 1 means self-hosting is cheaper at this price.
    pub api_over_self_hosted: BTreeMap<String, f64>,
}

/// The measured token mix.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Workload {
    /// Prompt tokens over the candidate's sweep.
    pub input_tokens: u64,
    /// Generated tokens over the candidate's sweep.
    pub output_tokens: u64,
    /// Prompt tokens per generated token.
    pub input_per_output: f64,
    /// Share of all tokens that are prompt tokens.
    pub input_share: f64,
}

/// Self-hosted cost figures of the candidate, USD per 1M tokens.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SelfHosted {
    /// Peak level at the headline utilization.
    pub headline: CostSummary,
    /// Peak level at the sensitivity utilization.
    pub sensitivity: CostSummary,
    /// The cheapest SLO-meeting level, when one exists.
    pub slo: Option<CostSummary>,
}

/// One self-hosted cost figure.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct CostSummary {
    /// Concurrency level.
    pub max_concurrency: u32,
    /// Utilization assumed.
    pub utilization: f64,
    /// USD per 1M output tokens.
    pub usd_per_1m_output: f64,
    /// USD per 1M tokens, input and output together.
    pub usd_per_1m_total: f64,
    /// USD per 1M output tokens mapped from the bench's 95 % throughput interval
    /// (`intervals.json`); absent when the bench wrote none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usd_per_1m_output_interval: Option<Interval>,
    /// Tokens (input + output) one GPU serves per month at this level and utilization.
    pub capacity_tokens_per_month: f64,
    /// p99 TTFT at this level (ms).
    pub p99_ttft_ms: Option<f64>,
    /// p99 TPOT at this level (ms).
    pub p99_tpot_ms: Option<f64>,
}

/// The candidate's quality next to its cost.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Quality {
    /// Baseline label.
    pub baseline: String,
    /// Candidate label.
    pub candidate: String,
    /// Mean retention over tasks (1.0 = same as baseline).
    pub mean_retention: f64,
    /// Its standard error.
    pub mean_retention_stderr: Option<f64>,
    /// Mean delta in percentage points.
    pub mean_delta_points: f64,
}

/// Self-hosted against one API model.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ApiComparison {
    /// Provider.
    pub provider: String,
    /// Model.
    pub model: String,
    /// List price per 1M input tokens (with its file and field).
    pub input_per_1m: Sourced<f64>,
    /// List price per 1M output tokens.
    pub output_per_1m: Sourced<f64>,
    /// List price per 1M cached input tokens, when listed.
    pub cached_input_per_1m: Option<Sourced<f64>>,
    /// Where the price was read.
    pub source: String,
    /// When it was checked.
    pub checked: String,
    /// USD per 1M tokens at the measured input:output mix.
    pub blended_usd_per_1m_total: f64,
    /// USD for the work yielding 1M output tokens, prompts included.
    pub usd_per_1m_output_of_workload: f64,
    /// API price / self-hosted headline price (per 1M total); above 1 means self-hosting is cheaper.
    pub api_over_self_hosted_headline: f64,
    /// Same ratio against the SLO level, when one exists.
    pub api_over_self_hosted_slo: Option<f64>,
    /// Break-even volume.
    pub break_even: Option<BreakEven>,
}

/// Monthly volume above which the always-on GPU is cheaper than the API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct BreakEven {
    /// Tokens (input + output) per month.
    pub tokens_per_month: f64,
    /// Of which output tokens per month.
    pub output_tokens_per_month: f64,
    /// Which level's capacity the volume is checked against (`slo` or `peak`).
    pub capacity_basis: String,
    /// Tokens one GPU serves per month at that level, always busy.
    pub capacity_tokens_per_month: f64,
    /// Whether one GPU can serve the break-even volume at that level.
    pub reachable: bool,
}
