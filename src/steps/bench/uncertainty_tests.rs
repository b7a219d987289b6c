//! Tests of the bootstrap intervals: coverage on a known distribution, seeding, edge cases and
//! narrowing with more data.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;

/// A run of `n` requests whose TTFT is uniform on [0, 100) ms (true median 50, true p99 99),
/// TPOT uniform on [10, 20) ms (true median 15), and output tokens uniform in 1..=200
/// (mean 100.5) over `n` seconds (true throughput 100.5 tok/s).
fn uniform_run(rng: &mut ChaCha8Rng, n: usize) -> RunSample {
    RunSample {
        duration_s: n as f64,
        requests: (0..n)
            .map(|_| Sample {
                output_tokens: rng.random_range(1..=200),
                ttft_ms: Some(rng.random_range(0.0..100.0)),
                tpot_ms: Some(rng.random_range(10.0..20.0)),
            })
            .collect(),
    }
}

fn runs(seed: u64, repeats: usize, n: usize) -> Vec<RunSample> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..repeats).map(|_| uniform_run(&mut rng, n)).collect()
}

fn width(i: Option<Interval>) -> f64 {
    let i = i.expect("an interval");
    i.hi - i.lo
}

#[test]
fn intervals_cover_the_true_values_about_as_often_as_they_claim() {
    // 60 independent data sets; a 95 % interval should miss the truth in ~3 of them.
    let (mut median, mut tpot, mut throughput) = (0, 0, 0);
    for data in 0..60 {
        let level = level_intervals(4, &runs(1000 + data, 3, 100), data, 300);
        median += usize::from(level.p50_ttft_ms.unwrap().contains(50.0));
        tpot += usize::from(level.p50_tpot_ms.unwrap().contains(15.0));
        throughput += usize::from(level.output_throughput.unwrap().contains(100.5));
    }
    for (name, covered) in [
        ("p50 TTFT", median),
        ("p50 TPOT", tpot),
        ("throughput", throughput),
    ] {
        assert!(
            (50..=60).contains(&covered),
            "{name}: {covered} of 60 intervals covered the truth"
        );
    }
}

#[test]
fn the_estimate_is_the_pooled_figure() {
    let data = runs(7, 2, 50);
    let level = level_intervals(1, &data, 0, 100);
    let tokens: u64 = data
        .iter()
        .flat_map(|r| &r.requests)
        .map(|s| s.output_tokens)
        .sum();
    let t = level.output_throughput.unwrap();
    assert!((t.estimate - tokens as f64 / 100.0).abs() < 1e-9);
    assert!(t.lo <= t.estimate && t.estimate <= t.hi, "{t:?}");
    assert_eq!((level.repeats, level.requests), (2, 100));
    assert_eq!(level.repeat_durations_s, [50.0, 50.0]);
}

#[test]
fn the_same_seed_gives_the_same_intervals_and_another_seed_others() {
    let data = runs(3, 3, 80);
    let a = level_intervals(16, &data, 42, 200);
    assert_eq!(a, level_intervals(16, &data, 42, 200));
    let b = level_intervals(16, &data, 43, 200);
    assert_ne!(a.p99_ttft_ms, b.p99_ttft_ms);
    assert_ne!(a.output_throughput, b.output_throughput);
    // Each level draws its own stream.
    let c = level_intervals(32, &data, 42, 200);
    assert_ne!(a.p50_ttft_ms, c.p50_ttft_ms);
}

