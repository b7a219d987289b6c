//! Outcome reporting: how each step ended ([`Status`], [`StepResult`]), what the run did
//! ([`RunReport`], which `forge run` prints as its summary or, with `--json`, as JSON), and the
//! words and progress lines a step's success, failure, interruption or halt is reported with.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::Progress;
use super::services::Services;
use crate::manifest::{Pipeline, StepId};
use crate::plan::{Action, StepPlan};

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "status", content = "detail")]
pub enum Status {
    /// It ran and succeeded.
    Ran,
    /// It was fresh (or became fresh: its upstream reran with identical outputs).
    Fresh,
    /// It was not needed.
    Skipped,
    /// It failed.
    Failed(String),
    /// It did not start: an upstream step failed or the run stopped.
    NotRun(String),
    /// A service that was started for this run.
    Started,
    /// A service nothing needed.
    Idle,
}

/// One row of the summary.
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    /// The step id.
    pub id: StepId,
    /// How it ended.
    #[serde(flatten)]
    pub status: Status,
    /// Seconds it ran.
    pub duration_s: f64,
    /// True when its outputs came from the record instead of running it.
    pub cached: bool,
    /// Its log file, when it ran.
    pub log: Option<PathBuf>,
}

/// What the run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Per step, in dependency order.
    pub steps: Vec<StepResult>,
    /// True when Ctrl-C (or SIGTERM) stopped the run.
    pub interrupted: bool,
}

impl RunReport {
    /// True when no step failed and the run was not interrupted.
    pub fn success(&self) -> bool {
        !self.interrupted
            && self
                .steps
                .iter()
                .all(|s| !matches!(s.status, Status::Failed(_) | Status::NotRun(_)))
    }
}

impl StepResult {
    /// A step that did not run for `status`'s reason, without a log.
    fn without_log(id: &str, status: Status) -> Self {
        Self {
            id: StepId::from(id),
            cached: status == Status::Fresh,
            status,
            duration_s: 0.0,
            log: None,
        }
    }

    /// A step that ran (or started to) for `duration` seconds and wrote `log`.
    fn with_log(id: &str, status: Status, duration: f64, log: PathBuf) -> Self {
        Self {
            id: StepId::from(id),
            status,
            duration_s: duration,
            cached: false,
            log: Some(log),
        }
    }

    /// A step that did not start, and why.
    pub fn not_run(id: &str, why: String) -> Self {
        Self::without_log(id, Status::NotRun(why))
    }

    /// A step that failed before its process or kind started (so it has no log).
    pub fn failed_early(id: &str, message: String) -> Self {
        Self::without_log(id, Status::Failed(message))
    }
}

/// Why a step that had not started will not: Ctrl-C (`interrupted`), or another step's failure.
pub fn halt_reason(interrupted: bool) -> String {
    if interrupted {
        "interrupted".into()
    } else {
        "stopped after a failure (use `--keep-going` to continue independent steps)".into()
    }
}

/// A step whose upstream reran with identical outputs, so it is fresh without running.
pub fn became_fresh(progress: &Progress, id: &str) -> StepResult {
    progress.line(&format!("{id}: fresh (upstream outputs unchanged)"));
    StepResult::without_log(id, Status::Fresh)
}

/// A step whose declared inputs are absent: it fails without running.
pub fn missing_inputs(progress: &Progress, id: &str, missing: &[&String]) -> StepResult {
    let message = format!(
        "declared input {} does not exist",
        crate::manifest::diagnostics::list(missing)
    );
    progress.line(&format!("{id}: failed: {message}"));
    StepResult::failed_early(id, message)
}

/// A step that ran and whose outputs were committed.
pub fn ran(progress: &Progress, id: &str, duration: f64, log: PathBuf) -> StepResult {
    progress.line(&format!("{id}: done in {}", format_secs(duration)));
    StepResult::with_log(id, Status::Ran, duration, log)
}

/// A step that Ctrl-C stopped while it ran; `error` is what the step said as it stopped.
pub fn interrupted(
    progress: &Progress,
    id: &str,
    error: &dyn std::fmt::Display,
    duration: f64,
    log: PathBuf,
) -> StepResult {
    progress.line(&format!("{id}: interrupted"));
    let status = Status::NotRun(format!("interrupted ({error})"));
    StepResult::with_log(id, status, duration, log)
}

/// A step that failed once prepared: the message and its log's last lines go to the progress
/// output; the result carries the message and the log.
pub fn failed(
    progress: &Progress,
    id: &str,
    message: String,
    duration: f64,
    log: &Path,
) -> StepResult {
    let tail = crate::steps::process::tail(log, 20);
    let mut text = format!("{id}: failed: {message}");
    if !tail.is_empty() {
        text.push_str(&format!(
            "\nlast lines of `{}`:\n{}",
            log.display(),
            tail.join("\n")
        ));
    }
    progress.line(&text);
    StepResult::with_log(id, Status::Failed(message), duration, log.to_path_buf())
}

/// A failed step's message: the first error logged by a service it used (`services`) leads, as
/// it explains the failure better than the step's own symptom (HTTP 5xx from a dead engine);
/// outputs the step wrote to `staging` before failing follow. Those stay in staging for
/// inspection until the step runs again; they are never recorded.
pub fn failure_message(
    pipeline: &Pipeline,
    services: &[StepId],
    error: String,
    staging: &[PathBuf],
) -> String {
    let mut message = error;
    let causes: Vec<String> = services
        .iter()
        .filter_map(|s| crate::steps::root_cause::service_failure(s, &pipeline.log_path(s)))
        .filter(|cause| !message.contains(cause.as_str()))
        .collect();
    if !causes.is_empty() {
        message = format!("{}\n{message}", causes.join("\n"));
    }
    let partial: Vec<String> = staging
        .iter()
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !partial.is_empty() {
        message.push_str(&format!(
            "\npartial outputs (not recorded): {}",
            partial.join(", ")
        ));
    }
    message
}

/// The result of a step the walk did not run: a service (started, failed to start, or idle), a
/// fresh step, or a skipped one.
pub fn not_walked(plan: &StepPlan, services: &Services) -> StepResult {
    let status = match plan.action {
        Action::Start | Action::Idle => match services.start_failure(&plan.id) {
            Some(error) => Status::Failed(error.to_string()),
            None if services.was_started(&plan.id) => Status::Started,
            None => Status::Idle,
        },
        Action::Fresh => Status::Fresh,
        _ => Status::Skipped,
    };
    StepResult::without_log(&plan.id, status)
}

/// `1.2s`, `3m 04s`.
pub fn format_secs(secs: f64) -> String {
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let whole = secs.round() as u64;
        format!("{}m {:02}s", whole / 60, whole % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_read_as_seconds_then_minutes() {
        assert_eq!(format_secs(1.24), "1.2s");
        assert_eq!(format_secs(59.94), "59.9s");
        assert_eq!(format_secs(184.4), "3m 04s");
    }

    #[test]
    fn a_run_succeeds_only_without_failures_or_interruption() {
        let row = |status| StepResult::without_log("a", status);
        let report = |steps, interrupted| RunReport { steps, interrupted };
        assert!(report(vec![row(Status::Ran), row(Status::Idle)], false).success());
        assert!(!report(vec![row(Status::Ran)], true).success());
        assert!(!report(vec![row(Status::Failed("x".into()))], false).success());
        assert!(!report(vec![StepResult::not_run("a", halt_reason(false))], false).success());
    }
}
