//! `driver = "vllm"`: run `vllm bench serve` once per level on Forge's own sampled prompts and
//! normalize its `--save-result --save-detailed` JSON into the same level schema, so the two
//! clients can be compared on identical traffic.
//!
//! The prompts are handed over as a ShareGPT-shaped file read with `--disable-shuffle
//! --no-oversample`, so vLLM sends exactly Forge's prompt list in Forge's order. Output lengths:
//! `--sharegpt-output-len` when `max_tokens` is fixed (or all lengths are equal), else vLLM
//! derives them from the stored reply turns with its tokenizer (equal to Forge's lengths when
//! Forge counted with the same tokenizer).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::dataset::Prompt;
use super::result::{LevelResult, write_json};
use super::settings::BenchSettings;
use super::sweep::SweepContext;
use super::{BenchError, vllm_result};
use crate::steps::process::{self, Ended, Environment, RunError, Spec};

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
    let timeout = level_timeout(settings, prompts.len(), concurrency);
    run_command(settings, ctx, &args, &log_path, timeout).await?;
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
    vllm_result::normalize(settings, &raw, concurrency, tokenizer_dir)
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

#[allow(
    clippy::too_many_arguments,
    reason = "one command line from the sweep's parts, each used once"
)]
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

/// How long `vllm bench serve` gets to exit after SIGTERM before its group is killed.
const TERM_GRACE: Duration = Duration::from_secs(10);

/// Time for `vllm bench serve` to start (Python imports, loading the tokenizer) before it sends.
const STARTUP_ALLOWANCE: Duration = Duration::from_secs(300);

/// How long one `vllm bench serve` level may run before its process group is stopped. No request
/// may take longer than `request_timeout_s` (a slower one fails in Forge's own client), so a level
/// needs at most `ceil((prompts + warmup) / concurrency)` such rounds, plus twice the open-loop
/// arrival schedule (`prompts / request_rate`, doubled for bursty arrivals), plus five minutes to
/// start. Only a hung client reaches it.
pub(super) fn level_timeout(
    settings: &BenchSettings,
    prompts: usize,
    concurrency: u32,
) -> Duration {
    let requests = prompts as f64 + f64::from(settings.warmup);
    let rounds = (requests / f64::from(concurrency.max(1))).ceil();
    let arrivals = settings
        .request_rate
        .filter(|rate| *rate > 0.0)
        .map_or(0.0, |rate| 2.0 * prompts as f64 / rate);
    let seconds = rounds * settings.request_timeout_s + arrivals;
    Duration::try_from_secs_f64(seconds)
        .unwrap_or(Duration::MAX)
        .saturating_add(STARTUP_ALLOWANCE)
}

async fn run_command(
    settings: &BenchSettings,
    ctx: &SweepContext,
    args: &[String],
    log: &Path,
    timeout: Duration,
) -> Result<(), BenchError> {
    // A fresh log per level; the process layer appends to it.
    std::fs::File::create(log).map_err(|e| BenchError::Io {
        path: log.to_path_buf(),
        source: e,
    })?;
    let program = &settings.vllm_command[0];
    let mut set = BTreeMap::new();
    if let Some(var) = &settings.api_key_env
        && let Ok(key) = std::env::var(var)
    {
        set.insert("OPENAI_API_KEY".to_string(), key);
    }
    let spec = Spec {
        argv: std::iter::once(program.clone())
            .chain(args.iter().cloned())
            .collect(),
        // Forge's own directory, as before: a relative `vllm_command` resolves against it.
        dir: std::env::current_dir().unwrap_or_else(|_| ctx.workspace.clone()),
        env: Environment::inherited(set),
        log: log.to_path_buf(),
        record: None,
        grace: TERM_GRACE,
    }
    .recorded(&ctx.workspace, "`vllm bench serve`");
    let ended = process::run(&spec, &ctx.cancel, process::deadline_after(Some(timeout)))
        .await
        .map_err(|e| match e {
            RunError::Spawn(e) => BenchError::Vllm(format!("cannot start `{program}`: {e}\nhint: set `vllm_command` to the program that runs the vllm CLI")),
            RunError::Wait(e) => BenchError::Vllm(format!("`{program}` did not finish: {e}")),
        })?;
    let what = match ended {
        Ended::Exited(status) if status.success() => return Ok(()),
        Ended::Exited(status) => format!("exited with {status}"),
        Ended::Cancelled => return Err(BenchError::Cancelled),
        Ended::TimedOut => format!(
            "did not finish within {} and was stopped (the level's bound from `request_timeout_s`, `prompts_per_level`, `warmup`, `request_rate`)",
            crate::time::format_duration(timeout)
        ),
    };
    Err(BenchError::Vllm(format!(
        "`vllm bench serve` {what}; last lines of `{}`:\n{}",
        log.display(),
        process::tail(log, process::TAIL_LINES).join("\n")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::bench::settings::{DatasetKind, DatasetSettings};

    fn settings() -> BenchSettings {
        BenchSettings::with_dataset(DatasetSettings {
            kind: DatasetKind::Random,
            path: None,
            input_len: Some(8),
            output_len: Some(8),
            range_ratio: 0.0,
        })
    }

    #[test]
    fn a_level_is_bounded_by_rounds_of_the_request_timeout_plus_start_up() {
        let mut s = settings();
        // 32 prompts + 1 warmup at concurrency 4: 9 rounds of 900 s, plus 300 s to start.
        assert_eq!(level_timeout(&s, 32, 4), Duration::from_secs(9 * 900 + 300));
        s.warmup = 0;
        s.request_timeout_s = 10.0;
        assert_eq!(level_timeout(&s, 32, 64), Duration::from_secs(10 + 300));
        // Open loop: the arrival schedule (doubled) comes on top.
        s.request_rate = Some(4.0);
        assert_eq!(
            level_timeout(&s, 32, 64),
            Duration::from_secs(10 + 16 + 300)
        );
        s.request_timeout_s = f64::INFINITY;
        assert_eq!(
            level_timeout(&s, 32, 64),
            Duration::MAX,
            "no overflow panic"
        );
    }
}
