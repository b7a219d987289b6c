//! `scores.json`: the normalized scores of one model, one row per (task, metric), built from
//! lm-eval's results files.

use std::path::{Path, PathBuf};

use super::EvalError;
use super::results_file::ResultsFile;
use super::settings::TaskSpec;
use crate::steps::metadata::Metadata;

/// The content of `results/<profile>/eval/<label>/scores.json`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct EvalScores {
    /// Provenance, engine and model, plus how lm-eval ran.
    pub metadata: EvalMetadata,
    /// Label of the model under test (`bf16`, `awq`).
    pub label: String,
    /// lm-eval's version as its results file reports it.
    pub lm_eval_version: Option<String>,
    /// One row per task and metric, in the order of the settings.
    pub results: Vec<ScoreRow>,
}

/// `metadata` of `scores.json`: the shared keys, then the eval-specific ones.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct EvalMetadata {
    /// The shared provenance keys.
    #[serde(flatten)]
    pub common: Metadata,
    /// lm-eval's version and git hash.
    pub lm_eval: LmEvalInfo,
    /// Each lm-eval invocation: its arguments and the results file it wrote.
    pub invocations: Vec<Invocation>,
}

/// Which lm-eval produced the numbers.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct LmEvalInfo {
    /// `lm_eval_version` from the results file.
    pub version: Option<String>,
    /// `git_hash` from the results file (null for a PyPI install).
    pub git_hash: Option<String>,
}

/// One lm-eval run within the step.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct Invocation {
    /// Tasks it ran.
    pub tasks: Vec<String>,
    /// `--num_fewshot`.
    pub shots: u32,
    /// `--limit`, when set.
    pub limit: Option<f64>,
    /// The full command line (program and arguments).
    pub command: Vec<String>,
    /// Its results file, relative to the step's output directory.
    pub results_file: String,
    /// lm-eval's `versions` of the tasks it ran (a task's version changes with its prompt or scoring).
    pub task_versions: std::collections::BTreeMap<String, serde_json::Value>,
    /// Wall-clock seconds it took.
    pub duration_s: f64,
}

/// One kept number.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct ScoreRow {
    /// lm-eval task or group name.
    pub task: String,
    /// Metric name (`acc`, `acc_norm`, `exact_match`).
    pub metric: String,
    /// lm-eval filter of the metric (`none`, `strict-match`).
    pub filter: String,
    /// The score, a fraction for the metrics above.
    pub value: f64,
    /// lm-eval's standard error of the score; `null` where lm-eval reported `N/A`.
    pub stderr: Option<f64>,
    /// Documents evaluated.
    pub n: u64,
    /// Few-shot examples per prompt.
    pub shots: u32,
}

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

/// Writes pretty JSON next to `path` and renames it into place, so a reader never sees half.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), EvalError> {
    let io_error = |source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut text = serde_json::to_string_pretty(value).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(source),
    })?;
    text.push('\n');
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_error)?;
    }
    let partial = path.with_extension("json.partial");
    std::fs::write(&partial, text).map_err(io_error)?;
    std::fs::rename(&partial, path).map_err(io_error)
}

/// Reads a `scores.json` written by this module.
pub fn read_scores(path: &Path) -> Result<EvalScores, EvalError> {
    let bytes = std::fs::read(path).map_err(|source| EvalError::ScoresRead {
        path: path.to_path_buf(),
        message: source.to_string(),
    })?;
    serde_json::from_slice(&bytes).map_err(|source| EvalError::ScoresRead {
        path: path.to_path_buf(),
        message: source.to_string(),
    })
}
