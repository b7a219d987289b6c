//! The one process layer: every child Forge runs for a pipeline (a `command` step, a service,
//! lm-eval, `vllm bench serve`) starts here as the leader of its own process group, with an
//! explicit environment policy and its output appended to a log, recorded under
//! `.forge/processes/` while it lives, and stopped with SIGTERM to the whole group, a grace
//! period, then SIGKILL. A killed Forge takes the group with it (`parent_death`). No orphan
//! survives.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

mod env;
pub(crate) mod parent_death;
mod stop;
mod tail;
#[cfg(test)]
mod tests;

pub use env::{BASE_ENV, Environment, Inherit, step_env};
pub use stop::{group_alive, reap_leftovers, terminate};
pub use tail::{TAIL_LINES, tail, tail_from};

/// A process to start.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Program and arguments (see [`Spec::shell`] for a command line).
    pub argv: Vec<String>,
    /// Working directory.
    pub dir: PathBuf,
    /// What the process sees of Forge's environment, and what is set on top.
    pub env: Environment,
    /// Stdout and stderr are appended here (created with its directory if missing).
    pub log: PathBuf,
    /// Where the group is written down while it lives, so the next run can stop it after a
    /// `kill -9` of Forge; `None`: not recorded.
    pub record: Option<Recorded>,
    /// SIGTERM-to-SIGKILL grace when the group is stopped.
    pub grace: Duration,
}

/// The `.forge/processes/` entry of a group.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The workspace whose `.forge/processes/` holds the record.
    pub workspace: PathBuf,
    /// What the group is, for the message that stops it (`step `serve``).
    pub what: String,
}

impl Spec {
    /// `sh -c <line>`.
    pub fn shell(line: &str, dir: &Path, env: Environment, log: &Path, grace: Duration) -> Self {
        Self {
            argv: vec!["sh".into(), "-c".into(), line.into()],
            dir: dir.to_path_buf(),
            env,
            log: log.to_path_buf(),
            record: None,
            grace,
        }
    }

    /// Records the group under `workspace`'s `.forge/processes/` as `what`.
    #[must_use]
    pub fn recorded(mut self, workspace: &Path, what: &str) -> Self {
        self.record = Some(Recorded {
            workspace: workspace.to_path_buf(),
            what: what.to_string(),
        });
        self
    }
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

impl Drop for Group {
    /// A group dropped while its leader runs (the walker dropped a step's future when a service
    /// it needs died) is killed at once, every member: dropping cannot wait out a grace. Once
    /// the leader was reaped the group id may belong to someone else, so nothing is sent.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            stop::signal(self.pgid, libc::SIGKILL);
        }
    }
}

/// How a process that ran to its end ended.
#[derive(Debug)]
pub enum Ended {
    /// It exited by itself; what its group left behind was stopped.
    Exited(ExitStatus),
    /// The deadline passed; the group was stopped.
    TimedOut,
    /// Cancellation fired; the group was stopped.
    Cancelled,
}

/// Starts `spec` as the leader of a new process group; dropping the [`Group`] before the leader
/// was waited for kills the group.
pub fn spawn(spec: &Spec) -> io::Result<Group> {
    let (program, args) = spec
        .argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
    if let Some(parent) = spec.log.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log)?;
    let err = out.try_clone()?;
    let mut command = Command::new(program);
    command.args(args).current_dir(&spec.dir);
    spec.env.apply(&mut command);
    command
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
    // A record that cannot be written costs only the clean-up after a `kill -9`.
    let record = spec
        .record
        .as_ref()
        .and_then(|r| super::leftovers::record(&r.workspace, pgid, &r.what, spec.grace).ok());
    Ok(Group {
        child,
        pgid,
        record,
    })
}

/// Waits for `group` to end, for `cancel`, or for `deadline`; in the last two cases stops the
/// group (SIGTERM, `grace`, SIGKILL). After a normal exit, members the leader left running are
/// stopped the same way. An error only when waiting for the child itself failed.
pub async fn wait(
    group: &mut Group,
    grace: Duration,
    cancel: &CancellationToken,
    deadline: Option<Instant>,
) -> io::Result<Ended> {
    let expired = async {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
            None => std::future::pending().await,
        }
    };
    let ended = tokio::select! {
        status = group.child.wait() => {
            let status = status?;
            reap_leftovers(group.pgid, grace).await;
            return Ok(Ended::Exited(status));
        }
        () = cancel.cancelled() => Ended::Cancelled,
        () = expired => Ended::TimedOut,
    };
    terminate(group, grace).await;
    Ok(ended)
}

/// [`spawn`] then [`wait`]: a one-shot process from start to end.
pub async fn run(
    spec: &Spec,
    cancel: &CancellationToken,
    deadline: Option<Instant>,
) -> Result<Ended, RunError> {
    let mut group = spawn(spec).map_err(RunError::Spawn)?;
    wait(&mut group, spec.grace, cancel, deadline)
        .await
        .map_err(RunError::Wait)
}

/// Why [`run`] could not see a process to its end.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// It could not start (or its log could not be opened).
    #[error("cannot start: {0}")]
    Spawn(#[source] io::Error),
    /// Waiting for it failed.
    #[error("waiting for the process failed: {0}")]
    Wait(#[source] io::Error),
}

/// The deadline `timeout` from now; `None` when there is none or it is too far to represent.
pub fn deadline_after(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}
