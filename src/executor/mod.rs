//! The tokio walker: runs planned steps in dependency order, in parallel up to `--jobs`, holding
//! exclusive resources, starting services lazily, staging outputs and recording results last.

pub mod progress;
pub mod services;
pub mod wait;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

use serde::Serialize;
use tokio::sync::{Mutex, Semaphore, watch};
use tokio_util::sync::CancellationToken;

use crate::cache::{KeyParts, LockFile, Record, StatCache};
use crate::manifest::{Pipeline, Step, StepId};
use crate::plan::{self, Action, StepPlan};
use crate::steps::{Provenance, StepIo};
pub use progress::Progress;
use services::{ServiceError, Services};
use wait::Resources;

/// How a run behaves.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Steps run at once.
    pub jobs: usize,
    /// Keep running independent branches after a failure.
    pub keep_going: bool,
    /// Steps forced to rerun.
    pub forced: BTreeSet<StepId>,
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "status", content = "detail")]
pub enum Status {
    /// It ran and succeeded.
    Ran,
    /// It was fresh (or became fresh: its upstream reran with identical outputs).
    Fresh,
    /// It was not needed.
    Skipped,
    /// It failed.
    Failed(String),
    /// It did not start: an upstream step failed or the run stopped.
    NotRun(String),
    /// A service that was started for this run.
    Started,
    /// A service nothing needed.
    Idle,
}

/// One row of the summary.
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    /// The step id.
    pub id: StepId,
    /// How it ended.
    #[serde(flatten)]
    pub status: Status,
    /// Seconds it ran.
    pub duration_s: f64,
    /// True when its outputs came from the record instead of running it.
    pub cached: bool,
    /// Its log file, when it ran.
    pub log: Option<PathBuf>,
}

/// What the run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Per step, in dependency order.
    pub steps: Vec<StepResult>,
    /// True when Ctrl-C (or SIGTERM) stopped the run.
    pub interrupted: bool,
}

impl RunReport {
    /// True when no step failed and the run was not interrupted.
    pub fn success(&self) -> bool {
        !self.interrupted
            && self
                .steps
                .iter()
                .all(|s| !matches!(s.status, Status::Failed(_) | Status::NotRun(_)))
    }
}

struct Shared {
    pipeline: Arc<Pipeline>,
    lock: Mutex<LockFile>,
    stat: Arc<StatCache>,
    jobs: Semaphore,
    resources: Arc<Resources>,
    services: Services,
    /// Ctrl-C (or SIGTERM): running steps stop.
    cancel: CancellationToken,
    /// Ctrl-C, or a failure without `--keep-going`: steps still waiting stop waiting.
    halt: CancellationToken,
    failed: AtomicBool,
    options: RunOptions,
    actions: BTreeMap<StepId, Action>,
    done: BTreeMap<StepId, watch::Sender<Option<bool>>>,
    progress: Progress,
    provenance: Provenance,
}

