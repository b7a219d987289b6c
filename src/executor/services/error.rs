//! Why a service is not up for a step: the run stopped, it did not start (and why), or it died
//! while steps needed it, each with what its log says.

use std::sync::Arc;
use std::time::Duration;

use crate::executor::wait::Halted;
use crate::manifest::StepId;
use crate::steps::process;

/// Why a service is not up for a step that needs it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServiceError {
    /// The run stopped while the step waited for the service's start or its resources.
    #[error("the run stopped while waiting for a service")]
    Halted,
    /// The service failed to start; every later user sees the same error.
    #[error(transparent)]
    Start(Arc<StartError>),
    /// The service stopped after its last planned user, before this user asked for it.
    #[error("service `{0}` was already stopped")]
    Stopped(StepId),
    /// The step needs something that is not a service of this run.
    #[error("`{0}` is not a service")]
    Unknown(StepId),
}

/// Why a service did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The step has no service body.
    #[error("step `{0}` is not a service")]
    NotAService(StepId),
    /// Something already answers on the address its readiness probe checks.
    #[error(
        "cannot start service `{id}`: something already listens on `{address}`\nhint: stop that server, or give this service another port (for example `--set port=...`)"
    )]
    PortBusy {
        /// The service.
        id: StepId,
        /// The probe's `host:port`.
        address: String,
    },
    /// Its process could not be spawned (or its log opened).
    #[error("cannot start service `{id}`: {source}")]
    Spawn {
        /// The service.
        id: StepId,
        /// The cause.
        source: std::io::Error,
    },
    /// It started but did not become ready.
    #[error("{}", not_ready(.id, .reason, .log))]
    NotReady {
        /// The service.
        id: StepId,
        /// What happened instead.
        #[source]
        reason: ReadinessError,
        /// What its log says.
        log: LogExcerpt,
    },
}

/// Why a started service was not ready.
#[derive(Debug, thiserror::Error)]
pub enum ReadinessError {
    /// Its process exited first.
    #[error("exited ({0}) before it was ready")]
    Exited(std::process::ExitStatus),
    /// Ctrl-C ended the wait.
    #[error("start was cancelled")]
    Cancelled,
    /// The readiness timeout passed.
    #[error("was not ready after {}", crate::time::format_duration(*.0))]
    TimedOut(Duration),
    /// The HTTP client for the probe could not be built.
    #[error("{0}")]
    Client(#[source] reqwest::Error),
}

/// A service that exited while steps needed it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", died(.id, .code, .log))]
pub struct ServiceDied {
    /// The service.
    pub id: StepId,
    /// Its exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    /// What its log says.
    pub log: LogExcerpt,
}

fn not_ready(id: &str, reason: &ReadinessError, log: &LogExcerpt) -> String {
    log.around(&format!("service `{id}` {reason}"))
}

fn died(id: &str, code: &Option<i32>, log: &LogExcerpt) -> String {
    let code = code.map_or("a signal".to_string(), |c| format!("code {c}"));
    log.around(&format!(
        "service `{id}` exited ({code}) while steps needed it"
    ))
}

/// What a service's log says about its failure: the first error it logged and its last lines.
#[derive(Debug, Clone)]
pub struct LogExcerpt {
    root_cause: Option<String>,
    log: std::path::PathBuf,
    tail: Vec<String>,
}

impl LogExcerpt {
    /// Reads service `id`'s log now.
    pub(super) fn read(id: &str, log: &std::path::Path) -> Self {
        Self {
            root_cause: crate::steps::root_cause::service_failure(id, log),
            log: log.to_path_buf(),
            tail: process::tail(log, process::TAIL_LINES),
        }
    }

    /// A failure for people: the root cause first (the summary shows the first line), then
    /// `what` happened, then the log's last lines.
    fn around(&self, what: &str) -> String {
        let tail = format!(
            "last lines of `{}`:\n{}",
            self.log.display(),
            self.tail.join("\n")
        );
        match &self.root_cause {
            Some(cause) => format!("{cause}\n{what}\n{tail}"),
            None => format!("{what}\n{tail}"),
        }
    }
}

impl From<Halted> for ServiceError {
    fn from(_: Halted) -> Self {
        ServiceError::Halted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_death_names_the_service_its_exit_and_its_log_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("serve.log");
        std::fs::write(&log, "loading\nlistening\n").expect("write");
        let died = |code| ServiceDied {
            id: "serve".into(),
            code,
            log: LogExcerpt::read("serve", &log),
        };
        let tail = format!("last lines of `{}`:\nloading\nlistening", log.display());
        assert_eq!(
            died(Some(7)).to_string(),
            format!("service `serve` exited (code 7) while steps needed it\n{tail}")
        );
        assert_eq!(
            died(None).to_string(),
            format!("service `serve` exited (a signal) while steps needed it\n{tail}")
        );
    }
}
