//! Derivation on hand-made columns, and reading the level files of a real rehearsal sweep
//! (`tests/fixtures/results/m1-rehearsal-captured`: vLLM CPU 0.32.0, written by the bench step).

use super::*;
use crate::steps::cost::inputs::read_bench_summary;
use crate::steps::cost::testkit::crate_root;

const CAPTURED: &str = "tests/fixtures/results/m1-rehearsal-captured/bench/bf16/summary.json";

fn level(t: Vec<f64>, columns: &[(&str, Vec<Option<f64>>)]) -> LevelSeries {
    LevelSeries {
        max_concurrency: 4,
        metrics: ServerMetrics {
            t,
            series: columns
                .iter()
                .map(|(n, c)| (n.to_string(), c.clone()))
                .collect(),
            ..Default::default()
        },
    }
}

#[test]
fn gauges_are_peaks_over_recorded_scrapes() {
    assert_eq!(peak(&[Some(1.0), None, Some(4.0), Some(2.0)]), Some(4.0));
    assert_eq!(peak(&[None, None]), None);
    assert_eq!(peak(&[]), None);
}

#[test]
fn counters_are_increases_and_a_drop_is_a_restart() {
    assert_eq!(
        increase(&[Some(10.0), None, Some(12.0), Some(15.0)]),
        Some(5.0)
    );
    // 10 -> 12 (+2), restart, counts 3 from zero (+3), 3 -> 4 (+1).
    assert_eq!(
        increase(&[Some(10.0), Some(12.0), Some(3.0), Some(4.0)]),
        Some(6.0)
    );
    assert_eq!(increase(&[Some(7.0)]), None);
    assert_eq!(increase(&[]), None);
}

#[test]
fn mean_rate_spans_the_first_to_last_recorded_sample() {
    let t = [0.0, 1.0, 2.0, 4.0];
    // Recorded at t = 1 and t = 4 only: 30 tokens in 3 s.
    assert_eq!(
        mean_rate(&t, &[None, Some(100.0), None, Some(130.0)]),
        Some(10.0)
    );
    assert_eq!(mean_rate(&t, &[None, Some(100.0), None, None]), None);
    assert_eq!(mean_rate(&[1.0, 1.0], &[Some(1.0), Some(2.0)]), None);
    assert_eq!(mean_rate(&[], &[]), None);
}

#[test]
fn interval_rates_align_with_the_scrapes() {
    let t = [0.0, 1.0, 2.0, 4.0];
    let rates = interval_rates(&t, &[Some(0.0), Some(5.0), None, Some(25.0)]);
    // The gap at t = 2: the last rate spans t = 1 to 4.
    assert_eq!(rates, vec![None, Some(5.0), None, Some(20.0 / 3.0)]);
    let restarted = interval_rates(&[0.0, 2.0], &[Some(90.0), Some(8.0)]);
    assert_eq!(restarted, vec![None, Some(4.0)]);
}

#[test]
fn level_stats_leave_unrecorded_series_empty() {
    let stats = LevelServerStats::of(&level(
        vec![0.0, 1.0, 2.0],
        &[
            ("running", vec![Some(1.0), Some(4.0), Some(0.0)]),
            ("kv_cache_usage", vec![Some(0.1), Some(0.35), None]),
            (
                "generation_tokens_total",
                vec![Some(50.0), Some(60.0), Some(80.0)],
            ),
        ],
    ));
    assert_eq!(stats.scrapes, 3);
    assert_eq!(stats.window_s, 2.0);
    assert_eq!(stats.peak_running, Some(4.0));
    assert_eq!(stats.peak_waiting, None);
    assert_eq!(stats.peak_kv_cache_usage, Some(0.35));
    assert_eq!(stats.preemptions, None);
    assert_eq!(stats.generation_tokens_per_s, Some(15.0));
    assert_eq!(stats.prompt_tokens_per_s, None);

    let empty = LevelServerStats::of(&level(Vec::new(), &[]));
    assert_eq!((empty.scrapes, empty.window_s), (0, 0.0));
    assert_eq!(empty.peak_running, None);
}

#[test]
fn reads_every_level_of_a_captured_sweep() {
    let path = crate_root().join(CAPTURED);
    let summary = read_bench_summary(&path).expect("summary");
    let sweep = read_sweep(&path, &summary).expect("level files");
    assert!(sweep.missing.is_empty(), "{:?}", sweep.missing);
    let levels: Vec<u32> = sweep.levels.iter().map(|l| l.max_concurrency).collect();
    assert_eq!(levels, [1, 2, 4]);
    let c4 = LevelServerStats::of(&sweep.levels[2]);
    assert_eq!(c4.scrapes, 77);
    assert_eq!(c4.peak_running, Some(4.0));
    assert_eq!(c4.peak_waiting, Some(0.0));
    assert_eq!(c4.preemptions, Some(0.0));
    // vllm:generation_tokens_total went 2616 -> 3704 between t = 0.30 s and t = 75.65 s.
    let rate = c4.generation_tokens_per_s.expect("rate");
    assert!(
        (rate - 1088.0 / (75.645_610_841 - 0.299_970_081)).abs() < 1e-9,
        "{rate}"
    );
    let kv = c4.peak_kv_cache_usage.expect("kv");
    assert!((kv - 0.011_004_126_547_455_306).abs() < 1e-15, "{kv}");
}

#[test]
fn absent_level_files_and_unscraped_levels_are_notes() {
    let crafted = crate_root().join("tests/fixtures/results/m1-rehearsal/bench/awq/summary.json");
    let summary = read_bench_summary(&crafted).expect("summary");
    let sweep = read_sweep(&crafted, &summary).expect("absent files are notes");
    assert!(sweep.levels.is_empty());
    assert_eq!(sweep.missing[0], "c=1: no `c1.json` next to the summary");
    assert_eq!(sweep.missing.len(), 4);

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("summary.json");
    let mut one = summary.clone();
    one.levels.truncate(1);
    std::fs::write(dir.path().join("c1.json"), r#"{"server_metrics": null}"#).expect("write");
    let sweep = read_sweep(&path, &one).expect("reads");
    assert!(
        sweep.missing[0].contains("recorded no server metrics"),
        "{:?}",
        sweep.missing
    );

    std::fs::write(dir.path().join("c1.json"), "{not json").expect("write");
    let e = read_sweep(&path, &one).expect_err("corrupt").to_string();
    assert!(
        e.contains("c1.json") && e.contains("bench level file"),
        "{e}"
    );
}
