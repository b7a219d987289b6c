//! The sweep: resolve the server and model, sample the workload once, run every concurrency
//! level (native or vLLM driver), write `c<N>.json` after each level and `summary.json` at the
//! end, and apply `on_level_failure`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::client::{Client, ClientConfig, chain};
use super::dataset::{self, Prompt};
use super::errors::ErrorBreakdown;
use super::metadata;
use super::result::{BenchSummary, LagStats, LevelResult, LevelSummary, write_json};
use super::schedule::{
    LevelPlan, LevelRun, LiveLevel, Requests, Schedule, gamma_arrivals, run_level, trace_arrivals,
};
use super::settings::{BenchSettings, DatasetKind, Driver};
use super::tokenize::TokenCounter;
use super::uncertainty::{self, BenchIntervals, LevelIntervals};
use super::{BenchError, body, metrics, repeats, scrape, vllm_driver};
use crate::steps::io::{Provenance, ServiceInfo, StepIo};

/// Everything a sweep needs besides its settings (built from `StepIo` or ad-hoc arguments).
pub struct SweepContext {
    /// Server base URL without a trailing slash.
    pub base: String,
    /// Served model name.
    pub model: String,
    /// The service the step needs, for its facts.
    pub service: Option<ServiceInfo>,
    /// Relative dataset and tokenizer paths are relative to this.
    pub workspace: PathBuf,
    /// Output directory (created).
    pub out_dir: PathBuf,
    /// Human log file to append to.
    pub log: Option<PathBuf>,
    /// Run provenance.
    pub provenance: Provenance,
    /// Cancellation.
    pub cancel: CancellationToken,
    /// Progress bar.
    pub progress: indicatif::ProgressBar,
}

/// The service a bench measures: the step's only service, or else the only one of them that
/// serves a model (its step declares `model`), so a scraper beside it (the `monitor` service)
/// is not a candidate.
fn served_model(
    services: &std::collections::BTreeMap<String, crate::steps::io::ServiceInfo>,
) -> Option<crate::steps::io::ServiceInfo> {
    if services.len() == 1 {
        return services.values().next().cloned();
    }
    let mut serving = services.values().filter(|s| s.serves_model());
    match (serving.next(), serving.next()) {
        (Some(only), None) => Some(only.clone()),
        _ => None,
    }
}

