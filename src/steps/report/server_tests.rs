//! The report's server view on a captured rehearsal sweep (`tests/fixtures/results/
//! m1-rehearsal-captured`: bf16 with its `/metrics` series) beside a crafted one without (awq).

use super::tests::copy_dir;
use super::*;
use crate::steps::charts::ChartsSettings;
use crate::steps::cost::testkit::{crate_root, step_io};

/// Lays out `results/m1-rehearsal/` in a scratch workspace, draws the charts, renders the report.
async fn render() -> (ReportOutput, String) {
    let ws = tempfile::tempdir().expect("tempdir");
    let results = ws.path().join("results/m1-rehearsal");
    let fixtures = crate_root().join("tests/fixtures/results");
    copy_dir(
        &fixtures.join("m1-rehearsal-captured/bench/bf16"),
        &results.join("bench/bf16"),
    );
    copy_dir(
        &fixtures.join("m1-rehearsal/bench/awq"),
        &results.join("bench/awq"),
    );
    copy_dir(&fixtures.join("m1-rehearsal/cost"), &results.join("cost"));
    let at = |id: &str, outputs: Vec<PathBuf>| {
        let mut io = step_io(id, ws.path(), outputs);
        io.workspace = ws.path().to_path_buf();
        io
    };
    let bench = r#"bench = { awq = "results/m1-rehearsal/bench/awq/summary.json", bf16 = "results/m1-rehearsal/bench/bf16/summary.json" }"#;
    let charts: ChartsSettings = toml::from_str(bench).expect("charts settings");
    crate::steps::charts::run_step(&charts, &at("charts", vec![results.join("charts")]))
        .await
        .expect("charts");
    let report: ReportSettings = toml::from_str(&format!(
        "{bench}\ncost = \"results/m1-rehearsal/cost\"\ncharts = \"results/m1-rehearsal/charts\"\n"
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
    let log = std::fs::read_to_string(ws.path().join("step.log")).expect("log");
    (out, log)
}

#[tokio::test]
async fn server_view_section_per_label_and_level() {
    let (out, log) = render().await;
    let start = out
        .markdown
        .find("## Server view per concurrency level")
        .expect("section");
    let end = out
        .markdown
        .find("## Quality retention")
        .expect("next section");
    insta::assert_snapshot!("report_md_server_view", &out.markdown[start..end]);
    assert!(
        out.markdown
            .contains("- bench bf16 c=4: [bench/bf16/c4.json](bench/bf16/c4.json)"),
        "level files are listed as inputs"
    );
    assert!(
        log.contains("charts: no server view for `awq`: c=1: no `c1.json`"),
        "{log}"
    );
    assert!(log.contains("(4 charts inlined)"), "{log}");
}

#[tokio::test]
async fn html_inlines_the_server_chart() {
    let (out, _) = render().await;
    assert_eq!(
        out.html.matches("<svg").count(),
        4,
        "three canonical + server-bf16"
    );
    assert!(
        out.html
            .contains("<h3>bf16, server side</h3>\n<figure><svg")
    );
    assert!(
        out.html
            .contains("<li>c=1: no c1.json next to the summary</li>")
    );
}
