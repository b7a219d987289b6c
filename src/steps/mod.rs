//! Step kinds. `command` and `service` run processes; built-in kinds (added by later modules)
//! plug in through [`StepKind`] without touching the executor.

pub mod bench;
mod builtins;
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

use std::future::Future;
use std::pin::Pin;

use serde_json::Value as Json;

use crate::manifest::Step;
pub use io::{Provenance, ServiceInfo, StepIo};

/// A boxed future returned by [`StepKind::run`].
pub type StepFuture<'a> = Pin<Box<dyn Future<Output = Result<Outcome, StepError>> + Send + 'a>>;

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

/// A kind of step the executor can run.
pub trait StepKind: Sync {
    /// The name used in manifests (`kind = "..."`).
    fn name(&self) -> &'static str;
    /// Bumped when the kind changes what it writes; part of every key of this kind.
    fn schema_version(&self) -> u32;
    /// Checks the rendered `with` settings at load time (`Err` names the field).
    fn check(&self, with: &Json) -> Result<(), String>;
    /// Runs the step, writing its outputs to `io.outputs`.
    fn run<'a>(&'a self, step: &'a Step, io: StepIo) -> StepFuture<'a>;
    /// Files and directories its `with` settings make it read (task directories, pricing files,
    /// templates, tokenizers), workspace-relative or absolute. Their contents enter the step's
    /// key, so editing one reruns the step.
    fn reads(&self, _with: &Json) -> Vec<std::path::PathBuf> {
        Vec::new()
    }
}

/// The built-in kinds (everything but `command` and `service`).
static BUILTINS: &[&dyn StepKind] = &[
    &builtins::Bench,
    &builtins::Eval,
    &builtins::Retention,
    &builtins::Cost,
    &builtins::Charts,
    &builtins::Report,
];

/// A built-in kind by name.
pub fn builtin(name: &str) -> Option<&'static dyn StepKind> {
    BUILTINS.iter().copied().find(|k| k.name() == name)
}

/// Names of the built-in kinds.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTINS.iter().map(|k| k.name()).collect()
}

/// The kind that runs `step` (`service` has none: the executor manages services).
pub fn kind_of(step: &Step) -> Option<&'static dyn StepKind> {
    match step.kind.as_str() {
        "command" => Some(&command::Command),
        other => builtin(other),
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

/// Deserializes `with` into a kind's settings type, as the check for [`StepKind::check`].
pub fn check_settings<T: serde::de::DeserializeOwned>(with: &Json) -> Result<T, String> {
    serde_json::from_value(with.clone()).map_err(|err| err.to_string())
}
