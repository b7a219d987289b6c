//! The subcommands: load the pipeline, plan, run, and print what a person or a machine reads.

use std::io::IsTerminal;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::cache::{LockFile, StatCache, WorkspaceLock};
use crate::cli::{
    CleanArgs, GraphArgs, GraphFormat, PipelineArgs, PlanArgs, PreflightArgs, ProfilesArgs,
    RunArgs, SelectArgs, ShowArgs,
};
use crate::executor::{self, Progress, RunOptions, Status};
use crate::manifest::{self, LoadOptions, Pipeline};
use crate::plan::{self, Selection, StepPlan};

/// Exit code: a step failed.
pub const EXIT_FAILED: i32 = 1;
/// Exit code: manifest or usage error.
pub const EXIT_USAGE: i32 = 2;
/// Exit code: interrupted by Ctrl-C.
pub const EXIT_INTERRUPTED: i32 = 130;

/// An error that ends a command with an exit code and a message for stderr.
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub code: i32,
    /// The rendered message.
    pub message: String,
}

impl Failure {
    fn usage(message: impl std::fmt::Display) -> Self {
        Self {
            code: EXIT_USAGE,
            message: format!("error: {message}"),
        }
    }
}

fn color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Loads and validates the pipeline named by the arguments.
pub fn load(args: &PipelineArgs) -> Result<Pipeline, Failure> {
    let options = LoadOptions {
        manifest: args.manifest.clone(),
        profile: args.profile.clone(),
        sets: args.sets.clone(),
    };
    manifest::load(&options).map_err(|errors| Failure {
        code: EXIT_USAGE,
        message: errors.render(color()),
    })
}

fn selection(select: &SelectArgs) -> Selection {
    Selection {
        only: select.only.clone(),
        from: select.from.clone(),
        force: select.force.clone(),
        force_all: select.force_all,
    }
}

fn load_state(pipeline: &Pipeline) -> Result<(LockFile, StatCache), Failure> {
    let lock = LockFile::load(&pipeline.lock_path()).map_err(Failure::usage)?;
    let stat = StatCache::load(&pipeline.state_dir().join("stat-cache.json"));
    Ok((lock, stat))
}

/// `forge plan`.
pub fn plan(args: &PlanArgs) -> Result<i32, Failure> {
    let pipeline = load(&args.pipeline)?;
    let (lock, stat) = load_state(&pipeline)?;
    let plans =
        plan::plan(&pipeline, &lock, &stat, &selection(&args.select)).map_err(Failure::usage)?;
    let _ = stat.save();
    print_plan(&pipeline, &plans, &lock, args.json);
    Ok(0)
}

fn print_plan(pipeline: &Pipeline, plans: &[StepPlan], lock: &LockFile, json: bool) {
    let estimate = crate::estimate::estimate(pipeline, plans, lock);
    if json {
        let value = serde_json::json!({"pipeline": pipeline.name, "profile": pipeline.profile, "steps": plans, "estimate": estimate});
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
        return;
    }
    println!(
        "{} ({}), profile `{}`",
        pipeline.name,
        pipeline.manifest_path.display(),
        pipeline.profile
    );
    let width = plans.iter().map(|p| p.id.len()).max().unwrap_or(4).max(4);
    let kind_width = plans
        .iter()
        .map(|p| p.kind.name().len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "  {:width$}  {:kind_width$}  {:10}  WHY",
        "STEP", "KIND", "STATUS"
    );
    for p in plans {
        let mut reasons = p.reasons.iter();
        let first = reasons.next().map_or("", String::as_str);
        println!(
            "  {:width$}  {:kind_width$}  {:10}  {first}",
            p.id,
            p.kind,
            p.action.label()
        );
        for reason in reasons {
            println!("  {:width$}  {:kind_width$}  {:10}  {reason}", "", "", "");
        }
    }
    let runs = plans
        .iter()
        .filter(|p| p.action == plan::Action::Run)
        .count();
    let pending = plans
        .iter()
        .filter(|p| p.action == plan::Action::Pending)
        .count();
    println!(
        "{runs} to run, {pending} pending on upstream outputs, {} fresh",
        plans
            .iter()
            .filter(|p| p.action == plan::Action::Fresh)
            .count()
    );
    print!("{}", estimate.table());
}

