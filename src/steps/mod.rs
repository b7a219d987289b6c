//! Step kinds: what each one does when it runs. The manifest's [`Body`] says which kind a step
//! is and holds its options; [`run`] matches on it. `service` steps are started and stopped by
//! the executor (`executor/services.rs`), not here.

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

/// Why a step failed, in words for the user.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct StepError {
    /// What went wrong and what to do.
    pub message: String,
}

impl StepError {
    /// A failure with a message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// Runs a step that is not a service, writing its outputs to `io.outputs`.
pub async fn run(step: &Step, io: StepIo) -> Result<Outcome, StepError> {
    /// A built-in kind's result as an outcome: its error's words become the step's.
    fn done<T, E: std::fmt::Display>(result: Result<T, E>) -> Result<Outcome, StepError> {
        result
            .map(|_| Outcome::default())
            .map_err(|err| StepError::new(err.to_string()))
    }
    match &step.body {
        Body::Command(command) => command::run(step, command, io).await,
        Body::Service(_) => Err(StepError::new(format!(
            "`{}` is a service: the executor starts it for the steps that need it",
            step.id
        ))),
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
