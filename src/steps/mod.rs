//! Step kinds: what each one does when it runs. The manifest's [`Body`] says which kind a step
//! is and holds its options; [`run`] matches on it. `service` steps are started and stopped by
//! the executor (`executor/services/`), not here.

pub mod bench;
pub mod charts;
pub mod command;
pub mod cost;
pub mod eval;
pub mod io;
pub mod leftovers;
pub mod metadata;
pub mod model_source;
pub mod process;
pub mod report;
pub mod root_cause;
pub mod url;

use crate::manifest::{Body, Step};
pub use io::{Provenance, ServiceInfo, StepIo};

/// What a finished step reports besides its outputs.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The process's exit code, for process-based kinds.
    pub exit_code: Option<i32>,
}

/// Why a step failed, in words for the user; a built-in kind's own error is kept whole.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// A `command` step's `run` could not be rendered with its staging paths.
    #[error("cannot render `run`: {0}")]
    Render(String),
    /// A `command` step's process could not start.
    #[error("cannot start `sh -c {line}`: {source}")]
    Spawn {
        /// The rendered command line.
        line: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Waiting for a `command` step's process failed.
    #[error("waiting for the process failed: {0}")]
    Wait(#[source] std::io::Error),
    /// The run was cancelled while the process ran (it was stopped).
    #[error("cancelled")]
    Cancelled,
    /// The step's `timeout` passed (its process was stopped).
    #[error("timed out after {}", crate::time::format_duration(*.0))]
    TimedOut(std::time::Duration),
    /// The process exited with a code other than 0.
    #[error("exited with code {0}")]
    Exited(i32),
    /// A signal ended the process.
    #[error("killed by a signal")]
    Signalled,
    /// A service step was handed to [`run`]; the executor starts services.
    #[error("`{0}` is a service: the executor starts it for the steps that need it")]
    IsService(crate::manifest::StepId),
    /// A `bench` step failed.
    #[error(transparent)]
    Bench(#[from] bench::BenchError),
    /// An `eval` or `retention` step failed.
    #[error(transparent)]
    Eval(#[from] eval::EvalError),
    /// A `cost` step failed.
    #[error(transparent)]
    Cost(#[from] cost::CostError),
    /// A `charts` step failed.
    #[error(transparent)]
    Charts(#[from] charts::ChartsError),
    /// A `report` step failed.
    #[error(transparent)]
    Report(#[from] report::ReportError),
}

/// Runs a step that is not a service, writing its outputs to `io.outputs`.
pub async fn run(step: &Step, io: StepIo) -> Result<Outcome, StepError> {
    /// A built-in kind's result as an outcome; its error becomes the step's.
    fn done<T, E: Into<StepError>>(result: Result<T, E>) -> Result<Outcome, StepError> {
        result.map(|_| Outcome::default()).map_err(Into::into)
    }
    match &step.body {
        Body::Command(command) => command::run(step, command, io).await,
        Body::Service(_) => Err(StepError::IsService(step.id.clone())),
        Body::Bench(b) => done(bench::run_step(&b.settings, &io).await),
        Body::Eval(b) => done(eval::run_step(&b.settings, &io).await),
        Body::Retention(b) => done(eval::run_retention(&b.settings, &io).await),
        Body::Cost(b) => done(cost::run_step(&b.settings, &io).await),
        Body::Charts(b) => done(charts::run_step(&b.settings, &io).await),
        Body::Report(b) => done(report::run_step(&b.settings, &io).await),
    }
}

/// Checks a built-in kind's settings can make before anything runs, beyond what serde checks
/// (values that must be valid whatever the inputs hold): run by `forge plan` and before a run, so
/// a bad price or SLO stops a paid run before it starts, not after hours of GPU work.
pub trait PlanCheck {
    /// What is wrong, in the words of the step's own error; `Ok` when nothing is.
    fn plan_check(&self) -> Result<(), String> {
        Ok(())
    }
}

impl PlanCheck for eval::EvalSettings {}
impl PlanCheck for eval::RetentionSettings {}
impl PlanCheck for charts::ChartsSettings {}
impl PlanCheck for report::ReportSettings {}
impl PlanCheck for bench::BenchSettings {}

impl PlanCheck for cost::CostSettings {
    fn plan_check(&self) -> Result<(), String> {
        self.validate()
            .map_err(|(field, problem)| format!("setting `{field}` is {problem}"))
    }
}
