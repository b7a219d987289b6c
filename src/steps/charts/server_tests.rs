//! The server-view charts on a captured rehearsal sweep (`tests/fixtures/results/
//! m1-rehearsal-captured`: the bench step's own output, `/metrics` series included).

use super::*;
use crate::steps::cost::testkit::{crate_root, step_io};

const CAPTURED: &str = r#"
bench = { bf16 = "tests/fixtures/results/m1-rehearsal-captured/bench/bf16/summary.json" }
"#;

fn captured() -> Shaped {
    let s: ChartsSettings = toml::from_str(CAPTURED).expect("settings parse");
    shape(&s, &crate_root(), "charts").expect("captured sweep shapes")
}

fn server_chart() -> ServerChart {
    let shaped = captured();
    assert!(shaped.notes.is_empty(), "{:?}", shaped.notes);
    let names: Vec<&str> = shaped.charts.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["throughput", "ttft", "tpot", "server-bf16"]);
    match shaped.charts.into_iter().nth(3) {
        Some((_, Chart::Server(c))) => c,
        other => panic!("server chart expected, got {other:?}"),
    }
}

#[test]
fn levels_sit_end_to_end_with_their_starts_marked() {
    let c = server_chart();
    assert_eq!(c.title, "Server view across the sweep: bf16");
    // c1 was scraped from t = 0.050 to 129.452 s, c2 from 0.063 to 99.338 s, c4 from 0.300 to 75.646 s.
    let spans = [
        129.452_014_496 - 0.050_270_82,
        99.337_596_644 - 0.062_832_417,
    ];
    let starts: Vec<u32> = c.boundaries.iter().map(|b| b.1).collect();
    assert_eq!(starts, [1, 2, 4]);
    assert_eq!(c.boundaries[0].0, 0.0);
    assert!((c.boundaries[1].0 - spans[0]).abs() < 1e-9);
    assert!((c.boundaries[2].0 - spans[0] - spans[1]).abs() < 1e-9);
    let end = spans[0] + spans[1] + 75.645_610_841 - 0.299_970_081;
    assert!((c.x_max - end).abs() < 1e-9, "{}", c.x_max);
    assert!(c.caption.contains("profile m1-rehearsal") && c.caption.contains("vllm 0.32.0"));
}

#[test]
fn panels_show_requests_kv_cache_and_token_rates() {
    let c = server_chart();
    let panels: Vec<(&str, Vec<&str>)> = c
        .panels
        .iter()
        .map(|p| {
            let names = p.traces.iter().map(|t| t.name.as_str()).collect();
            (p.y_label.as_str(), names)
        })
        .collect();
    assert_eq!(
        panels,
        [
            ("requests", vec!["running", "waiting"]),
            ("KV cache (%)", vec!["KV-cache usage"]),
            ("generation tok/s", vec!["generation tokens/s"]),
            ("prompt tok/s", vec!["prompt tokens/s"]),
        ]
    );
    let running = &c.panels[0].traces[0];
    // One segment per level (no scrape lacked the gauge), peaking at the level's concurrency.
    assert_eq!(running.segments.len(), 3);
    let peak = running.segments[2].iter().map(|p| p.1).fold(0.0, f64::max);
    assert_eq!(peak, 4.0);
    assert_eq!(c.panels[0].y_max, 4.5);
    // KV-cache usage in percent: the fraction 0.011004... at c=4 is 1.1%.
    let kv = c.panels[1].traces[0].segments[2].iter().map(|p| p.1);
    assert!((kv.fold(0.0, f64::max) - 1.100_412_654_745_530_6).abs() < 1e-12);
    // A rate needs two scrapes: each level's first scrape has none.
    let generation = &c.panels[2].traces[0];
    assert_eq!(generation.segments[0].len(), 130);
}

#[test]
fn file_stems_cannot_leave_the_charts_directory() {
    assert_eq!(server_data::file_stem("awq"), "server-awq");
    assert_eq!(server_data::file_stem("int4/awq v2"), "server-int4_awq_v2");
}

#[tokio::test]
async fn server_views_render_identically_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s: ChartsSettings = toml::from_str(CAPTURED).expect("settings parse");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let first = run_step(&s, &step_io("charts", dir.path(), vec![a.clone()]))
        .await
        .expect("renders");
    let second = run_step(&s, &step_io("charts", dir.path(), vec![b.clone()]))
        .await
        .expect("renders");
    assert_eq!(first.len(), 8);
    for (x, y) in first.iter().zip(&second) {
        let (bx, by) = (
            std::fs::read(x).expect("read"),
            std::fs::read(y).expect("read"),
        );
        assert_eq!(bx, by, "{} differs between runs", x.display());
    }
    let svg = std::fs::read_to_string(a.join("server-bf16.svg")).expect("svg");
    for text in [
        "Server view across the sweep: bf16",
        "c=4",
        "generation tokens/s",
        "level start",
    ] {
        assert!(svg.contains(text), "missing {text}");
    }
    let png = std::fs::read(a.join("server-bf16.png")).expect("png");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    if let Ok(out) = std::env::var("FORGE_CHARTS_OUT") {
        for f in &first {
            let _ = std::fs::copy(
                f,
                std::path::Path::new(&out).join(f.file_name().expect("name")),
            );
        }
    }
}
