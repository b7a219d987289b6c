//! Chart-data shaping and byte-for-byte determinism on the m1-rehearsal fixtures.

use super::*;
use crate::steps::cost::testkit::{crate_root, step_io};

pub(crate) const REHEARSAL_CHARTS_TOML: &str = r#"
bench = { awq = "tests/fixtures/results/m1-rehearsal/bench/awq/summary.json", bf16 = "tests/fixtures/results/m1-rehearsal/bench/bf16/summary.json" }
retention = "tests/fixtures/results/m1-rehearsal/eval/retention.json"
cost = "tests/fixtures/results/m1-rehearsal/cost"
apis = ["gpt-4o-mini", "gpt-4.1-nano", "claude-3-haiku", "groq/llama-3.1-8b-instant"]
roofline = { memory_bandwidth_gbs = 40.0, bytes_per_token_gb = { awq = 0.16, bf16 = 0.27 } }
"#;

fn settings() -> ChartsSettings {
    toml::from_str(REHEARSAL_CHARTS_TOML).expect("fixture settings parse")
}

fn shaped() -> Vec<(String, Chart)> {
    shape(&settings(), &crate_root(), "charts")
        .expect("fixtures shape")
        .charts
}

#[test]
fn five_charts_in_canonical_order() {
    let names: Vec<String> = shaped().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["throughput", "ttft", "tpot", "cost", "retention"]);
}

#[test]
fn throughput_has_one_series_per_label_and_a_clipped_roofline() {
    let Chart::Lines(c) = &shaped()[0].1 else {
        panic!("line chart")
    };
    let names: Vec<&str> = c.lines.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names[..2], ["awq measured", "bf16 measured"]);
    assert_eq!(
        c.lines[0].points,
        vec![(1.0, 52.31), (2.0, 95.07), (4.0, 150.5859), (8.0, 191.02)]
    );
    assert_eq!(c.levels, vec![1.0, 2.0, 4.0, 8.0]);
    // awq single-stream ceiling 40 / 0.16 = 250 tok/s; the axis covers it: 250 * 1.1 -> 275.
    assert_eq!(c.y_max, 275.0);
    let roof = &c.lines[2];
    assert!(roof.dashed && !roof.markers && roof.name.starts_with("awq roofline"));
    // 250 at c=1, then it leaves the axis at c = 275 / 250 = 1.1.
    assert_eq!(roof.points, vec![(1.0, 250.0), (1.1, 275.0)]);
    assert!(
        c.caption.contains("profile m1-rehearsal") && c.caption.contains("vllm 0.32.0"),
        "{}",
        c.caption
    );
    assert!(
        c.caption.contains("awq 5d41402abc4b, bf16 7c6a180b3689"),
        "{}",
        c.caption
    );
    assert!(c.caption.ends_with("2026-11-28T12:10:03Z"), "{}", c.caption);
}

#[test]
fn roofline_points_stop_at_the_axis_top() {
    assert_eq!(
        data::roofline_points(&[1.0, 2.0, 4.0], 10.0, 100.0),
        vec![(1.0, 10.0), (2.0, 20.0), (4.0, 40.0)]
    );
    assert_eq!(
        data::roofline_points(&[1.0, 2.0, 4.0], 30.0, 100.0),
        vec![(1.0, 30.0), (2.0, 60.0), (100.0 / 30.0, 100.0)]
    );
    assert_eq!(data::nice_top(219.7), 225.0);
    assert_eq!(data::nice_top(945.6), 950.0);
    assert_eq!(data::nice_top(1036.8), 1250.0);
    assert_eq!(data::nice_top(0.0), 1.0);
}

