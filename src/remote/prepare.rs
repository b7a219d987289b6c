//! Everything a remote run checks and writes before anything is rented: the profile loads and has
//! a `[remote]` table, the rehearsal gate is open, the repository is committed, and the workdir
//! (the repository at `HEAD`) and the SkyPilot task file are written under `.forge/remote/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cache::{LockFile, StatCache};
use crate::manifest::{self, LoadOptions, Pipeline};

use super::config::Remote;
use super::task::{self, TaskSpec};

/// The workdir's `.skyignore`: nothing is excluded (the workdir is already exactly what runs).
const SKYIGNORE: &str = "# Written by forge run --remote: upload this workdir as it is (git archive of one commit\n# plus the rehearsal's lock file); without this file SkyPilot would apply .gitignore.\n";

/// Why a profile may not be launched; everything here is found before anything is rented.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The manifest or profile does not load (already rendered, with locations).
    #[error("{0}")]
    Manifest(String),
    /// The profile has no `[remote]` table.
    #[error(
        "error: profile `{profile}` has no `[remote]` table, so `--remote` does not know what to rent\nhint: add one to `profiles/{profile}.toml`, for example:\n  [remote]\n  accelerators = \"RTXA5000:1\"\n  max_hourly_cost = 1.0\n  secrets = [\"HF_TOKEN\"]\n(see docs/remote.md)"
    )]
    NoRemote {
        /// The profile.
        profile: String,
    },
    /// The rehearsal gate is closed.
    #[error(
        "error: profile `{profile}` requires a successful `{required}` run of this pipeline before anything is rented: {reason}\nhint: run `forge run {} --profile {required}` here first (free), or pass `--skip-gate`",
        manifest.display()
    )]
    GateClosed {
        /// The profile.
        profile: String,
        /// The profile it requires.
        required: String,
        /// Why the gate is closed.
        reason: String,
        /// The manifest.
        manifest: PathBuf,
    },
    /// A git command failed.
    #[error(
        "error: `git {args}` failed in `{}`: {stderr}\nhint: `--remote` ships the repository at its current commit, so the workspace must be a git repository with at least one commit",
        dir.display()
    )]
    Git {
        /// The arguments.
        args: String,
        /// Where it ran.
        dir: PathBuf,
        /// What git said.
        stderr: String,
    },
    /// Tracked files differ from `HEAD`.
    #[error(
        "error: the repository has uncommitted changes, and the pod runs commit {commit}:\n  {}\nhint: commit (or stash) them first, so that what runs on the pod is what the rehearsal gate checked",
        files.join("\n  ")
    )]
    Dirty {
        /// The short commit.
        commit: String,
        /// The first changed files, as `git status --porcelain` shows them.
        files: Vec<String>,
    },
    /// The repository cannot build Forge on the pod.
    #[error(
        "error: `{}` has no `Cargo.lock`: the pod builds Forge from the repository it runs (`cargo build --release --locked`)\nhint: run `--remote` from Forge's repository",
        root.display()
    )]
    NoCargoLock {
        /// The repository root.
        root: PathBuf,
    },
    /// A path the pod needs is outside the repository.
    #[error(
        "error: `{}` is outside the repository `{}`, so it would not reach the pod",
        path.display(),
        root.display()
    )]
    Outside {
        /// The path.
        path: PathBuf,
        /// The repository root.
        root: PathBuf,
    },
    /// Reading, writing or running something local failed.
    #[error("error: cannot {what} `{}`: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

fn io_error(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PrepareError {
    let path = path.to_path_buf();
    move |source| PrepareError::Io { what, path, source }
}

/// A profile ready to launch.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The resolved pipeline (its profile, params, results directory).
    pub pipeline: Pipeline,
    /// Its `[remote]` table.
    pub remote: Remote,
    /// The task that was written.
    pub spec: TaskSpec,
    /// The task file.
    pub task_file: PathBuf,
    /// `.forge/remote/<profile>/`: workdir, task, staging, what came back.
    pub state: PathBuf,
}

