//! `forge run M --profile P --remote`: the same pipeline on a rented GPU through SkyPilot, and
//! back. `--profile a5000,l4,a100` launches one cluster per profile, in parallel.
//!
//! Order of events, per profile: load and check the `[remote]` table, the rehearsal gate, a clean
//! repository (all before anything is rented); write the workdir (the repository at `HEAD`) and
//! the task file; `sky launch`; fetch `results/<profile>/` into a staging directory; `sky down`
//! (also after a failure and on Ctrl-C); verify every output against the lock file that came
//! with it; move the staging directory over the local results; print the hours and dollars.
pub mod compare;
pub mod config;
pub mod prepare;
pub mod session;
pub mod sky;
pub mod task;
pub mod verify;

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use crate::cli::RunArgs;
use crate::commands::{EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, Failure};
use prepare::{Prepared, Request};
use session::{Ending, Spend};

/// The variable that names the `sky` program to drive instead of the one Forge builds.
pub const SKY_VARIABLE: &str = "FORGE_SKY";
/// The pipeline that builds the SkyPilot environment, relative to the workspace.
pub const TOOLS_PIPELINE: &str = "pipelines/remote.toml";

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: EXIT_USAGE,
        message: message.into(),
    }
}

/// Runs `forge run ... --remote`.
pub fn run(args: &RunArgs, color: bool) -> Result<i32, Failure> {
    let profiles = profiles(args)?;
    let request = Request {
        manifest: args.pipeline.manifest.clone(),
        sets: args.pipeline.sets.clone(),
        skip_gate: args.skip_gate,
    };
    let prepared = prepare_all(&request, &profiles, color)?;
    if args.dry_run {
        for p in &prepared {
            println!(
                "# {}\n{}",
                p.task_file.display(),
                std::fs::read_to_string(&p.task_file).unwrap_or_default()
            );
        }
        return Ok(0);
    }
    missing_secrets(&prepared)?;
    let workspace = prepared[0].pipeline.workspace.clone();
    let sky = sky::Sky {
        program: sky_program(&workspace)?,
    };
    let _lock = crate::cache::WorkspaceLock::acquire(&workspace.join(".forge").join("lock"))
        .map_err(|e| usage(format!("error: {e}")))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| usage(format!("error: cannot start the runtime: {e}")))?;
    let spends = runtime.block_on(async {
        let cancel = CancellationToken::new();
        tokio::spawn(watch_signals(cancel.clone()));
        let runs = prepared.iter().map(|p| session::run(p, &sky, &cancel));
        futures_util::future::join_all(runs).await
    });
    summarize(&spends);
    if spends.iter().filter(|s| s.ending == Ending::Landed).count() > 1 {
        let dirs: Vec<(String, PathBuf)> = prepared
            .iter()
            .map(|p| {
                (
                    p.pipeline.profile.clone(),
                    p.pipeline.workspace.join(&p.pipeline.results_dir),
                )
            })
            .collect();
        compare::print(&compare::compare(&dirs));
    }
    Ok(if spends.iter().any(|s| s.ending == Ending::Interrupted) {
        EXIT_INTERRUPTED
    } else if spends
        .iter()
        .all(|s| s.ending == Ending::Landed && s.torn_down)
    {
        0
    } else {
        EXIT_FAILED
    })
}

/// The profile list, and the options a remote run does not take.
fn profiles(args: &RunArgs) -> Result<Vec<String>, Failure> {
    let Some(list) = &args.pipeline.profile else {
        return Err(usage(
            "error: `--remote` needs `--profile` (one, or several separated by commas: `--profile a5000,l4`)",
        ));
    };
    let select = &args.select;
    if !select.only.is_empty()
        || select.from.is_some()
        || !select.force.is_empty()
        || select.force_all
        || args.keep_going
        || args.json
        || args.jobs.is_some()
    {
        return Err(usage(
            "error: `--remote` runs the whole pipeline on the pod; it takes `--profile`, `--set`, `--skip-gate` and `--dry-run` only\nhint: run a subset of steps locally, or change the profile",
        ));
    }
    let mut names: Vec<String> = Vec::new();
    for name in list.split(',').map(str::trim) {
        if name.is_empty() || names.iter().any(|n| n == name) {
            return Err(usage(format!(
                "error: invalid profile list `{list}`: empty or repeated name\nhint: for example `--profile a5000,l4,a100`"
            )));
        }
        names.push(name.to_string());
    }
    Ok(names)
}