#[test]
fn latency_charts_pair_p50_and_p99() {
    let charts = shaped();
    let Chart::Lines(ttft) = &charts[1].1 else {
        panic!("line chart")
    };
    let names: Vec<&str> = ttft.lines.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["awq p50", "awq p99", "bf16 p50", "bf16 p99"]);
    assert_eq!(ttft.lines[1].points[3], (8.0, 822.3));
    assert!(ttft.lines[1].dashed && !ttft.lines[0].dashed);
    assert_eq!(ttft.lines[2].colour, 1);
    assert_eq!(ttft.y_label, "time to first token (ms)");
    let Chart::Lines(tpot) = &charts[2].1 else {
        panic!("line chart")
    };
    assert_eq!(tpot.lines[0].points[0], (1.0, 18.1));
}

#[test]
fn cost_bars_are_self_hosted_then_chosen_apis() {
    let Chart::Bars(c) = &shaped()[3].1 else {
        panic!("bar chart")
    };
    let names: Vec<&str> = c.bars.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "awq @100% (c=8)",
            "awq @80% (c=8)",
            "awq SLO level (c=4)",
            "gpt-4o-mini",
            "gpt-4.1-nano",
            "claude-3-haiku",
            "groq/llama-3.1-8b-instant"
        ]
    );
    assert!((c.bars[0].value - 0.226_852_336_579).abs() < 1e-9);
    assert!((c.bars[3].value - 0.30).abs() < 1e-12);
    assert!(c.x_label.contains("2.00:1"), "{}", c.x_label);
    let mut only = settings();
    only.apis = Some(vec!["claude-3-haiku".into()]);
    let charts = shape(&only, &crate_root(), "charts")
        .expect("shapes")
        .charts;
    let Chart::Bars(c) = &charts[3].1 else {
        panic!("bar chart")
    };
    assert_eq!(c.bars.len(), 4);
}

#[test]
fn retention_in_percent_with_stderr() {
    let Chart::Retention(c) = &shaped()[4].1 else {
        panic!("retention chart")
    };
    let gsm = &c.bars[0];
    assert_eq!(gsm.name, "gsm8k");
    assert!((gsm.percent - 87.52).abs() < 1e-9, "{}", gsm.percent);
    assert!(gsm.stderr > 20.0);
    assert!(c.y_range.0 <= gsm.percent - gsm.stderr && c.y_range.1 >= 100.0);
    assert_eq!(c.y_label, "awq score as % of bf16 (± 1 stderr)");
}

#[test]
fn missing_inputs_are_named() {
    let mut s = settings();
    s.cost = Some("tests/fixtures/results/none".into());
    let e = shape(&s, &crate_root(), "charts")
        .expect_err("missing cost")
        .to_string();
    assert!(
        e.contains("none/comparison.json") || e.contains("none"),
        "{e}"
    );
    let mut s = settings();
    s.bench.insert("int8".into(), "nowhere/summary.json".into());
    let e = shape(&s, &crate_root(), "charts")
        .expect_err("missing bench")
        .to_string();
    assert!(e.contains("nowhere/summary.json"), "{e}");
}

#[test]
fn bad_settings_are_named() {
    let mut s = settings();
    s.width = 100;
    let e = shape(&s, &crate_root(), "charts")
        .expect_err("too small")
        .to_string();
    assert!(e.contains("width/height") && e.contains("100x600"), "{e}");
    let mut s = settings();
    if let Some(r) = s.roofline.as_mut() {
        r.bytes_per_token_gb.insert("awq".into(), 0.0);
    }
    let e = shape(&s, &crate_root(), "charts")
        .expect_err("zero bytes")
        .to_string();
    assert!(e.contains("roofline.bytes_per_token_gb.awq"), "{e}");
    let unknown = toml::from_str::<ChartsSettings>(&format!("{REHEARSAL_CHARTS_TOML}\ncolour = 1"));
    assert!(
        unknown
            .expect_err("deny_unknown_fields")
            .to_string()
            .contains("colour")
    );
}

