//! Gathers what preflight checks, in seconds and all at once: the host (src/host.rs), the GPUs
//! (`nvidia-smi`), free disk, the interpreter's version, the locks' needs, the registry and the
//! hub. Every probe has a timeout; nothing here decides a verdict (`checks.rs` does).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::gpu::{self, GpuReport, LockNeeds};
use super::hub::{self, Answer, HubFacts};
use crate::host::Host;
use crate::manifest::preflight::Preflight;

/// How long a local program (`nvidia-smi`, the interpreter) may take to answer.
const PROGRAM_TIMEOUT: Duration = Duration::from_secs(15);

/// Everything the checks look at.
#[derive(Debug, Clone, Serialize)]
pub struct Facts {
    /// CPU, cores, memory.
    pub host: Host,
    /// The GPUs and driver, or why `nvidia-smi` gave none.
    pub gpu: Result<GpuReport, String>,
    /// Free bytes on the workspace's filesystem, or why unknown.
    pub disk_free: Result<u64, String>,
    /// The workspace (where environments and models go).
    pub workspace: PathBuf,
    /// The interpreter's `X.Y.Z`, or why it did not answer.
    pub python: Result<String, String>,
    /// Each declared lock (`locks` and `gpu_locks`) and what it needs, or why it cannot be read.
    pub locks: Vec<(String, Result<LockNeeds, String>)>,
    /// Other locks beside the declared ones that pin a CUDA runtime (alternatives to suggest).
    pub cuda_locks: Vec<(String, gpu::Cuda)>,
    /// The registry's URL and its answer, when one is declared.
    pub registry: Option<(String, Answer)>,
    /// The hub's answers, when gated repositories are declared.
    pub hub: Option<HubFacts>,
    /// Each declared program and the first line of its `--version`, or why it did not answer.
    pub programs: Vec<(String, Result<String, String>)>,
}

/// Reads the machine, the locks and the network for `spec`.
pub async fn gather(spec: &Preflight, workspace: &Path) -> Facts {
    let registry_url = registry_url(spec);
    let registry = async {
        let url = registry_url?;
        let answer = hub::registry(&url).await;
        Some((url, answer))
    };
    let hub_facts = async {
        if spec.gated_repos.is_empty() {
            None
        } else {
            Some(hub::hub(&spec.gated_repos).await)
        }
    };
    let programs = futures_util::future::join_all(
        spec.programs
            .iter()
            .map(|p| async move { (p.clone(), version_line(p).await) }),
    );
    let (gpu, python, registry, hub, programs) = tokio::join!(
        nvidia_smi(),
        python_version(&spec.python),
        registry,
        hub_facts,
        programs
    );
    let mut names: Vec<&String> = spec.locks.iter().chain(&spec.gpu_locks).collect();
    names.sort();
    names.dedup();
    let locks = names
        .into_iter()
        .map(|lock| {
            let needs = std::fs::read_to_string(workspace.join(lock))
                .map(|text| gpu::lock_needs(&text))
                .map_err(|e| format!("cannot read `{lock}`: {e}"));
            (lock.clone(), needs)
        })
        .collect();
    Facts {
        host: Host::detect(),
        gpu,
        disk_free: disk_free(workspace),
        workspace: workspace.to_path_buf(),
        python,
        locks,
        cuda_locks: cuda_locks(spec, workspace),
        registry,
        hub,
        programs,
    }
}

/// The index uv would install from: its variables win over the profile's `registry`.
fn registry_url(spec: &Preflight) -> Option<String> {
    ["UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
        .filter(|_| spec.registry.is_some())
        .or_else(|| spec.registry.clone())
}

/// Runs a program with a timeout; `Err` says why there is no output.
async fn output(program: &str, args: &[&str]) -> Result<String, String> {
    let mut command = tokio::process::Command::new(program);
    command.args(args).kill_on_drop(true);
    let result = tokio::time::timeout(PROGRAM_TIMEOUT, command.output()).await;
    let out = match result {
        Err(_) => return Err(format!("`{program}` did not answer within 15 s")),
        Ok(Err(err)) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("`{program}` not found on PATH"));
        }
        Ok(Err(err)) => return Err(format!("cannot run `{program}`: {err}")),
        Ok(Ok(out)) => out,
    };
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = stderr
        .lines()
        .chain(stdout.lines())
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no output");
    Err(format!("`{program}` failed ({}): {first}", out.status))
}

async fn nvidia_smi() -> Result<GpuReport, String> {
    let query = [
        "--query-gpu=name,memory.total,driver_version",
        "--format=csv,noheader,nounits",
    ];
    let csv = output("nvidia-smi", &query).await?;
    let header = output("nvidia-smi", &[]).await?;
    let visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
    Ok(GpuReport {
        gpus: gpu::visible(gpu::parse_query(&csv)?, visible.as_deref()),
        driver_cuda: gpu::parse_driver_cuda(&header),
    })
}

async fn python_version(python: &str) -> Result<String, String> {
    let script = "import platform; print(platform.python_version())";
    output(python, &["-c", script])
        .await
        .map(|v| v.trim().to_string())
}

/// The first non-empty line of `<program> --version` (`prometheus, version 2.42.0+ds ...`).
async fn version_line(program: &str) -> Result<String, String> {
    let text = output(program, &["--version"]).await?;
    Ok(text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("found")
        .to_string())
}

/// Free bytes for an unprivileged user on the filesystem holding `path` (its nearest existing
/// ancestor), from statvfs(3): the standard library has no call for it.
fn disk_free(path: &Path) -> Result<u64, String> {
    let existing = path
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let c_path = std::ffi::CString::new(existing.as_os_str().as_encoded_bytes())
        .map_err(|_| format!("`{}` has a NUL byte", existing.display()))?;
    // SAFETY: statvfs is a plain C struct of integers, for which all zero bytes are valid.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is a valid NUL-terminated string and `stat` a writable statvfs.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) };
    if rc != 0 {
        return Err(format!(
            "statvfs `{}`: {}",
            existing.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(stat.f_bavail as u64 * stat.f_frsize as u64)
}

/// Locks next to the declared ones that pin a CUDA runtime, sorted: what a failing CUDA check
/// can suggest instead.
fn cuda_locks(spec: &Preflight, workspace: &Path) -> Vec<(String, gpu::Cuda)> {
    let mut dirs: Vec<PathBuf> = spec
        .gpu_locks
        .iter()
        .filter_map(|l| Path::new(l).parent().map(Path::to_path_buf))
        .collect();
    dirs.sort();
    dirs.dedup();
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(workspace.join(&dir)) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".txt") {
                continue;
            }
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            if let Some(cuda) = gpu::lock_needs(&text).cuda {
                out.push((dir.join(&name).display().to_string(), cuda));
            }
        }
    }
    out.sort();
    out
}
