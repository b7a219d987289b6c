//! `scores.json`: the normalized scores of one model, one row per (task, metric), built from
//! lm-eval's results files.

use std::path::{Path, PathBuf};

use super::EvalError;
use super::results_file::ResultsFile;
use super::settings::TaskSpec;
pub use crate::results::eval::{EvalMetadata, EvalScores, Invocation, LmEvalInfo, ScoreRow};

/// Reads each task's metric from the results file of the invocation that ran it.
/// Fails when a task, metric or filter is missing, or when lm-eval used other shots.
pub fn score_rows(
    tasks: &[TaskSpec],
    files: &[(&[TaskSpec], PathBuf, ResultsFile)],
) -> Result<Vec<ScoreRow>, EvalError> {
    let mut rows = Vec::with_capacity(tasks.len());
    for task in tasks {
        let (_, path, file) = files
            .iter()
            .find(|(ran, _, _)| ran.iter().any(|spec| spec.name == task.name))
            .ok_or_else(|| EvalError::MissingTask {
                path: PathBuf::from("(no invocation)"),
                task: task.name.clone(),
                available: String::new(),
            })?;
        let reading = file.metric(path, &task.name, &task.metric, task.filter_name())?;
        if let Some(shots) = reading.shots
            && shots != task.shots
        {
            return Err(EvalError::ShotsMismatch {
                path: path.clone(),
                task: task.name.clone(),
                expected: task.shots,
                found: shots,
            });
        }
        rows.push(ScoreRow {
            task: task.name.clone(),
            metric: task.metric.clone(),
            filter: task.filter_name().to_string(),
            value: reading.value,
            stderr: reading.stderr,
            n: reading.n,
            shots: task.shots,
        });
    }
    Ok(rows)
}

/// Writes an eval result file through [`crate::results::write_json`] (atomic, pretty JSON).
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), EvalError> {
    crate::results::write_json(path, value).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a `scores.json` (any error names the file).
pub fn read_scores(path: &Path) -> Result<EvalScores, EvalError> {
    crate::results::read_json(path).map_err(|error| EvalError::ScoresRead {
        path: path.to_path_buf(),
        message: error.reason(),
    })
}