/// What the user runs: which manifest, `--set`s, and whether the gate may be skipped.
#[derive(Debug, Clone)]
pub struct Request {
    /// The manifest as given.
    pub manifest: PathBuf,
    /// `--set KEY=VALUE`.
    pub sets: Vec<String>,
    /// `--skip-gate`.
    pub skip_gate: bool,
}

/// Loads the profile and checks it may be rented (manifest errors come back rendered).
pub fn load(
    request: &Request,
    profile: &str,
    color: bool,
) -> Result<(Pipeline, Remote), PrepareError> {
    let options = LoadOptions {
        manifest: request.manifest.clone(),
        profile: Some(profile.to_string()),
        sets: request.sets.clone(),
    };
    let pipeline = manifest::load(&options).map_err(|e| PrepareError::Manifest(e.render(color)))?;
    let Some(remote) = pipeline.remote.clone() else {
        return Err(PrepareError::NoRemote {
            profile: profile.to_string(),
        });
    };
    Ok((pipeline, remote))
}

/// The rehearsal gate, before anything is rented. A skipped gate is passed on to the pod.
pub fn gate(pipeline: &Pipeline, skip_gate: bool) -> Result<(), PrepareError> {
    let stat = StatCache::load(&pipeline.state_dir().join("stat-cache.json"));
    let checked = crate::gate::check(pipeline, &stat);
    let _ = stat.save();
    // Preflight is not checked here: its checks are about the rented machine (GPU, driver, disk),
    // so the pod's `forge run` makes them first, before any environment or download.
    match checked {
        Ok(_) => Ok(()),
        Err(reason) if skip_gate => {
            eprintln!(
                "warning: [{}] skipping the `{}` gate: {reason} (the pod's run records it)",
                pipeline.profile,
                pipeline.requires.clone().unwrap_or_default()
            );
            Ok(())
        }
        Err(reason) => Err(PrepareError::GateClosed {
            profile: pipeline.profile.clone(),
            required: pipeline.requires.clone().unwrap_or_default(),
            reason,
            manifest: pipeline.manifest_path.clone(),
        }),
    }
}

