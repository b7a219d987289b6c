//! Runs the built-in `eval` or `retention` kind once, outside a pipeline, against a server
//! that is already up. For checking the wiring by hand:
//!
//! ```text
//! cargo run --example eval_once -- eval <settings.toml> <output-dir>
//! cargo run --example eval_once -- retention <baseline-scores.json> <candidate-scores.json> <retention.json>
//! ```
//!
//! `settings.toml` holds what a manifest puts under `[steps.<id>.with]`; relative paths in it
//! are relative to the current directory (the workspace).

use std::collections::BTreeMap;
use std::path::PathBuf;

use forge::steps::eval::{EvalSettings, RetentionSettings, run_retention, run_step};
use forge::steps::io::{Provenance, StepIo};

fn step_io(outputs: Vec<PathBuf>, log: PathBuf) -> Result<StepIo, Box<dyn std::error::Error>> {
    let cancel = tokio_util::sync::CancellationToken::new();
    let on_ctrl_c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_ctrl_c.cancel();
        }
    });
    Ok(StepIo {
        step_id: "eval-once".into(),
        workspace: std::env::current_dir()?,
        outputs,
        log,
        services: BTreeMap::new(),
        provenance: Provenance {
            profile: "manual".into(),
            forge_version: env!("CARGO_PKG_VERSION").into(),
            ..Provenance::default()
        },
        cancel,
        progress: indicatif::ProgressBar::new_spinner(),
    })
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["eval", settings, output] => {
            let settings: EvalSettings = toml::from_str(&std::fs::read_to_string(settings)?)?;
            let output = PathBuf::from(output);
            std::fs::create_dir_all(&output)?;
            let log = output.join("eval.log");
            std::fs::write(&log, "")?;
            let started = std::time::Instant::now();
            let scores = run_step(&settings, &step_io(vec![output.clone()], log)?).await?;
            for row in &scores.results {
                let stderr = row.stderr.map_or("N/A".to_string(), |s| format!("{s:.4}"));
                println!("{:<12} {:<12} {:<16} {}-shot n={:<4} {:.4} ± {}", row.task, row.metric, row.filter, row.shots, row.n, row.value, stderr);
            }
            for invocation in &scores.metadata.invocations {
                println!("lm-eval {:?}: {:.1} s", invocation.tasks, invocation.duration_s);
            }
            println!("total {:.1} s; wrote {}", started.elapsed().as_secs_f64(), output.join("scores.json").display());
        }
        ["retention", baseline, candidate, output] => {
            let settings = RetentionSettings {
                baseline: baseline.to_string(),
                candidate: candidate.to_string(),
                baseline_label: None,
                candidate_label: None,
            };
            let output = PathBuf::from(output);
            let retention = run_retention(&settings, &step_io(vec![output.clone()], output.with_extension("log"))?).await?;
            println!("{}", serde_json::to_string_pretty(&retention.summary)?);
        }
        _ => return Err("usage: eval_once eval <settings.toml> <output-dir> | retention <baseline> <candidate> <output>".into()),
    }
    Ok(())
}
