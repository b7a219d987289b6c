//! Result files: `c<N>.json` per level ([`LevelFile`]: vLLM `--save-result` key names and order
//! for every shared field, then Forge's extras) and the `summary.json` rows ([`LevelSummary`]);
//! both types live in [`crate::results::bench`]. Schemas: `docs/results.md`.

use std::path::Path;

use serde::Serialize;

pub use crate::results::bench::{BenchSummary, LevelSummary};
use crate::results::bench::{LevelFile, RequestRate};

use super::BenchError;
use super::errors::ErrorBreakdown;
use super::metadata::BenchMetadata;
use super::metrics::{LevelMetrics, stats_ms};
use super::record::RequestRecord;
use super::scrape::ServerMetrics;

/// Lag statistics in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, schemars::JsonSchema)]
pub struct LagStats {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Maximum.
    pub max_ms: f64,
}

impl LagStats {
    /// Statistics of lag samples given in seconds.
    pub fn from_seconds(values: impl IntoIterator<Item = f64>) -> Self {
        let values: Vec<f64> = values.into_iter().collect();
        let max = values.iter().copied().fold(0.0, f64::max) * 1000.0;
        let s = stats_ms(values.iter().copied());
        LagStats {
            count: values.len() as u64,
            mean_ms: s.mean,
            p50_ms: s.p50,
            p99_ms: s.p99,
            max_ms: max,
        }
    }
}

/// One level's result (`c<N>.json`).
#[derive(Debug, Clone)]
pub struct LevelResult {
    /// Shared metadata.
    pub metadata: BenchMetadata,
    /// vLLM `date` (`%Y%m%d-%H%M%S`, UTC).
    pub date: String,
    /// vLLM backend name (`openai` or `openai-chat`), used for `endpoint_type` and `backend`.
    pub backend: String,
    /// Model label.
    pub label: Option<String>,
    /// Served model name.
    pub model_id: String,
    /// Tokenizer used by the client, if any.
    pub tokenizer_id: Option<String>,
    /// Measured requests.
    pub num_prompts: u64,
    /// Open-loop rate (`None` = `"inf"`).
    pub request_rate: Option<f64>,
    /// Gamma shape.
    pub burstiness: f64,
    /// The level's concurrency.
    pub max_concurrency: u32,
    /// Wall time of the level in seconds.
    pub duration: f64,
    /// Unix time (seconds) of the level's clock origin; request times are offsets from it.
    pub start_unix_s: Option<f64>,
    /// vLLM's metrics.
    pub metrics: LevelMetrics,
    /// `native` or `vllm`.
    pub driver: String,
    /// `closed`, `open` or `trace`.
    pub mode: String,
    /// blake3 of the prompts fingerprint, the level and its arrival schedule.
    pub workload_fingerprint: String,
    /// Whether the client kept up (`None` when it cannot be judged, e.g. the vLLM driver).
    pub client_kept_up: Option<bool>,
    /// Send lag (actual minus possible send time).
    pub send_lag: Option<LagStats>,
    /// Runtime scheduling lag during the level.
    pub event_loop_lag: Option<LagStats>,
    /// Warmup requests sent and failed.
    pub warmup: (u32, u64),
    /// Whether the level counts as failed (`max_failed_fraction`).
    pub level_failed: bool,
    /// Failed requests by class, with a count and an example message per class.
    pub errors: ErrorBreakdown,
    /// Connections opened (and left idle in the pool) before the level's clock started;
    /// `None` for the vLLM driver.
    pub preopened_connections: Option<u32>,
    /// Per-request records, in prompt order.
    pub requests: Vec<RequestRecord>,
    /// Keep per-request ITLs (`itls`, seconds, as vLLM's `--save-detailed`).
    pub save_detailed: bool,
    /// Server metrics series.
    pub server_metrics: Option<ServerMetrics>,
}

impl Serialize for LevelResult {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.file().serialize(serializer)
    }
}

