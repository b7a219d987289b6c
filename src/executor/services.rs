//! Service lifetimes: a service starts when the first step that needs it is about to run, stays
//! up while its users run, and stops when the last planned user finishes, when anything fails,
//! or on Ctrl-C: SIGTERM to its process group, a grace period, then SIGKILL.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, OwnedMutexGuard};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::manifest::body::Service;
use crate::manifest::{Probe, Step};
use crate::steps::ServiceInfo;
use crate::steps::process::{self, Environment, Group, Spec};

use super::wait::{self, Halted, Resources};

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

/// Why a service is not up for a step that needs it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServiceError {
    /// The run stopped while the step waited for the service's start or its resources.
    #[error("the run stopped while waiting for a service")]
    Halted,
    /// The service failed to start; every later user sees the same error.
    #[error(transparent)]
    Start(Arc<StartError>),
    /// The service stopped after its last planned user, before this user asked for it.
    #[error("service `{0}` was already stopped")]
    Stopped(String),
    /// The step needs something that is not a service of this run.
    #[error("`{0}` is not a service")]
    Unknown(String),
}

/// Why a service did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The step has no service body.
    #[error("step `{0}` is not a service")]
    NotAService(String),
    /// Something already answers on the address its readiness probe checks.
    #[error(
        "cannot start service `{id}`: something already listens on `{address}`\nhint: stop that server, or give this service another port (for example `--set port=...`)"
    )]
    PortBusy {
        /// The service.
        id: String,
        /// The probe's `host:port`.
        address: String,
    },
    /// Its process could not be spawned (or its log opened).
    #[error("cannot start service `{id}`: {source}")]
    Spawn {
        /// The service.
        id: String,
        /// The cause.
        source: std::io::Error,
    },
    /// It started but did not become ready.
    #[error("{}", not_ready(.id, .reason, .log))]
    NotReady {
        /// The service.
        id: String,
        /// What happened instead.
        #[source]
        reason: ReadinessError,
        /// What its log says.
        log: LogExcerpt,
    },
}

/// Why a started service was not ready.
#[derive(Debug, thiserror::Error)]
pub enum ReadinessError {
    /// Its process exited first.
    #[error("exited ({0}) before it was ready")]
    Exited(std::process::ExitStatus),
    /// Ctrl-C ended the wait.
    #[error("start was cancelled")]
    Cancelled,
    /// The readiness timeout passed.
    #[error("was not ready after {}", crate::time::format_duration(*.0))]
    TimedOut(Duration),
    /// The HTTP client for the probe could not be built.
    #[error("{0}")]
    Client(#[source] reqwest::Error),
}

/// A service that exited while steps needed it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", died(.id, .code, .log))]
pub struct ServiceDied {
    /// The service.
    pub id: String,
    /// Its exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    /// What its log says.
    pub log: LogExcerpt,
}

fn not_ready(id: &str, reason: &ReadinessError, log: &LogExcerpt) -> String {
    log.around(&format!("service `{id}` {reason}"))
}

fn died(id: &str, code: &Option<i32>, log: &LogExcerpt) -> String {
    let code = code.map_or("a signal".to_string(), |c| format!("code {c}"));
    log.around(&format!(
        "service `{id}` exited ({code}) while steps needed it"
    ))
}

/// What a service's log says about its failure: the first error it logged and its last lines.
#[derive(Debug, Clone)]
pub struct LogExcerpt {
    root_cause: Option<String>,
    log: std::path::PathBuf,
    tail: Vec<String>,
}

impl LogExcerpt {
    /// Reads service `id`'s log now.
    fn read(id: &str, log: &std::path::Path) -> Self {
        Self {
            root_cause: crate::steps::root_cause::service_failure(id, log),
            log: log.to_path_buf(),
            tail: process::tail(log, process::TAIL_LINES),
        }
    }

