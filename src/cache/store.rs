//! Step records: the lock file committed next to each profile's results (like `dvc.lock`), and
//! the workspace lock that keeps two `forge run`s apart.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::input::InputDigest;
use super::key::KeyParts;
use super::stat::Digest;

/// The lock file's format version.
const LOCK_VERSION: u32 = 1;

/// What a successful step run left behind.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// The key it ran under.
    pub key: String,
    /// Everything that went into the key.
    pub parts: KeyParts,
    /// Output path -> its digest after the run.
    pub outputs: BTreeMap<String, Digest>,
    /// When it started (RFC 3339, UTC).
    pub started_at: String,
    /// How long it ran, in seconds.
    pub duration_s: f64,
    /// The process's exit code (commands) or none (built-in kinds).
    pub exit_code: Option<i32>,
    /// The Forge version that ran it.
    pub forge_version: String,
}

impl Record {
    /// Output digests as the keys of downstream steps see them.
    pub fn output_digests(&self) -> BTreeMap<String, String> {
        self.outputs
            .iter()
            .map(|(p, d)| (p.clone(), d.digest.clone()))
            .collect()
    }
}

/// `results/<profile>/forge.lock`: the records of one profile's steps.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockFile {
    /// Format version.
    pub version: u32,
    /// Step id -> its last successful run.
    pub steps: BTreeMap<String, Record>,
    /// The last complete, successful run of the whole pipeline (what a rehearsal gate checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete: Option<CompleteRun>,
    /// Set when a run started with `--skip-gate`: the gate it skipped and why it was closed.
    /// A later run that passes the gate clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_skipped: Option<GateSkipped>,
    /// The rehearsal the last gated run relied on (set when the gate passed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gated_by: Option<GatePassed>,
    /// The file as this process last read or wrote it (device, inode, size, mtime): when it
    /// differs at the next write, another run wrote the file meanwhile.
    #[serde(skip)]
    seen: Option<(u64, u64, u64, i64, i64)>,
}

impl Default for LockFile {
    /// An empty lock file of this Forge's format version.
    fn default() -> Self {
        Self {
            version: LOCK_VERSION,
            steps: BTreeMap::new(),
            complete: None,
            gate_skipped: None,
            gated_by: None,
            seen: None,
        }
    }
}

fn fingerprint(path: &Path) -> Option<(u64, u64, u64, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}

/// A run in which every step of the pipeline ended fresh or ran successfully.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompleteRun {
    /// blake3 of the manifest it ran.
    pub manifest_digest: String,
    /// The Forge version that ran it.
    pub forge_version: String,
    /// When it finished (RFC 3339, UTC).
    pub finished_at: String,
}

/// A gate a run was told to skip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateSkipped {
    /// The profile whose rehearsal was required.
    pub required: String,
    /// Why the gate was closed.
    pub reason: String,
    /// When the run started anyway (RFC 3339, UTC).
    pub at: String,
}

/// The rehearsal a gated run relied on: the required profile's last complete run, as its lock
/// file recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatePassed {
    /// The profile whose rehearsal was required.
    pub required: String,
    /// blake3 of the manifest the rehearsal ran (the same bytes as this run's).
    pub manifest_digest: String,
    /// The Forge version that ran the rehearsal (the same as this run's).
    pub forge_version: String,
    /// When the rehearsal finished (RFC 3339, UTC).
    pub finished_at: String,
    /// Input path -> content digest, for every input both profiles declare (the step code the
    /// rehearsal exercised), as the rehearsal recorded it.
    pub inputs: BTreeMap<String, InputDigest>,
    /// When this profile's run checked the gate (RFC 3339, UTC).
    pub checked_at: String,
}

/// Why the lock file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing failed.
    #[error("cannot access `{path}`: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The file is not a Forge lock file.
    #[error(
        "`{path}` is not a valid Forge lock file: {source}\nhint: restore it from git, or delete it to rerun every step"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// The file was written in another format version.
    #[error(
        "`{path}` has lock file format version {found}; this Forge reads version {LOCK_VERSION}\nhint: run the Forge version that wrote it, or delete the file to rerun every step"
    )]
    Version {
        /// The file.
        path: PathBuf,
        /// The version it declares.
        found: u32,
    },
    /// Another `forge run` holds the workspace.
    #[error(
        "another `forge run` (pid {pid}) is using this workspace (lock `{path}`)\nhint: wait for it to finish, or stop it (`kill {pid}`)"
    )]
    Busy {
        /// The holder's pid, as it wrote it.
        pid: String,
        /// The lock file.
        path: PathBuf,
    },
}

