//! The cost step end to end on the m1-rehearsal fixtures, with hand-computed figures.

use super::testkit::{REHEARSAL_COST_TOML, crate_root, step_io};
use super::*;

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-6 * b.abs().max(1.0), "{a} != {b}");
}

fn settings(extra: &str) -> CostSettings {
    toml::from_str(&format!("{REHEARSAL_COST_TOML}\n{extra}")).expect("fixture settings parse")
}

async fn run(s: &CostSettings) -> (tempfile::TempDir, Result<CostReport, CostError>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("cost");
    let io = step_io("cost", dir.path(), vec![out]);
    let result = run_step(s, &io).await;
    (dir, result)
}

#[tokio::test]
async fn rehearsal_figures_match_hand_computation() {
    let (dir, report) = run(&settings("")).await;
    let report = report.expect("cost runs");
    let awq = &report.cost.labels["awq"];
    // Peak: c=8 at 191.02 tok/s out, 573.06 total. 0.468e6 / (3600 * 191.02) = 0.680557.
    assert_eq!(awq.headline.max_concurrency, 8);
    close(awq.headline.usd_per_1m_output, 0.680_557_009_737_200_3);
    close(awq.headline.usd_per_1m_total, 0.226_852_336_579_066_78);
    close(awq.sensitivity.usd_per_1m_output, 0.850_696_262_171_500_4);
    // SLO p99 TTFT <= 500 ms and TPOT <= 30 ms: c=8 fails (822 ms), c=4 is the cheapest passing.
    let slo = awq.slo.as_ref().expect("a level meets the SLO");
    assert_eq!(slo.max_concurrency, 4);
    close(slo.usd_per_1m_output, 0.863_294_637_811_375_5);
    close(slo.usd_per_1m_total, 0.287_764_879_270_458_46);
    assert_eq!(awq.levels.iter().filter(|l| l.meets_slo).count(), 3);
    assert_eq!(awq.utilization_curve.len(), 10);
    close(
        awq.utilization_curve[4].usd_per_1m_output,
        0.680_557_009_737_200_3 / 0.5,
    );
    assert_eq!(
        awq.headline.output_throughput.field,
        "levels[3].output_throughput"
    );

    let c = &report.comparison;
    // Measured mix: 4 levels x 4096 in / 2048 out = 2:1.
    close(c.workload.input_per_output, 2.0);
    let mini = &c.apis[0];
    assert_eq!(mini.model, "gpt-4o-mini");
    close(mini.blended_usd_per_1m_total, 0.30);
    close(mini.usd_per_1m_output_of_workload, 0.90);
    // $0.468 * 730 h = $341.64/month -> 1,138.8M tokens/month; the c=4 GPU serves 1,187.2M.
    let be = mini.break_even.as_ref().expect("priced API");
    close(be.tokens_per_month, 1_138_800_000.0);
    close(be.capacity_tokens_per_month, 1_187_219_235.6);
    assert_eq!(be.capacity_basis, "slo");
    assert!(be.reachable);
    // Groq at 0.05/0.08: blended 0.06 -> 5,694M tokens/month, beyond one GPU.
    let groq = &c.apis[3];
    close(groq.blended_usd_per_1m_total, 0.06);
    assert!(!groq.break_even.as_ref().expect("priced").reachable);
    let quality = c.quality.as_ref().expect("retention given");
    close(quality.mean_retention, 0.942_966);

    let written: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("cost/cost.json")).expect("cost.json written"),
    )
    .expect("valid JSON");
    assert_eq!(written["inputs"]["gpu_hourly_usd"]["file"], "settings:cost");
    assert_eq!(
        written["inputs"]["gpu_hourly_usd"]["field"],
        "gpu.hourly_usd"
    );
    assert_eq!(written["metadata"]["engine"]["version"], "0.32.0");
    assert!(dir.path().join("cost/comparison.json").is_file());
    let log = std::fs::read_to_string(dir.path().join("step.log")).expect("log written");
    assert!(log.contains("gpt-4o-mini"), "{log}");
}

