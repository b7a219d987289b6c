//! The `command` kind: a one-shot process in its own process group, output to the step's log.

use serde_json::Value as Json;

use super::process::{self, Ended, Environment, RunError, Spec};
use super::{Outcome, StepError, StepIo};
use crate::manifest::Step;
use crate::manifest::body::Command;

/// Runs the command line with `sh -c`, in its own process group, until it exits, times out or
/// the run is cancelled.
pub(super) async fn run(step: &Step, command: &Command, io: StepIo) -> Result<Outcome, StepError> {
    let line = render_with_staging(step, command, &io)?;
    let env = process::step_env(step, &io.provenance.profile, &io.workspace);
    let spec = Spec::shell(
        &line,
        &io.workspace,
        Environment::cleared(env),
        &io.log,
        step.stop_grace,
    )
    .recorded(&io.workspace, &format!("step `{}`", step.id));
    let ended = process::run(&spec, &io.cancel, process::deadline_after(command.timeout))
        .await
        .map_err(|e| match e {
            RunError::Spawn(source) => StepError::Spawn {
                line: line.clone(),
                source,
            },
            RunError::Wait(source) => StepError::Wait(source),
        })?;
    let status = match ended {
        Ended::Exited(status) => status,
        Ended::Cancelled => return Err(StepError::Cancelled),
        Ended::TimedOut => {
            return Err(StepError::TimedOut(command.timeout.unwrap_or_default()));
        }
    };
    match status.code() {
        Some(0) => Ok(Outcome { exit_code: Some(0) }),
        Some(code) => Err(StepError::Exited(code)),
        None => Err(StepError::Signalled),
    }
}

/// The command line with `outputs` pointing at the staging paths, every value shell-quoted.
fn render_with_staging(step: &Step, command: &Command, io: &StepIo) -> Result<String, StepError> {
    let source = &command.run_source;
    let mut context = step.context.clone();
    context["outputs"] = Json::from(
        io.outputs
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>(),
    );
    crate::manifest::templating::Renderer::default()
        .render_shell(source, &context)
        .map_err(|e| StepError::Render(e.message))
}