impl LockFile {
    /// Reads `path`; a missing file is an empty lock file.
    pub fn load(path: &Path) -> Result<Self, StoreError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Ok(Self::default());
            }
            Err(source) => {
                return Err(StoreError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let mut lock: Self =
            serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt {
                path: path.to_path_buf(),
                source,
            })?;
        lock.seen = fingerprint(path);
        if lock.version != LOCK_VERSION {
            return Err(StoreError::Version {
                path: path.to_path_buf(),
                found: lock.version,
            });
        }
        Ok(lock)
    }

    /// Reads `path`, applies `change`, and writes it back, holding an exclusive `flock` on the
    /// results directory meanwhile: two runs that share one results directory (two workspaces,
    /// say) never overwrite each other's records.
    pub fn update<T>(path: &Path, change: impl FnOnce(&mut Self) -> T) -> Result<T, StoreError> {
        let mut lock = Self {
            seen: Some((0, 0, 0, 0, 0)), // never matches: read the file first
            ..Self::default()
        };
        lock.commit(path, change)
    }

    /// Like [`update`](Self::update) on this in-memory copy: applies `change` and writes the file
    /// under the directory lock, first re-reading it only when another run wrote it since.
    pub fn commit<T>(
        &mut self,
        path: &Path,
        change: impl FnOnce(&mut Self) -> T,
    ) -> Result<T, StoreError> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let io_err = |source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io_err)?;
        let handle = File::open(dir).map_err(io_err)?;
        // SAFETY: flock on a descriptor we own; released when `handle` is dropped.
        if unsafe { libc::flock(handle.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io_err(io::Error::last_os_error()));
        }
        if fingerprint(path) != self.seen {
            *self = Self::load(path)?;
        }
        let out = change(self);
        self.save(path)?;
        self.seen = fingerprint(path);
        drop(handle);
        Ok(out)
    }

    /// Writes the whole file atomically.
    pub fn save(&self, path: &Path) -> Result<(), StoreError> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        crate::fsutil::write_atomic(path, &bytes).map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// An exclusive advisory lock on `.forge/lock`, released when dropped (or when the process
/// dies, even by `kill -9`: the kernel drops `flock` locks with the file descriptor).
#[derive(Debug)]
pub struct WorkspaceLock {
    _file: File,
}

impl WorkspaceLock {
    /// Takes the lock or says who holds it.
    pub fn acquire(path: &Path) -> Result<Self, StoreError> {
        let io_err = |source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_err)?;
        }
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io_err)?;
        // SAFETY: flock on a file descriptor we own; no memory is shared.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim().to_string();
            return Err(StoreError::Busy {
                pid: if pid.is_empty() {
                    "unknown".into()
                } else {
                    pid
                },
                path: path.to_path_buf(),
            });
        }
        file.set_len(0).map_err(io_err)?;
        file.rewind().map_err(io_err)?;
        write!(file, "{}", std::process::id()).map_err(io_err)?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A committed lock file loads, and each record's inputs write back as they were read (the
    /// file predates `params`, so its keys are compared in the test below, on current parts).
    #[test]
    fn a_committed_lock_file_loads_and_keeps_its_input_strings() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("results/examples/basic/default/forge.lock");
        let lock = LockFile::load(&path).expect("the committed lock file loads");
        let raw: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        assert!(!lock.steps.is_empty());
        for (id, record) in &lock.steps {
            let written = serde_json::to_value(&record.parts).expect("serializes");
            for field in ["inputs", "reads"] {
                assert_eq!(
                    written.get(field),
                    raw["steps"][id]["parts"].get(field),
                    "`{id}`: `{field}`"
                );
            }
        }
    }

    /// Key parts recorded with absent and unreadable inputs (the strings `missing` and
    /// `unreadable: ...`) parse into the enum and serialize to the same bytes, so the same key.
    #[test]
    fn missing_and_unreadable_inputs_keep_their_strings_and_keys() {
        let text = r#"{"kind":"command","schema":1,"params":{},"config":{"run":"cat a b c"},"inputs":{"a":"3f9c","b":"missing","c":"unreadable: Permission denied (os error 13)"},"env":{},"upstream":{},"services":{},"reads":{"t":"missing"}}"#;
        let parts: KeyParts = serde_json::from_str(text).expect("parses");
        assert_eq!(parts.inputs["a"], InputDigest::Digest("3f9c".into()));
        assert_eq!(parts.inputs["b"], InputDigest::Missing);
        assert_eq!(
            parts.inputs["c"],
            InputDigest::Unreadable("Permission denied (os error 13)".into())
        );
        assert_eq!(parts.reads["t"], InputDigest::Missing);
        assert_eq!(serde_json::to_string(&parts).expect("serializes"), text);
        assert_eq!(
            parts.digest(),
            blake3::hash(text.as_bytes()).to_hex().to_string()
        );
    }
}
