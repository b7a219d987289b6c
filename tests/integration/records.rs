//! The lock file as a committed artifact: written only when something changed, readable by
//! others, checked for its format version, shared safely by two workspaces, shown without panics.

use std::os::unix::fs::PermissionsExt;

use crate::support::{Workspace, run_json};

const ONE_STEP: &str = "[pipeline]\nresults = \"results\"\n[steps.a]\nkind = \"command\"\noutputs = [\"out.txt\"]\nrun = \"echo a > {{ outputs[0] }}\"\n";

#[test]
fn a_run_that_changes_nothing_leaves_the_lock_file_untouched_and_readable() {
    let ws = Workspace::new();
    ws.write("pipeline.toml", ONE_STEP);
    let (code, _, stderr) = run_json(&ws, &["pipeline.toml"]);
    assert_eq!(code, 0, "{stderr}");
    let lock = ws.path().join("results/forge.lock");
    let before = ws.read("results/forge.lock");
    let mode = std::fs::metadata(&lock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "forge.lock is committed: others must read it");
    let stat_cache = ws.path().join(".forge/stat-cache.json");
    assert_eq!(
        std::fs::metadata(&stat_cache).unwrap().permissions().mode() & 0o777,
        0o644
    );
    std::thread::sleep(std::time::Duration::from_millis(1100)); // a new `finished_at` would differ
    let (code, statuses, _) = run_json(&ws, &["pipeline.toml"]);
    assert_eq!((code, statuses["a"].as_str()), (0, "fresh"));
    assert_eq!(
        ws.read("results/forge.lock"),
        before,
        "a no-op run rewrote the lock file"
    );
}

#[test]
fn a_lock_file_of_another_format_version_is_refused_with_a_hint() {
    let ws = Workspace::new();
    ws.write("pipeline.toml", ONE_STEP);
    ws.write("results/forge.lock", "{\"version\": 99, \"steps\": {}}\n");
    let run = ws.forge(&["plan", "pipeline.toml"]);
    assert_eq!(run.code(), 2);
    assert!(
        run.stderr().contains("format version 99") && run.stderr().contains("hint:"),
        "{}",
        run.stderr()
    );
}

#[test]
fn show_prints_a_hand_edited_short_digest_without_panicking() {
    let ws = Workspace::new();
    ws.write("pipeline.toml", ONE_STEP);
    run_json(&ws, &["pipeline.toml"]);
    let mut lock: serde_json::Value = serde_json::from_str(&ws.read("results/forge.lock")).unwrap();
    lock["steps"]["a"]["outputs"]["out.txt"]["digest"] = "abc".into();
    ws.write("results/forge.lock", &lock.to_string());
    let run = ws.forge(&["show", "pipeline.toml", "a"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(run.stdout().contains("out.txt  abc"), "{}", run.stdout());
}

#[test]
fn two_workspaces_sharing_one_results_directory_keep_every_record() {
    let shared = tempfile::tempdir().unwrap();
    let results = shared.path().join("results");
    let workspaces: Vec<Workspace> = (0..2).map(|_| Workspace::new()).collect();
    let mut children = Vec::new();
    for (w, ws) in workspaces.iter().enumerate() {
        std::os::unix::fs::symlink(&results, ws.path().join("results")).unwrap();
        let mut manifest = String::from("[pipeline]\nresults = \"results\"\n");
        for i in 0..10 {
            manifest.push_str(&format!(
                "[steps.w{w}s{i}]\nkind = \"command\"\noutputs = [\"out/{i}.txt\"]\nrun = \"echo {i} > {{{{ outputs[0] }}}}\"\n"
            ));
        }
        ws.write("pipeline.toml", &manifest);
        std::fs::create_dir_all(&results).unwrap();
        children.push(ws.spawn_forge(&["run", "pipeline.toml", "--jobs", "4"]));
    }
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let lock: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(results.join("forge.lock")).unwrap())
            .unwrap();
    assert_eq!(lock["steps"].as_object().unwrap().len(), 20, "{lock}");
}
