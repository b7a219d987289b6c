//! Child processes in their own process group: spawned with a strict environment and a log file,
//! stopped with SIGTERM to the whole group, a grace period, then SIGKILL. No orphan survives.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

pub(crate) mod parent_death;

/// Variables every child gets from Forge's environment, besides the declared ones: the basics of
/// a shell, and how this machine reaches the network (proxies, CA bundles, package indexes,
/// caches). None of these decide what a step produces, so none enter keys.
pub const BASE_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "TERM",
    "TMPDIR",
    "SHELL",
    "XDG_CACHE_HOME",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "PIP_CERT",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_DEFAULT_TIMEOUT",
    "UV_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_EXTRA_INDEX_URL",
    "UV_CACHE_DIR",
    "UV_NATIVE_TLS",
    "HF_HOME",
];

/// What a step's process sees besides the base set: its declared env, the `pass_env` values from
/// Forge's environment, and `FORGE_STEP`, `FORGE_PROFILE`, `FORGE_WORKSPACE`.
pub fn step_env(
    step: &crate::manifest::Step,
    profile: &str,
    workspace: &Path,
) -> BTreeMap<String, String> {
    let mut env = step.env.clone();
    for name in &step.pass_env {
        if let Ok(value) = std::env::var(name) {
            env.insert(name.clone(), value);
        }
    }
    env.insert("FORGE_STEP".into(), step.id.clone());
    env.insert("FORGE_PROFILE".into(), profile.to_string());
    env.insert("FORGE_WORKSPACE".into(), workspace.display().to_string());
    env
}

/// A running child and its process group.
#[derive(Debug)]
pub struct Group {
    /// The direct child.
    pub child: Child,
    /// The process group id (the child's pid).
    pub pgid: i32,
    /// The group's entry under `.forge/processes/`, removed when the group is dropped.
    pub record: Option<super::leftovers::Record>,
}

/// Starts `sh -c <line>` in `dir` as the leader of a new process group, stdout and stderr
/// appended to `log`, with only the base environment plus `env`.
pub fn spawn(
    line: &str,
    dir: &Path,
    env: &BTreeMap<String, String>,
    log: &Path,
) -> io::Result<Group> {
    if let Some(parent) = log.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let err = out.try_clone()?;
    let mut command = Command::new("sh");
    command.arg("-c").arg(line).current_dir(dir).env_clear();
    for name in BASE_ENV {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command
        .envs(env)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    parent_death::arrange(&mut command);
    let child = command.spawn()?;
    let pgid = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .ok_or_else(|| io::Error::other("child has no pid"))?;
    Ok(Group {
        child,
        pgid,
        record: None,
    })
}

/// True while any process of the group is alive.
pub fn group_alive(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::killpg(pgid, 0) == 0 }
}

fn signal(pgid: i32, sig: i32) {
    // SAFETY: sending a signal to a process group we created.
    unsafe {
        libc::killpg(pgid, sig);
    }
}

/// Stops the whole group: SIGTERM, up to `grace` for every member to exit, then SIGKILL.
/// Returns the child's exit status if it was collected.
pub async fn terminate(group: &mut Group, grace: Duration) -> Option<std::process::ExitStatus> {
    signal(group.pgid, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    let mut status = None;
    while Instant::now() < deadline {
        if status.is_none() {
            status = group.child.try_wait().ok().flatten();
        }
        if status.is_some() && !group_alive(group.pgid) {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signal(group.pgid, libc::SIGKILL);
    match status {
        Some(s) => Some(s),
        None => group.child.wait().await.ok(),
    }
}

/// Kills whatever is left of a group whose leader already exited (background children).
pub async fn reap_leftovers(pgid: i32, grace: Duration) {
    if !group_alive(pgid) {
        return;
    }
    signal(pgid, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && group_alive(pgid) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signal(pgid, libc::SIGKILL);
}

/// The last `n` lines of a log file.
pub fn tail(log: &Path, n: usize) -> Vec<String> {
    let text = std::fs::read(log)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}