#[tokio::test]
async fn same_inputs_give_byte_identical_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = settings();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let first = run_step(&s, &step_io("charts", dir.path(), vec![a.clone()]))
        .await
        .expect("charts render");
    let second = run_step(&s, &step_io("charts", dir.path(), vec![b.clone()]))
        .await
        .expect("charts render");
    assert_eq!(first.len(), 10);
    for (x, y) in first.iter().zip(&second) {
        let (bx, by) = (
            std::fs::read(x).expect("read"),
            std::fs::read(y).expect("read"),
        );
        assert!(bx.len() > 1000, "{} is suspiciously small", x.display());
        assert_eq!(bx, by, "{} differs between runs", x.display());
    }
    let png = std::fs::read(a.join("throughput.png")).expect("png");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let svg = std::fs::read_to_string(a.join("cost.svg")).expect("svg");
    assert!(svg.contains("gpt-4o-mini") && svg.contains("profile m1-rehearsal"));
    if let Ok(out) = std::env::var("FORGE_CHARTS_OUT") {
        for f in &first {
            let _ = std::fs::copy(
                f,
                std::path::Path::new(&out).join(f.file_name().expect("name")),
            );
        }
    }
}

#[test]
fn long_captions_wrap_at_separators() {
    assert_eq!(render::wrap("a | b | c", 100), vec!["a | b | c"]);
    assert_eq!(
        render::wrap("aaaa | bbbb | cccc", 11),
        vec!["aaaa | bbbb", "cccc"]
    );
    assert_eq!(
        render::wrap("aaaaaaaaaaaa | b", 5),
        vec!["aaaaaaaaaaaa", "b"]
    );
}

#[tokio::test]
async fn small_sizes_render_with_wrapped_captions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = settings();
    (s.width, s.height) = (640, 420);
    let files = run_step(
        &s,
        &step_io("charts", dir.path(), vec![dir.path().join("small")]),
    )
    .await
    .expect("renders");
    assert_eq!(files.len(), 10);
    let svg = std::fs::read_to_string(dir.path().join("small/throughput.svg")).expect("svg");
    assert!(
        svg.contains("profile m1-rehearsal | "),
        "caption first line"
    );
    if let Ok(out) = std::env::var("FORGE_CHARTS_OUT") {
        for f in &files {
            let name = format!("small-{}", f.file_name().expect("name").to_string_lossy());
            let _ = std::fs::copy(f, std::path::Path::new(&out).join(name));
        }
    }
}

#[test]
fn every_chart_of_a_rehearsal_carries_the_banner() {
    // The committed cost fixture comes from a rehearsal: comparison.json carries the banner.
    let mut charts = shaped();
    assert_eq!(charts.len(), 5);
    for (name, chart) in &mut charts {
        let title = chart.title_mut();
        assert!(
            title.starts_with("[rehearsal: CPU figures, not a decision] "),
            "{name}: {title}"
        );
    }
    // Without the cost files nothing says whether it was a rehearsal: no banner.
    let mut bare = settings();
    bare.cost = None;
    let charts = shape(&bare, &crate_root(), "charts")
        .expect("shapes")
        .charts;
    for (name, mut chart) in charts {
        assert!(!chart.title_mut().starts_with("[rehearsal"), "{name}");
    }
}

#[test]
fn crafted_summaries_without_level_files_skip_the_server_view_with_a_note() {
    let shaped = shape(&settings(), &crate_root(), "charts").expect("shapes");
    assert_eq!(shaped.charts.len(), 5);
    assert_eq!(shaped.notes.len(), 2);
    assert_eq!(
        shaped.notes[0],
        "no server view for `awq`: c=1: no `c1.json` next to the summary; \
         c=2: no `c2.json` next to the summary; c=4: no `c4.json` next to the summary; \
         c=8: no `c8.json` next to the summary"
    );
}