impl LevelResult {
    /// The content of `c<N>.json`, borrowing the records.
    pub fn file(&self) -> LevelFile<'_> {
        let m = &self.metrics;
        let itls = self.save_detailed.then(|| {
            self.requests
                .iter()
                .map(|r| r.itl.iter().map(|&g| f64::from(g)).collect())
                .collect()
        });
        LevelFile {
            schema_version: crate::results::SCHEMA_VERSION,
            metadata: &self.metadata,
            date: &self.date,
            endpoint_type: &self.backend,
            backend: &self.backend,
            label: self.label.as_deref(),
            model_id: &self.model_id,
            tokenizer_id: self.tokenizer_id.as_deref(),
            num_prompts: self.num_prompts,
            request_rate: RequestRate(self.request_rate),
            burstiness: self.burstiness,
            max_concurrency: self.max_concurrency,
            duration: self.duration,
            completed: m.completed,
            failed: m.failed,
            total_input_tokens: m.total_input_tokens,
            total_output_tokens: m.total_output_tokens,
            request_throughput: finite(m.request_throughput),
            request_goodput: m.request_goodput.and_then(finite),
            output_throughput: finite(m.output_throughput),
            total_token_throughput: finite(m.total_token_throughput),
            latencies: self.requests.iter().map(|r| r.latency_s).collect(),
            queue_times: self
                .requests
                .iter()
                .map(RequestRecord::queue_time_s)
                .collect(),
            itls,
            max_output_tokens_per_s: finite(m.max_output_tokens_per_s),
            max_concurrent_requests: m.max_concurrent_requests,
            rtfx: 0.0,
            mean_ttft_ms: finite(m.ttft.mean),
            median_ttft_ms: finite(m.ttft.median),
            std_ttft_ms: finite(m.ttft.std),
            p50_ttft_ms: finite(m.ttft.p50),
            p90_ttft_ms: finite(m.ttft.p90),
            p95_ttft_ms: finite(m.ttft.p95),
            p99_ttft_ms: finite(m.ttft.p99),
            mean_tpot_ms: finite(m.tpot.mean),
            median_tpot_ms: finite(m.tpot.median),
            std_tpot_ms: finite(m.tpot.std),
            p50_tpot_ms: finite(m.tpot.p50),
            p90_tpot_ms: finite(m.tpot.p90),
            p95_tpot_ms: finite(m.tpot.p95),
            p99_tpot_ms: finite(m.tpot.p99),
            mean_itl_ms: finite(m.itl.mean),
            median_itl_ms: finite(m.itl.median),
            std_itl_ms: finite(m.itl.std),
            p50_itl_ms: finite(m.itl.p50),
            p90_itl_ms: finite(m.itl.p90),
            p95_itl_ms: finite(m.itl.p95),
            p99_itl_ms: finite(m.itl.p99),
            mean_e2el_ms: finite(m.e2el.mean),
            median_e2el_ms: finite(m.e2el.median),
            std_e2el_ms: finite(m.e2el.std),
            p50_e2el_ms: finite(m.e2el.p50),
            p90_e2el_ms: finite(m.e2el.p90),
            p95_e2el_ms: finite(m.e2el.p95),
            p99_e2el_ms: finite(m.e2el.p99),
            driver: &self.driver,
            mode: &self.mode,
            workload_fingerprint: &self.workload_fingerprint,
            start_unix_s: self.start_unix_s,
            client_kept_up: self.client_kept_up,
            send_lag: self.send_lag,
            event_loop_lag: self.event_loop_lag,
            peak_in_flight: m.peak_in_flight,
            warmup_requests: self.warmup.0,
            warmup_failed: self.warmup.1,
            preopened_connections: self.preopened_connections,
            level_failed: self.level_failed,
            errors: &self.errors,
            requests: &self.requests,
            server_metrics: self.server_metrics.as_ref(),
        }
    }
}

/// `Some` for a finite figure; `None` (written `null`, as serde_json writes a non-finite `f64`)
/// otherwise.
fn finite(value: f64) -> Option<f64> {
    value.is_finite().then_some(value)
}