#[tokio::test]
async fn no_level_meeting_slo_falls_back_to_peak_capacity() {
    let mut s = settings("");
    s.slo.p99_ttft_ms = 10.0;
    let (_dir, report) = run(&s).await;
    let report = report.expect("cost runs");
    assert!(report.cost.labels["awq"].slo.is_none());
    assert!(report.comparison.self_hosted.slo.is_none());
    let be = report.comparison.apis[0]
        .break_even
        .as_ref()
        .expect("priced");
    assert_eq!(be.capacity_basis, "peak");
}

fn message(result: Result<CostReport, CostError>) -> String {
    result.expect_err("must fail").to_string()
}

#[tokio::test]
async fn missing_pricing_file_is_named() {
    let mut s = settings("");
    s.pricing = vec!["pricing/nope.toml".into()];
    let msg = message(run(&s).await.1);
    assert!(
        msg.contains("pricing/nope.toml") && msg.contains("does not exist"),
        "{msg}"
    );
}

#[tokio::test]
async fn negative_price_names_file_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "provider = \"x\"\n[[models]]\nname = \"m\"\ninput_per_1m = 0.1\noutput_per_1m = -0.4\nsource = \"u\"\nchecked = \"2026-01-01\"\n").expect("write");
    let mut s = settings("");
    s.pricing = vec![file.clone()];
    s.apis = None;
    let msg = message(run(&s).await.1);
    assert!(
        msg.contains("bad.toml") && msg.contains("models[0].output_per_1m"),
        "{msg}"
    );
}

#[tokio::test]
async fn zero_or_missing_throughput_names_file_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = crate_root().join("tests/fixtures/results/m1-rehearsal/bench/awq/summary.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src).expect("read")).expect("json");
    json["levels"][2]["output_throughput"] = serde_json::json!(0.0);
    let zero = dir.path().join("zero.json");
    std::fs::write(&zero, json.to_string()).expect("write");
    json["levels"][1]
        .as_object_mut()
        .expect("object")
        .remove("total_token_throughput");
    let missing = dir.path().join("missing.json");
    std::fs::write(&missing, json.to_string()).expect("write");

    let mut s = settings("");
    s.bench.insert("awq".into(), zero);
    let msg = message(run(&s).await.1);
    assert!(
        msg.contains("zero.json") && msg.contains("levels[2].output_throughput"),
        "{msg}"
    );
    s.bench.insert("awq".into(), missing);
    let msg = message(run(&s).await.1);
    assert!(
        msg.contains("levels[1].total_token_throughput") && msg.contains("missing"),
        "{msg}"
    );
}

#[tokio::test]
async fn bad_settings_are_named() {
    let mut s = settings("");
    s.gpu.hourly_usd = -1.0;
    assert!(message(run(&s).await.1).contains("gpu.hourly_usd"));
    let mut s = settings("");
    s.candidate = "int8".into();
    assert!(message(run(&s).await.1).contains("candidate"));
    let mut s = settings("");
    s.apis = Some(vec!["gpt-9".into()]);
    assert!(message(run(&s).await.1).contains("gpt-9"));
    let unknown = toml::from_str::<CostSettings>(&format!("{REHEARSAL_COST_TOML}\ncolour = 1"));
    assert!(
        unknown
            .expect_err("deny_unknown_fields")
            .to_string()
            .contains("colour")
    );
}

/// Breaks one setting of the fixture settings.
type Break = fn(&mut CostSettings);

#[tokio::test]
async fn prices_name_their_product_source_and_exact_date() {
    let cases: [(&str, Break); 6] = [
        ("gpu.price_product` is `pod`", |s| {
            s.gpu.price_product = "pod".into()
        }),
        ("gpu.price_date` is `2026`", |s| {
            s.gpu.price_date = "2026".into()
        }),
        ("gpu.price_date` is `2026-02-30`", |s| {
            s.gpu.price_date = "2026-02-30".into()
        }),
        ("gpu.price_source` is `runpod console`", |s| {
            s.gpu.price_source = "runpod console".into()
        }),
        ("gpu.price_tiers[0].hourly_usd` is 0", |s| {
            s.gpu.price_tiers[0].hourly_usd = 0.0
        }),
        (
            "gpu.price_tiers[0].product` is `serverless-active` again",
            |s| s.gpu.price_tiers[0].product = "serverless-active".into(),
        ),
    ];
    for (expected, break_it) in cases {
        let mut s = settings("");
        break_it(&mut s);
        let msg = message(run(&s).await.1);
        assert!(msg.contains(expected), "{expected}: {msg}");
    }
}

