//! The example pipelines under `pipelines/examples/` run as shipped (in a copy of the layout).

use crate::support::{Workspace, run_json};

fn copy_examples(ws: &Workspace) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for name in ["basic.toml", "service.toml"] {
        let text = std::fs::read_to_string(root.join("pipelines/examples").join(name)).unwrap();
        ws.write(&format!("pipelines/examples/{name}"), &text);
    }
    ws.write("README.md", "# Forge\nwords for the example\n");
}

#[test]
fn the_basic_example_runs_then_is_fresh() {
    let ws = Workspace::new();
    copy_examples(&ws);
    let (code, statuses, stderr) = run_json(&ws, &["pipelines/examples/basic.toml"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(statuses.len(), 4);
    assert_eq!(
        ws.read("results/examples/basic/default/report.txt"),
        "hello\n6\n24\n"
    );
    let (_, statuses, _) = run_json(&ws, &["pipelines/examples/basic.toml"]);
    assert!(statuses.values().all(|s| s == "fresh"), "{statuses:?}");
}

#[test]
fn the_service_example_serves_each_flavor_in_turn() {
    let ws = Workspace::new();
    copy_examples(&ws);
    let port = crate::support::free_port().to_string();
    let (code, statuses, stderr) = run_json(
        &ws,
        &[
            "pipelines/examples/service.toml",
            "--set",
            &format!("port={port}"),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(statuses["server-a"], "started");
    assert_eq!(statuses["server-b"], "started");
    assert_eq!(
        ws.read("results/examples/service/default/fetch-b.json"),
        "{\"model\": \"tiny\"}\n"
    );
}

#[test]
fn the_examples_run_in_a_workspace_whose_path_has_spaces_quotes_and_dollars() {
    let ws = Workspace::named("my w$(touch pwned) 'it's' \"q\" $HOME");
    copy_examples(&ws);
    let (code, statuses, stderr) = run_json(&ws, &["pipelines/examples/basic.toml"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(statuses.values().all(|s| s == "ran"), "{statuses:?}");
    assert_eq!(
        ws.read("results/examples/basic/default/report.txt"),
        "hello\n6\n24\n"
    );
    let port = crate::support::free_port().to_string();
    let (code, statuses, stderr) = run_json(
        &ws,
        &[
            "pipelines/examples/service.toml",
            "--set",
            &format!("port={port}"),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(statuses["fetch-b"], "ran");
    // Nothing ran that the path spelled, and nothing was written beside the workspace.
    let parent = ws.path().parent().unwrap();
    let beside: Vec<_> = std::fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside.len(), 1, "{beside:?}");
    assert!(!ws.exists("pwned"));
    let (_, statuses, _) = run_json(&ws, &["pipelines/examples/basic.toml"]);
    assert!(statuses.values().all(|s| s == "fresh"), "{statuses:?}");
}

#[test]
fn a_raw_value_goes_into_run_unquoted_and_everything_else_is_one_word() {
    let ws = Workspace::new();
    ws.write(
        "pipeline.toml",
        r#"[params]
words = "two words; touch injected"
flags = "-n"

[steps.a]
kind = "command"
outputs = ["out.txt"]
run = "printf '%s|' {{ params.words }} > {{ outputs[0] }}; echo {{ params.flags | raw }} x >> {{ outputs[0] }}"
"#,
    );
    let (code, _, stderr) = run_json(&ws, &["pipeline.toml"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(ws.read("out.txt"), "two words; touch injected|x");
    assert!(!ws.exists("injected"));
}
