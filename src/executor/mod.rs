//! The tokio walker: runs planned steps in dependency order, in parallel up to `--jobs`, holding
//! exclusive resources, starting services lazily, stopping a step whose service dies, and ending
//! waits on cancellation. Staging and commit belong to the cache (`cache/commit.rs`); how steps
//! ended is reported by `report.rs`.

pub mod progress;
pub mod report;
pub mod services;
pub mod wait;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

use tokio::sync::{Mutex, OwnedMutexGuard, Semaphore, SemaphorePermit, watch};
use tokio_util::sync::CancellationToken;

use crate::cache::commit::{self, Ran};
use crate::cache::{KeyParts, LockFile, StatCache};
use crate::manifest::{Pipeline, Step, StepId};
use crate::plan::{self, Action, StepPlan};
use crate::steps::{Outcome, Provenance, ServiceInfo, StepError, StepIo};
pub use progress::Progress;
pub use report::{RunReport, Status, StepResult, format_secs};
use services::{ServiceDied, ServiceError, Services};
use wait::{Halted, Resources};

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
        let result = task
            .await
            .unwrap_or_else(|err| StepResult::failed_early(&id, format!("internal error: {err}")));
        results.insert(id, result);
    }
    shared.services.stop_all().await;
    let steps = plans
        .iter()
        .map(|p| {
            results
                .remove(&p.id)
                .unwrap_or_else(|| report::not_walked(p, &shared.services))
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
            return StepResult::not_run(id, format!("upstream `{up}` did not succeed"));
        }
    }
    if shared.halt.is_cancelled() {
        return halted(shared, id);
    }
    let (parts, state) = match key_and_state(shared, id).await {
        Ok(found) => found,
        Err(err) => return StepResult::failed_early(id, format!("internal error: {err}")),
    };
    match (&state, shared.actions[id]) {
        (plan::State::Fresh, _) | (plan::State::Absent(_), Action::Pending) => {
            return report::became_fresh(&shared.progress, id);
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
        return report::missing_inputs(&shared.progress, id, &missing);
    }
    execute_step(shared, &pipeline.steps[id], parts).await
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

/// Why a step that started did not succeed: its own error, or the death of a service it used.
#[derive(Debug, thiserror::Error)]
enum StepFailure {
    /// The step's kind failed.
    #[error(transparent)]
    Step(#[from] StepError),
    /// A service the step used exited while the step ran.
    #[error(transparent)]
    ServiceDied(#[from] ServiceDied),
    /// A service the step used exited, with no report of why (its monitor recorded none).
    #[error("service `{0}` exited")]
    ServiceExited(StepId),
}

async fn execute_step(shared: &Shared, step: &Step, parts: KeyParts) -> StepResult {
    let id = step.id.as_str();
    let log = shared.pipeline.log_path(id);
    let fail = |message: String, duration: f64| {
        report::failed(&shared.progress, id, message, duration, &log)
    };
    let service_infos = match services_up(shared, step).await {
        Ok(infos) => infos,
        Err(ServiceError::Halted) => return halted(shared, id),
        Err(err) => return fail(err.to_string(), 0.0),
    };
    // Held (not `_`) until the step ends: its resources and its job slot.
    let Ok(_held) = hold(shared, step).await else {
        return halted(shared, id);
    };
    let staging = match commit::prepare_staging(&shared.pipeline, step) {
        Ok(staging) => staging,
        Err(err) => return fail(err.to_string(), 0.0),
    };
    empty_log(&log);
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
    let outcome = run_watched(shared, step, io, &step_cancel).await;
    let duration = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(err) if shared.cancel.is_cancelled() => {
            return report::interrupted(&shared.progress, id, &err, duration, log);
        }
        Err(err) => {
            let services = service_closure(&shared.pipeline, id);
            let message =
                report::failure_message(&shared.pipeline, &services, err.to_string(), &staging);
            return fail(message, duration);
        }
    };
    let ran = Ran {
        started_at,
        duration_s: duration,
        exit_code: outcome.exit_code,
    };
    let committed = commit::commit(
        &shared.pipeline,
        &shared.lock,
        &shared.stat,
        step,
        &staging,
        parts,
        ran,
    )
    .await;
    match committed {
        Ok(()) => report::ran(&shared.progress, id, duration, log),
        Err(err) => fail(err.to_string(), duration),
    }
}

/// Starts (or joins) the services `step` needs and returns what it sees of each.
async fn services_up(
    shared: &Shared,
    step: &Step,
) -> Result<BTreeMap<String, ServiceInfo>, ServiceError> {
    let mut infos = BTreeMap::new();
    for need in step
        .needs
        .iter()
        .filter(|n| shared.pipeline.steps[*n].is_service())
    {
        let info = (shared.services)
            .ensure_up(need, &shared.cancel, &shared.halt)
            .await?;
        infos.insert(need.to_string(), info);
    }
    Ok(infos)
}

/// The step's exclusive resources and one job slot, released on drop; `Halted` when the run
/// halts first.
async fn hold<'a>(
    shared: &'a Shared,
    step: &Step,
) -> Result<(Vec<OwnedMutexGuard<()>>, SemaphorePermit<'a>), Halted> {
    let guards = wait::lock_resources(&shared.resources, &step.resources, &shared.halt).await?;
    let permit = wait::job_slot(&shared.jobs, &shared.halt).await?;
    if shared.halt.is_cancelled() {
        return Err(Halted);
    }
    Ok((guards, permit))
}

/// The step's log, created empty before each run of the step.
fn empty_log(log: &Path) {
    if let Some(parent) = log.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let _ = std::fs::write(log, b"");
}

/// Runs the step's kind until it ends or a service it uses dies; a death cancels the step.
async fn run_watched(
    shared: &Shared,
    step: &Step,
    io: StepIo,
    step_cancel: &CancellationToken,
) -> Result<Outcome, StepFailure> {
    let deaths: Vec<_> = service_closure(&shared.pipeline, &step.id)
        .into_iter()
        .filter_map(|s| shared.services.slot(&s).map(|slot| (s, slot.died.clone())))
        .collect();
    tokio::select! {
        outcome = crate::steps::run(step, io) => Ok(outcome?),
        service = first_death(&deaths) => {
            step_cancel.cancel();
            Err(match shared.services.death(&service) {
                Some(died) => StepFailure::ServiceDied(died),
                None => StepFailure::ServiceExited(service),
            })
        }
    }
}

/// The result of a step that had not started and whose wait (for upstream steps, a service, a
/// resource, a job slot) the run ended.
fn halted(shared: &Shared, id: &str) -> StepResult {
    StepResult::not_run(id, report::halt_reason(shared.cancel.is_cancelled()))
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
