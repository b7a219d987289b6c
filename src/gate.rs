//! The rehearsal gate: a profile may require another profile's complete, successful run of the
//! same pipeline (`requires = "m1-rehearsal"` in `profiles/a5000.toml`). The gate guards paid
//! work only: it applies when a run would start a service or run a step holding the `gpu`
//! resource; re-rendering cost, charts and report from committed results never needs it.
//!
//! When it applies, the run refuses to start unless the required profile's last complete run
//! used the same manifest, the same Forge, and the same step code (every input file both runs
//! declare has the same content), and says what to run instead. A passing gate is recorded in
//! the lock file (`gated_by`) and in `<results>/gate.json`, clearing an earlier `--skip-gate`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::cache::{GatePassed, GateSkipped, InputDigest, KeyParts, LockFile, StatCache};
use crate::manifest::{self, LoadOptions, Pipeline};
use crate::plan::{Action, StepPlan};

/// The resource that marks paid work.
pub const GPU: &str = "gpu";

/// `<results>/gate.json`: how the last run that needed the gate got past it. The report reads
/// it and shows a skipped gate as a warning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum GateFile {
    /// The gate was open: the rehearsal these results relied on.
    Passed {
        /// The rehearsal's record.
        gate: GatePassed,
    },
    /// The run started with `--skip-gate` while the gate was closed.
    Skipped {
        /// The gate it skipped and why it was closed.
        gate: GateSkipped,
    },
}

impl GateFile {
    /// The gate file of a pipeline's results.
    pub fn path(pipeline: &Pipeline) -> PathBuf {
        pipeline
            .workspace
            .join(&pipeline.results_dir)
            .join("gate.json")
    }

    /// Writes the file atomically.
    pub fn save(&self, pipeline: &Pipeline) -> Result<(), String> {
        let path = Self::path(pipeline);
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        crate::fsutil::write_atomic(&path, &bytes)
            .map_err(|e| format!("cannot write `{}`: {e}", path.display()))
    }
}

/// True when the planned run does paid work: it starts a service, or it may run a step that
/// holds the `gpu` resource.
pub fn applies(pipeline: &Pipeline, plans: &[StepPlan]) -> bool {
    plans.iter().any(|p| {
        p.action == Action::Start
            || p.action.may_run()
                && pipeline.steps[&p.id]
                    .resources
                    .iter()
                    .any(|r| r.as_str() == GPU)
    })
}

/// Checks the gate: `Ok(None)` when the profile has none, `Ok(Some(record))` when it is open,
/// and why it is closed, in words for the user, otherwise.
pub fn check(pipeline: &Pipeline, stat: &StatCache) -> Result<Option<GatePassed>, String> {
    let Some(required) = &pipeline.requires else {
        return Ok(None);
    };
    let options = LoadOptions {
        manifest: pipeline.manifest_path.clone(),
        profile: Some(required.clone()),
        sets: Vec::new(),
    };
    let rehearsal = manifest::load(&options).map_err(|errors| {
        format!(
            "profile `{required}` does not load:\n{}",
            errors.render(false)
        )
    })?;
    let lock = LockFile::load(&rehearsal.lock_path()).map_err(|e| e.to_string())?;
    let Some(complete) = &lock.complete else {
        return Err(format!(
            "`{required}` has never completed a run of this pipeline (no complete run in `{}`)",
            rehearsal.lock_path().display()
        ));
    };
    if complete.manifest_digest != pipeline.manifest_digest {
        return Err(format!(
            "`{}` changed since `{required}` last completed ({})",
            pipeline.manifest_path.display(),
            complete.finished_at
        ));
    }
    let version = env!("CARGO_PKG_VERSION");
    if complete.forge_version != version {
        return Err(format!(
            "`{required}` last completed with Forge {}, this is Forge {version}",
            complete.forge_version
        ));
    }
    let rehearsed = recorded_inputs(&lock);
    let mut shared = BTreeMap::new();
    for step in pipeline.steps.values() {
        let parts = crate::plan::key_parts(pipeline, step, &LockFile::default(), stat);
        for (path, digest) in all_inputs(&parts) {
            let Some(before) = rehearsed.get(&path) else {
                continue;
            };
            if *before != digest {
                return Err(format!(
                    "`{path}` (an input of `{}`) changed since `{required}` last ran it",
                    step.id
                ));
            }
            shared.insert(path, digest);
        }
    }
    Ok(Some(GatePassed {
        required: required.clone(),
        manifest_digest: complete.manifest_digest.clone(),
        forge_version: complete.forge_version.clone(),
        finished_at: complete.finished_at.clone(),
        inputs: shared,
        checked_at: crate::time::now_rfc3339(),
    }))
}

/// Records an open gate: in the lock file (clearing an earlier skipped gate) and in
/// `<results>/gate.json`.
pub fn record_passed(
    pipeline: &Pipeline,
    lock: &mut LockFile,
    passed: GatePassed,
) -> Result<(), String> {
    GateFile::Passed {
        gate: passed.clone(),
    }
    .save(pipeline)?;
    lock.gate_skipped = None;
    lock.gated_by = Some(passed);
    lock.save(&pipeline.lock_path()).map_err(|e| e.to_string())
}

/// Records a skipped gate: in the lock file and in `<results>/gate.json`.
pub fn record_skipped(
    pipeline: &Pipeline,
    lock: &mut LockFile,
    required: &str,
    reason: &str,
) -> Result<(), String> {
    let skipped = GateSkipped {
        required: required.to_string(),
        reason: reason.to_string(),
        at: crate::time::now_rfc3339(),
    };
    GateFile::Skipped {
        gate: skipped.clone(),
    }
    .save(pipeline)?;
    lock.gated_by = None;
    lock.gate_skipped = Some(skipped);
    lock.save(&pipeline.lock_path()).map_err(|e| e.to_string())
}

/// Every input digest in a step's key parts, its services' included.
fn all_inputs(parts: &KeyParts) -> BTreeMap<String, InputDigest> {
    let mut out = parts.inputs.clone();
    for service in parts.services.values() {
        out.extend(all_inputs(service));
    }
    out
}

/// Input digests recorded by the required profile's runs, by path.
fn recorded_inputs(lock: &LockFile) -> BTreeMap<String, InputDigest> {
    let mut out = BTreeMap::new();
    for record in lock.steps.values() {
        out.extend(all_inputs(&record.parts));
    }
    out
}
