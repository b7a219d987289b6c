//! Retention: how much of the baseline's (BF16) score the candidate (AWQ) keeps, per task and
//! on average, with standard errors propagated from both runs.
//!
//! Per task, with baseline score b (stderr s_b) and candidate score c (stderr s_c) from two
//! independent runs:
//! - retention r = c / b;
//! - its stderr by the delta method (first-order Taylor expansion of a ratio of independent
//!   estimates; see "Propagation of uncertainty", f = A/B, with zero covariance):
//!   s_r = |r| * sqrt((s_c/c)^2 + (s_b/b)^2), computed as sqrt(s_c^2 + r^2 s_b^2) / |b|, the same
//!   quantity that stays defined when c = 0;
//! - delta in points d = 100 (c - b) for scores that are fractions (both in [0, 1]: acc,
//!   acc_norm, exact_match), the plain difference otherwise.
//!
//! Summary over n tasks: mean retention R = (1/n) sum r_i, whose stderr, for independent
//! tasks, is sqrt(sum s_i^2) / n (variance of a mean of independent terms); mean delta
//! (1/n) sum d_i. A stderr that lm-eval reported as `N/A` makes the stderrs that depend on it
//! `null` rather than a made-up number.

use std::path::{Path, PathBuf};

use super::EvalError;
use super::scores::{EvalScores, ScoreRow, read_scores, write_json};
use super::settings::RetentionSettings;
pub use crate::results::eval::{Retention, RetentionMetadata, RetentionRow, RetentionSummary};
use crate::steps::io::StepIo;
use crate::steps::metadata::{HostFacts, Metadata};

/// Pairs the rows of two scores files and computes retention; `paths` name them in errors.
pub fn compare(
    baseline: &EvalScores,
    candidate: &EvalScores,
    paths: (&Path, &Path),
) -> Result<(Vec<RetentionRow>, RetentionSummary), EvalError> {
    let (baseline_path, candidate_path) = paths;
    if let (Some(b), Some(c)) = (&baseline.lm_eval_version, &candidate.lm_eval_version)
        && b != c
    {
        return Err(EvalError::Incomparable {
            task: "(all tasks)".to_string(),
            what: "lm-eval versions".to_string(),
            baseline: b.clone(),
            candidate: c.clone(),
        });
    }
    let key = |row: &ScoreRow| (row.task.clone(), row.metric.clone(), row.filter.clone());
    let missing = |row: &ScoreRow, path: &Path| EvalError::RetentionMissingTask {
        task: row.task.clone(),
        metric: format!("{},{}", row.metric, row.filter),
        path: path.to_path_buf(),
    };
    if let Some(extra) = candidate
        .results
        .iter()
        .find(|row| !baseline.results.iter().any(|b| key(b) == key(row)))
    {
        return Err(missing(extra, baseline_path));
    }
    let mut rows = Vec::with_capacity(baseline.results.len());
    for base in &baseline.results {
        let cand = candidate
            .results
            .iter()
            .find(|row| key(row) == key(base))
            .ok_or_else(|| missing(base, candidate_path))?;
        rows.push(task_retention(base, cand, baseline_path)?);
    }
    if rows.is_empty() {
        return Err(EvalError::ScoresRead {
            path: baseline_path.to_path_buf(),
            message: "has no results to compare".to_string(),
        });
    }
    let summary = summarize(&rows);
    Ok((rows, summary))
}

