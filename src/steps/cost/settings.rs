//! The cost step's settings (`[steps.<id>.with]` of a step with `kind = "cost"`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// Settings of the `cost` step. Paths are relative to the workspace.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostSettings {
    /// Bench `summary.json` per model label (`{ awq = "results/a5000/bench/awq/summary.json" }`).
    pub bench: BTreeMap<String, PathBuf>,
    /// The label whose cost is the headline (`awq`).
    pub candidate: String,
    /// The eval step's `retention.json`, when quality was measured.
    #[serde(default)]
    pub retention: Option<PathBuf>,
    /// Pricing files or directories of `*.toml` (`["pricing"]` or `["pricing/openai.toml"]`).
    pub pricing: Vec<PathBuf>,
    /// API models to compare against, in this order; all priced models when absent.
    #[serde(default)]
    pub apis: Option<Vec<String>>,
    /// The GPU and its rental price.
    pub gpu: GpuSettings,
    /// Utilization assumptions.
    #[serde(default)]
    pub utilization: UtilizationSettings,
    /// Latency objectives for the latency-aware cost.
    pub slo: SloSettings,
    /// Hours an always-on GPU is billed per month (730 = 8760 / 12).
    #[serde(default = "default_hours_per_month")]
    pub hours_per_month: f64,
    /// Share of API input tokens assumed to hit the prompt cache (0 = none).
    #[serde(default)]
    pub cached_input_share: f64,
    /// The profile is a rehearsal (`rehearsal = true` in the profile): the figures were not
    /// measured on the priced GPU, and every result says so instead of refusing.
    #[serde(default)]
    pub rehearsal: bool,
}

/// The banner every result of a rehearsal carries (cost files, charts, report).
pub const REHEARSAL_BANNER: &str = "rehearsal: CPU figures, not a decision";

/// The GPU the candidate runs on and what it costs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuSettings {
    /// GPU name (`RTX A5000`).
    pub name: String,
    /// Rental price in USD per hour, always on.
    pub hourly_usd: f64,
    /// Where the price was read (URL).
    pub price_source: String,
    /// When the price was checked (YYYY-MM-DD).
    pub price_date: String,
    /// Memory bandwidth in GB/s (echoed for the roofline).
    #[serde(default)]
    pub memory_bandwidth_gbs: Option<f64>,
}

/// Utilization assumptions: the headline and a sensitivity point.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UtilizationSettings {
    /// The headline utilization (1.0: the GPU is busy all the time it is paid for).
    #[serde(default = "one")]
    pub headline: f64,
    /// The sensitivity utilization (0.8).
    #[serde(default = "point_eight")]
    pub sensitivity: f64,
}

impl Default for UtilizationSettings {
    fn default() -> Self {
        Self {
            headline: one(),
            sensitivity: point_eight(),
        }
    }
}

/// Latency objectives (inclusive upper bounds).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloSettings {
    /// Largest acceptable p99 time to first token (ms).
    pub p99_ttft_ms: f64,
    /// Largest acceptable p99 time per output token (ms).
    pub p99_tpot_ms: f64,
}

fn default_hours_per_month() -> f64 {
    730.0
}

fn one() -> f64 {
    1.0
}

fn point_eight() -> f64 {
    0.8
}

impl CostSettings {
    /// What these settings make the step read: the pricing files, bench summaries, retention.
    pub fn reads(&self) -> Vec<PathBuf> {
        let mut out = self.pricing.clone();
        out.extend(self.bench.values().cloned());
        out.extend(self.retention.iter().cloned());
        out
    }
}

impl CostSettings {
    /// Checks values serde cannot: returns the offending `field` and what is wrong.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let checks = [
            ("gpu.hourly_usd", self.gpu.hourly_usd, false),
            ("hours_per_month", self.hours_per_month, true),
            ("slo.p99_ttft_ms", self.slo.p99_ttft_ms, true),
            ("slo.p99_tpot_ms", self.slo.p99_tpot_ms, true),
        ];
        for (field, value, strictly) in checks {
            if !value.is_finite() || value < 0.0 || (strictly && value == 0.0) {
                return Err((field.into(), format!("{value}, but must be above zero")));
            }
        }
        if let Some(bw) = self
            .gpu
            .memory_bandwidth_gbs
            .filter(|v| !v.is_finite() || *v <= 0.0)
        {
            return Err((
                "gpu.memory_bandwidth_gbs".into(),
                format!("{bw}, but must be above zero"),
            ));
        }
        if self.gpu.hourly_usd == 0.0 {
            return Err((
                "gpu.hourly_usd".into(),
                "0, but a rented GPU has a price".into(),
            ));
        }
        for (field, value) in [
            ("utilization.headline", self.utilization.headline),
            ("utilization.sensitivity", self.utilization.sensitivity),
        ] {
            if !(value > 0.0 && value <= 1.0) {
                return Err((field.into(), format!("{value}, but must be in (0, 1]")));
            }
        }
        if !(0.0..=1.0).contains(&self.cached_input_share) {
            let value = self.cached_input_share;
            return Err((
                "cached_input_share".into(),
                format!("{value}, but must be in [0, 1]"),
            ));
        }
        if !self.bench.contains_key(&self.candidate) {
            let known: Vec<&String> = self.bench.keys().collect();
            return Err((
                "candidate".into(),
                format!(
                    "`{}`, which is not a key of `bench` ({known:?})",
                    self.candidate
                ),
            ));
        }
        Ok(())
    }
}
