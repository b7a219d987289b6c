//! The bench step's result files: `summary.json` ([`BenchSummary`]), the level file `c<N>.json`
//! ([`LevelFile`], vLLM's key names and order) and the `metadata` of every bench file
//! ([`BenchMetadata`]). Reference: `docs/results.md`.

use serde::{Deserialize, Serialize};

use super::metadata::Metadata;
use super::{SCHEMA_VERSION, Versioned};
use crate::steps::bench::{ErrorBreakdown, LagStats, RequestRecord, ServerMetrics};

/// `summary.json`: the sweep at a glance, levels sorted by concurrency.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct BenchSummary {
    /// The shape of this file ([`SCHEMA_VERSION`]); absent in files written before it was
    /// recorded, which have version 1's shape.
    #[serde(default = "super::first_version")]
    pub schema_version: u32,
    /// Provenance of the sweep (absent: every key empty).
    #[serde(default)]
    pub metadata: BenchMetadata,
    /// One row per level run.
    pub levels: Vec<LevelSummary>,
}

impl BenchSummary {
    /// A summary of the current schema version.
    pub fn new(metadata: BenchMetadata, levels: Vec<LevelSummary>) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            metadata,
            levels,
        }
    }
}

impl Versioned for BenchSummary {
    const WHAT: &'static str = "bench summary.json";
}

/// One row of `summary.json` (vLLM `--save-result` key names). Every key but `levels` reads as
/// zero, `null` or empty when absent (summaries written before a key existed).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(default)]
pub struct LevelSummary {
    /// Concurrency level.
    pub max_concurrency: u32,
    /// Successful requests.
    pub completed: u64,
    /// Failed requests.
    pub failed: u64,
    /// Wall time, seconds.
    pub duration: f64,
    /// Prompt tokens of successful requests.
    pub total_input_tokens: u64,
    /// Output tokens of successful requests.
    pub total_output_tokens: u64,
    /// Requests per second (`null` when not finite, e.g. a zero duration).
    pub request_throughput: Option<f64>,
    /// Output tokens per second (`null` when not finite).
    pub output_throughput: Option<f64>,
    /// Input + output tokens per second (`null` when not finite).
    pub total_token_throughput: Option<f64>,
    /// TTFT mean, ms.
    pub mean_ttft_ms: f64,
    /// TTFT median, ms (`null` when not finite).
    pub median_ttft_ms: Option<f64>,
    /// TTFT p90, ms.
    pub p90_ttft_ms: f64,
    /// TTFT p99, ms (`null` when not finite).
    pub p99_ttft_ms: Option<f64>,
    /// TPOT mean, ms.
    pub mean_tpot_ms: f64,
    /// TPOT median, ms (`null` when not finite).
    pub median_tpot_ms: Option<f64>,
    /// TPOT p90, ms.
    pub p90_tpot_ms: f64,
    /// TPOT p99, ms (`null` when not finite).
    pub p99_tpot_ms: Option<f64>,
    /// ITL mean, ms.
    pub mean_itl_ms: f64,
    /// ITL median, ms.
    pub median_itl_ms: f64,
    /// ITL p99, ms.
    pub p99_itl_ms: f64,
    /// E2E latency mean, ms.
    pub mean_e2el_ms: f64,
    /// E2E latency median, ms.
    pub median_e2el_ms: f64,
    /// E2E latency p99, ms.
    pub p99_e2el_ms: f64,
    /// The client kept up (`null` when not judged).
    pub client_kept_up: Option<bool>,
    /// The level failed (`max_failed_fraction` exceeded).
    pub level_failed: bool,
    /// Failed requests by class (as in the level file; `{}` in summaries written before the
    /// classes existed; the older `{message: count}` shape is read too).
    pub errors: ErrorBreakdown,
    /// The level's file, relative to the summary (`c<N>.json`).
    pub file: String,
}

/// What a level file is, for error messages.
pub const LEVEL_FILE: &str = "bench level file";

