//! Retention arithmetic against hand-computed values and the lm-eval 0.4.13 fixtures.

use std::path::{Path, PathBuf};

use super::super::EvalError;
use super::super::results_file::ResultsFile;
use super::super::retention::{build_retention, compare};
use super::super::scores::{EvalMetadata, EvalScores, LmEvalInfo, ScoreRow, score_rows};
use super::super::settings::{RetentionSettings, TaskSpec};
use super::{fixed_host, provenance};
use crate::steps::metadata::{EngineInfo, Metadata, ModelInfo};

fn row(task: &str, metric: &str, filter: &str, value: f64, stderr: Option<f64>) -> ScoreRow {
    ScoreRow {
        task: task.into(),
        metric: metric.into(),
        filter: filter.into(),
        value,
        stderr,
        n: 100,
        shots: 5,
    }
}

fn scores(label: &str, results: Vec<ScoreRow>) -> EvalScores {
    let mut common = Metadata::new(&provenance(), &fixed_host());
    common.engine = Some(EngineInfo {
        name: "vllm".into(),
        version: "0.32.0".into(),
        torch: None,
        cuda: None,
    });
    common.model = Some(ModelInfo {
        served_name: label.into(),
        id: Some(format!("org/{label}")),
        sha: Some("abc".into()),
        label: Some(label.into()),
        weights: None,
        source: None,
    });
    EvalScores {
        schema_version: crate::results::SCHEMA_VERSION,
        metadata: EvalMetadata {
            common,
            lm_eval: LmEvalInfo {
                version: Some("0.4.13".into()),
                git_hash: None,
            },
            invocations: vec![],
        },
        label: label.into(),
        lm_eval_version: Some("0.4.13".into()),
        results,
    }
}

const PATHS: (&str, &str) = ("results/bf16/scores.json", "results/awq/scores.json");

fn paths() -> (&'static Path, &'static Path) {
    (Path::new(PATHS.0), Path::new(PATHS.1))
}

fn close(actual: f64, expected: f64) {
    assert!((actual - expected).abs() < 1e-9, "{actual} != {expected}");
}

#[test]
fn hand_computed_ratio_stderr_and_summary() {
    // b = 0.8 ± 0.02, c = 0.6 ± 0.03: r = 0.75,
    // s_r = 0.75 * sqrt((0.03/0.6)^2 + (0.02/0.8)^2) = 0.75 * sqrt(0.0025 + 0.000625) = 0.0419262745781...
    // b = 0.5 ± 0.04, c = 0.5 ± 0.04: r = 1, s_r = sqrt(0.0016 + 0.0016) / 0.5 = 0.1131370849898...
    let baseline = scores(
        "bf16",
        vec![
            row("mmlu", "acc", "none", 0.8, Some(0.02)),
            row("gsm8k", "exact_match", "strict-match", 0.5, Some(0.04)),
        ],
    );
    let candidate = scores(
        "awq",
        vec![
            row("gsm8k", "exact_match", "strict-match", 0.5, Some(0.04)),
            row("mmlu", "acc", "none", 0.6, Some(0.03)),
        ],
    );
    let (rows, summary) = compare(&baseline, &candidate, paths()).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].task, "mmlu", "rows keep the baseline's order");
    close(rows[0].retention, 0.75);
    close(
        rows[0].retention_stderr.unwrap(),
        0.75 * (0.0025f64 + 0.000625).sqrt(),
    );
    close(rows[0].retention_stderr.unwrap(), 0.041_926_274_578_121);
    close(rows[0].delta_points, -20.0);
    close(rows[1].retention, 1.0);
    close(rows[1].retention_stderr.unwrap(), 0.113_137_084_989_848);
    close(rows[1].delta_points, 0.0);
    // Summary: mean r = 0.875; s = sqrt(0.0419262..^2 + 0.1131370..^2) / 2 = 0.0603263...; mean d = -10.
    // (0.0419262..^2 = 0.0017578125, 0.1131370..^2 = 0.0128: sqrt(0.0145578125) / 2 = 0.0603278801...)
    close(summary.mean_retention, 0.875);
    let expected =
        (0.041_926_274_578_121f64.powi(2) + 0.113_137_084_989_848f64.powi(2)).sqrt() / 2.0;
    close(summary.mean_retention_stderr.unwrap(), expected);
    close(
        summary.mean_retention_stderr.unwrap(),
        0.060_327_880_163_321,
    );
    close(summary.mean_delta_points, -10.0);
}

#[test]
fn zero_candidate_keeps_a_defined_stderr_and_non_fractions_are_not_scaled() {
    // c = 0: r = 0 and s_r = s_c / b = 0.01 / 0.25 = 0.04 (the |r|*sqrt(...) form divides by c).
    let baseline = scores(
        "bf16",
        vec![
            row("gsm8k", "exact_match", "strict-match", 0.25, Some(0.02)),
            row("wiki", "word_perplexity", "none", 12.0, None),
        ],
    );
    let candidate = scores(
        "awq",
        vec![
            row("gsm8k", "exact_match", "strict-match", 0.0, Some(0.01)),
            row("wiki", "word_perplexity", "none", 13.5, None),
        ],
    );
    let (rows, summary) = compare(&baseline, &candidate, paths()).unwrap();
    close(rows[0].retention_stderr.unwrap(), 0.04);
    close(rows[0].delta_points, -25.0);
    close(rows[1].retention, 1.125);
    close(rows[1].delta_points, 1.5);
    assert_eq!(
        rows[1].retention_stderr, None,
        "an `N/A` stderr propagates as null"
    );
    assert_eq!(summary.mean_retention_stderr, None);
}