fn task_retention(
    base: &ScoreRow,
    cand: &ScoreRow,
    baseline_path: &Path,
) -> Result<RetentionRow, EvalError> {
    let incomparable = |what: &str, b: String, c: String| EvalError::Incomparable {
        task: base.task.clone(),
        what: what.to_string(),
        baseline: b,
        candidate: c,
    };
    if base.shots != cand.shots {
        return Err(incomparable(
            "shots",
            base.shots.to_string(),
            cand.shots.to_string(),
        ));
    }
    if base.n != cand.n {
        return Err(incomparable(
            "documents (n)",
            base.n.to_string(),
            cand.n.to_string(),
        ));
    }
    let (b, c) = (base.value, cand.value);
    if b == 0.0 {
        return Err(EvalError::ZeroBaseline {
            task: base.task.clone(),
            metric: format!("{},{}", base.metric, base.filter),
            path: baseline_path.to_path_buf(),
        });
    }
    let retention = c / b;
    // Delta method for a ratio of independent estimates (see the module docs).
    let retention_stderr = match (base.stderr, cand.stderr) {
        (Some(sb), Some(sc)) => Some((sc * sc + retention * retention * sb * sb).sqrt() / b.abs()),
        _ => None,
    };
    let fraction = (0.0..=1.0).contains(&b) && (0.0..=1.0).contains(&c);
    let delta_points = if fraction { 100.0 * (c - b) } else { c - b };
    Ok(RetentionRow {
        task: base.task.clone(),
        metric: base.metric.clone(),
        filter: base.filter.clone(),
        shots: base.shots,
        n: base.n,
        baseline: b,
        baseline_stderr: base.stderr,
        candidate: c,
        candidate_stderr: cand.stderr,
        retention,
        retention_stderr,
        delta_points,
    })
}

/// Mean retention, its stderr sqrt(sum s_i^2)/n for independent tasks, and the mean delta.
pub fn summarize(rows: &[RetentionRow]) -> RetentionSummary {
    let n = rows.len() as f64;
    let variance: Option<f64> = rows
        .iter()
        .map(|row| row.retention_stderr.map(|s| s * s))
        .sum();
    RetentionSummary {
        mean_retention: rows.iter().map(|row| row.retention).sum::<f64>() / n,
        mean_retention_stderr: variance.map(|sum| sum.sqrt() / n),
        mean_delta_points: rows.iter().map(|row| row.delta_points).sum::<f64>() / n,
    }
}

/// Builds the retention document for two scores files (pure; host facts injected).
pub fn build_retention(
    settings: &RetentionSettings,
    baseline: &EvalScores,
    candidate: &EvalScores,
    paths: (&Path, &Path),
    provenance: &crate::steps::io::Provenance,
    host: &HostFacts,
) -> Result<Retention, EvalError> {
    let (tasks, summary) = compare(baseline, candidate, paths)?;
    let mut common = Metadata::new(provenance, host);
    common.engine = baseline.metadata.common.engine.clone();
    Ok(Retention {
        schema_version: crate::results::SCHEMA_VERSION,
        metadata: RetentionMetadata {
            common,
            baseline_scores: settings.baseline.clone(),
            candidate_scores: settings.candidate.clone(),
            baseline_model: baseline.metadata.common.model.clone(),
            candidate_model: candidate.metadata.common.model.clone(),
        },
        baseline: settings
            .baseline_label
            .clone()
            .unwrap_or_else(|| baseline.label.clone()),
        candidate: settings
            .candidate_label
            .clone()
            .unwrap_or_else(|| candidate.label.clone()),
        tasks,
        summary,
    })
}

/// Reads the two `scores.json` files, computes retention, and writes `io.outputs[0]`
/// (the `retention.json` file path).
pub async fn run_retention(
    settings: &RetentionSettings,
    io: &StepIo,
) -> Result<Retention, EvalError> {
    let output = io.outputs.first().ok_or(EvalError::NoOutput)?;
    let resolve = |path: &str| -> PathBuf { io.workspace.join(path) };
    let (baseline_path, candidate_path) =
        (resolve(&settings.baseline), resolve(&settings.candidate));
    let baseline = read_scores(&baseline_path)?;
    let candidate = read_scores(&candidate_path)?;
    let host = HostFacts::gather().await;
    let retention = build_retention(
        settings,
        &baseline,
        &candidate,
        (&baseline_path, &candidate_path),
        &io.provenance,
        &host,
    )?;
    write_json(output, &retention)?;
    Ok(retention)
}
