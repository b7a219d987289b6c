//! The intervals through cost and report: `intervals.json` written beside the fixture summaries
//! (by the bench's own type), then the cost step's $/1M intervals and the report's section and
//! "too close to call" sentences. Without `intervals.json` the fixture snapshots in `tests.rs`
//! stay as they were.

use super::tests::copy_dir;
use super::*;
use crate::steps::bench::uncertainty::{BenchIntervals, Interval, LevelIntervals};
use crate::steps::cost::CostSettings;
use crate::steps::cost::testkit::{crate_root, step_io};

fn level(c: u32, throughput: (f64, f64, f64)) -> LevelIntervals {
    let i = |(estimate, lo, hi): (f64, f64, f64)| Some(Interval { estimate, lo, hi });
    LevelIntervals {
        max_concurrency: c,
        repeats: 3,
        requests: 48,
        repeat_durations_s: vec![10.0, 11.0, 12.0],
        output_throughput: i(throughput),
        p50_ttft_ms: i((90.0, 80.0, 100.0)),
        p99_ttft_ms: i((300.0, 250.0, 420.0)),
        p50_tpot_ms: i((20.0, 19.5, 20.5)),
        p99_tpot_ms: None,
    }
}

fn write(dir: &Path, levels: Vec<LevelIntervals>) {
    let mut file = BenchIntervals::new(0);
    file.levels = levels;
    file.write(dir).expect("intervals written");
}

#[tokio::test]
async fn intervals_reach_the_cost_files_and_the_report_says_what_is_too_close() {
    let ws = tempfile::tempdir().expect("tempdir");
    let results = ws.path().join("results/m1-rehearsal");
    let fixtures = crate_root().join("tests/fixtures/results/m1-rehearsal");
    copy_dir(&fixtures.join("bench"), &results.join("bench"));
    copy_dir(&crate_root().join("pricing"), &ws.path().join("pricing"));
    // awq's c=4 (the SLO level, 150.59 tok/s) between 140 and 160; bf16's overlaps it at c=4
    // and not at c=8.
    write(
        &results.join("bench/awq"),
        vec![
            level(4, (150.5859, 140.0, 160.0)),
            level(8, (191.02, 185.0, 197.0)),
        ],
    );
    write(
        &results.join("bench/bf16"),
        vec![
            level(4, (142.148, 135.0, 145.0)),
            level(8, (176.31, 170.0, 180.0)),
        ],
    );
    let bench = r#"bench = { awq = "results/m1-rehearsal/bench/awq/summary.json", bf16 = "results/m1-rehearsal/bench/bf16/summary.json" }"#;
    let at = |id: &str, outputs: Vec<std::path::PathBuf>| {
        let mut io = step_io(id, ws.path(), outputs);
        io.workspace = ws.path().to_path_buf();
        io
    };
    let cost: CostSettings = toml::from_str(&format!(r#"{bench}
candidate = "awq"
pricing = ["pricing"]
apis = ["gpt-4o-mini", "claude-3-haiku"]
gpu = {{ name = "RTX A5000", hourly_usd = 0.468, price_product = "serverless-active", price_source = "https://docs.runpod.io/serverless/pricing", price_date = "2026-07-01" }}
slo = {{ p99_ttft_ms = 500.0, p99_tpot_ms = 30.0 }}
rehearsal = true
"#)).expect("cost settings");
    let report = crate::steps::cost::run_step(&cost, &at("cost", vec![results.join("cost")]))
        .await
        .expect("cost");
    // $/1M output = 0.468e6 / (3600 t): the fast end gives the low price.
    let slo = report.comparison.self_hosted.slo.expect("an SLO level");
    let per_m = slo.usd_per_1m_output_interval.expect("an interval");
    let usd = |t: f64| 0.468e6 / (3600.0 * t);
    assert!((per_m.lo - usd(160.0)).abs() < 1e-12 && (per_m.hi - usd(140.0)).abs() < 1e-12);
    assert!((per_m.estimate - slo.usd_per_1m_output).abs() < 1e-12);
    let awq = &report.cost.labels["awq"];
    assert!(
        awq.levels[0].usd_per_1m_output_interval.is_none(),
        "c=1 has no interval"
    );
    assert!(awq.levels[2].usd_per_1m_output_interval.is_some());

    let settings: ReportSettings = toml::from_str(&format!(
        "{bench}\ncost = \"results/m1-rehearsal/cost\"\nheadline_api = \"gpt-4o-mini\"\n"
    ))
    .expect("report settings");
    let out = run_step(
        &settings,
        &at(
            "report",
            vec![results.join("report.md"), results.join("report.html")],
        ),
    )
    .await
    .expect("report");
    let md = &out.markdown;
    let start = md
        .find("### How sure these figures are")
        .expect("the section");
    let end = md.find("## Server view").expect("the next section");
    insta::assert_snapshot!("report_md_intervals", &md[start..end]);
    // gpt-4o-mini's $0.900 per 1M output lies inside [$0.812, $0.929].
    assert!(
        md.contains("Too close to call at this sample size: gpt-4o-mini's $0.900"),
        "{md}"
    );
    assert!(
        md.contains("awq and bf16 output throughput at concurrency 4"),
        "{md}"
    );
    assert!(!md.contains("at concurrency 8:"), "{md}");
    assert!(out.html.contains("<h3>How sure these figures are</h3>"));

    // A broken intervals file is named, not ignored.
    std::fs::write(results.join("bench/bf16/intervals.json"), "[").expect("write");
    let err = run_step(
        &settings,
        &at("report", vec![results.join("r.md"), results.join("r.html")]),
    )
    .await
    .expect_err("unusable intervals")
    .to_string();
    assert!(
        err.contains("bench/bf16/intervals.json")
            && err.contains("not a valid bench intervals.json"),
        "{err}"
    );
}