/// Runs the plan. `cancel` fires on Ctrl-C.
pub async fn execute(
    pipeline: Arc<Pipeline>,
    plans: &[StepPlan],
    lock: LockFile,
    stat: Arc<StatCache>,
    options: RunOptions,
    progress: Progress,
    cancel: CancellationToken,
) -> RunReport {
    let actions: BTreeMap<StepId, Action> =
        plans.iter().map(|p| (p.id.clone(), p.action)).collect();
    let resources: Arc<Resources> = Arc::new(
        pipeline
            .steps
            .values()
            .flat_map(|s| s.resources.iter())
            .map(|r| (r.clone(), Arc::new(Mutex::new(()))))
            .collect(),
    );
    let service_steps = {
        // A service's identity hashes its inputs (a model's weights): off the async threads.
        let (pipeline, lock, stat, actions) = (
            pipeline.clone(),
            lock.clone(),
            stat.clone(),
            actions.clone(),
        );
        let work = move || service_steps(&pipeline, &lock, &stat, &actions);
        match tokio::task::spawn_blocking(work).await {
            Ok(steps) => steps,
            Err(err) => std::panic::resume_unwind(err.into_panic()),
        }
    };
    let services = Services::new(
        service_steps,
        &pipeline.profile,
        &pipeline.workspace,
        resources.clone(),
        stat.clone(),
        progress.clone(),
    );
    let done = pipeline
        .steps
        .keys()
        .map(|id| (id.clone(), watch::channel(None).0))
        .collect();
    let provenance = Provenance {
        profile: pipeline.profile.clone(),
        manifest_digest: pipeline.manifest_digest.clone(),
        profile_digest: pipeline.profile_digest.clone(),
        forge_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let shared = Arc::new(Shared {
        jobs: Semaphore::new(options.jobs.max(1)),
        pipeline: pipeline.clone(),
        lock: Mutex::new(lock),
        stat,
        resources,
        services,
        halt: cancel.child_token(),
        cancel,
        failed: AtomicBool::new(false),
        options,
        actions,
        done,
        progress,
        provenance,
    });
    let mut tasks = Vec::new();
    for p in plans {
        if p.action.may_run() {
            let shared = shared.clone();
            let id = p.id.clone();
            tasks.push((
                p.id.clone(),
                tokio::spawn(async move { run_one(&shared, &id).await }),
            ));
        }
    }
    let mut results: BTreeMap<StepId, StepResult> = BTreeMap::new();
    for (id, task) in tasks {
        let result = task.await.unwrap_or_else(|err| StepResult {
            id: id.clone(),
            status: Status::Failed(format!("internal error: {err}")),
            duration_s: 0.0,
            cached: false,
            log: None,
        });
        results.insert(id, result);
    }
    shared.services.stop_all().await;
    let steps = plans
        .iter()
        .map(|p| {
            results
                .remove(&p.id)
                .unwrap_or_else(|| idle_result(p, &shared))
        })
        .collect();
    RunReport {
        steps,
        interrupted: shared.cancel.is_cancelled(),
    }
}

/// Each service with its log, its planned users and its identity (the digest of its key parts).
fn service_steps(
    pipeline: &Pipeline,
    lock: &LockFile,
    stat: &StatCache,
    actions: &BTreeMap<StepId, Action>,
) -> Vec<(Step, PathBuf, usize, String)> {
    pipeline
        .steps
        .values()
        .filter(|s| s.is_service())
        .map(|s| {
            let users = plan::service_users(pipeline, &s.id)
                .into_iter()
                .filter(|u| actions[*u].may_run())
                .count();
            let identity = plan::key_parts(pipeline, s, lock, stat).digest();
            (s.clone(), pipeline.log_path(&s.id), users, identity)
        })
        .collect()
}

fn idle_result(p: &StepPlan, shared: &Shared) -> StepResult {
    let status = match p.action {
        Action::Start | Action::Idle => match shared.services.start_failure(&p.id) {
            Some(why) => Status::Failed(why),
            None if shared.services.was_started(&p.id) => Status::Started,
            None => Status::Idle,
        },
        Action::Fresh => Status::Fresh,
        _ => Status::Skipped,
    };
    StepResult {
        id: p.id.clone(),
        cached: status == Status::Fresh,
        status,
        duration_s: 0.0,
        log: None,
    }
}

/// Waits for upstream steps, decides (early cutoff), starts services, runs, records.
async fn run_one(shared: &Shared, id: &str) -> StepResult {
    let result = run_guarded(shared, id).await;
    let ok = matches!(result.status, Status::Ran | Status::Fresh);
    if matches!(result.status, Status::Failed(_)) {
        shared.failed.store(true, Ordering::SeqCst);
        if !shared.options.keep_going {
            shared.halt.cancel();
        }
    }
    let services = service_closure(&shared.pipeline, id);
    shared.services.user_done(&services).await;
    if let Some(tx) = shared.done.get(id) {
        tx.send_replace(Some(ok));
    }
    result
}

async fn run_guarded(shared: &Shared, id: &str) -> StepResult {
    let pipeline = &shared.pipeline;
    let step = &pipeline.steps[id];
    let not_run = |why: String| StepResult {
        id: StepId::from(id),
        status: Status::NotRun(why),
        duration_s: 0.0,
        cached: false,
        log: None,
    };
    for up in plan::material_upstream(pipeline, id) {
        if !shared.actions[&up].may_run() {
            continue;
        }
        let mut rx = shared.done[&up].subscribe();
        let outcome = match rx.wait_for(Option::is_some).await {
            Ok(value) => *value,
            Err(_) => Some(false),
        };
        if outcome != Some(true) {
            return not_run(format!("upstream `{up}` did not succeed"));
        }
    }
    if shared.halt.is_cancelled() {
        return not_run(halt_reason(shared));
    }
    let (parts, state) = match key_and_state(shared, id).await {
        Ok(found) => found,
        Err(err) => {
            return StepResult {
                id: StepId::from(id),
                status: Status::Failed(format!("internal error: {err}")),
                duration_s: 0.0,
                cached: false,
                log: None,
            };
        }
    };
    match (&state, shared.actions[id]) {
        (plan::State::Fresh, _) | (plan::State::Absent(_), Action::Pending) => {
            shared
                .progress
                .line(&format!("{id}: fresh (upstream outputs unchanged)"));
            return StepResult {
                id: StepId::from(id),
                status: Status::Fresh,
                duration_s: 0.0,
                cached: true,
                log: None,
            };
        }
        _ => {}
    }
    let missing: Vec<&String> = parts
        .inputs
        .iter()
        .filter(|(_, d)| d.is_missing())
        .map(|(p, _)| p)
        .collect();
    if !missing.is_empty() {
        let message = format!(
            "declared input {} does not exist",
            crate::manifest::diagnostics::list(&missing)
        );
        shared.progress.line(&format!("{id}: failed: {message}"));
        return StepResult {
            id: StepId::from(id),
            status: Status::Failed(message),
            duration_s: 0.0,
            cached: false,
            log: None,
        };
    }
    execute_step(shared, step, parts).await
}

/// The step's key parts and its state against its record. Hashing inputs and outputs can take
/// seconds, so it runs on a blocking thread, from a copy of the lock file: no other step waits
/// on the lock file's mutex meanwhile. Its upstream records are committed already (it waited for
/// them), so the copy holds everything its key reads.
async fn key_and_state(
    shared: &Shared,
    id: &str,
) -> Result<(KeyParts, plan::State), tokio::task::JoinError> {
    let lock = shared.lock.lock().await.clone();
    let (pipeline, stat) = (shared.pipeline.clone(), shared.stat.clone());
    let forced = shared.options.forced.contains(id);
    let id = id.to_string();
    tokio::task::spawn_blocking(move || {
        let step = &pipeline.steps[&id];
        let parts = plan::key_parts(&pipeline, step, &lock, &stat);
        let state = plan::state(&pipeline, step, &parts, &lock, &stat, forced);
        (parts, state)
    })
    .await
}

async fn execute_step(shared: &Shared, step: &Step, parts: KeyParts) -> StepResult {
    let id = step.id.as_str();
    let log = shared.pipeline.log_path(id);
    let fail = |message: String, duration: f64| {
        let tail = crate::steps::process::tail(&log, 20);
        let mut text = format!("{id}: failed: {message}");
        if !tail.is_empty() {
            text.push_str(&format!(
                "\nlast lines of `{}`:\n{}",
                log.display(),
                tail.join("\n")
            ));
        }
        shared.progress.line(&text);
        StepResult {
            id: StepId::from(id),
            status: Status::Failed(message),
            duration_s: duration,
            cached: false,
            log: Some(log.clone()),
        }
    };
    let mut service_infos = BTreeMap::new();
    for need in step
        .needs
        .iter()
        .filter(|n| shared.pipeline.steps[*n].is_service())
    {
        match (shared.services)
            .ensure_up(need, &shared.cancel, &shared.halt)
            .await
        {
            Ok(info) => {
                service_infos.insert(need.to_string(), info);
            }
            Err(ServiceError::Halted) => return halted(shared, id),
            Err(ServiceError::Failed(message)) => return fail(message, 0.0),
        }
    }
    let Ok(_guards) = wait::lock_resources(&shared.resources, &step.resources, &shared.halt).await
    else {
        return halted(shared, id);
    };
    let Ok(_permit) = wait::job_slot(&shared.jobs, &shared.halt).await else {
        return halted(shared, id);
    };
    if shared.halt.is_cancelled() {
        return halted(shared, id);
    }
    let staging = match prepare_staging(&shared.pipeline, step) {
        Ok(staging) => staging,
        Err(err) => return fail(format!("cannot prepare staging directory: {err}"), 0.0),
    };
    if let Some(parent) = log.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let _ = std::fs::write(&log, b"");
    let bar = shared.progress.start(id, step.kind().name());
    let step_cancel = shared.cancel.child_token();
    let io = StepIo {
        step_id: id.to_string(),
        workspace: shared.pipeline.workspace.clone(),
        outputs: staging.clone(),
        log: log.clone(),
        services: service_infos,
        provenance: shared.provenance.clone(),
        cancel: step_cancel.clone(),
        progress: bar.clone(),
    };
    let started_at = SystemTime::now();
    let started = Instant::now();
    let deaths: Vec<_> = service_closure(&shared.pipeline, id)
        .into_iter()
        .filter_map(|s| shared.services.slot(&s).map(|slot| (s, slot.died.clone())))
        .collect();
    let outcome = tokio::select! {
        outcome = crate::steps::run(step, io) => outcome,
        service = first_death(&deaths) => {
            step_cancel.cancel();
            Err(crate::steps::StepError::new(shared.services.death(&service).unwrap_or_else(|| format!("service `{service}` exited"))))
        }
    };
    let duration = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(err) if shared.cancel.is_cancelled() => {
            shared.progress.line(&format!("{id}: interrupted"));
            return StepResult {
                id: StepId::from(id),
                status: Status::NotRun(format!("interrupted ({err})")),
                duration_s: duration,
                cached: false,
                log: Some(log),
            };
        }
        Err(err) => {
            // What the step wrote before failing (a bench level's result with its failed count)
            // stays in staging for inspection until the step runs again; it is never recorded.
            let partial: Vec<String> = staging
                .iter()
                .filter(|p| p.exists())
                .map(|p| p.display().to_string())
                .collect();
            let mut message = err.message;
            // A server that failed under the step (HTTP 5xx, a dead engine) explains the failure
            // better than the step's own symptom: its first logged error leads the message.
            let causes: Vec<String> = service_closure(&shared.pipeline, id)
                .iter()
                .filter_map(|s| {
                    crate::steps::root_cause::service_failure(s, &shared.pipeline.log_path(s))
                })
                .filter(|cause| !message.contains(cause.as_str()))
                .collect();
            if !causes.is_empty() {
                message = format!("{}\n{message}", causes.join("\n"));
            }
            if !partial.is_empty() {
                message.push_str(&format!(
                    "\npartial outputs (not recorded): {}",
                    partial.join(", ")
                ));
            }
            return fail(message, duration);
        }
    };
    match commit(
        shared,
        step,
        &staging,
        parts,
        started_at,
        duration,
        outcome.exit_code,
    )
    .await
    {
        Ok(()) => {
            shared
                .progress
                .line(&format!("{id}: done in {}", format_secs(duration)));
            StepResult {
                id: StepId::from(id),
                status: Status::Ran,
                duration_s: duration,
                cached: false,
                log: Some(log),
            }
        }
        Err(message) => fail(message, duration),
    }
}