/// Run a bench step: the sweep described by `settings` against the step's service.
pub async fn run_step(settings: &BenchSettings, io: &StepIo) -> Result<BenchSummary, BenchError> {
    settings.validate()?;
    let service = served_model(&io.services);
    let base = match (&settings.base_url, &service) {
        (Some(url), _) => url.clone(),
        (None, Some(s)) => s.url.clone().ok_or_else(|| {
            BenchError::NoBaseUrl("the step's service publishes no `url`".to_string())
        })?,
        (None, None) => {
            return Err(BenchError::NoBaseUrl(format!(
                "no `base_url` and the step needs {} services, {} of them serving a model (exactly one is required)",
                io.services.len(),
                io.services.values().filter(|s| s.serves_model()).count()
            )));
        }
    };
    let base = base.trim_end_matches('/').to_string();
    crate::steps::url::check_scheme(&base).map_err(|message| BenchError::Settings {
        field: "base_url".into(),
        message,
    })?;
    let served = service
        .as_ref()
        .and_then(|s| s.facts.get("served_name"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let model = match settings.model.clone().or(served) {
        Some(m) => m,
        None => first_model(&base).await?,
    };
    let out_dir = io
        .outputs
        .first()
        .cloned()
        .ok_or_else(|| BenchError::Settings {
            field: "outputs".into(),
            message: "the bench step needs one declared output (its results directory)".into(),
        })?;
    let ctx = SweepContext {
        base,
        model,
        service,
        workspace: io.workspace.clone(),
        out_dir,
        log: Some(io.log.clone()),
        provenance: io.provenance.clone(),
        cancel: io.cancel.clone(),
        progress: io.progress.clone(),
    };
    run_sweep(settings, &ctx).await
}

/// `GET {base}/v1/models` and take the first id.
pub async fn first_model(base: &str) -> Result<String, BenchError> {
    let url = format!("{base}/v1/models");
    let fail = |m: String| {
        BenchError::Http(format!(
            "cannot learn the served model from `{url}`: {m}\nhint: set `model` in the bench settings"
        ))
    };
    let v: Value = reqwest::Client::new()
        .get(&url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| fail(chain(&e)))?
        .error_for_status()
        .map_err(|e| fail(chain(&e)))?
        .json()
        .await
        .map_err(|e| fail(chain(&e)))?;
    v.pointer("/data/0/id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| fail("the answer lists no model".to_string()))
}

/// Run the whole sweep and write its files.
pub async fn run_sweep(
    settings: &BenchSettings,
    ctx: &SweepContext,
) -> Result<BenchSummary, BenchError> {
    settings.validate()?;
    std::fs::create_dir_all(&ctx.out_dir).map_err(|e| BenchError::Io {
        path: ctx.out_dir.clone(),
        source: e,
    })?;
    let n = settings.prompts_per_level as usize;
    let tokenizer = settings
        .tokenizer
        .as_ref()
        .map(|p| dataset::resolve_path(&ctx.workspace, p));
    let counter = match settings.dataset.kind {
        DatasetKind::Jsonl if tokenizer.is_none() => TokenCounter::Estimate,
        _ => TokenCounter::resolve(tokenizer.as_deref(), &ctx.base, &ctx.model).await?,
    };
    let prompts = tokio::select! {
        _ = ctx.cancel.cancelled() => return Err(BenchError::Cancelled),
        p = dataset::sample(settings, &ctx.workspace, &counter, n) => p?,
    };
    let prompts_fp = dataset::fingerprint(&prompts);
    let meta = metadata::build(settings, ctx, &counter, prompts_fp.to_hex().to_string()).await;
    let requests = Arc::new(body::build_requests(settings, &ctx.model, &prompts));
    let mut prompts = prompts;
    if settings.driver == Driver::Native {
        // The request bodies hold the text now; keep only what the schedule needs.
        for p in &mut prompts {
            p.text = Arc::from("");
            p.completion = None;
        }
    }
    let client = Client::new(ClientConfig {
        url: format!("{}{}", ctx.base, settings.endpoint.path()),
        headers: settings.headers.clone().into_iter().collect(),
        api_key: api_key(settings)?,
        request_timeout: Duration::from_secs_f64(settings.request_timeout_s),
        stall_timeout: Duration::from_secs_f64(settings.stall_timeout_s),
        preconnect_url: format!("{}/v1/models", ctx.base),
    })?;
    let mut levels = Vec::new();
    let mut intervals = BenchIntervals::new(settings.seed);
    let mut failure = None;
    for &c in &settings.concurrency {
        if ctx.cancel.is_cancelled() {
            return Err(BenchError::Cancelled);
        }
        let (schedule, mode) = schedule_for(settings, &prompts);
        let fp = level_fingerprint(&prompts_fp, c, &schedule);
        let (mut result, durations) = match settings.driver {
            Driver::Native => native_level(settings, ctx, &client, &requests, c, &schedule).await?,
            Driver::Vllm => {
                let r = vllm_driver::run_level(settings, ctx, &prompts, c, tokenizer.as_deref())
                    .await?;
                let d = vec![r.duration];
                (r, d)
            }
        };
        intervals
            .levels
            .push(level_intervals(settings.seed, &result, &durations).await);
        result.metadata = meta.clone();
        result.mode = mode.to_string();
        result.workload_fingerprint = fp;
        result.level_failed = is_failed(settings, &result);
        write_json(&ctx.out_dir.join(format!("c{c}.json")), &result)?;
        log_line(ctx, &result);
        levels.push(LevelSummary::of(&result));
        if result.level_failed {
            let reason = result
                .errors
                .most_frequent()
                .map(|(_, class)| class.example.clone())
                .unwrap_or_else(|| "driver error".into());
            failure = Some(BenchError::LevelFailed {
                concurrency: c,
                failed: result.metrics.failed,
                total: result.num_prompts,
                reason,
                dir: ctx.out_dir.clone(),
            });
            if settings.on_level_failure == super::OnLevelFailure::Stop {
                break;
            }
        }
    }
    levels.sort_by_key(|l| l.max_concurrency);
    let summary = BenchSummary::new(meta, levels);
    write_json(&ctx.out_dir.join("summary.json"), &summary)?;
    intervals.levels.sort_by_key(|l| l.max_concurrency);
    intervals.write(&ctx.out_dir).map_err(|e| BenchError::Io {
        path: ctx.out_dir.join(uncertainty::FILE),
        source: e,
    })?;
    match failure {
        Some(e) if settings.on_level_failure == super::OnLevelFailure::Stop => Err(e),
        _ => Ok(summary),
    }
}

/// The level's bootstrap intervals (`uncertainty.rs`), computed off the async threads.
async fn level_intervals(seed: u64, result: &LevelResult, durations: &[f64]) -> LevelIntervals {
    let runs = uncertainty::runs_of(&result.requests, durations);
    let c = result.max_concurrency;
    tokio::task::spawn_blocking(move || {
        uncertainty::level_intervals(c, &runs, seed, uncertainty::RESAMPLES)
    })
    .await
    .expect("the bootstrap does not panic")
}

fn is_failed(settings: &BenchSettings, r: &LevelResult) -> bool {
    let total = r.num_prompts.max(1) as f64;
    r.metrics.failed as f64 / total > settings.max_failed_fraction || r.metrics.completed == 0
}

fn schedule_for(settings: &BenchSettings, prompts: &[Prompt]) -> (Schedule, &'static str) {
    if settings.replay_timestamps {
        let ts: Vec<f64> = prompts.iter().map(|p| p.timestamp.unwrap_or(0.0)).collect();
        return (Schedule::Open(trace_arrivals(&ts)), "trace");
    }
    match settings.request_rate {
        None => (Schedule::Closed, "closed"),
        // The same seed at every level: every level sees the same arrival times.
        Some(rate) => (
            Schedule::Open(gamma_arrivals(
                prompts.len(),
                rate,
                settings.burstiness,
                settings.seed,
            )),
            "open",
        ),
    }
}

fn level_fingerprint(prompts: &blake3::Hash, c: u32, schedule: &Schedule) -> String {
    let mut h = blake3::Hasher::new();
    h.update(prompts.as_bytes());
    h.update(&c.to_le_bytes());
    match schedule {
        Schedule::Closed => {
            h.update(b"closed");
        }
        Schedule::Open(a) => {
            h.update(b"open");
            a.iter().for_each(|t| {
                h.update(&t.to_le_bytes());
            });
        }
    }
    h.finalize().to_hex().to_string()
}

fn api_key(settings: &BenchSettings) -> Result<Option<String>, BenchError> {
    let Some(var) = &settings.api_key_env else {
        return Ok(None);
    };
    std::env::var(var)
        .map(Some)
        .map_err(|_| BenchError::Settings {
            field: "api_key_env".into(),
            message: format!("environment variable `{var}` is not set"),
        })
}

async fn native_level(
    settings: &BenchSettings,
    ctx: &SweepContext,
    client: &Client,
    requests: &Arc<Requests>,
    c: u32,
    schedule: &Schedule,
) -> Result<(LevelResult, Vec<f64>), BenchError> {
    let stop = CancellationToken::new();
    let scraper = settings.scrape_metrics.then(|| {
        tokio::spawn(scrape::run(
            format!("{}/metrics", ctx.base),
            Instant::now(),
            stop.clone(),
        ))
    });
    let mut runs = Vec::new();
    let mut failure = None;
    for repeat in 0..settings.repeats {
        match native_repeat(settings, ctx, client, requests, (c, repeat), schedule).await {
            Ok(run) => runs.push(run),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    stop.cancel();
    let server_metrics = match scraper {
        Some(h) => h.await.ok(),
        None => None,
    };
    if let Some(e) = failure {
        return Err(e);
    }
    let durations: Vec<f64> = runs.iter().map(|r| r.duration_s).collect();
    let run = repeats::pool(runs);
    let m = metrics::compute(&run.records, run.duration_s, settings.slo.as_ref());
    let send_lag = LagStats::from_seconds(run.records.iter().map(|r| r.send_lag_s()));
    let loop_lag = LagStats::from_seconds(run.loop_lag_s.iter().map(|&v| f64::from(v)));
    let limit = settings.kept_up_threshold_ms;
    Ok((
        LevelResult {
            metadata: metadata::pending(),
            date: crate::time::now_compact(),
            backend: settings.endpoint.vllm_backend().to_string(),
            label: settings.label.clone(),
            model_id: ctx.model.clone(),
            tokenizer_id: settings.tokenizer.as_ref().map(|p| p.display().to_string()),
            num_prompts: run.records.len() as u64,
            request_rate: settings.request_rate,
            burstiness: settings.burstiness,
            max_concurrency: c,
            duration: run.duration_s,
            start_unix_s: Some(run.start_unix_s),
            client_kept_up: Some(send_lag.p99_ms <= limit && loop_lag.p99_ms <= limit),
            send_lag: Some(send_lag),
            event_loop_lag: Some(loop_lag),
            warmup: (settings.warmup * settings.repeats, run.warmup_failed as u64),
            errors: ErrorBreakdown::of(&run.records),
            preopened_connections: Some(run.preopened_connections),
            metrics: m,
            driver: "native".into(),
            mode: String::new(),
            workload_fingerprint: String::new(),
            level_failed: false,
            requests: run.records,
            save_detailed: settings.save_detailed,
            server_metrics,
        },
        durations,
    ))
}

/// One run of a level (warmup, connection set-up, the measured requests) with its progress line.
async fn native_repeat(
    settings: &BenchSettings,
    ctx: &SweepContext,
    client: &Client,
    requests: &Arc<Requests>,
    (c, repeat): (u32, u32),
    schedule: &Schedule,
) -> Result<LevelRun, BenchError> {
    let bar = &ctx.progress;
    let live = Arc::new(LiveLevel::default());
    let total = u64::from(settings.prompts_per_level);
    bar.set_message(live.line(c, total, 0));
    let stop = CancellationToken::new();
    let ticker = tokio::spawn(live_progress(
        live.clone(),
        client.live_chunks.clone(),
        bar.clone(),
        (c, total),
        stop.clone(),
    ));
    let id_prefix = if settings.repeats > 1 {
        format!("forge-c{c}-r{repeat}-")
    } else {
        format!("forge-c{c}-")
    };
    let run = run_level(LevelPlan {
        client,
        requests,
        num_requests: settings.prompts_per_level as usize,
        concurrency: c,
        schedule,
        warmup: settings.warmup,
        id_prefix,
        cancel: &ctx.cancel,
        live: &live,
    })
    .await;
    stop.cancel();
    let _ = ticker.await;
    bar.set_message(live.line(c, total, client.live_chunks.load(Ordering::Relaxed)));
    run
}

/// Refresh the step's progress line twice a second while a level runs (the bar is hidden when
/// stderr is not a terminal, so logs and tests see nothing of it).
async fn live_progress(
    live: Arc<LiveLevel>,
    chunks: Arc<std::sync::atomic::AtomicU64>,
    bar: indicatif::ProgressBar,
    (c, total): (u32, u64),
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        bar.set_message(live.line(c, total, chunks.load(Ordering::Relaxed)));
    }
}

fn log_line(ctx: &SweepContext, r: &LevelResult) {
    let m = &r.metrics;
    let line = format!(
        "bench c={}: {}/{} ok, {} failed, {:.2} s, {:.1} out tok/s, TTFT p50 {:.1} ms p99 {:.1} ms, TPOT p50 {:.2} ms, ITL p50 {:.2} ms, kept up: {}{}\n",
        r.max_concurrency,
        m.completed,
        r.num_prompts,
        m.failed,
        r.duration,
        m.output_throughput,
        m.ttft.median,
        m.ttft.p99,
        m.tpot.median,
        m.itl.median,
        r.client_kept_up
            .map_or("n/a", |k| if k { "yes" } else { "NO" }),
        r.errors
            .most_frequent()
            .map(|(class, e)| format!(" (most errors: {class} x{}, e.g. {})", e.count, e.example))
            .unwrap_or_default(),
    );
    if let Some(log) = &ctx.log
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(log)
    {
        let _ = f.write_all(line.as_bytes());
    }
}

#[cfg(test)]
mod served_model_tests {
    use super::*;
    use crate::steps::io::ServiceInfo;
    use std::collections::BTreeMap;

    fn service(url: &str, model: bool) -> ServiceInfo {
        let mut facts = BTreeMap::new();
        if model {
            facts.insert(
                "model_id".to_string(),
                serde_json::json!(".forge/models/base"),
            );
        }
        ServiceInfo {
            url: Some(url.to_string()),
            identity: String::new(),
            facts,
        }
    }

    #[test]
    fn the_bench_measures_the_service_that_serves_a_model() {
        let one = BTreeMap::from([("monitor".to_string(), service("http://m", false))]);
        assert_eq!(
            served_model(&one).and_then(|s| s.url).as_deref(),
            Some("http://m")
        );
        let two = BTreeMap::from([
            ("monitor".to_string(), service("http://m", false)),
            ("serve".to_string(), service("http://s", true)),
        ]);
        assert_eq!(
            served_model(&two).and_then(|s| s.url).as_deref(),
            Some("http://s")
        );
        let ambiguous = BTreeMap::from([
            ("a".to_string(), service("http://a", true)),
            ("b".to_string(), service("http://b", true)),
        ]);
        assert!(served_model(&ambiguous).is_none());
    }
}