/// `forge run`.
pub fn run(args: &RunArgs) -> Result<i32, Failure> {
    if args.remote {
        return crate::remote::run(args, color());
    }
    let pipeline = load(&args.pipeline)?;
    let selection = selection(&args.select);
    if args.dry_run {
        let (lock, stat) = load_state(&pipeline)?;
        let plans = plan::plan(&pipeline, &lock, &stat, &selection).map_err(Failure::usage)?;
        print_plan(&pipeline, &plans, &lock, args.json);
        return Ok(0);
    }
    let _workspace_lock =
        WorkspaceLock::acquire(&pipeline.state_dir().join("lock")).map_err(Failure::usage)?;
    let (mut lock, stat) = load_state(&pipeline)?;
    let mut plans = plan::plan(&pipeline, &lock, &stat, &selection).map_err(Failure::usage)?;
    crate::estimate::estimate(&pipeline, &plans, &lock)
        .check_budget()
        .map_err(Failure::usage)?;
    preflight_before_run(&pipeline, &plans)?;
    if crate::gate::applies(&pipeline, &plans) {
        pass_gate(&pipeline, &mut lock, &stat, args.skip_gate)?;
        // The gate file is an input of the report: plan again with it written.
        plans = plan::plan(&pipeline, &lock, &stat, &selection).map_err(Failure::usage)?;
    }
    let forced = if selection.force_all {
        pipeline.steps.keys().cloned().collect()
    } else {
        plan::expand_names(&pipeline, &selection.force, "--force").map_err(Failure::usage)?
    };
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let options = RunOptions {
        jobs,
        keep_going: args.keep_going,
        forced,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::usage(format!("cannot start the runtime: {e}")))?;
    let pipeline = Arc::new(pipeline);
    let stat = Arc::new(stat);
    let report = runtime.block_on(async {
        // What a run killed with `kill -9` left running goes before anything starts.
        for line in crate::steps::leftovers::stop_recorded(&pipeline.workspace).await {
            eprintln!("{line}");
        }
        let cancel = CancellationToken::new();
        tokio::spawn(watch_signals(cancel.clone(), pipeline.workspace.clone()));
        executor::execute(
            pipeline.clone(),
            &plans,
            lock,
            stat.clone(),
            options,
            Progress::new(),
            cancel,
        )
        .await
    });
    let _ = stat.save();
    if report.success() && args.select.only.is_empty() && args.select.from.is_none() {
        record_complete(&pipeline)?;
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    }
    print_summary(&report);
    Ok(if report.interrupted {
        EXIT_INTERRUPTED
    } else if report.success() {
        0
    } else {
        EXIT_FAILED
    })
}

/// `forge preflight`: the table, and exit code 2 when a check fails.
pub fn preflight(args: &PreflightArgs) -> Result<i32, Failure> {
    let pipeline = load(&args.pipeline)?;
    let report = crate::preflight::check(&pipeline).map_err(Failure::usage)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", report.table());
    }
    if pipeline.preflight.is_none() {
        eprintln!(
            "note: profile `{}` declares no `[preflight]`: these are this machine's facts, nothing was expected",
            pipeline.profile
        );
    }
    Ok(if report.passed { 0 } else { EXIT_USAGE })
}

/// Runs preflight when the profile declares one and the plan does more than re-render results;
/// a failed check stops the run before anything starts.
fn preflight_before_run(pipeline: &Pipeline, plans: &[StepPlan]) -> Result<(), Failure> {
    if pipeline.preflight.is_none() || !crate::preflight::needed(pipeline, plans) {
        return Ok(());
    }
    let report = crate::preflight::check(pipeline).map_err(Failure::usage)?;
    eprint!("{}", report.table());
    if report.passed {
        return Ok(());
    }
    Err(Failure::usage(format!(
        "preflight failed for profile `{}`: nothing was run\nhint: fix the rows marked FAIL (WHAT TO DO says how); `forge preflight {} --profile {}` checks again without running anything",
        pipeline.profile,
        pipeline.manifest_path.display(),
        pipeline.profile
    )))
}

async fn watch_signals(cancel: CancellationToken, workspace: std::path::PathBuf) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!(
        "[forge] interrupted: stopping running steps and services (interrupt again to kill them now)"
    );
    cancel.cancel();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("[forge] interrupted again: killing what is still running");
    crate::steps::leftovers::kill_now(&workspace);
}

fn print_summary(report: &executor::RunReport) {
    let width = report
        .steps
        .iter()
        .map(|s| s.id.len())
        .max()
        .unwrap_or(4)
        .max(4);
    eprintln!(
        "\n  {:width$}  {:10}  {:>9}  CACHED",
        "STEP", "STATUS", "DURATION"
    );
    for step in &report.steps {
        let (status, detail) = match &step.status {
            Status::Ran => ("ran", None),
            Status::Fresh => ("fresh", None),
            Status::Skipped => ("skipped", None),
            Status::Failed(why) => ("FAILED", Some(why)),
            Status::NotRun(why) => ("not run", Some(why)),
            Status::Started => ("started", None),
            Status::Idle => ("idle", None),
        };
        let duration = if step.duration_s > 0.0 {
            executor::format_secs(step.duration_s)
        } else {
            "-".into()
        };
        let cached = if step.cached { "yes" } else { "no" };
        eprintln!("  {:width$}  {status:10}  {duration:>9}  {cached}", step.id);
        if let Some(detail) = detail {
            let first = detail.lines().next().unwrap_or_default();
            eprintln!("  {:width$}  {first}", "");
            if let Some(log) = &step.log {
                eprintln!("  {:width$}  log: {}", "", log.display());
            }
        }
    }
}

