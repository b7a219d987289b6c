//! Service lifetimes: a service starts when the first step that needs it is about to run, stays
//! up while its users run, and stops when the last planned user finishes, when anything fails,
//! or on Ctrl-C: SIGTERM to its process group, a grace period, then SIGKILL.

mod error;
mod facts;
mod ready;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use tokio::sync::{Mutex, OwnedMutexGuard};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::manifest::{Step, StepId};
use crate::steps::ServiceInfo;
use crate::steps::process::{self, Environment, Group, Spec};

pub use error::{LogExcerpt, ReadinessError, ServiceDied, ServiceError, StartError};
pub use facts::FACTS_FILE_ENV;
use facts::{facts_file, gather_facts, published_facts};
use ready::{probe_address, wait_ready};

use super::wait::{self, Resources};

enum Phase {
    Down,
    Up {
        info: ServiceInfo,
        stop: CancellationToken,
        monitor: JoinHandle<()>,
        _guards: Vec<OwnedMutexGuard<()>>,
    },
    Failed(Arc<StartError>),
    Stopped,
}

/// One service of the pipeline.
pub struct Slot {
    step: Step,
    log: std::path::PathBuf,
    workspace: std::path::PathBuf,
    env: BTreeMap<String, String>,
    phase: Mutex<Phase>,
    users_left: AtomicUsize,
    started: std::sync::atomic::AtomicBool,
    /// Fires when the service exits while it should be up.
    pub died: CancellationToken,
    death: std::sync::OnceLock<ServiceDied>,
}

/// All services of a run.
pub struct Services {
    slots: BTreeMap<StepId, Arc<Slot>>,
    progress: super::Progress,
    stat: Arc<crate::cache::StatCache>,
    resources: Arc<Resources>,
    identities: BTreeMap<StepId, String>,
}

impl Services {
    /// Prepares (but does not start) every service; `users` counts the planned steps that use each.
    pub fn new(
        steps: Vec<(Step, std::path::PathBuf, usize, String)>,
        profile: &str,
        workspace: &std::path::Path,
        resources: Arc<Resources>,
        stat: Arc<crate::cache::StatCache>,
        progress: super::Progress,
    ) -> Self {
        let mut slots = BTreeMap::new();
        let mut identities = BTreeMap::new();
        for (step, log, users, identity) in steps {
            identities.insert(step.id.clone(), identity);
            let mut env = process::step_env(&step, profile, workspace);
            env.insert(
                FACTS_FILE_ENV.to_string(),
                facts_file(&log).display().to_string(),
            );
            slots.insert(
                step.id.clone(),
                Arc::new(Slot {
                    log,
                    env,
                    workspace: workspace.to_path_buf(),
                    phase: Mutex::new(Phase::Down),
                    users_left: AtomicUsize::new(users),
                    started: std::sync::atomic::AtomicBool::new(false),
                    died: CancellationToken::new(),
                    death: std::sync::OnceLock::new(),
                    step,
                }),
            );
        }
        Self {
            slots,
            progress,
            stat,
            resources,
            identities,
        }
    }

    /// The slot of service `id`.
    pub fn slot(&self, id: &str) -> Option<&Arc<Slot>> {
        self.slots.get(id)
    }

    /// Makes sure `id` (and the services it needs) are up; returns what its users see. `cancel`
    /// (Ctrl-C) ends a readiness wait; `halt` (Ctrl-C, or a failure without `--keep-going`) ends
    /// the waits for another user's start and for the service's resources, leaving it down.
    pub fn ensure_up<'a>(
        &'a self,
        id: &'a str,
        cancel: &'a CancellationToken,
        halt: &'a CancellationToken,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<ServiceInfo, ServiceError>> + Send + 'a>>
    {
        Box::pin(async move {
            let slot = self
                .slots
                .get(id)
                .ok_or_else(|| ServiceError::Unknown(StepId::from(id)))?;
            let mut phase = wait::lock(&slot.phase, halt).await?;
            match &*phase {
                Phase::Up { info, .. } => return Ok(info.clone()),
                Phase::Failed(error) => return Err(ServiceError::Start(error.clone())),
                Phase::Stopped => return Err(ServiceError::Stopped(StepId::from(id))),
                Phase::Down => {}
            }
            for need in slot
                .step
                .needs
                .iter()
                .filter(|n| self.slots.contains_key(*n))
            {
                self.ensure_up(need, cancel, halt).await?;
            }
            match self.start(slot, cancel, halt).await {
                Ok(up) => {
                    let info = match &up {
                        Phase::Up { info, .. } => info.clone(),
                        _ => ServiceInfo::default(),
                    };
                    *phase = up;
                    Ok(info)
                }
                Err(ServiceError::Start(error)) => {
                    *phase = Phase::Failed(error.clone());
                    Err(ServiceError::Start(error))
                }
                Err(other) => Err(other),
            }
        })
    }

    async fn start(
        &self,
        slot: &Arc<Slot>,
        cancel: &CancellationToken,
        halt: &CancellationToken,
    ) -> Result<Phase, ServiceError> {
        let step = &slot.step;
        let guards = wait::lock_resources(&self.resources, &step.resources, halt).await?;
        self.spawn_ready(slot, cancel, guards)
            .await
            .map_err(|error| ServiceError::Start(Arc::new(error)))
    }

