//! The eval steps' result files: `scores.json` ([`EvalScores`], one model's normalized scores)
//! and `retention.json` ([`Retention`], the candidate's scores as a share of the baseline's).
//! Reference: `docs/eval.md`.

use super::Versioned;
use super::metadata::{Metadata, ModelInfo};

/// The content of `results/<profile>/eval/<label>/scores.json`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
pub struct EvalScores {
    /// The shape of this file ([`super::SCHEMA_VERSION`]); absent in files written before it was
    /// recorded, which have version 1's shape.
    #[serde(default = "super::first_version")]
    pub schema_version: u32,
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
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
pub struct LmEvalInfo {
    /// `lm_eval_version` from the results file.
    pub version: Option<String>,
    /// `git_hash` from the results file (null for a PyPI install).
    pub git_hash: Option<String>,
}

/// One lm-eval run within the step.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
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

/// The content of `results/<profile>/eval/retention.json`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
pub struct Retention {
    /// The shape of this file ([`super::SCHEMA_VERSION`]); absent in files written before it was
    /// recorded, which have version 1's shape.
    #[serde(default = "super::first_version")]
    pub schema_version: u32,
    /// Provenance; `model` is null, both models are under `baseline_model`/`candidate_model`
    /// (absent: every key empty).
    #[serde(default)]
    pub metadata: RetentionMetadata,
    /// Label of the baseline (`bf16`).
    pub baseline: String,
    /// Label of the candidate (`awq`).
    pub candidate: String,
    /// One row per task and metric, in the baseline's order.
    pub tasks: Vec<RetentionRow>,
    /// Averages over the rows.
    pub summary: RetentionSummary,
}

/// `metadata` of `retention.json`.
#[derive(
    Debug, Clone, Default, PartialEq, serde::Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(default)]
pub struct RetentionMetadata {
    /// The shared provenance keys (engine taken from the baseline's scores).
    #[serde(flatten)]
    pub common: Metadata,
    /// The baseline's `scores.json`, as given in the settings.
    pub baseline_scores: String,
    /// The candidate's `scores.json`, as given in the settings.
    pub candidate_scores: String,
    /// The baseline model, from its scores.
    pub baseline_model: Option<ModelInfo>,
    /// The candidate model, from its scores.
    pub candidate_model: Option<ModelInfo>,
}

/// Retention of one task and metric.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
pub struct RetentionRow {
    /// lm-eval task or group name.
    pub task: String,
    /// Metric name.
    pub metric: String,
    /// lm-eval filter of the metric (empty when absent, as in hand-made files).
    #[serde(default)]
    pub filter: String,
    /// Few-shot examples, equal on both sides (0 when absent).
    #[serde(default)]
    pub shots: u32,
    /// Documents evaluated, equal on both sides (0 when absent).
    #[serde(default)]
    pub n: u64,
    /// Baseline score b.
    pub baseline: f64,
    /// Baseline stderr s_b.
    pub baseline_stderr: Option<f64>,
    /// Candidate score c.
    pub candidate: f64,
    /// Candidate stderr s_c.
    pub candidate_stderr: Option<f64>,
    /// r = c / b.
    pub retention: f64,
    /// sqrt(s_c^2 + r^2 s_b^2) / |b| (delta method).
    pub retention_stderr: Option<f64>,
    /// 100 (c - b) for fractions, c - b otherwise.
    pub delta_points: f64,
}

/// Averages over all rows.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
pub struct RetentionSummary {
    /// (1/n) sum r_i.
    pub mean_retention: f64,
    /// sqrt(sum s_i^2) / n; null when any row's stderr is null.
    pub mean_retention_stderr: Option<f64>,
    /// (1/n) sum d_i.
    pub mean_delta_points: f64,
}

impl Versioned for EvalScores {
    const WHAT: &'static str = "eval scores.json";
}

impl Versioned for Retention {
    const WHAT: &'static str = "retention.json";
}
