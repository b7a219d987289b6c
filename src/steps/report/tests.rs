//! Report snapshots for fixed inputs, and the whole cost -> charts -> report chain in a
//! scratch workspace.

use std::path::Path;

use super::*;
use crate::steps::charts::ChartsSettings;
use crate::steps::cost::CostSettings;
use crate::steps::cost::testkit::{crate_root, step_io};

const FIXTURE_REPORT_TOML: &str = r#"
cost = "tests/fixtures/results/m1-rehearsal/cost"
bench = { awq = "tests/fixtures/results/m1-rehearsal/bench/awq/summary.json", bf16 = "tests/fixtures/results/m1-rehearsal/bench/bf16/summary.json" }
retention = "tests/fixtures/results/m1-rehearsal/eval/retention.json"
report_dir = "tests/fixtures/results/m1-rehearsal"
"#;

async fn render_fixture(extra: &str) -> ReportOutput {
    let s: ReportSettings =
        toml::from_str(&format!("{FIXTURE_REPORT_TOML}\n{extra}")).expect("settings parse");
    let dir = tempfile::tempdir().expect("tempdir");
    let io = step_io(
        "report",
        dir.path(),
        vec![dir.path().join("report.md"), dir.path().join("report.html")],
    );
    let out = run_step(&s, &io).await.expect("report renders");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("report.md")).expect("md written"),
        out.markdown
    );
    out
}

#[tokio::test]
async fn markdown_report_snapshot() {
    let out = render_fixture("headline_api = \"gpt-4o-mini\"").await;
    assert!(
        out.markdown
            .contains("beats gpt-4o-mini above 1,138.8M tokens/month at p99 TTFT <= 353 ms")
    );
    insta::assert_snapshot!("report_md", out.markdown);
}

#[tokio::test]
async fn html_report_snapshot() {
    let out = render_fixture("").await;
    insta::assert_snapshot!("report_html", out.html);
}

#[tokio::test]
async fn unreachable_break_even_says_the_api_stays_cheaper() {
    let out = render_fixture("headline_api = \"groq/llama-3.1-8b-instant\"")
        .await
        .markdown;
    let answer = out
        .lines()
        .find(|l| l.starts_with("**"))
        .expect("answer line");
    insta::assert_snapshot!("report_md_unreachable", answer);
}

#[tokio::test]
async fn custom_template_from_settings_and_errors_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let template = dir.path().join("mine.md.j2");
    std::fs::write(
        &template,
        "{{ headline.api }} costs {{ headline.api_cost }}\n",
    )
    .expect("write");
    let extra = format!("markdown_template = {:?}", template.display().to_string());
    assert_eq!(
        render_fixture(&extra).await.markdown,
        "gpt-4o-mini costs $0.300\n"
    );

    std::fs::write(&template, "{{ headline.api | nosuchfilter }}\n").expect("write");
    let s: ReportSettings =
        toml::from_str(&format!("{FIXTURE_REPORT_TOML}\n{extra}")).expect("parse");
    let io = step_io(
        "report",
        dir.path(),
        vec![dir.path().join("r.md"), dir.path().join("r.html")],
    );
    let e = run_step(&s, &io).await.expect_err("bad filter").to_string();
    assert!(
        e.contains("report.md.j2") && e.contains("nosuchfilter"),
        "{e}"
    );

    let mut s: ReportSettings = toml::from_str(FIXTURE_REPORT_TOML).expect("parse");
    s.cost = "tests/fixtures/results/none".into();
    let e = run_step(&s, &io).await.expect_err("no cost").to_string();
    assert!(
        e.contains("none/cost.json") && e.contains("run the cost step first"),
        "{e}"
    );
    let one = step_io("report", dir.path(), vec![dir.path().join("r.md")]);
    let e = run_step(&s, &one)
        .await
        .expect_err("one output")
        .to_string();
    assert!(e.contains("needs two outputs"), "{e}");
}

