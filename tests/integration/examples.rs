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
