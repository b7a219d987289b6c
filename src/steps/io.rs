//! What the executor hands a built-in step kind when it runs: where to write, what it may read,
//! which services it may call, how to report progress, and when to stop.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

/// Everything a built-in step kind needs from the executor for one run.
#[derive(Debug, Clone)]
pub struct StepIo {
    /// The step's id after matrix expansion (for example `bench-awq`).
    pub step_id: String,
    /// The workspace root; relative paths in settings are relative to it.
    pub workspace: PathBuf,
    /// Staging paths for the step's declared outputs, in declared order. A kind writes here;
    /// the executor moves them into place only when the step succeeds.
    pub outputs: Vec<PathBuf>,
    /// The step's log file (already created); a kind appends human-readable lines to it.
    pub log: PathBuf,
    /// Services this step needs, by step id, with what they publish (for example `url`).
    pub services: BTreeMap<String, ServiceInfo>,
    /// Provenance shared by every result the run writes.
    pub provenance: Provenance,
    /// Cancelled on Ctrl-C or when the run fails; a kind must return promptly once it fires.
    pub cancel: CancellationToken,
    /// A progress bar owned by the executor (hidden when stderr is not a terminal).
    pub progress: indicatif::ProgressBar,
}

/// A running service as its consumers see it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ServiceInfo {
    /// Base URL of the service (`http://127.0.0.1:8099`), when the manifest declares one.
    pub url: Option<String>,
    /// The service's identity digest (blake3 of its resolved config, inputs and upstream outputs).
    pub identity: String,
    /// Facts the service step recorded (engine version, served model, model SHA ...).
    pub facts: BTreeMap<String, serde_json::Value>,
}

impl ServiceInfo {
    /// True when its step declares `model`: it serves one (a scraper beside it does not).
    pub fn serves_model(&self) -> bool {
        self.facts.contains_key("model_id")
    }
}

/// Provenance shared by every result a run writes.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Provenance {
    /// The profile the run resolved (`m1-rehearsal`), or `default`.
    pub profile: String,
    /// blake3 of the manifest file's bytes.
    pub manifest_digest: String,
    /// blake3 of the profile chain's bytes (empty when no profile).
    pub profile_digest: String,
    /// `CARGO_PKG_VERSION` of the forge binary.
    pub forge_version: String,
}
