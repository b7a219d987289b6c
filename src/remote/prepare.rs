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
pub fn load(request: &Request, profile: &str, color: bool) -> Result<(Pipeline, Remote), String> {
    let options = LoadOptions {
        manifest: request.manifest.clone(),
        profile: Some(profile.to_string()),
        sets: request.sets.clone(),
    };
    let pipeline = manifest::load(&options).map_err(|e| e.render(color))?;
    let Some(remote) = pipeline.remote.clone() else {
        return Err(format!(
            "error: profile `{profile}` has no `[remote]` table, so `--remote` does not know what to rent\nhint: add one to `profiles/{profile}.toml`, for example:\n  [remote]\n  accelerators = \"RTXA5000:1\"\n  max_hourly_cost = 1.0\n  secrets = [\"HF_TOKEN\"]\n(see docs/remote.md)"
        ));
    };
    Ok((pipeline, remote))
}

/// The rehearsal gate, before anything is rented. A skipped gate is passed on to the pod.
pub fn gate(pipeline: &Pipeline, skip_gate: bool) -> Result<(), String> {
    let stat = StatCache::load(&pipeline.state_dir().join("stat-cache.json"));
    let checked = crate::gate::check(pipeline, &stat);
    let _ = stat.save();
    // Preflight (issue 9) plugs in here: whatever it checks locally for a paid profile belongs
    // before `sky launch`, next to the gate.
    match checked {
        Ok(()) => Ok(()),
        Err(reason) if skip_gate => {
            eprintln!(
                "warning: [{}] skipping the `{}` gate: {reason} (the pod's run records it)",
                pipeline.profile,
                pipeline.requires.clone().unwrap_or_default()
            );
            Ok(())
        }
        Err(reason) => {
            let required = pipeline.requires.clone().unwrap_or_default();
            Err(format!(
                "error: profile `{}` requires a successful `{required}` run of this pipeline before anything is rented: {reason}\nhint: run `forge run {} --profile {required}` here first (free), or pass `--skip-gate`",
                pipeline.profile,
                pipeline.manifest_path.display()
            ))
        }
    }
}

fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| format!("error: cannot run `git`: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "error: `git {}` failed in `{}`: {}\nhint: `--remote` ships the repository at its current commit, so the workspace must be a git repository with at least one commit",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// The repository root, the commit, and a refusal when tracked files differ from it.
pub fn repository(workspace: &Path) -> Result<(PathBuf, String), String> {
    let root = PathBuf::from(git(workspace, &["rev-parse", "--show-toplevel"])?);
    let commit = git(workspace, &["rev-parse", "HEAD"])?;
    let dirty = git(
        workspace,
        &["status", "--porcelain", "--untracked-files=no"],
    )?;
    if !dirty.is_empty() {
        let files: Vec<&str> = dirty.lines().take(5).collect();
        return Err(format!(
            "error: the repository has uncommitted changes, and the pod runs commit {}:\n  {}\nhint: commit (or stash) them first, so that what runs on the pod is what the rehearsal gate checked",
            &commit[..commit.len().min(12)],
            files.join("\n  ")
        ));
    }
    if !root.join("Cargo.lock").is_file() {
        return Err(format!(
            "error: `{}` has no `Cargo.lock`: the pod builds Forge from the repository it runs (`cargo build --release --locked`)\nhint: run `--remote` from Forge's repository",
            root.display()
        ));
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
) -> Result<Prepared, String> {
    let state = pipeline.state_dir().join("remote").join(&pipeline.profile);
    let workdir = state.join("workdir");
    let io = |what: &str, e: std::io::Error| format!("error: cannot {what}: {e}");
    crate::fsutil::remove_any(&workdir).map_err(|e| io("clear the workdir", e))?;
    std::fs::create_dir_all(&workdir).map_err(|e| io("create the workdir", e))?;
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
        .map_err(|e| io("run `tar`", e))?;
    let _ = std::fs::remove_file(&archive);
    if !untar.success() {
        return Err(format!(
            "error: cannot unpack `git archive {commit}` into `{}`",
            workdir.display()
        ));
    }
    let workspace = relative(&pipeline.workspace, root)?;
    carry_rehearsal_lock(&pipeline, root, &workdir)?;
    // Without a `.skyignore`, SkyPilot filters the upload through `.gitignore`, which would drop
    // the rehearsal's lock file carried above (`sky/utils/command_runner.py`, 0.14.1).
    std::fs::write(workdir.join(".skyignore"), SKYIGNORE)
        .map_err(|e| io("write `.skyignore`", e))?;
    let manifest_abs =
        std::fs::canonicalize(&request.manifest).map_err(|e| io("find the manifest", e))?;
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
        .map_err(|e| io(&format!("write `{}`", task_file.display()), e))?;
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
fn carry_rehearsal_lock(pipeline: &Pipeline, root: &Path, workdir: &Path) -> Result<(), String> {
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
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("error: cannot create `{}`: {e}", parent.display()))?;
    }
    std::fs::copy(&lock, &target).map(|_| ()).map_err(|e| {
        format!(
            "error: cannot copy `{}` into the workdir: {e}",
            lock.display()
        )
    })
}

/// `path` relative to `base` (both absolute), as a `/`-separated string (`.` when equal).
fn relative(path: &Path, base: &Path) -> Result<String, String> {
    let stripped = path.strip_prefix(base).map_err(|_| {
        format!(
            "error: `{}` is outside the repository `{}`, so it would not reach the pod",
            path.display(),
            base.display()
        )
    })?;
    let text = stripped.display().to_string();
    Ok(if text.is_empty() { ".".into() } else { text })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_are_what_skypilot_accepts() {
        assert_eq!(cluster_name("a5000", "1a2b3c4d5e"), "forge-a5000-1a2b3c4");
        assert_eq!(
            cluster_name("M1_Rehearsal", "abc"),
            "forge-m1-rehearsal-abc"
        );
    }
}