/// Every profile loaded, gated and written before the first launch: a problem in one profile
/// rents nothing at all.
fn prepare_all(
    request: &Request,
    profiles: &[String],
    color: bool,
) -> Result<Vec<Prepared>, Failure> {
    let mut loaded = Vec::new();
    let mut problems = Vec::new();
    for profile in profiles {
        match prepare::load(request, profile, color).and_then(|(pipeline, remote)| {
            prepare::gate(&pipeline, request.skip_gate)?;
            Ok((pipeline, remote))
        }) {
            Ok(ok) => loaded.push(ok),
            Err(error) => problems.push(error.to_string()),
        }
    }
    if !problems.is_empty() {
        return Err(usage(problems.join("\n")));
    }
    let (root, commit) =
        prepare::repository(&loaded[0].0.workspace).map_err(|e| usage(e.to_string()))?;
    loaded
        .into_iter()
        .map(|(pipeline, remote)| {
            prepare::prepare(request, pipeline, remote, &root, &commit)
                .map_err(|e| usage(e.to_string()))
        })
        .collect()
}

/// A secret the profile forwards must have a value in this shell before anything is rented.
fn missing_secrets(prepared: &[Prepared]) -> Result<(), Failure> {
    let mut missing: Vec<String> = Vec::new();
    for p in prepared {
        for name in &p.remote.secrets {
            let empty = std::env::var_os(name).is_none_or(|v| v.is_empty());
            if empty && !missing.contains(name) {
                missing.push(name.clone());
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(usage(format!(
        "error: the profile forwards {} to the pod, but this shell has no value for it\nhint: `export {}=...` (SkyPilot reads the value from Forge's environment; it is never written to a file)",
        crate::manifest::diagnostics::list(&missing),
        missing[0]
    )))
}

/// `FORGE_SKY` when set; otherwise the SkyPilot environment built (and cached) by
/// `pipelines/remote.toml` from `constraints/skypilot.txt`.
fn sky_program(workspace: &std::path::Path) -> Result<PathBuf, Failure> {
    if let Some(program) = std::env::var_os(SKY_VARIABLE) {
        let program = PathBuf::from(program);
        if !program.is_file() {
            return Err(usage(format!(
                "error: {SKY_VARIABLE} names `{}`, which is not a file\nhint: point it at SkyPilot's `sky`, or unset it to use the environment Forge builds",
                program.display()
            )));
        }
        return Ok(program);
    }
    let manifest = workspace.join(TOOLS_PIPELINE);
    if !manifest.is_file() {
        return Err(usage(format!(
            "error: no `{TOOLS_PIPELINE}` to build SkyPilot's environment from\nhint: set {SKY_VARIABLE} to a `sky` program (`pip install 'skypilot[runpod]==0.14.1'`)"
        )));
    }
    eprintln!("[forge] the SkyPilot environment ({TOOLS_PIPELINE}; cached after the first build)");
    let tools = RunArgs {
        pipeline: crate::cli::PipelineArgs {
            manifest,
            profile: None,
            sets: Vec::new(),
        },
        select: crate::cli::SelectArgs::default(),
        jobs: None,
        keep_going: false,
        skip_gate: false,
        dry_run: false,
        json: false,
        remote: false,
    };
    match crate::commands::run(&tools)? {
        0 => Ok(workspace.join(".forge/envs/skypilot/bin/sky")),
        code => Err(Failure {
            code,
            message: "error: the SkyPilot environment did not build (see above)".into(),
        }),
    }
}

async fn watch_signals(cancel: CancellationToken) {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("[forge] interrupted: stopping `sky launch` and tearing every cluster down");
    cancel.cancel();
}

fn summarize(spends: &[Spend]) {
    eprintln!(
        "\n  {:14}  {:10}  {:>7}  {:>9}  {:>9}  CLUSTER",
        "PROFILE", "STATUS", "HOURS", "USD", "USD MAX"
    );
    for s in spends {
        let status = match &s.ending {
            Ending::Landed => "landed",
            Ending::LaunchFailed(_) => "no launch",
            Ending::StepFailed(_) => "FAILED",
            Ending::Rejected(_) => "rejected",
            Ending::Interrupted => "stopped",
        };
        let usd = s
            .usd_at_profile_price
            .map_or("-".into(), |u| format!("{u:.2}"));
        let down = if s.torn_down {
            "down"
        } else {
            "MAYBE STILL UP"
        };
        eprintln!(
            "  {:14}  {status:10}  {:>7.2}  {usd:>9}  {:>9.2}  {} ({down})",
            s.profile, s.hours, s.usd_at_most, s.cluster
        );
        match &s.ending {
            Ending::LaunchFailed(why) | Ending::StepFailed(why) | Ending::Rejected(why) => {
                eprintln!("  {:14}  {why}", "");
            }
            Ending::Landed | Ending::Interrupted => {}
        }
    }
}