/// `c<N>.json`: one level's result, every key vLLM's `--save-result` writes under its name and
/// in its order, then Forge's extras. Written only (the bench step builds it from its
/// `LevelResult`, borrowing the records); a figure that is not finite is written `null`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct LevelFile<'a> {
    /// The shape of this file ([`SCHEMA_VERSION`]); absent in files written before it was
    /// recorded, which have version 1's shape.
    #[schemars(default = "super::first_version")]
    pub schema_version: u32,
    /// Provenance of the sweep.
    pub metadata: &'a BenchMetadata,
    /// vLLM's `date`: `%Y%m%d-%H%M%S`, UTC.
    pub date: &'a str,
    /// vLLM backend name: `openai` (completions) or `openai-chat`.
    pub endpoint_type: &'a str,
    /// The same as `endpoint_type`.
    pub backend: &'a str,
    /// Model label.
    pub label: Option<&'a str>,
    /// Served model name.
    pub model_id: &'a str,
    /// The `tokenizer` setting.
    pub tokenizer_id: Option<&'a str>,
    /// Measured requests.
    pub num_prompts: u64,
    /// Open-loop rate, requests per second; `"inf"` for a closed loop.
    pub request_rate: RequestRate,
    /// Gamma shape of the arrivals.
    pub burstiness: f64,
    /// Concurrency level.
    pub max_concurrency: u32,
    /// First dispatch to last completion, seconds (warmup excluded).
    pub duration: f64,
    /// Successful requests.
    pub completed: u64,
    /// Failed requests.
    pub failed: u64,
    /// Prompt tokens of successful requests.
    pub total_input_tokens: u64,
    /// Output tokens of successful requests.
    pub total_output_tokens: u64,
    /// Requests per second.
    pub request_throughput: Option<f64>,
    /// Requests meeting every SLO per second; `null` without `slo`.
    pub request_goodput: Option<f64>,
    /// Output tokens per second.
    pub output_throughput: Option<f64>,
    /// Input + output tokens per second.
    pub total_token_throughput: Option<f64>,
    /// Each request's latency, seconds, in prompt order (0 for a failed one, as vLLM).
    pub latencies: Vec<f64>,
    /// Each request's wait for a concurrency slot, seconds, in prompt order.
    pub queue_times: Vec<f64>,
    /// Each request's inter-token gaps, seconds; only with `save_detailed = true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub itls: Option<Vec<Vec<f64>>>,
    /// vLLM 0.32: most choices messages in a 1-s bucket.
    pub max_output_tokens_per_s: Option<f64>,
    /// vLLM 0.32: most requests touching a 1-s bucket.
    pub max_concurrent_requests: u64,
    /// Always 0 (audio only in vLLM).
    pub rtfx: f64,
    /// TTFT mean, ms.
    pub mean_ttft_ms: Option<f64>,
    /// TTFT median, ms.
    pub median_ttft_ms: Option<f64>,
    /// TTFT standard deviation, ms.
    pub std_ttft_ms: Option<f64>,
    /// TTFT p50, ms.
    pub p50_ttft_ms: Option<f64>,
    /// TTFT p90, ms.
    pub p90_ttft_ms: Option<f64>,
    /// TTFT p95, ms.
    pub p95_ttft_ms: Option<f64>,
    /// TTFT p99, ms.
    pub p99_ttft_ms: Option<f64>,
    /// TPOT mean, ms.
    pub mean_tpot_ms: Option<f64>,
    /// TPOT median, ms.
    pub median_tpot_ms: Option<f64>,
    /// TPOT standard deviation, ms.
    pub std_tpot_ms: Option<f64>,
    /// TPOT p50, ms.
    pub p50_tpot_ms: Option<f64>,
    /// TPOT p90, ms.
    pub p90_tpot_ms: Option<f64>,
    /// TPOT p95, ms.
    pub p95_tpot_ms: Option<f64>,
    /// TPOT p99, ms.
    pub p99_tpot_ms: Option<f64>,
    /// ITL mean, ms.
    pub mean_itl_ms: Option<f64>,
    /// ITL median, ms.
    pub median_itl_ms: Option<f64>,
    /// ITL standard deviation, ms.
    pub std_itl_ms: Option<f64>,
    /// ITL p50, ms.
    pub p50_itl_ms: Option<f64>,
    /// ITL p90, ms.
    pub p90_itl_ms: Option<f64>,
    /// ITL p95, ms.
    pub p95_itl_ms: Option<f64>,
    /// ITL p99, ms.
    pub p99_itl_ms: Option<f64>,
    /// E2E latency mean, ms.
    pub mean_e2el_ms: Option<f64>,
    /// E2E latency median, ms.
    pub median_e2el_ms: Option<f64>,
    /// E2E latency standard deviation, ms.
    pub std_e2el_ms: Option<f64>,
    /// E2E latency p50, ms.
    pub p50_e2el_ms: Option<f64>,
    /// E2E latency p90, ms.
    pub p90_e2el_ms: Option<f64>,
    /// E2E latency p95, ms.
    pub p95_e2el_ms: Option<f64>,
    /// E2E latency p99, ms.
    pub p99_e2el_ms: Option<f64>,
    /// `native` or `vllm`.
    pub driver: &'a str,
    /// `closed`, `open` or `trace`.
    pub mode: &'a str,
    /// blake3 of the prompts fingerprint, the level and its arrival schedule.
    pub workload_fingerprint: &'a str,
    /// Unix time (seconds) of the level's clock origin; request times are offsets from it.
    pub start_unix_s: Option<f64>,
    /// The client kept up; `null` when not judged (the vLLM driver).
    pub client_kept_up: Option<bool>,
    /// Send lag (actual minus possible send time).
    pub send_lag: Option<LagStats>,
    /// Runtime scheduling lag during the level.
    pub event_loop_lag: Option<LagStats>,
    /// Exact peak of open requests.
    pub peak_in_flight: u64,
    /// Warmup requests sent.
    pub warmup_requests: u32,
    /// Warmup requests failed.
    pub warmup_failed: u64,
    /// Connections open and idle in the client's pool when the level's clock started; `null` for
    /// the vLLM driver; absent in files written before Forge recorded it.
    pub preopened_connections: Option<u32>,
    /// The level failed (`max_failed_fraction` exceeded, or nothing completed).
    pub level_failed: bool,
    /// Failed requests by class.
    pub errors: &'a ErrorBreakdown,
    /// Per-request records, in prompt order.
    pub requests: &'a [RequestRecord],
    /// Server metrics series; `null` when scraping was off or for the vLLM driver.
    pub server_metrics: Option<&'a ServerMetrics>,
}

