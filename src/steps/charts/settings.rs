//! The charts step's settings (`[steps.<id>.with]` of a step with `kind = "charts"`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// Settings of the `charts` step. Paths are relative to the workspace. Editing titles, sizes or
/// the API list changes only this step's settings, so only charts (and what reads them) rerun.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChartsSettings {
    /// Bench `summary.json` per model label; one series per label.
    pub bench: BTreeMap<String, PathBuf>,
    /// The eval step's `retention.json` (chart 5 is skipped when absent).
    #[serde(default)]
    pub retention: Option<PathBuf>,
    /// The cost step's output directory holding `comparison.json` (chart 4 is skipped when absent).
    #[serde(default)]
    pub cost: Option<PathBuf>,
    /// Decode roofline facts for chart 1 (no roofline line when absent).
    #[serde(default)]
    pub roofline: Option<RooflineSettings>,
    /// API models shown on chart 4, in this order; every API in `comparison.json` when absent.
    #[serde(default)]
    pub apis: Option<Vec<String>>,
    /// Chart width in pixels (PNG) and user units (SVG).
    #[serde(default = "default_width")]
    pub width: u32,
    /// Chart height in pixels.
    #[serde(default = "default_height")]
    pub height: u32,
    /// Chart titles.
    #[serde(default)]
    pub titles: Titles,
}

/// What the decode roofline needs: bandwidth and the bytes one decode step reads per model.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RooflineSettings {
    /// Memory bandwidth in GB/s (768 for an RTX A5000).
    pub memory_bandwidth_gbs: f64,
    /// GB read per decode step, per model label (`{ awq = 4.7, bf16 = 15.0 }`).
    pub bytes_per_token_gb: BTreeMap<String, f64>,
}

/// Titles of the five canonical charts and of the server views.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Titles {
    /// Chart 1.
    pub throughput: String,
    /// Chart 2.
    pub ttft: String,
    /// Chart 3.
    pub tpot: String,
    /// Chart 4.
    pub cost: String,
    /// Chart 5.
    pub retention: String,
    /// The server views: `<title>: <label>`.
    pub server: String,
}

impl Default for Titles {
    fn default() -> Self {
        Self {
            throughput: "Output throughput vs concurrency".into(),
            ttft: "Time to first token vs concurrency".into(),
            tpot: "Time per output token vs concurrency".into(),
            cost: "Cost per 1M tokens: self-hosted vs APIs".into(),
            retention: "Quality retention per task".into(),
            server: "Server view across the sweep".into(),
        }
    }
}

fn default_width() -> u32 {
    1000
}

fn default_height() -> u32 {
    600
}

impl ChartsSettings {
    /// What these settings make the step read: bench summaries and the level files beside them
    /// (the server views), retention, cost.
    pub fn reads(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self.bench.values().cloned().collect();
        out.extend(self.bench.values().map(|p| level_files(p)));
        out.extend(self.bench.values().map(|p| intervals_file(p)));
        out.extend(self.retention.iter().cloned());
        out.extend(self.cost.iter().cloned());
        out
    }
}

impl ChartsSettings {
    /// Checks values serde cannot: returns the offending `field` and what is wrong.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.width < 320 || self.height < 240 {
            let size = format!("{}x{}", self.width, self.height);
            return Err((
                "width/height".into(),
                format!("{size}, but charts need at least 320x240"),
            ));
        }
        if let Some(r) = &self.roofline {
            if !(r.memory_bandwidth_gbs.is_finite() && r.memory_bandwidth_gbs > 0.0) {
                let bw = r.memory_bandwidth_gbs;
                return Err((
                    "roofline.memory_bandwidth_gbs".into(),
                    format!("{bw}, but must be above zero"),
                ));
            }
            if let Some((label, gb)) = r
                .bytes_per_token_gb
                .iter()
                .find(|(_, gb)| !(gb.is_finite() && **gb > 0.0))
            {
                return Err((
                    format!("roofline.bytes_per_token_gb.{label}"),
                    format!("{gb}, but must be above zero"),
                ));
            }
        }
        Ok(())
    }
}

/// The `intervals.json` beside a bench `summary.json` (absent in results from before intervals).
pub fn intervals_file(summary: &std::path::Path) -> PathBuf {
    summary
        .parent()
        .unwrap_or(std::path::Path::new(""))
        .join("intervals.json")
}

/// The level files (`c<N>.json`) beside a bench `summary.json`, as a glob the step's key expands.
pub fn level_files(summary: &std::path::Path) -> PathBuf {
    summary
        .parent()
        .unwrap_or(std::path::Path::new(""))
        .join("c*.json")
}