/// The fixture summaries copied into `dir`, with an `intervals.json` beside awq's only.
fn fixtures_with_awq_intervals(dir: &std::path::Path) -> ChartsSettings {
    use crate::steps::bench::uncertainty::{BenchIntervals, Interval, LevelIntervals};
    for label in ["awq", "bf16"] {
        let to = dir.join("bench").join(label);
        std::fs::create_dir_all(&to).expect("mkdir");
        std::fs::copy(
            crate_root().join(format!(
                "tests/fixtures/results/m1-rehearsal/bench/{label}/summary.json"
            )),
            to.join("summary.json"),
        )
        .expect("copy summary");
    }
    let mut intervals = BenchIntervals::new(0);
    let iv = |estimate, lo, hi| Some(Interval { estimate, lo, hi });
    intervals.levels.push(LevelIntervals {
        max_concurrency: 2,
        repeats: 3,
        requests: 48,
        repeat_durations_s: vec![10.0, 11.0, 12.0],
        output_throughput: iv(95.07, 80.0, 300.0),
        p50_ttft_ms: iv(100.0, 90.0, 120.0),
        p99_ttft_ms: None,
        p50_tpot_ms: None,
        p99_tpot_ms: None,
    });
    intervals
        .write(&dir.join("bench/awq"))
        .expect("write intervals");
    toml::from_str(
        r#"bench = { awq = "bench/awq/summary.json", bf16 = "bench/bf16/summary.json" }"#,
    )
    .expect("settings parse")
}

#[test]
fn intervals_beside_a_summary_become_error_bars_said_in_the_caption() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = fixtures_with_awq_intervals(dir.path());
    let charts = shape(&s, dir.path(), "charts").expect("shapes").charts;
    let Chart::Lines(throughput) = &charts[0].1 else {
        panic!("line chart")
    };
    assert_eq!(throughput.lines[0].name, "awq measured");
    assert_eq!(throughput.lines[0].bars, vec![(2.0, 80.0, 300.0)]);
    assert!(
        throughput.lines[1].bars.is_empty(),
        "bf16 wrote no intervals"
    );
    assert!(throughput.y_max >= 300.0, "the axis holds the whole bar");
    assert!(
        throughput
            .caption
            .ends_with("bars: 95 % bootstrap intervals (intervals.json)"),
        "{}",
        throughput.caption
    );
    let Chart::Lines(ttft) = &charts[1].1 else {
        panic!("line chart")
    };
    let bars: Vec<(&str, usize)> = ttft
        .lines
        .iter()
        .map(|l| (l.name.as_str(), l.bars.len()))
        .collect();
    assert_eq!(
        bars,
        [
            ("awq p50", 1),
            ("awq p99", 0),
            ("bf16 p50", 0),
            ("bf16 p99", 0)
        ]
    );
    let Chart::Lines(tpot) = &charts[2].1 else {
        panic!("line chart")
    };
    assert!(tpot.lines.iter().all(|l| l.bars.is_empty()));
    assert!(!tpot.caption.contains("bars:"), "no bars, no note");
    // Without the file the same summaries chart exactly as before.
    std::fs::remove_file(dir.path().join("bench/awq/intervals.json")).expect("rm");
    let plain = shape(&s, dir.path(), "charts").expect("shapes").charts;
    let Chart::Lines(before) = &plain[0].1 else {
        panic!("line chart")
    };
    assert!(before.lines.iter().all(|l| l.bars.is_empty()));
    assert!(!before.caption.contains("bars:"));
}

#[tokio::test]
async fn error_bars_are_drawn() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = fixtures_with_awq_intervals(dir.path());
    let io = |out: &std::path::Path| StepIo {
        workspace: dir.path().to_path_buf(),
        ..step_io("charts", dir.path(), vec![out.to_path_buf()])
    };
    let out = dir.path().join("with");
    run_step(&s, &io(&out)).await.expect("charts render");
    let with = std::fs::read_to_string(out.join("throughput.svg")).expect("svg");
    std::fs::remove_file(dir.path().join("bench/awq/intervals.json")).expect("rm");
    let out = dir.path().join("without");
    run_step(&s, &io(&out)).await.expect("charts render");
    let without = std::fs::read_to_string(out.join("throughput.svg")).expect("svg");
    // One bar: a vertical line and two caps, in awq's colour.
    let count = |svg: &str| svg.matches("<line").count() + svg.matches("<polyline").count();
    assert!(
        count(&with) >= count(&without) + 3,
        "{} vs {} line elements",
        count(&with),
        count(&without)
    );
}