#[test]
fn zero_baseline_missing_task_and_mismatched_runs_are_errors() {
    let base = scores("bf16", vec![row("mmlu", "acc", "none", 0.0, Some(0.0))]);
    let cand = scores("awq", vec![row("mmlu", "acc", "none", 0.1, Some(0.01))]);
    let error = compare(&base, &cand, paths()).unwrap_err();
    assert!(matches!(error, EvalError::ZeroBaseline { .. }), "{error}");
    assert!(
        error.to_string().contains("results/bf16/scores.json"),
        "{error}"
    );

    let base = scores(
        "bf16",
        vec![
            row("mmlu", "acc", "none", 0.6, None),
            row("gsm8k", "exact_match", "strict-match", 0.5, None),
        ],
    );
    let cand = scores("awq", vec![row("mmlu", "acc", "none", 0.6, None)]);
    let error = compare(&base, &cand, paths()).unwrap_err().to_string();
    assert!(
        error.contains(
            "`gsm8k` `exact_match,strict-match` is missing from `results/awq/scores.json`"
        ),
        "{error}"
    );
    let error = compare(&cand, &base, paths()).unwrap_err().to_string();
    assert!(
        error.contains("missing from `results/bf16/scores.json`"),
        "{error}"
    );

    let mut other_filter = cand.clone();
    other_filter.results[0].filter = "strict-match".into();
    assert!(
        compare(&cand, &other_filter, paths()).is_err(),
        "a different filter is a different number"
    );

    let mut other_shots = cand.clone();
    other_shots.results[0].shots = 0;
    let error = compare(&cand, &other_shots, paths())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("different shots (baseline 5, candidate 0)"),
        "{error}"
    );
    let mut other_n = cand.clone();
    other_n.results[0].n = 50;
    assert!(matches!(
        compare(&cand, &other_n, paths()),
        Err(EvalError::Incomparable { .. })
    ));
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lm-eval-0.4.13")
        .join(name)
}

fn fixture_scores(label: &str) -> EvalScores {
    let tasks: Vec<TaskSpec> = [
        ("tiny_mc", "acc", None),
        ("tiny_mc", "acc_norm", None),
        ("tiny_gen", "exact_match", Some("strip")),
    ]
    .into_iter()
    .map(|(name, metric, filter)| TaskSpec {
        name: name.into(),
        shots: 0,
        metric: metric.into(),
        filter: filter.map(String::from),
        limit: None,
    })
    .collect();
    let mc_path = fixture("results_tiny_mc.json");
    let gen_path = fixture("results_tiny_gen.json");
    let mc = ResultsFile::read(&mc_path).unwrap();
    let generation = ResultsFile::read(&gen_path).unwrap();
    let files = [
        (&tasks[..2], mc_path, mc),
        (&tasks[2..], gen_path, generation),
    ];
    scores(label, score_rows(&tasks, &files).unwrap())
}

#[test]
fn fixture_scores_against_themselves_retain_everything() {
    let baseline = fixture_scores("bf16");
    let candidate = fixture_scores("awq");
    let values: Vec<(f64, Option<f64>, u64)> = baseline
        .results
        .iter()
        .map(|r| (r.value, r.stderr, r.n))
        .collect();
    assert_eq!(
        values,
        [
            (0.8, Some(0.20000000000000004), 5),
            (1.0, Some(0.0), 5),
            (0.4, Some(0.24494897427831783), 5)
        ]
    );
    let (rows, summary) = compare(&baseline, &candidate, paths()).unwrap();
    // r = 1 and s_r = sqrt(2) * s / b: 0.2 * 1.41421356 / 0.8 = 0.35355339; 0; 0.24494897 * 1.41421356 / 0.4 = 0.8660254.
    close(rows[0].retention_stderr.unwrap(), 0.353_553_390_593_274);
    close(rows[1].retention_stderr.unwrap(), 0.0);
    close(rows[2].retention_stderr.unwrap(), 0.866_025_403_784_439);
    close(summary.mean_retention, 1.0);
    close(
        summary.mean_retention_stderr.unwrap(),
        (0.125f64 + 0.75).sqrt() / 3.0,
    );
}

#[test]
fn retention_json_snapshot() {
    let baseline = scores(
        "bf16",
        vec![
            row("mmlu", "acc", "none", 0.6829, Some(0.0037)),
            row("gsm8k", "exact_match", "strict-match", 0.7741, Some(0.0115)),
            row("hellaswag", "acc_norm", "none", 0.7919, Some(0.0041)),
        ],
    );
    let candidate = scores(
        "awq",
        vec![
            row("mmlu", "acc", "none", 0.6715, Some(0.0038)),
            row("gsm8k", "exact_match", "strict-match", 0.7362, Some(0.0121)),
            row("hellaswag", "acc_norm", "none", 0.7833, Some(0.0041)),
        ],
    );
    let settings = RetentionSettings {
        baseline: PATHS.0.into(),
        candidate: PATHS.1.into(),
        baseline_label: None,
        candidate_label: None,
    };
    let retention = build_retention(
        &settings,
        &baseline,
        &candidate,
        paths(),
        &provenance(),
        &fixed_host(),
    )
    .unwrap();
    let json = serde_json::to_string_pretty(&retention).unwrap();
    insta::assert_snapshot!("retention_json", json);
    let parsed: super::super::Retention = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed, retention, "retention.json reads back");
}