fn git(dir: &Path, args: &[&str]) -> Result<String, PrepareError> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(io_error("run `git` in", dir))?;
    if !output.status.success() {
        return Err(PrepareError::Git {
            args: args.join(" "),
            dir: dir.to_path_buf(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// The repository root, the commit, and a refusal when tracked files differ from it.
pub fn repository(workspace: &Path) -> Result<(PathBuf, String), PrepareError> {
    let root = PathBuf::from(git(workspace, &["rev-parse", "--show-toplevel"])?);
    let commit = git(workspace, &["rev-parse", "HEAD"])?;
    let dirty = git(
        workspace,
        &["status", "--porcelain", "--untracked-files=no"],
    )?;
    if !dirty.is_empty() {
        return Err(PrepareError::Dirty {
            commit: commit[..commit.len().min(12)].to_string(),
            files: dirty.lines().take(5).map(String::from).collect(),
        });
    }
    if !root.join("Cargo.lock").is_file() {
        return Err(PrepareError::NoCargoLock { root });
    }
    Ok((std::fs::canonicalize(&root).unwrap_or(root), commit))
}

/// A SkyPilot cluster name for a profile: lowercase letters, digits and `-`.
pub fn cluster_name(profile: &str, commit: &str) -> String {
    let clean: String = profile
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("forge-{clean}-{}", &commit[..commit.len().min(7)])
}

/// Writes the workdir and the task file for one profile.
pub fn prepare(
    request: &Request,
    pipeline: Pipeline,
    remote: Remote,
    root: &Path,
    commit: &str,
) -> Result<Prepared, PrepareError> {
    let state = pipeline.state_dir().join("remote").join(&pipeline.profile);
    let workdir = state.join("workdir");
    crate::fsutil::remove_any(&workdir).map_err(io_error("clear", &workdir))?;
    std::fs::create_dir_all(&workdir).map_err(io_error("create", &workdir))?;
    let archive = state.join("workdir.tar");
    git(
        root,
        &[
            "archive",
            "--format=tar",
            "-o",
            &archive.display().to_string(),
            commit,
        ],
    )?;
    let untar = Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&workdir)
        .status()
        .map_err(io_error("run `tar` on", &archive))?;
    let _ = std::fs::remove_file(&archive);
    if !untar.success() {
        return Err(PrepareError::Io {
            what: "unpack `git archive` into",
            path: workdir,
            source: std::io::Error::other("`tar -xf` failed"),
        });
    }
    let workspace = relative(&pipeline.workspace, root)?;
    carry_rehearsal_lock(&pipeline, root, &workdir)?;
    // Without a `.skyignore`, SkyPilot filters the upload through `.gitignore`, which would drop
    // the rehearsal's lock file carried above (`sky/utils/command_runner.py`, 0.14.1).
    let skyignore = workdir.join(".skyignore");
    std::fs::write(&skyignore, SKYIGNORE).map_err(io_error("write", &skyignore))?;
    let manifest_abs =
        std::fs::canonicalize(&request.manifest).map_err(io_error("find", &request.manifest))?;
    let manifest = relative(&manifest_abs, &pipeline.workspace)?;
    let spec = TaskSpec {
        name: cluster_name(&pipeline.profile, commit),
        workdir,
        workspace,
        manifest,
        profile: pipeline.profile.clone(),
        sets: request.sets.clone(),
        skip_gate: request.skip_gate,
        commit: commit.to_string(),
        remote: remote.clone(),
    };
    let task_file = state.join("task.yaml");
    crate::fsutil::write_atomic(&task_file, task::render(&spec).as_bytes())
        .map_err(io_error("write", &task_file))?;
    Ok(Prepared {
        pipeline,
        remote,
        spec,
        task_file,
        state,
    })
}

/// The rehearsal's lock file is not committed (results of the rehearsal are machine-local), but
/// the pod's gate needs it: it travels with the workdir.
fn carry_rehearsal_lock(
    pipeline: &Pipeline,
    root: &Path,
    workdir: &Path,
) -> Result<(), PrepareError> {
    let Some(required) = &pipeline.requires else {
        return Ok(());
    };
    let options = LoadOptions {
        manifest: pipeline.manifest_path.clone(),
        profile: Some(required.clone()),
        sets: Vec::new(),
    };
    let Ok(rehearsal) = manifest::load(&options) else {
        return Ok(());
    };
    let lock = rehearsal.lock_path();
    if LockFile::load(&lock)
        .map(|l| l.complete.is_none())
        .unwrap_or(true)
    {
        return Ok(());
    }
    let target = workdir.join(relative(&lock, root)?);
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(io_error("create", parent))?;
    }
    std::fs::copy(&lock, &target)
        .map(|_| ())
        .map_err(io_error("copy into the workdir", &lock))
}

/// `path` relative to `base` (both absolute), as a `/`-separated string (`.` when equal).
fn relative(path: &Path, base: &Path) -> Result<String, PrepareError> {
    let stripped = path.strip_prefix(base).map_err(|_| PrepareError::Outside {
        path: path.to_path_buf(),
        root: base.to_path_buf(),
    })?;
    let text = stripped.display().to_string();
    Ok(if text.is_empty() { ".".into() } else { text })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_say_what_to_do() {
        let errors = [
            PrepareError::NoRemote {
                profile: "local".into(),
            },
            PrepareError::GateClosed {
                profile: "a5000".into(),
                required: "m1-rehearsal".into(),
                reason: "`m1-rehearsal` has never completed a run of this pipeline".into(),
                manifest: "pipelines/forge.toml".into(),
            },
            PrepareError::Dirty {
                commit: "0123456789ab".into(),
                files: vec![" M profiles/a5000.toml".into()],
            },
            PrepareError::Git {
                args: "rev-parse --show-toplevel".into(),
                dir: "/w".into(),
                stderr: "fatal: not a git repository".into(),
            },
            PrepareError::NoCargoLock { root: "/w".into() },
        ];
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        insta::assert_snapshot!(shown.join("\n\n"));
    }

    #[test]
    fn cluster_names_are_what_skypilot_accepts() {
        assert_eq!(cluster_name("a5000", "1a2b3c4d5e"), "forge-a5000-1a2b3c4");
        assert_eq!(
            cluster_name("M1_Rehearsal", "abc"),
            "forge-m1-rehearsal-abc"
        );
    }
}
