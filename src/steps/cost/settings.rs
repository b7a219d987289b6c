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
    /// What that price buys: one of [`PRODUCTS`] (`on-demand-pod`, `serverless-active`, ...).
    pub price_product: String,
    /// Where the price was read (an `http(s)://` URL).
    pub price_source: String,
    /// When the price was checked (YYYY-MM-DD).
    pub price_date: String,
    /// What a reader should know about the price (unconfirmed, a range's midpoint ...); empty
    /// when nothing.
    #[serde(default)]
    pub price_note: String,
    /// Other products of the same GPU, for the sensitivity across price tiers.
    #[serde(default)]
    pub price_tiers: Vec<PriceTier>,
    /// Memory bandwidth in GB/s (echoed for the roofline).
    #[serde(default)]
    pub memory_bandwidth_gbs: Option<f64>,
}

/// The rental products a GPU price can name: pods billed by the hour (on demand, in a provider's
/// secure or community cloud, spot, or under a savings plan) and serverless workers (always-on
/// `active` or scale-to-zero `flex`).
pub const PRODUCTS: &[&str] = &[
    "on-demand-pod",
    "secure-pod",
    "community-pod",
    "spot-pod",
    "savings-plan-pod",
    "serverless-active",
    "serverless-flex",
];

/// Another price of the same GPU (a tier), for the sensitivity table.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceTier {
    /// One of [`PRODUCTS`].
    pub product: String,
    /// USD per hour.
    pub hourly_usd: f64,
    /// Where it was read (an `http(s)://` URL).
    pub source: String,
    /// When it was checked (YYYY-MM-DD).
    pub date: String,
    /// What a reader should know about it; empty when nothing.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
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
    /// What these settings make the step read: the pricing files, bench summaries and the
    /// `intervals.json` beside each, retention.
    pub fn reads(&self) -> Vec<PathBuf> {
        let mut out = self.pricing.clone();
        out.extend(self.bench.values().cloned());
        out.extend(
            self.bench
                .values()
                .map(|p| crate::steps::charts::settings::intervals_file(p)),
        );
        out.extend(self.retention.iter().cloned());
        out
    }
}

impl CostSettings {
    /// The headline price and every tier: products known and distinct, dates real YYYY-MM-DD
    /// dates, sources URLs, prices above zero.
    fn validate_prices(&self) -> Result<(), (String, String)> {
        let g = &self.gpu;
        let mut seen = vec![("gpu.price_product".to_string(), g.price_product.as_str())];
        check_price(
            "gpu",
            &g.price_product,
            &g.price_source,
            &g.price_date,
            "price_",
        )?;
        for (i, tier) in g.price_tiers.iter().enumerate() {
            let at = format!("gpu.price_tiers[{i}]");
            check_price(&at, &tier.product, &tier.source, &tier.date, "")?;
            if !(tier.hourly_usd.is_finite() && tier.hourly_usd > 0.0) {
                return Err((
                    format!("{at}.hourly_usd"),
                    format!("{}, but must be above zero", tier.hourly_usd),
                ));
            }
            if let Some((first, _)) = seen.iter().find(|(_, p)| *p == tier.product) {
                return Err((
                    format!("{at}.product"),
                    format!(
                        "`{}` again (already priced at `{first}`), but each product is priced once",
                        tier.product
                    ),
                ));
            }
            seen.push((format!("{at}.product"), &tier.product));
        }
        Ok(())
    }
}

/// Checks one price's product, source and date; `prefix` is `price_` for the headline's
/// `price_product` fields and empty for a tier's `product`.
fn check_price(
    at: &str,
    product: &str,
    source: &str,
    date: &str,
    prefix: &str,
) -> Result<(), (String, String)> {
    if !PRODUCTS.contains(&product) {
        return Err((
            format!("{at}.{prefix}product"),
            format!(
                "`{product}`, which is not a product Forge knows; use one of {}",
                PRODUCTS
                    .iter()
                    .map(|p| format!("`{p}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let url = source.trim();
    if !(url.starts_with("https://") || url.starts_with("http://"))
        || url.contains(char::is_whitespace)
    {
        return Err((
            format!("{at}.{prefix}source"),
            format!(
                "`{source}`, but must be the URL the price was read at (put remarks in the note)"
            ),
        ));
    }
    let exact = date.len() == 10 && date.parse::<jiff::civil::Date>().is_ok();
    if !exact {
        return Err((
            format!("{at}.{prefix}date"),
            format!("`{date}`, but must be the day the price was checked, as YYYY-MM-DD"),
        ));
    }
    Ok(())
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
        self.validate_prices()?;
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