/// `forge graph`.
pub fn graph(args: &GraphArgs) -> Result<i32, Failure> {
    let pipeline = load(&args.pipeline)?;
    match args.format {
        GraphFormat::Mermaid => print!("{}", crate::graph::mermaid(&pipeline)),
        GraphFormat::Dot => print!("{}", crate::graph::dot(&pipeline)),
    }
    Ok(0)
}

/// `forge show`.
pub fn show(args: &ShowArgs) -> Result<i32, Failure> {
    let pipeline = load(&args.pipeline)?;
    let ids = plan::expand_names(&pipeline, std::slice::from_ref(&args.step), "show")
        .map_err(Failure::usage)?;
    let (lock, _) = load_state(&pipeline)?;
    let records: Vec<_> = ids
        .iter()
        .map(|id| (id, lock.steps.get(id.as_str())))
        .collect();
    if args.json {
        let value: serde_json::Map<String, serde_json::Value> = records
            .iter()
            .map(|(id, r)| (id.to_string(), serde_json::to_value(r).unwrap_or_default()))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
        return Ok(0);
    }
    for (id, record) in records {
        let Some(r) = record else {
            println!(
                "{id}: never run in profile `{}` (no record in `{}`)",
                pipeline.profile,
                pipeline.lock_path().display()
            );
            continue;
        };
        println!("{id} ({})", pipeline.steps[id].kind());
        println!("  key:      {}", r.key);
        println!(
            "  started:  {}  ({}), exit code {}",
            r.started_at,
            executor::format_secs(r.duration_s),
            r.exit_code.map_or("-".into(), |c| c.to_string())
        );
        println!("  forge:    {}", r.forge_version);
        for (path, digest) in &r.parts.inputs {
            println!("  input:    {path}  {}", prefix(&digest.to_string()));
        }
        for (path, digest) in &r.parts.reads {
            println!("  reads:    {path}  {}", prefix(&digest.to_string()));
        }
        for name in r.parts.env.keys() {
            println!("  env:      {name}");
        }
        for (up, outputs) in &r.parts.upstream {
            println!("  needs:    {up} ({} outputs)", outputs.len());
        }
        for (service, parts) in &r.parts.services {
            println!("  service:  {service}  {}", prefix(&parts.digest()));
        }
        for (path, d) in &r.outputs {
            println!(
                "  output:   {path}  {}  ({} files, {} bytes)",
                prefix(&d.digest),
                d.files,
                d.bytes
            );
        }
        println!("  log:      {}", pipeline.log_path(id).display());
    }
    Ok(0)
}

/// The first 16 characters of a digest (all of it when shorter: a lock file edited by hand).
fn prefix(digest: &str) -> &str {
    digest
        .char_indices()
        .nth(16)
        .map_or(digest, |(at, _)| &digest[..at])
}

/// `forge clean`.
pub fn clean(args: &CleanArgs) -> Result<i32, Failure> {
    let pipeline = load(&args.pipeline)?;
    let state = pipeline.state_dir();
    let _lock = if args.dry_run {
        None
    } else {
        Some(WorkspaceLock::acquire(&state.join("lock")).map_err(Failure::usage)?)
    };
    if !args.dry_run {
        // Process records go with `--all`: first stop what they name, as the next run would.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| Failure::usage(format!("cannot start the runtime: {e}")))?;
        for line in runtime.block_on(crate::steps::leftovers::stop_recorded(&pipeline.workspace)) {
            eprintln!("{line}");
        }
    }
    let targets: Vec<std::path::PathBuf> = if args.all {
        std::fs::read_dir(&state)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| !p.ends_with("lock"))
                    .collect()
            })
            .unwrap_or_default()
    } else {
        vec![
            state.join("staging"),
            state.join("logs"),
            state.join("stat-cache.json"),
        ]
    };
    for target in targets.iter().filter(|t| t.exists()) {
        if args.dry_run {
            println!("would remove {}", target.display());
        } else {
            crate::fsutil::remove_any(target).map_err(|e| {
                Failure::usage(format!("cannot remove `{}`: {e}", target.display()))
            })?;
            println!("removed {}", target.display());
        }
    }
    Ok(0)
}

