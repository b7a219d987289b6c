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

/// The `config` part of a key keeps one shape for every kind (what recorded lock files hold):
/// `run`, `with` and `outputs` for commands and built-in kinds, `run`, `url` and `model` for
/// services. Changing it would make every committed record stale.
#[test]
fn each_kinds_key_config_keeps_the_recorded_shape() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let options = forge::manifest::LoadOptions {
        manifest: root.join("pipelines/forge.toml"),
        profile: Some("m1-rehearsal".into()),
        sets: Vec::new(),
    };
    let pipeline = forge::manifest::load(&options).expect("the rehearsal loads");
    let lock = forge::cache::LockFile::default();
    let stat = forge::cache::StatCache::load(&root.join("target/no-such-stat-cache.json"));
    let config = |id: &str| {
        let parts = forge::plan::key_parts(&pipeline, &pipeline.steps[id], &lock, &stat);
        let keys: Vec<String> = parts
            .config
            .as_object()
            .expect("object")
            .keys()
            .cloned()
            .collect();
        (parts.kind, keys, parts.config)
    };
    let (kind, keys, command) = config("sharegpt");
    assert_eq!(
        (kind.as_str(), keys),
        (
            "command",
            vec!["outputs".into(), "run".into(), "with".into()]
        )
    );
    assert!(
        command["run"].as_str().is_some_and(|r| !r.is_empty()),
        "{command}"
    );
    assert_eq!(command["with"], serde_json::json!({}));
    let (kind, keys, service) = config("serve-bf16");
    assert_eq!(
        (kind.as_str(), keys),
        ("service", vec!["model".into(), "run".into(), "url".into()])
    );
    assert!(
        service["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("http://")),
        "{service}"
    );
    let (kind, keys, cost) = config("cost");
    assert_eq!(
        (kind.as_str(), keys),
        ("cost", vec!["outputs".into(), "run".into(), "with".into()])
    );
    assert!(cost["run"].is_null(), "{cost}");
    assert!(
        cost["with"].as_object().is_some_and(|w| !w.is_empty()),
        "{cost}"
    );
}
