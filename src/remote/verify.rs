//! Results that came back from a pod are checked before they land: every output the pod's lock
//! file records under the results directory must be there with the digest the lock file names.
//! Only then does the staging directory replace the local results directory, in one rename.

use std::path::{Path, PathBuf};

use crate::cache::{LockFile, StatCache};

/// What the check found.
#[derive(Debug, Default, PartialEq)]
pub struct Verified {
    /// Outputs checked (their digests matched).
    pub checked: usize,
    /// Outputs the lock file records outside the results directory (not brought back).
    pub elsewhere: Vec<String>,
}

/// Why fetched results may not land.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum VerifyError {
    /// No lock file came back.
    #[error("the results from the pod have no readable lock file `{path}`: {reason}")]
    NoLock {
        /// Where it should be.
        path: PathBuf,
        /// Why it could not be read.
        reason: String,
    },
    /// The pod's run did not complete every step.
    #[error("the pod's lock file records no complete run of the pipeline")]
    Incomplete,
    /// Outputs whose content is not what the lock file says.
    #[error("{} output(s) do not match the lock file that came with them: {}", .0.len(), .0.join("; "))]
    Mismatch(Vec<String>),
}

/// Checks `staging` (a copy of the pod's `results_dir`) against the lock file inside it.
/// `results_dir` is the workspace-relative results directory the lock file's paths start with.
pub fn verify(staging: &Path, results_dir: &Path) -> Result<Verified, VerifyError> {
    let lock_path = staging.join("forge.lock");
    if !lock_path.is_file() {
        return Err(VerifyError::NoLock {
            path: lock_path,
            reason: "missing".into(),
        });
    }
    let lock = LockFile::load(&lock_path).map_err(|e| VerifyError::NoLock {
        path: lock_path.clone(),
        reason: e.to_string(),
    })?;
    if lock.complete.is_none() {
        return Err(VerifyError::Incomplete);
    }
    let stat = StatCache::default();
    let mut verified = Verified::default();
    let mut problems = Vec::new();
    for record in lock.steps.values() {
        for (output, expected) in &record.outputs {
            let Ok(relative) = Path::new(output).strip_prefix(results_dir) else {
                verified.elsewhere.push(output.clone());
                continue;
            };
            match stat.digest(&staging.join(relative)) {
                Ok(Some(found)) if found.digest == expected.digest => verified.checked += 1,
                Ok(Some(_)) => problems.push(format!("`{output}` has other content")),
                Ok(None) => problems.push(format!("`{output}` is missing")),
                Err(err) => problems.push(format!("`{output}` cannot be read: {err}")),
            }
        }
    }
    if problems.is_empty() {
        Ok(verified)
    } else {
        Err(VerifyError::Mismatch(problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{CompleteRun, KeyParts, Record};

    fn staged(content: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "one").unwrap();
        let digest = StatCache::default()
            .digest(&dir.path().join("a.txt"))
            .unwrap()
            .unwrap();
        let mut lock = LockFile::default();
        lock.steps.insert(
            "a".into(),
            Record {
                key: "k".into(),
                parts: KeyParts::default(),
                outputs: [
                    ("results/p/a.txt".to_string(), digest.clone()),
                    (".forge/models/m".to_string(), digest),
                ]
                .into(),
                started_at: String::new(),
                duration_s: 0.0,
                exit_code: Some(0),
                forge_version: String::new(),
            },
        );
        lock.complete = Some(CompleteRun {
            manifest_digest: String::new(),
            forge_version: String::new(),
            finished_at: String::new(),
        });
        lock.save(&dir.path().join("forge.lock")).unwrap();
        std::fs::write(dir.path().join("a.txt"), content).unwrap();
        dir
    }

    #[test]
    fn matching_outputs_pass_and_others_are_named() {
        let dir = staged("one");
        let verified = verify(dir.path(), Path::new("results/p")).unwrap();
        assert_eq!(verified.checked, 1);
        assert_eq!(verified.elsewhere, vec![".forge/models/m".to_string()]);
    }

    #[test]
    fn edited_or_missing_outputs_fail() {
        let dir = staged("tampered");
        let err = verify(dir.path(), Path::new("results/p")).unwrap_err();
        assert_eq!(
            err,
            VerifyError::Mismatch(vec!["`results/p/a.txt` has other content".into()])
        );
        std::fs::remove_file(dir.path().join("a.txt")).unwrap();
        let err = verify(dir.path(), Path::new("results/p")).unwrap_err();
        assert!(err.to_string().contains("is missing"), "{err}");
    }
}
