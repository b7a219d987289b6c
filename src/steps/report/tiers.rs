//! The price-tier table: the candidate's cost under each listed price of the GPU (on-demand pod,
//! spot, serverless ...), from `comparison.json`'s `price_tiers`.

use serde::Serialize;

use super::format::{opt_ratio, usd};
use crate::results::cost::ComparisonFile;

/// One price of the GPU and what the candidate costs under it.
#[derive(Debug, Clone, Serialize)]
pub struct TierRow {
    /// The product in words (`on-demand pod`).
    pub product: String,
    /// Whether every other figure of the report uses this price.
    pub headline: bool,
    /// USD per hour.
    pub hourly: String,
    /// Always-on monthly cost.
    pub monthly: String,
    /// USD per 1M output tokens at the peak level.
    pub per_output: String,
    /// USD per 1M tokens at the SLO level (else `-`).
    pub slo_per_total: String,
    /// The compared API's price over this tier's self-hosted price (`2.4x`), `-` without one.
    pub api_ratio: String,
    /// Where the price was read.
    pub source: String,
    /// When it was checked.
    pub date: String,
    /// What a reader should know about it.
    pub note: String,
}

/// The product as a reader says it: `on-demand-pod` becomes `on-demand pod`.
pub fn product_words(product: &str) -> String {
    match product.strip_suffix("-pod") {
        Some(kind) => format!("{kind} pod"),
        None => product.replacen("serverless-", "serverless, ", 1),
    }
}

/// The rows of the tier table, the headline price first; `api` is the API the headline compares
/// against.
pub fn rows(c: &ComparisonFile, api: &str) -> Vec<TierRow> {
    c.price_tiers
        .iter()
        .map(|t| TierRow {
            product: product_words(&t.price.product),
            headline: t.headline,
            hourly: usd(t.price.hourly_usd),
            monthly: usd(t.gpu_monthly_usd),
            per_output: usd(t.usd_per_1m_output),
            slo_per_total: t.slo_usd_per_1m_total.map_or("-".into(), usd),
            api_ratio: opt_ratio(t.api_over_self_hosted.get(api).copied()),
            source: t.price.source.clone(),
            date: t.price.date.clone(),
            note: t.price.note.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_read_as_words() {
        assert_eq!(product_words("on-demand-pod"), "on-demand pod");
        assert_eq!(product_words("spot-pod"), "spot pod");
        assert_eq!(product_words("serverless-active"), "serverless, active");
    }
}
