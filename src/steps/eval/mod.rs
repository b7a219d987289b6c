//! The built-in `eval` kind (lm-evaluation-harness against a served model, normalized into
//! `scores.json`) and `retention` kind (candidate vs baseline scores, `retention.json`).
//!
//! lm-eval does the evaluating; this module only runs it, reads its results files, and
//! does the arithmetic on top.

mod process;
mod results_file;
mod retention;
mod scores;
mod settings;
mod step;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use crate::steps::metadata::{EngineInfo, GpuInfo, HostFacts, Metadata, ModelInfo};
pub use results_file::{MetricReading, ResultsFile};
pub use retention::{
    Retention, RetentionMetadata, RetentionRow, RetentionSummary, build_retention, run_retention,
};
pub use scores::{EvalMetadata, EvalScores, Invocation, LmEvalInfo, ScoreRow, read_scores};
pub use settings::{EvalSettings, RetentionSettings, TaskSpec};
pub use step::run_step;

/// Why an `eval` or `retention` step failed.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A setting is wrong.
    #[error("invalid eval setting `{field}`: {message}")]
    Settings {
        /// The setting (`tasks[1]`).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The step declares no output path.
    #[error(
        "the step declares no output; it needs one (a directory for `eval`, a file for `retention`)"
    )]
    NoOutput,
    /// No server URL: neither `base_url` nor exactly one service with a `url`.
    #[error(
        "no server to evaluate: {0}\nhint: set `base_url`, or make the step need exactly one service that publishes a `url`"
    )]
    NoServer(String),
    /// No served model name.
    #[error("no served model name: set `model`, or have the service publish a `served_name` fact")]
    NoModel,
    /// lm-eval could not be started.
    #[error(
        "cannot start lm-eval `{program}`: {source}\nhint: check the `lm_eval` setting and that the eval environment is installed"
    )]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// lm-eval exited unsuccessfully.
    #[error("lm-eval failed ({status}) running `{tasks}`{server}\nlog: `{log}`\nlast lines of its output:\n{tail}", log = .log.display())]
    LmEvalFailed {
        /// Exit status in words.
        status: String,
        /// Tasks of the failed invocation.
        tasks: String,
        /// A note when the server no longer answers, else empty.
        server: String,
        /// The step log.
        log: PathBuf,
        /// lm-eval's last lines.
        tail: String,
    },
    /// lm-eval exited 0 but left no results file.
    #[error("lm-eval wrote no `results_*.json` under `{dir}` for `{tasks}`\nlog: `{log}`\nlast lines of its output:\n{tail}", dir = .dir.display(), log = .log.display())]
    NoResultsFile {
        /// Where it should be.
        dir: PathBuf,
        /// Tasks of the invocation.
        tasks: String,
        /// The step log.
        log: PathBuf,
        /// lm-eval's last lines.
        tail: String,
    },
    /// The step ran out of time.
    #[error("eval timed out after {after_s} s (`timeout_s`); lm-eval was stopped\nlog: `{log}`\nlast lines of its output:\n{tail}", log = .log.display())]
    Timeout {
        /// The limit.
        after_s: u64,
        /// The step log.
        log: PathBuf,
        /// lm-eval's last lines.
        tail: String,
    },
    /// The run was cancelled; lm-eval was stopped.
    #[error("eval cancelled; lm-eval was stopped")]
    Cancelled,
    /// A file could not be read or written.
    #[error("cannot access `{path}`: {source}", path = .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A results file is not the JSON lm-eval writes.
    #[error("cannot parse lm-eval results `{path}`: {source}", path = .path.display())]
    ResultsParse {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A results file lacks a task.
    #[error("lm-eval results `{path}` have no task or group `{task}` (it has: {available})", path = .path.display())]
    MissingTask {
        /// The file.
        path: PathBuf,
        /// The task.
        task: String,
        /// The tasks it has.
        available: String,
    },
    /// A results file lacks a metric/filter of a task.
    #[error("lm-eval results `{path}` have no `{key}` for task `{task}` (it has: {available})\nhint: check the task's `metric` and `filter` settings", path = .path.display())]
    MissingMetric {
        /// The file.
        path: PathBuf,
        /// The task.
        task: String,
        /// `metric,filter`.
        key: String,
        /// The metric keys it has.
        available: String,
    },
    /// A metric value is not a finite number.
    #[error("lm-eval results `{path}`: `{key}` of task `{task}` is {value}, not a number", path = .path.display())]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The task.
        task: String,
        /// The key.
        key: String,
        /// The value as JSON.
        value: String,
    },
    /// lm-eval ran a task with other shots than asked.
    #[error("lm-eval results `{path}`: task `{task}` ran {found}-shot, the settings ask {expected}-shot", path = .path.display())]
    ShotsMismatch {
        /// The file.
        path: PathBuf,
        /// The task.
        task: String,
        /// Shots in the settings.
        expected: u32,
        /// Shots in the file.
        found: u32,
    },
    /// A `scores.json` cannot be read.
    #[error("cannot read scores `{path}`: {message}", path = .path.display())]
    ScoresRead {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A task/metric is in one scores file and not the other.
    #[error("`{task}` `{metric}` is missing from `{path}`; retention needs both models evaluated on the same tasks", path = .path.display())]
    RetentionMissingTask {
        /// The task.
        task: String,
        /// `metric,filter`.
        metric: String,
        /// The file that lacks it.
        path: PathBuf,
    },
    /// The baseline scored zero, so a ratio is undefined.
    #[error("baseline `{task}` `{metric}` in `{path}` is 0, so retention (candidate / baseline) is undefined", path = .path.display())]
    ZeroBaseline {
        /// The task.
        task: String,
        /// `metric,filter`.
        metric: String,
        /// The baseline file.
        path: PathBuf,
    },
    /// The two runs of a task differ in setup.
    #[error(
        "`{task}` was run with different {what} (baseline {baseline}, candidate {candidate}); retention compares like with like"
    )]
    Incomparable {
        /// The task.
        task: String,
        /// What differs.
        what: String,
        /// Baseline's value.
        baseline: String,
        /// Candidate's value.
        candidate: String,
    },
}