#[test]
fn one_request_and_no_requests_do_not_panic() {
    let one = vec![RunSample {
        duration_s: 2.0,
        requests: vec![Sample {
            output_tokens: 10,
            ttft_ms: Some(30.0),
            tpot_ms: None,
        }],
    }];
    let level = level_intervals(1, &one, 0, 100);
    let ttft = level.p99_ttft_ms.unwrap();
    assert_eq!((ttft.estimate, ttft.lo, ttft.hi), (30.0, 30.0, 30.0));
    assert_eq!(level.output_throughput.unwrap().hi, 5.0);
    assert_eq!(level.p50_tpot_ms, None);

    let empty = level_intervals(1, &[], 0, 100);
    assert_eq!(empty.output_throughput, None);
    assert_eq!((empty.repeats, empty.requests), (0, 0));
    let no_requests = level_intervals(
        1,
        &[RunSample {
            duration_s: 1.0,
            requests: vec![],
        }],
        0,
        100,
    );
    assert_eq!(no_requests.p50_ttft_ms, None);
    assert_eq!(no_requests.output_throughput.unwrap().estimate, 0.0);
    let failed_only = vec![RunSample {
        duration_s: 0.0,
        requests: vec![Sample {
            output_tokens: 0,
            ttft_ms: None,
            tpot_ms: None,
        }],
    }];
    assert_eq!(
        level_intervals(1, &failed_only, 0, 100).output_throughput,
        None
    );
}

#[test]
fn intervals_narrow_as_requests_grow() {
    let small = level_intervals(4, &runs(5, 3, 30), 0, 400);
    let large = level_intervals(4, &runs(5, 3, 1000), 0, 400);
    for (name, s, l) in [
        (
            "throughput",
            small.output_throughput,
            large.output_throughput,
        ),
        ("p50 TTFT", small.p50_ttft_ms, large.p50_ttft_ms),
        ("p99 TTFT", small.p99_ttft_ms, large.p99_ttft_ms),
        ("p50 TPOT", small.p50_tpot_ms, large.p50_tpot_ms),
    ] {
        assert!(
            width(l) < width(s) / 2.0,
            "{name}: {} vs {}",
            width(l),
            width(s)
        );
    }
}

#[test]
fn runs_are_grouped_by_repeat_and_failures_carry_no_latency() {
    let record = |repeat, error: Option<&str>| RequestRecord {
        ttft_s: 0.1,
        latency_s: 0.5,
        output_tokens: 5,
        repeat,
        error: error.map(str::to_string),
        ..Default::default()
    };
    let records = [
        record(Some(0), None),
        record(Some(1), Some("HTTP 500")),
        record(Some(1), None),
    ];
    let runs = runs_of(&records, &[1.0, 2.0]);
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].requests.len(), 1);
    assert_eq!(
        runs[1].requests[0],
        Sample {
            output_tokens: 0,
            ttft_ms: None,
            tpot_ms: None
        }
    );
    let ok = runs[1].requests[1];
    assert_eq!(ok.output_tokens, 5);
    assert!((ok.tpot_ms.unwrap() - 100.0).abs() < 1e-9);
    // Untagged records (one run) all belong to run 0.
    assert_eq!(runs_of(&[record(None, None)], &[1.0])[0].requests.len(), 1);
}

#[test]
fn the_file_round_trips_and_a_missing_file_is_none() {
    let dir = tempfile::tempdir().unwrap();
    assert!(BenchIntervals::read(dir.path()).unwrap().is_none());
    let mut file = BenchIntervals::new(9);
    file.levels.push(level_intervals(2, &runs(1, 2, 10), 9, 50));
    file.write(dir.path()).unwrap();
    assert_eq!(BenchIntervals::read(dir.path()).unwrap(), Some(file));
    std::fs::write(dir.path().join(FILE), "{").unwrap();
    let err = BenchIntervals::read(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("intervals.json") && err.contains("not a valid bench intervals.json"),
        "{err}"
    );
}

#[test]
fn a_monotone_map_orders_the_ends() {
    let i = Interval {
        estimate: 100.0,
        lo: 80.0,
        hi: 125.0,
    };
    let per_m = i.map_monotone(|t| 1000.0 / t);
    assert_eq!((per_m.lo, per_m.estimate, per_m.hi), (8.0, 10.0, 12.5));
    assert!(i.overlaps(&Interval {
        estimate: 130.0,
        lo: 124.0,
        hi: 140.0
    }));
    assert!(!i.overlaps(&Interval {
        estimate: 130.0,
        lo: 126.0,
        hi: 140.0
    }));
}
