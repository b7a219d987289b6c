//! The rehearsal gate: a profile may require another profile's complete, successful run of the
//! same pipeline (`requires = "m1-rehearsal"` in `profiles/a5000.toml`). The paid run refuses to
//! start unless that run happened on the same manifest, the same Forge, and the same step code
//! (every input file both runs declare has the same content), and says what to run instead.

use std::collections::BTreeMap;

use crate::cache::{KeyParts, LockFile, StatCache};
use crate::manifest::{self, LoadOptions, Pipeline};

/// Why the gate is closed, in words for the user; `Ok` when it is open (or there is none).
pub fn check(pipeline: &Pipeline, stat: &StatCache) -> Result<(), String> {
    let Some(required) = &pipeline.requires else {
        return Ok(());
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
    for step in pipeline.steps.values() {
        let parts = crate::plan::key_parts(pipeline, step, &LockFile::default(), stat);
        for (path, digest) in all_inputs(&parts) {
            if let Some(before) = rehearsed.get(&path)
                && *before != digest
            {
                return Err(format!(
                    "`{path}` (an input of `{}`) changed since `{required}` last ran it",
                    step.id
                ));
            }
        }
    }
    Ok(())
}

/// Every input digest in a step's key parts, its services' included.
fn all_inputs(parts: &KeyParts) -> BTreeMap<String, String> {
    let mut out = parts.inputs.clone();
    for service in parts.services.values() {
        out.extend(all_inputs(service));
    }
    out
}

/// Input digests recorded by the required profile's runs, by path.
fn recorded_inputs(lock: &LockFile) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for record in lock.steps.values() {
        out.extend(all_inputs(&record.parts));
    }
    out
}