/// Why a step that had not started will not: Ctrl-C, or another step's failure.
fn halt_reason(shared: &Shared) -> String {
    if shared.cancel.is_cancelled() {
        "interrupted".into()
    } else {
        "stopped after a failure (use `--keep-going` to continue independent steps)".into()
    }
}

/// The result of a step whose wait (for a service, a resource, a job slot) the run ended.
fn halted(shared: &Shared, id: &str) -> StepResult {
    StepResult {
        id: StepId::from(id),
        status: Status::NotRun(halt_reason(shared)),
        duration_s: 0.0,
        cached: false,
        log: None,
    }
}

async fn first_death(deaths: &[(StepId, CancellationToken)]) -> StepId {
    if deaths.is_empty() {
        return std::future::pending().await;
    }
    let futures = deaths.iter().map(|(id, token)| {
        Box::pin(async move {
            token.cancelled().await;
            id.clone()
        })
    });
    futures_util::future::select_all(futures).await.0
}

/// Services `id` uses, directly or through other services.
fn service_closure(pipeline: &Pipeline, id: &str) -> Vec<StepId> {
    let mut out = Vec::new();
    for need in &pipeline.steps[id].needs {
        if pipeline.steps[need].is_service() {
            out.push(need.clone());
            out.extend(service_closure(pipeline, need));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Fresh, empty staging paths for each declared output.
fn prepare_staging(pipeline: &Pipeline, step: &Step) -> std::io::Result<Vec<PathBuf>> {
    let root = pipeline
        .state_dir()
        .join("staging")
        .join(&pipeline.profile)
        .join(&step.id);
    crate::fsutil::remove_any(&root)?;
    let mut paths = Vec::new();
    for (index, output) in step.outputs.iter().enumerate() {
        let dir = root.join(index.to_string());
        std::fs::create_dir_all(&dir)?;
        let name = std::path::Path::new(output)
            .file_name()
            .map_or_else(|| "output".into(), |n| n.to_os_string());
        paths.push(dir.join(name));
    }
    Ok(paths)
}

/// Moves staged outputs into place, hashes them, and writes the record last.
async fn commit(
    shared: &Shared,
    step: &Step,
    staging: &[PathBuf],
    parts: KeyParts,
    started_at: SystemTime,
    duration: f64,
    exit_code: Option<i32>,
) -> Result<(), String> {
    for (index, staged) in staging.iter().enumerate() {
        if std::fs::symlink_metadata(staged).is_err() {
            return Err(format!(
                "declared output `{}` was not produced\nhint: write it to `{{{{ outputs[{index}] }}}}` (the staging path), not to the final path",
                step.outputs[index]
            ));
        }
    }
    let workspace = shared.pipeline.workspace.clone();
    let stat = shared.stat.clone();
    let outputs = step.outputs.clone();
    let staging = staging.to_vec();
    let digests = tokio::task::spawn_blocking(
        move || -> Result<BTreeMap<String, crate::cache::Digest>, String> {
            let mut digests = BTreeMap::new();
            for (output, staged) in outputs.iter().zip(&staging) {
                let target = workspace.join(output);
                crate::fsutil::replace(staged, &target)
                    .map_err(|e| format!("cannot move output into `{output}`: {e}"))?;
                let digest = stat
                    .digest(&target)
                    .map_err(|e| format!("cannot hash `{output}`: {e}"))?
                    .ok_or_else(|| format!("output `{output}` vanished"))?;
                digests.insert(output.clone(), digest);
            }
            Ok(digests)
        },
    )
    .await
    .map_err(|e| format!("internal error: {e}"))??;
    let record = Record {
        key: parts.digest(),
        parts,
        outputs: digests,
        started_at: crate::time::rfc3339(started_at),
        duration_s: duration,
        exit_code,
        forge_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    {
        let mut lock = shared.lock.lock().await;
        // Re-read first when another run (sharing the results directory) wrote the file meanwhile.
        lock.commit(&shared.pipeline.lock_path(), |lock| {
            lock.steps.insert(step.id.to_string(), record);
        })
        .map_err(|e| e.to_string())?;
    }
    // The stat cache is a cache: a failed write costs a rehash next time, never a wrong key.
    let stat = shared.stat.clone();
    let _ = tokio::task::spawn_blocking(move || stat.save()).await;
    Ok(())
}

/// `1.2s`, `3m 04s`.
pub fn format_secs(secs: f64) -> String {
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let whole = secs.round() as u64;
        format!("{}m {:02}s", whole / 60, whole % 60)
    }
}