    /// A failure for people: the root cause first (the summary shows the first line), then
    /// `what` happened, then the log's last lines.
    fn around(&self, what: &str) -> String {
        let tail = format!(
            "last lines of `{}`:\n{}",
            self.log.display(),
            self.tail.join("\n")
        );
        match &self.root_cause {
            Some(cause) => format!("{cause}\n{what}\n{tail}"),
            None => format!("{what}\n{tail}"),
        }
    }
}

impl From<Halted> for ServiceError {
    fn from(_: Halted) -> Self {
        ServiceError::Halted
    }
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
    slots: BTreeMap<String, Arc<Slot>>,
    progress: super::Progress,
    stat: Arc<crate::cache::StatCache>,
    resources: Arc<Resources>,
    identities: BTreeMap<String, String>,
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
                .ok_or_else(|| ServiceError::Unknown(id.to_string()))?;
            let mut phase = wait::lock(&slot.phase, halt).await?;
            match &*phase {
                Phase::Up { info, .. } => return Ok(info.clone()),
                Phase::Failed(error) => return Err(ServiceError::Start(error.clone())),
                Phase::Stopped => return Err(ServiceError::Stopped(id.to_string())),
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
    pub async fn user_done(&self, ids: &[String]) {
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

fn probe_address(probe: &Probe) -> Option<String> {
    match probe {
        Probe::Tcp(address) => Some(address.clone()),
        Probe::Http(url) => {
            let rest = url.split_once("://")?.1;
            let host = rest.split('/').next()?;
            Some(if host.contains(':') {
                host.to_string()
            } else {
                format!("{host}:80")
            })
        }
        Probe::Log(_) => None,
    }
}

/// A 2xx answer whose body contains `contains` (when given).
async fn http_ready(client: &reqwest::Client, url: &str, contains: Option<&str>) -> bool {
    let Ok(response) = client.get(url).send().await else {
        return false;
    };
    if !response.status().is_success() {
        return false;
    }
    match contains {
        Some(text) => response.text().await.is_ok_and(|body| body.contains(text)),
        None => true,
    }
}

async fn wait_ready(
    group: &mut Group,
    ready: &crate::manifest::Ready,
    log: &std::path::Path,
    cancel: &CancellationToken,
) -> Result<(), ReadinessError> {
    let timeout = ready.timeout;
    let deadline = Instant::now() + timeout;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(ReadinessError::Client)?;
    loop {
        if let Ok(Some(status)) = group.child.try_wait() {
            return Err(ReadinessError::Exited(status));
        }
        if cancel.is_cancelled() {
            return Err(ReadinessError::Cancelled);
        }
        let ok = match &ready.probe {
            Probe::Http(url) => http_ready(&client, url, ready.contains.as_deref()).await,
            Probe::Tcp(address) => tokio::net::TcpStream::connect(address).await.is_ok(),
            Probe::Log(text) => std::fs::read(log)
                .is_ok_and(|b| String::from_utf8_lossy(&b).contains(text.as_str())),
        };
        if ok {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(ReadinessError::TimedOut(timeout));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The variable naming the file where a service's launcher may publish facts about itself (the
/// engine's torch and CUDA runtime versions, which only its own environment knows).
pub const FACTS_FILE_ENV: &str = "FORGE_FACTS_FILE";

/// The facts file of a service whose log is `log` (`.forge/logs/<id>.log.facts.json`).
fn facts_file(log: &std::path::Path) -> std::path::PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".facts.json");
    std::path::PathBuf::from(name)
}

/// Merges the string facts a launcher published in `file` (a JSON object) into `facts`; the facts
/// Forge gathered itself win, and a missing or unreadable file adds nothing.
fn published_facts(file: &std::path::Path, facts: &mut BTreeMap<String, serde_json::Value>) {
    let Ok(text) = std::fs::read_to_string(file) else {
        return;
    };
    let Ok(serde_json::Value::Object(published)) = serde_json::from_str(&text) else {
        return;
    };
    for (key, value) in published {
        if value.is_string() {
            facts.entry(key).or_insert(value);
        }
    }
}

/// What results need to know about a running server: engine version (`/version`), served model
/// (`/v1/models`), and the model's identity (blake3 of its weights directory, or the hub id).
async fn gather_facts(
    service: &Service,
    workspace: &std::path::Path,
    stat: &Arc<crate::cache::StatCache>,
) -> BTreeMap<String, serde_json::Value> {
    use serde_json::{Value, json};
    let mut facts = BTreeMap::new();
    if let Some(url) = &service.url {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build();
        if let Ok(client) = client {
            let get = |path: &str| {
                client
                    .get(format!("{}{path}", url.trim_end_matches('/')))
                    .send()
            };
            if let Ok(response) = get("/version").await
                && let Ok(body) = response.json::<Value>().await
                && let Some(version) = body.get("version")
            {
                facts.insert("engine_version".into(), version.clone());
            }
            if let Ok(response) = get("/v1/models").await
                && let Ok(body) = response.json::<Value>().await
                && let Some(id) = body.pointer("/data/0/id")
            {
                facts.insert("served_name".into(), id.clone());
            }
        }
    }
    if let Some(model) = &service.model {
        facts.insert("model_id".into(), json!(model));
        let dir = workspace.join(model);
        // Hashing weights (gigabytes the first time) runs off the async threads.
        let digest = {
            let (stat, dir) = (stat.clone(), dir.clone());
            tokio::task::spawn_blocking(move || stat.input_digest(&dir)).await
        };
        match digest {
            Ok(Ok(Some(digest))) => {
                facts.insert(
                    "model_sha".into(),
                    json!(format!("blake3:{}", digest.digest)),
                );
                if let Ok(text) = std::fs::read_to_string(dir.join("forge-model.json"))
                    && let Ok(source) = serde_json::from_str::<Value>(&text)
                {
                    facts.insert("model_source".into(), source);
                }
                if let Ok(text) = std::fs::read_to_string(dir.join("forge-quant.json"))
                    && let Ok(record) = serde_json::from_str::<Value>(&text)
                {
                    facts.insert("model_quantization".into(), record);
                }
            }
            _ => {
                // A hub id: the server resolves it; its revision is not pinned here.
                facts.insert("model_sha".into(), Value::Null);
            }
        }
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_launcher_adds_string_facts_without_overriding_forges() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = facts_file(&dir.path().join("serve.log"));
        assert!(file.ends_with("serve.log.facts.json"));
        let mut facts =
            BTreeMap::from([("engine_version".to_string(), serde_json::json!("0.32.0"))]);
        published_facts(&file, &mut facts);
        assert_eq!(facts.len(), 1, "a missing file adds nothing");
        std::fs::write(
            &file,
            r#"{"engine_torch": "2.10.0+cu128", "engine_cuda": "12.8", "engine_version": "9", "n": 1}"#,
        )
        .expect("write");
        published_facts(&file, &mut facts);
        assert_eq!(facts["engine_version"], "0.32.0");
        assert_eq!(facts["engine_torch"], "2.10.0+cu128");
        assert_eq!(facts["engine_cuda"], "12.8");
        assert!(!facts.contains_key("n"), "only strings");
    }
}