/// `forge profiles`.
pub fn profiles(args: &ProfilesArgs) -> Result<i32, Failure> {
    let pipeline = load(&PipelineArgs {
        manifest: args.manifest.clone(),
        profile: None,
        sets: Vec::new(),
    })?;
    let dir = pipeline.workspace.join("profiles");
    let mut rows = Vec::new();
    for name in manifest::profiles::available(&dir) {
        let text = std::fs::read_to_string(dir.join(format!("{name}.toml"))).unwrap_or_default();
        let raw: Option<manifest::schema::RawProfile> = toml::from_str(&text).ok();
        let description = raw
            .as_ref()
            .and_then(|r| r.description.clone())
            .unwrap_or_default();
        let extends = raw
            .as_ref()
            .and_then(|r| r.extends.as_ref().map(|e| e.get_ref().clone()));
        rows.push(
            serde_json::json!({"name": name, "description": description, "extends": extends}),
        );
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        );
    } else if rows.is_empty() {
        println!("no profiles in `{}`", dir.display());
    } else {
        for row in &rows {
            let extends = row["extends"]
                .as_str()
                .map(|e| format!(" (extends {e})"))
                .unwrap_or_default();
            println!(
                "{:16} {}{extends}",
                row["name"].as_str().unwrap_or_default(),
                row["description"].as_str().unwrap_or_default()
            );
        }
    }
    Ok(0)
}

/// `forge compare`: the cost results of several profiles side by side.
pub fn compare(args: &crate::cli::CompareArgs) -> Result<i32, Failure> {
    let mut dirs = Vec::new();
    for profile in args.profile.split(',').map(str::trim) {
        let pipeline = load(&PipelineArgs {
            manifest: args.manifest.clone(),
            profile: Some(profile.to_string()),
            sets: Vec::new(),
        })?;
        dirs.push((
            profile.to_string(),
            pipeline.workspace.join(&pipeline.results_dir),
        ));
    }
    let comparison = crate::remote::compare::compare(&dirs);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&comparison).unwrap_or_default()
        );
    } else {
        crate::remote::compare::print(&comparison);
    }
    Ok(if comparison.rows.is_empty() {
        EXIT_FAILED
    } else {
        0
    })
}

/// `forge bench`: an ad-hoc sweep against any endpoint.
pub fn bench(args: &crate::steps::bench::BenchArgs) -> Result<i32, Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::usage(format!("cannot start the runtime: {e}")))?;
    match runtime.block_on(crate::steps::bench::run_adhoc(args.clone())) {
        Ok(()) => Ok(0),
        Err(err) => Err(Failure {
            code: EXIT_FAILED,
            message: format!("error: {err}"),
        }),
    }
}

/// Marks the lock file: every step of the pipeline is fresh or ran (what a gate requires).
/// A run that changes nothing leaves the file as it was (no new `finished_at` to commit).
fn record_complete(pipeline: &Pipeline) -> Result<(), Failure> {
    let forge_version = env!("CARGO_PKG_VERSION");
    let lock = LockFile::load(&pipeline.lock_path()).map_err(Failure::usage)?;
    if lock.complete.as_ref().is_some_and(|c| {
        c.manifest_digest == pipeline.manifest_digest && c.forge_version == forge_version
    }) {
        return Ok(());
    }
    LockFile::update(&pipeline.lock_path(), |lock| {
        lock.complete = Some(crate::cache::CompleteRun {
            manifest_digest: pipeline.manifest_digest.clone(),
            forge_version: forge_version.to_string(),
            finished_at: crate::time::now_rfc3339(),
        });
    })
    .map_err(Failure::usage)
}

/// Checks the gate of a run that does paid work, and records how it got past it.
fn pass_gate(
    pipeline: &Pipeline,
    lock: &mut LockFile,
    stat: &StatCache,
    skip_gate: bool,
) -> Result<(), Failure> {
    let reason = match crate::gate::check(pipeline, stat) {
        Ok(None) => return Ok(()),
        Ok(Some(passed)) => {
            return crate::gate::record_passed(pipeline, lock, passed).map_err(Failure::usage);
        }
        Err(reason) => reason,
    };
    let required = pipeline.requires.clone().unwrap_or_default();
    if !skip_gate {
        return Err(Failure::usage(format!(
            "profile `{}` requires a successful `{required}` run of this pipeline before it starts a service or a `gpu` step: {reason}\nhint: run `forge run {} --profile {required}`, or pass `--skip-gate` to run anyway (recorded with the results and shown in the report)",
            pipeline.profile,
            pipeline.manifest_path.display()
        )));
    }
    eprintln!("warning: skipping the `{required}` gate: {reason}");
    crate::gate::record_skipped(pipeline, lock, &required, &reason).map_err(Failure::usage)
}