    /// Spawns the service (its resources held by `guards`) and waits until it is ready.
    async fn spawn_ready(
        &self,
        slot: &Arc<Slot>,
        cancel: &CancellationToken,
        guards: Vec<OwnedMutexGuard<()>>,
    ) -> Result<Phase, StartError> {
        let step = &slot.step;
        let service = step
            .service()
            .ok_or_else(|| StartError::NotAService(step.id.clone()))?;
        if let Some(address) = probe_address(&service.ready.probe)
            && tokio::net::TcpStream::connect(&address).await.is_ok()
        {
            return Err(StartError::PortBusy {
                id: step.id.clone(),
                address,
            });
        }
        let _ = std::fs::remove_file(&slot.log);
        let _ = std::fs::remove_file(facts_file(&slot.log));
        let spec = Spec::shell(
            &service.run,
            &slot.workspace,
            Environment::cleared(slot.env.clone()),
            &slot.log,
            step.stop_grace,
        )
        .recorded(&slot.workspace, &format!("service `{}`", step.id));
        let mut group = process::spawn(&spec).map_err(|source| StartError::Spawn {
            id: step.id.clone(),
            source,
        })?;
        let started = Instant::now();
        let bar = self
            .progress
            .start(&step.id, "starting service, waiting for readiness");
        let ready_result = wait_ready(&mut group, &service.ready, &slot.log, cancel).await;
        bar.finish_and_clear();
        if let Err(reason) = ready_result {
            process::terminate(&mut group, step.stop_grace).await;
            return Err(StartError::NotReady {
                id: step.id.clone(),
                reason,
                log: LogExcerpt::read(&step.id, &slot.log),
            });
        }
        let mut facts = gather_facts(service, &slot.workspace, &self.stat).await;
        published_facts(&facts_file(&slot.log), &mut facts);
        facts.insert(
            "ready_after_s".to_string(),
            serde_json::json!(started.elapsed().as_secs_f64()),
        );
        let info = ServiceInfo {
            url: service.url.clone(),
            identity: self.identities.get(&step.id).cloned().unwrap_or_default(),
            facts,
        };
        slot.started.store(true, Ordering::SeqCst);
        self.progress.line(&format!(
            "{}: ready after {} at {}",
            step.id,
            super::report::format_secs(started.elapsed().as_secs_f64()),
            service.url.as_deref().unwrap_or("(no url)")
        ));
        let stop = CancellationToken::new();
        let monitor = tokio::spawn(monitor(slot.clone(), group, stop.clone()));
        Ok(Phase::Up {
            info,
            stop,
            monitor,
            _guards: guards,
        })
    }

    /// One planned user of each service in `ids` is done; services with no users left stop.
    pub async fn user_done(&self, ids: &[StepId]) {
        for id in ids {
            let Some(slot) = self.slots.get(id) else {
                continue;
            };
            if slot.users_left.fetch_sub(1, Ordering::SeqCst) == 1 {
                stop(slot, &self.progress).await;
            }
        }
    }

    /// Stops every service that is up.
    pub async fn stop_all(&self) {
        for slot in self.slots.values() {
            stop(slot, &self.progress).await;
        }
    }

    /// True when service `id` was started during this run.
    pub fn was_started(&self, id: &str) -> bool {
        self.slots
            .get(id)
            .is_some_and(|s| s.started.load(Ordering::SeqCst))
    }

    /// Why a service failed to start, if it did (read once the run is over).
    pub fn start_failure(&self, id: &str) -> Option<Arc<StartError>> {
        let slot = self.slots.get(id)?;
        match &*slot.phase.try_lock().ok()? {
            Phase::Failed(error) => Some(error.clone()),
            _ => None,
        }
    }

    /// Why a service died, if it did.
    pub fn death(&self, id: &str) -> Option<ServiceDied> {
        self.slots.get(id).and_then(|s| s.death.get().cloned())
    }
}

async fn stop(slot: &Slot, progress: &super::Progress) {
    let mut phase = slot.phase.lock().await;
    if !matches!(*phase, Phase::Up { .. }) {
        return; // a service that never started, failed, or already stopped stays as it is
    }
    if let Phase::Up { stop, monitor, .. } = std::mem::replace(&mut *phase, Phase::Stopped) {
        stop.cancel();
        let _ = monitor.await;
        progress.line(&format!("{}: stopped", slot.step.id));
    }
}

/// Owns the service's process: stops it when asked, reports when it dies on its own.
async fn monitor(slot: Arc<Slot>, mut group: Group, stop: CancellationToken) {
    tokio::select! {
        status = group.child.wait() => {
            process::reap_leftovers(group.pgid, slot.step.stop_grace).await;
            let died = ServiceDied {
                id: slot.step.id.clone(),
                code: status.ok().and_then(|s| s.code()),
                log: LogExcerpt::read(&slot.step.id, &slot.log),
            };
            // Set once, before `died` fires, so every step it stops can read why.
            let _ = slot.death.set(died);
            slot.died.cancel();
        }
        () = stop.cancelled() => {
            process::terminate(&mut group, slot.step.stop_grace).await;
        }
    }
}