impl LevelSummary {
    /// The summary row of a level result.
    pub fn of(r: &LevelResult) -> Self {
        let m = &r.metrics;
        LevelSummary {
            max_concurrency: r.max_concurrency,
            completed: m.completed,
            failed: m.failed,
            duration: r.duration,
            total_input_tokens: m.total_input_tokens,
            total_output_tokens: m.total_output_tokens,
            request_throughput: finite(m.request_throughput),
            output_throughput: finite(m.output_throughput),
            total_token_throughput: finite(m.total_token_throughput),
            mean_ttft_ms: m.ttft.mean,
            median_ttft_ms: finite(m.ttft.median),
            p90_ttft_ms: m.ttft.p90,
            p99_ttft_ms: finite(m.ttft.p99),
            mean_tpot_ms: m.tpot.mean,
            median_tpot_ms: finite(m.tpot.median),
            p90_tpot_ms: m.tpot.p90,
            p99_tpot_ms: finite(m.tpot.p99),
            mean_itl_ms: m.itl.mean,
            median_itl_ms: m.itl.median,
            p99_itl_ms: m.itl.p99,
            mean_e2el_ms: m.e2el.mean,
            median_e2el_ms: m.e2el.median,
            p99_e2el_ms: m.e2el.p99,
            client_kept_up: r.client_kept_up,
            level_failed: r.level_failed,
            errors: r.errors.clone(),
            file: format!("c{}.json", r.max_concurrency),
        }
    }
}

/// Writes a bench result file through [`crate::results::write_json`] (atomic, pretty JSON).
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<(), BenchError> {
    crate::results::write_json(path, value).map_err(|source| BenchError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::bench::metadata;
    use crate::steps::bench::metrics::compute;

    fn sample() -> LevelResult {
        let ok = RequestRecord {
            index: 0,
            start_s: 0.0,
            ready_s: 0.0,
            ttft_s: 0.125,
            latency_s: 0.25,
            prompt_tokens: 10,
            output_tokens: 3,
            requested_output_tokens: 3,
            chunks: 3,
            server_usage: true,
            http_status: Some(200),
            itl: vec![0.0625, 0.0625],
            ..Default::default()
        };
        let failed = RequestRecord {
            index: 1,
            start_s: 0.25,
            ready_s: 0.25,
            requested_output_tokens: 3,
            http_status: Some(500),
            error: Some("HTTP 500 Internal Server Error: engine crashed".into()),
            ..Default::default()
        };
        let requests = vec![ok, failed];
        LevelResult {
            metadata: metadata::pending(),
            date: "20261128-120000".into(),
            backend: "openai".into(),
            label: Some("bf16".into()),
            model_id: "smollm2".into(),
            tokenizer_id: None,
            num_prompts: 2,
            request_rate: None,
            burstiness: 1.0,
            max_concurrency: 1,
            duration: 0.5,
            start_unix_s: Some(1.0),
            metrics: compute(&requests, 0.5, None),
            driver: "native".into(),
            mode: "closed".into(),
            workload_fingerprint: "fp".into(),
            client_kept_up: Some(true),
            send_lag: Some(LagStats::from_seconds([0.0, 0.001])),
            event_loop_lag: None,
            warmup: (1, 0),
            level_failed: true,
            errors: ErrorBreakdown::of(&requests),
            preopened_connections: Some(1),
            requests,
            save_detailed: true,
            server_metrics: None,
        }
    }

    #[test]
    fn level_result_format() {
        let text = serde_json::to_string_pretty(&sample()).unwrap();
        insta::assert_snapshot!(text);
    }

    #[test]
    fn summary_row_points_at_the_level_file() {
        let row = LevelSummary::of(&sample());
        assert_eq!(row.file, "c1.json");
        assert_eq!((row.completed, row.failed), (1, 1));
        assert_eq!(row.median_ttft_ms, Some(125.0));
    }
}