pub(super) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// The three steps chained as the rehearsal runs them, in a scratch workspace laid out like
/// `results/<profile>/`.
#[tokio::test]
async fn cost_charts_report_chain_in_a_workspace() {
    let ws = tempfile::tempdir().expect("tempdir");
    let results = ws.path().join("results/m1-rehearsal");
    let fixtures = crate_root().join("tests/fixtures/results/m1-rehearsal");
    copy_dir(&fixtures.join("bench"), &results.join("bench"));
    copy_dir(&fixtures.join("eval"), &results.join("eval"));
    copy_dir(&crate_root().join("pricing"), &ws.path().join("pricing"));
    let bench = r#"bench = { awq = "results/m1-rehearsal/bench/awq/summary.json", bf16 = "results/m1-rehearsal/bench/bf16/summary.json" }"#;
    let at = |id: &str, outputs: Vec<std::path::PathBuf>| {
        let mut io = step_io(id, ws.path(), outputs);
        io.workspace = ws.path().to_path_buf();
        io
    };

    let cost: CostSettings = toml::from_str(&format!(r#"{bench}
candidate = "awq"
retention = "results/m1-rehearsal/eval/retention.json"
pricing = ["pricing"]
apis = ["gpt-4o-mini", "claude-3-haiku"]
gpu = {{ name = "RTX A5000", hourly_usd = 0.468, price_product = "serverless-active", price_source = "https://docs.runpod.io/serverless/pricing", price_date = "2026-07-01", price_tiers = [{{ product = "on-demand-pod", hourly_usd = 0.27, source = "https://docs.runpod.io/pods/pricing", date = "2026-12-01", note = "confirm on the console" }}] }}
slo = {{ p99_ttft_ms = 500.0, p99_tpot_ms = 30.0 }}
rehearsal = true
"#)).expect("cost settings");
    crate::steps::cost::run_step(&cost, &at("cost", vec![results.join("cost")]))
        .await
        .expect("cost");

    let charts: ChartsSettings = toml::from_str(&format!(
        r#"{bench}
retention = "results/m1-rehearsal/eval/retention.json"
cost = "results/m1-rehearsal/cost"
roofline = {{ memory_bandwidth_gbs = 40.0, bytes_per_token_gb = {{ awq = 0.16, bf16 = 0.27 }} }}
"#
    ))
    .expect("charts settings");
    let files =
        crate::steps::charts::run_step(&charts, &at("charts", vec![results.join("charts")]))
            .await
            .expect("charts");
    assert_eq!(files.len(), 10);

    let report: ReportSettings = toml::from_str(&format!(
        r#"{bench}
cost = "results/m1-rehearsal/cost"
retention = "results/m1-rehearsal/eval/retention.json"
charts = "results/m1-rehearsal/charts"
roofline = {{ memory_bandwidth_gbs = 40.0, bytes_per_token_gb = {{ awq = 0.16, bf16 = 0.27 }} }}
"#
    ))
    .expect("report settings");
    let out = run_step(
        &report,
        &at(
            "report",
            vec![results.join("report.md"), results.join("report.html")],
        ),
    )
    .await
    .expect("report");
    insta::assert_snapshot!("report_md_chain", out.markdown);
    assert_eq!(
        out.html.matches("<svg").count(),
        5,
        "all five charts inlined"
    );
    for external in ["src=\"http", "<link", "<script", "@import", "url(http"] {
        assert!(
            !out.html.contains(external),
            "self-contained: found {external}"
        );
    }
    // minijinja's HTML escaping writes `/` as `&#x2f;`; browsers decode it in attributes.
    assert!(
        out.html.contains("href=\"cost&#x2f;comparison.json\""),
        "link to comparison.json"
    );
    if let Ok(out) = std::env::var("FORGE_REPORT_OUT") {
        // For looking at the rendered report by hand.
        copy_dir(&results, Path::new(&out));
    }
    let log = std::fs::read_to_string(ws.path().join("step.log")).expect("log");
    for line in [
        "cost: awq on RTX A5000",
        "charts: wrote",
        "(5 charts inlined)",
    ] {
        assert!(log.contains(line), "{log}");
    }
}

/// Renders the fixture report with a gate file written by the type `forge run` writes.
async fn render_with_gate(
    gate: Option<&crate::gate::GateFile>,
    raw: Option<&str>,
) -> Result<ReportOutput, ReportError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gate.json");
    if let Some(gate) = gate {
        std::fs::write(&path, serde_json::to_vec(gate).expect("json")).expect("write");
    }
    if let Some(raw) = raw {
        std::fs::write(&path, raw).expect("write");
    }
    let extra = format!("gate = {:?}", path.display().to_string());
    let s: ReportSettings =
        toml::from_str(&format!("{FIXTURE_REPORT_TOML}\n{extra}")).expect("settings parse");
    let io = step_io(
        "report",
        dir.path(),
        vec![dir.path().join("report.md"), dir.path().join("report.html")],
    );
    run_step(&s, &io).await
}

#[tokio::test]
async fn a_skipped_gate_is_a_visible_warning_and_a_passed_one_names_the_rehearsal() {
    let skipped = crate::gate::GateFile::Skipped {
        gate: crate::cache::GateSkipped {
            required: "m1-rehearsal".into(),
            reason: "`m1-rehearsal` has never completed a run of this pipeline".into(),
            at: "2026-12-01T10:00:00Z".into(),
        },
    };
    let out = render_with_gate(Some(&skipped), None)
        .await
        .expect("renders");
    let warning = "> **Warning:** the run of 2026-12-01T10:00:00Z skipped the `m1-rehearsal` rehearsal gate (`--skip-gate`): `m1-rehearsal` has never completed a run of this pipeline.";
    assert!(
        out.markdown.lines().any(|l| l.starts_with(warning)),
        "{}",
        out.markdown
    );
    assert!(out.html.contains(
        "<p class=\"warning\"><strong>Warning:</strong> the run of 2026-12-01T10:00:00Z skipped"
    ));
    assert!(!out.markdown.contains("gated by"));

    let passed = crate::gate::GateFile::Passed {
        gate: crate::cache::GatePassed {
            required: "m1-rehearsal".into(),
            manifest_digest: "0123456789abcdef0123".into(),
            forge_version: "0.1.0".into(),
            finished_at: "2026-12-01T09:00:00Z".into(),
            inputs: [(
                "scripts/forge_env.py".to_string(),
                crate::cache::InputDigest::Digest("d".into()),
            )]
            .into(),
            checked_at: "2026-12-01T11:00:00Z".into(),
        },
    };
    let out = render_with_gate(Some(&passed), None)
        .await
        .expect("renders");
    assert!(!out.markdown.contains("Warning"), "{}", out.markdown);
    assert!(out.markdown.contains("; gated by the `m1-rehearsal` run that finished 2026-12-01T09:00:00Z (Forge 0.1.0, manifest blake3 0123456789ab, 1 step-code inputs matched)"), "{}", out.markdown);

    let none = render_with_gate(None, None).await.expect("renders");
    assert!(!none.markdown.contains("Warning") && !none.markdown.contains("gated by"));
}

#[tokio::test]
async fn an_unreadable_gate_file_is_named() {
    let err = render_with_gate(None, Some("{\"status\": \"maybe\"}"))
        .await
        .expect_err("a corrupt gate file is an error");
    let message = err.to_string();
    assert!(
        message.contains("gate.json`: unknown variant `maybe`"),
        "{message}"
    );
    assert!(message.contains("hint: restore it from git"), "{message}");
}