#[tokio::test]
async fn every_price_tier_scales_the_same_throughput() {
    let (_dir, result) = run(&settings("")).await;
    let c = result.expect("cost runs").comparison;
    assert_eq!(c.gpu_price_product, "serverless-active");
    let [headline, pod] = c.price_tiers.as_slice() else {
        panic!("two tiers: {:?}", c.price_tiers)
    };
    assert!(headline.headline && !pod.headline);
    assert_eq!(pod.price.product, "on-demand-pod");
    close(
        headline.usd_per_1m_total,
        c.self_hosted.headline.usd_per_1m_total,
    );
    close(
        pod.usd_per_1m_output,
        headline.usd_per_1m_output * 0.27 / 0.468,
    );
    close(pod.gpu_monthly_usd, 0.27 * 730.0);
    let slo = c.self_hosted.slo.as_ref().expect("a level meets the SLO");
    close(
        pod.slo_usd_per_1m_total.expect("slo"),
        slo.usd_per_1m_total * 0.27 / 0.468,
    );
    let api = &c.apis[0];
    close(
        pod.api_over_self_hosted[&api.model],
        api.blended_usd_per_1m_total / (slo.usd_per_1m_total * 0.27 / 0.468),
    );
}

/// The committed `tests/fixtures/results/m1-rehearsal/cost/` (read by the charts and report
/// tests) is what the cost step writes today, apart from the run date.
/// `FORGE_UPDATE_FIXTURES=1 cargo test` rewrites it.
#[tokio::test]
async fn committed_cost_fixture_is_current() {
    let (dir, report) = run(&settings("")).await;
    report.expect("cost runs");
    let fixture = crate_root().join("tests/fixtures/results/m1-rehearsal/cost");
    for name in ["cost.json", "comparison.json"] {
        let fresh = std::fs::read_to_string(dir.path().join("cost").join(name)).expect("written");
        let mut fresh_json: serde_json::Value = serde_json::from_str(&fresh).expect("json");
        fresh_json["metadata"]["date"] = serde_json::json!("2026-11-28T12:40:00Z");
        let pinned = serde_json::to_string_pretty(&fresh_json).expect("json") + "\n";
        if std::env::var_os("FORGE_UPDATE_FIXTURES").is_some() {
            std::fs::create_dir_all(&fixture).expect("mkdir");
            std::fs::write(fixture.join(name), &pinned).expect("write fixture");
        }
        let committed = std::fs::read_to_string(fixture.join(name)).expect("fixture exists");
        assert_eq!(
            committed, pinned,
            "{name} drifted: rerun with FORGE_UPDATE_FIXTURES=1"
        );
    }
}

#[tokio::test]
async fn figures_measured_off_the_priced_gpu_are_refused_unless_a_rehearsal() {
    let real: CostSettings = toml::from_str(&REHEARSAL_COST_TOML.replace("rehearsal = true", ""))
        .expect("settings parse");
    assert!(!real.rehearsal);
    let (dir, report) = run(&real).await;
    let message = report
        .expect_err("CPU figures priced as an A5000")
        .to_string();
    insta::assert_snapshot!("gpu_mismatch", message);
    assert!(!dir.path().join("cost").exists(), "nothing written");

    let (dir, report) = run(&settings("")).await;
    let report = report.expect("a rehearsal runs");
    let banner = Some("rehearsal: CPU figures, not a decision".to_string());
    assert_eq!(report.cost.rehearsal, banner);
    assert_eq!(report.comparison.rehearsal, banner);
    let written = std::fs::read_to_string(dir.path().join("cost/cost.json")).expect("cost.json");
    assert!(written.contains("\"rehearsal\": \"rehearsal: CPU figures, not a decision\""));
}
