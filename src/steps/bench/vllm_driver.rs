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

use super::dataset::Prompt;
use super::result::{LevelResult, write_json};
use super::settings::BenchSettings;
use super::sweep::SweepContext;
use super::{BenchError, vllm_result};

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