/// `request_rate` of a level file: a number, or `"inf"` for a closed loop (vLLM's spelling).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestRate(pub Option<f64>);

impl Serialize for RequestRate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(r) => s.serialize_f64(r),
            None => s.serialize_str("inf"),
        }
    }
}

impl schemars::JsonSchema for RequestRate {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RequestRate".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Requests per second, or `\"inf\"` for a closed loop.",
            "anyOf": [{"type": "number", "format": "double"}, {"const": "inf"}]
        })
    }
}

/// `metadata` of every bench file: the shared keys, then the bench extras.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(default)]
pub struct BenchMetadata {
    /// The shared keys (`forge_version` ... `model`); `date` is when the sweep started, host
    /// facts are the client host's.
    #[serde(flatten)]
    pub common: Metadata,
    /// `native` or `vllm`.
    pub driver: String,
    /// Server base URL.
    pub base_url: String,
    /// Route driven (`/v1/completions` or `/v1/chat/completions`).
    pub endpoint: String,
    /// The workload every level sent.
    pub workload: Workload,
}

/// What was sent, reproducibly.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(default)]
pub struct Workload {
    /// Dataset kind.
    pub dataset: String,
    /// Dataset file, when there is one.
    pub path: Option<String>,
    /// Sampling seed.
    pub seed: u64,
    /// Requests per level.
    pub num_prompts: u64,
    /// How prompt tokens were counted while sampling.
    pub token_counter: String,
    /// blake3 of the prompts and their lengths (same value = same prompts).
    pub prompts_fingerprint: String,
    /// Fixed `max_tokens`, if any.
    pub max_tokens: Option<u32>,
    /// Whether `ignore_eos` was sent.
    pub ignore_eos: bool,
    /// Temperature sent, if any.
    pub temperature: Option<f64>,
    /// `closed` or `open`.
    pub mode: String,
    /// Open-loop rate, requests per second.
    pub request_rate: Option<f64>,
    /// Open-loop gamma shape.
    pub burstiness: f64,
    /// Warmup requests per level.
    pub warmup: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `scripts/crosscheck.py` reads summaries in Python: the version and the level keys it names
    /// must be this file's, so renaming a field here fails `cargo test`, not the rehearsal.
    #[test]
    fn the_crosscheck_script_reads_this_schema() {
        let script = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/crosscheck.py"),
        )
        .expect("scripts/crosscheck.py");
        let version = format!("\nSCHEMA_VERSION = {SCHEMA_VERSION}\n");
        assert!(script.contains(&version), "crosscheck.py lacks `{version}`");
        let start = script
            .find("LEVEL_KEYS = (")
            .expect("crosscheck.py names LEVEL_KEYS")
            + 14;
        let end = start + script[start..].find(')').expect("LEVEL_KEYS closes");
        let keys: Vec<&str> = script[start..end]
            .split(',')
            .map(|key| key.trim().trim_matches('"'))
            .filter(|key| !key.is_empty())
            .collect();
        assert!(keys.len() >= 7, "{keys:?}");
        let row = serde_json::to_value(LevelSummary::default()).expect("serializes");
        for key in keys {
            assert!(
                row.get(key).is_some(),
                "crosscheck.py reads `{key}`, which summary.json rows no longer have"
            );
        }
    }

    #[test]
    fn summary_levels_read_error_classes_old_and_new() {
        let summary: BenchSummary = serde_json::from_value(serde_json::json!({"levels": [
            {"max_concurrency": 1, "file": "c1.json"},
            {"max_concurrency": 4, "file": "c4.json",
             "errors": {"http 500": {"count": 3, "example": "HTTP 500 Internal Server Error: x"}}},
            {"max_concurrency": 8, "file": "c8.json",
             "errors": {"stream stalled: no data for 60.0 s": 2}}
        ]}))
        .expect("summary parses");
        assert!(
            summary.levels[0].errors.is_empty(),
            "absent in older summaries"
        );
        assert_eq!(summary.levels[1].errors.0["http 500"].count, 3);
        assert_eq!(summary.levels[2].errors.0["stalled"].count, 2);
    }
}
