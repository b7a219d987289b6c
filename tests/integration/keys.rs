//! What enters a step's key beyond its declared inputs: symbolic links are hashed by their
//! targets (directory walks follow them, a link cycle ends), and the files a built-in kind's
//! `with` makes it read (here the report's templates and the results it reports on).

use crate::support::{Workspace, plan, run_json};

fn reasons(ws: &Workspace, step: &str) -> (String, Vec<String>) {
    plan(ws, &["pipeline.toml"])[step].clone()
}

#[test]
fn inputs_that_are_links_are_hashed_by_their_targets() {
    let ws = Workspace::new();
    ws.write("real/a.txt", "one\n")
        .write("real/sub/b.txt", "two\n");
    std::fs::create_dir_all(ws.path().join("data")).unwrap();
    std::fs::create_dir_all(ws.path().join("tree")).unwrap();
    let link = |target: &str, at: &str| {
        std::os::unix::fs::symlink(ws.path().join(target), ws.path().join(at)).unwrap();
    };
    link("real/a.txt", "data/link.txt");
    link("real", "tree/inner");
    link("real", "real/sub/loop"); // a cycle once followed
    ws.write(
        "pipeline.toml",
        "[steps.a]\nkind = \"command\"\ninputs = [\"data/link.txt\", \"tree\"]\noutputs = [\"out.txt\"]\nrun = \"cat data/link.txt tree/inner/sub/b.txt > {{ outputs[0] }}\"\n",
    );
    let (code, _, stderr) = run_json(&ws, &["pipeline.toml"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(reasons(&ws, "a").0, "fresh");
    ws.write("real/a.txt", "edited\n");
    let (action, why) = reasons(&ws, "a");
    assert_eq!(action, "run");
    assert!(
        why.contains(&"input `data/link.txt` changed".to_string()),
        "{why:?}"
    );
    assert!(why.contains(&"input `tree` changed".to_string()), "{why:?}");
    run_json(&ws, &["pipeline.toml"]);
    ws.write("real/sub/b.txt", "edited too\n");
    let (action, why) = reasons(&ws, "a");
    assert_eq!(
        (action.as_str(), why),
        ("run", vec!["input `tree` changed".to_string()])
    );
}

#[test]
fn files_a_builtin_kind_reads_through_with_enter_its_key() {
    let ws = Workspace::new();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/results/m1-rehearsal");
    for file in [
        "cost/cost.json",
        "cost/comparison.json",
        "bench/awq/summary.json",
        "bench/bf16/summary.json",
    ] {
        ws.write(
            &format!("fx/{file}"),
            &std::fs::read_to_string(fixtures.join(file)).unwrap(),
        );
    }
    ws.write(
        "pipeline.toml",
        r#"[steps.report]
kind = "report"
outputs = ["out/report.md", "out/report.html"]
[steps.report.with]
cost = "fx/cost"
bench = { awq = "fx/bench/awq/summary.json", bf16 = "fx/bench/bf16/summary.json" }
"#,
    );
    let (code, _, stderr) = run_json(&ws, &["pipeline.toml"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(reasons(&ws, "report").0, "fresh");
    // A workspace template the report picks up by default.
    ws.write("templates/report.md.j2", "custom {{ title }}\n");
    let (action, why) = reasons(&ws, "report");
    assert_eq!(action, "run");
    assert_eq!(
        why,
        vec!["`with` file `templates/report.md.j2` changed".to_string()]
    );
    let (code, _, stderr) = run_json(&ws, &["pipeline.toml"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(ws.read("out/report.md").starts_with("custom "));
    // The results it reports on, read through `with.cost`.
    let cost = ws.read("fx/cost/cost.json");
    ws.write("fx/cost/cost.json", &cost.replacen('{', "{\n", 1));
    let (action, why) = reasons(&ws, "report");
    assert_eq!(
        (action.as_str(), why),
        ("run", vec!["`with` file `fx/cost` changed".to_string()])
    );
}
