//! Staging and commit: a step writes its outputs to fresh staging paths; only when it succeeds
//! are they moved into place, hashed, and its record written to the lock file, last, so a
//! record always describes outputs that exist.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::Mutex;

use super::{Digest, KeyParts, LockFile, Record, StatCache, StoreError};
use crate::manifest::{Pipeline, Step};

/// Why a step's outputs could not be staged or committed.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The staging directory could not be emptied or created.
    #[error("cannot prepare staging directory `{}`: {source}", .path.display())]
    Staging {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The step succeeded without writing a declared output to its staging path.
    #[error(
        "declared output `{output}` was not produced\nhint: write it to `{{{{ outputs[{index}] }}}}` (the staging path), not to the final path"
    )]
    NotProduced {
        /// The output as declared.
        output: String,
        /// Its position in `outputs`.
        index: usize,
    },
    /// A staged output could not replace the one in place.
    #[error("cannot move output into `{output}`: {source}")]
    Move {
        /// The output as declared.
        output: String,
        /// The cause.
        source: io::Error,
    },
    /// An output in place could not be hashed.
    #[error("cannot hash `{output}`: {source}")]
    Hash {
        /// The output as declared.
        output: String,
        /// The cause.
        source: io::Error,
    },
    /// An output was gone right after it was moved into place.
    #[error("output `{output}` vanished")]
    Vanished {
        /// The output as declared.
        output: String,
    },
    /// The record could not be written to the lock file.
    #[error(transparent)]
    Record(#[from] StoreError),
    /// The blocking task that moves and hashes outputs did not finish.
    #[error("internal error: {0}")]
    Internal(#[from] tokio::task::JoinError),
}

/// What running a step adds to its record.
#[derive(Debug, Clone, Copy)]
pub struct Ran {
    /// When it started.
    pub started_at: SystemTime,
    /// Seconds it ran.
    pub duration_s: f64,
    /// The process's exit code, for process-based kinds.
    pub exit_code: Option<i32>,
}

/// Fresh, empty staging paths for each of `step`'s declared outputs, in declared order
/// (`.forge/staging/<profile>/<step>/<index>/<file name>`).
pub fn prepare_staging(pipeline: &Pipeline, step: &Step) -> Result<Vec<PathBuf>, CommitError> {
    let root = pipeline
        .state_dir()
        .join("staging")
        .join(&pipeline.profile)
        .join(&step.id);
    let staging_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CommitError::Staging { path, source }
    };
    crate::fsutil::remove_any(&root).map_err(staging_error(&root))?;
    let mut paths = Vec::new();
    for (index, output) in step.outputs.iter().enumerate() {
        let dir = root.join(index.to_string());
        std::fs::create_dir_all(&dir).map_err(staging_error(&dir))?;
        let name = Path::new(output)
            .file_name()
            .map_or_else(|| "output".into(), |n| n.to_os_string());
        paths.push(dir.join(name));
    }
    Ok(paths)
}

/// Moves staged outputs into place, hashes them, and writes the step's record last. Moving and
/// hashing run on a blocking thread; the lock file's mutex is held only to write the record.
pub async fn commit(
    pipeline: &Pipeline,
    lock: &Mutex<LockFile>,
    stat: &Arc<StatCache>,
    step: &Step,
    staging: &[PathBuf],
    parts: KeyParts,
    ran: Ran,
) -> Result<(), CommitError> {
    for (index, staged) in staging.iter().enumerate() {
        if std::fs::symlink_metadata(staged).is_err() {
            return Err(CommitError::NotProduced {
                output: step.outputs[index].clone(),
                index,
            });
        }
    }
    let (workspace, outputs) = (pipeline.workspace.clone(), step.outputs.clone());
    let (stat_for_move, staging) = (stat.clone(), staging.to_vec());
    let digests = tokio::task::spawn_blocking(move || {
        move_into_place(&workspace, &outputs, &staging, &stat_for_move)
    })
    .await??;
    let record = Record {
        key: parts.digest(),
        parts,
        outputs: digests,
        started_at: crate::time::rfc3339(ran.started_at),
        duration_s: ran.duration_s,
        exit_code: ran.exit_code,
        forge_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    {
        let mut lock = lock.lock().await;
        // Re-read first when another run (sharing the results directory) wrote the file meanwhile.
        lock.commit(&pipeline.lock_path(), |lock| {
            lock.steps.insert(step.id.to_string(), record);
        })?;
    }
    // The stat cache is a cache: a failed write costs a rehash next time, never a wrong key.
    let stat = stat.clone();
    let _ = tokio::task::spawn_blocking(move || stat.save()).await;
    Ok(())
}

/// Replaces each output under `workspace` with its staged copy and returns its digest.
fn move_into_place(
    workspace: &Path,
    outputs: &[String],
    staging: &[PathBuf],
    stat: &StatCache,
) -> Result<BTreeMap<String, Digest>, CommitError> {
    let mut digests = BTreeMap::new();
    for (output, staged) in outputs.iter().zip(staging) {
        let target = workspace.join(output);
        crate::fsutil::replace(staged, &target).map_err(|source| CommitError::Move {
            output: output.clone(),
            source,
        })?;
        let digest = stat
            .digest(&target)
            .map_err(|source| CommitError::Hash {
                output: output.clone(),
                source,
            })?
            .ok_or_else(|| CommitError::Vanished {
                output: output.clone(),
            })?;
        digests.insert(output.clone(), digest);
    }
    Ok(digests)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_output_names_its_staging_template() {
        let error = CommitError::NotProduced {
            output: "results/a.json".into(),
            index: 1,
        };
        assert_eq!(
            error.to_string(),
            "declared output `results/a.json` was not produced\nhint: write it to `{{ outputs[1] }}` (the staging path), not to the final path"
        );
    }

    #[test]
    fn outputs_move_into_place_with_their_digests() {
        let dir = tempfile::tempdir().expect("tempdir");
        let staged = dir.path().join("staged.txt");
        std::fs::write(&staged, "hello").expect("write");
        let stat = StatCache::load(&dir.path().join("stat.json"));
        let digests = move_into_place(
            dir.path(),
            &["out/a.txt".to_string()],
            std::slice::from_ref(&staged),
            &stat,
        )
        .expect("moved");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("out/a.txt")).expect("read"),
            "hello"
        );
        assert!(!staged.exists(), "staging is emptied");
        assert!(digests.contains_key("out/a.txt"));
    }
}
