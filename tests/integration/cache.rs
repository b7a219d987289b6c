//! Caching: hits, misses and their reasons, early cutoff, matrix, profiles and `--set`, the
//! fresh-clone scenario, crash safety, and the workspace lock.

use crate::support::{Workspace, plan, run_json};

const CHAIN: &str = r#"
[pipeline]
name = "chain"

[params]
factor = 2
levels = [1, 2]

[steps.source]
kind = "command"
inputs = ["data/input.txt"]
outputs = ["out/source.txt"]
run = "cat data/input.txt | wc -l | tr -d ' ' > {{ outputs[0] }}"

[steps.scale]
kind = "command"
needs = ["source"]
outputs = ["out/scale.txt"]
run = "echo $(( $(cat {{ steps.source.outputs[0] }}) * {{ params.factor }} )) > {{ outputs[0] }}"

[steps.parity]
kind = "command"
needs = ["scale"]
outputs = ["out/parity.txt"]
run = "echo $(( $(cat {{ steps.scale.outputs[0] }}) % 2 )) > {{ outputs[0] }}; echo ran >> out/parity-runs"
"#;

fn chain() -> Workspace {
    let ws = Workspace::new();
    ws.write("pipeline.toml", CHAIN)
        .write("data/input.txt", "a\nb\n");
    ws
}

#[test]
fn second_run_is_fresh_and_changes_name_their_reason() {
    let ws = chain();
    let (code, statuses, _) = run_json(&ws, &["pipeline.toml"]);
    assert_eq!(code, 0);
    assert!(statuses.values().all(|s| s == "ran"), "{statuses:?}");
    assert_eq!(ws.read("out/scale.txt").trim(), "4");
    let (_, statuses, _) = run_json(&ws, &["pipeline.toml"]);
    assert!(statuses.values().all(|s| s == "fresh"), "{statuses:?}");

    ws.write("data/input.txt", "a\nb\nc\n");
    let p = plan(&ws, &["pipeline.toml"]);
    assert_eq!(p["source"].0, "run");
    assert_eq!(p["source"].1, vec!["input `data/input.txt` changed"]);
    assert_eq!(p["scale"].0, "pending");

    let p = plan(&ws, &["pipeline.toml", "--set", "factor=3"]);
    assert_eq!(p["scale"].1, vec!["param `factor` changed: 2 -> 3"]);
    assert_eq!(p["parity"].0, "pending");
    let p = plan(&ws, &["pipeline.toml", "--force", "parity"]);
    assert!(p["parity"].1.contains(&"forced".to_string()), "{p:?}");
}

#[test]
fn early_cutoff_keeps_downstream_fresh_when_outputs_are_identical() {
    let ws = chain();
    run_json(&ws, &["pipeline.toml"]);
    // 2 lines -> 3 lines: `source` and `scale` change, so `parity` reruns.
    ws.write("data/input.txt", "a\nb\nc\n");
    let (code, statuses, _) = run_json(&ws, &["pipeline.toml"]);
    assert_eq!(code, 0);
    assert_eq!(statuses["source"], "ran");
    assert_eq!(statuses["scale"], "ran");
    assert_eq!(statuses["parity"], "ran");
    // Now a change that leaves `source`'s output identical: a trailing edit with the same line count.
    ws.write("data/input.txt", "x\ny\nz\n");
    let (_, statuses, _) = run_json(&ws, &["pipeline.toml"]);
    assert_eq!(statuses["source"], "ran");
    assert_eq!(
        statuses["scale"], "fresh",
        "identical upstream output must not rerun `scale`"
    );
    assert_eq!(statuses["parity"], "fresh");
    assert_eq!(ws.read("out/parity-runs").lines().count(), 2);
}

#[test]
fn outputs_modified_or_missing_are_explained() {
    let ws = chain();
    run_json(&ws, &["pipeline.toml"]);
    ws.write("out/parity.txt", "tampered\n");
    let p = plan(&ws, &["pipeline.toml"]);
    assert_eq!(
        p["parity"].1,
        vec!["output `out/parity.txt` was modified since it was recorded"]
    );
    std::fs::remove_file(ws.path().join("out/parity.txt")).unwrap();
    let p = plan(&ws, &["pipeline.toml"]);
    assert_eq!(
        p["parity"].0, "run",
        "a missing final output is produced again"
    );
    std::fs::remove_file(ws.path().join("out/source.txt")).unwrap();
    let p = plan(&ws, &["pipeline.toml"]);
    assert_eq!(
        p["source"].0, "will-skip",
        "a missing intermediate is not needed: {p:?}"
    );
}

#[test]
fn matrix_expands_into_independent_steps() {
    let ws = Workspace::new();
    ws.write("pipeline.toml", r#"
[steps.serve]
kind = "command"
matrix = { model = ["bf16", "awq"], size = [1, 2] }
outputs = ["out/{{ matrix.model }}-{{ matrix.size }}.txt"]
run = "echo {{ matrix.model }} {{ matrix.size }} > {{ outputs[0] }}"

[steps.eval]
kind = "command"
matrix = { model = ["bf16", "awq"] }
needs = ["serve"]
outputs = ["out/eval-{{ matrix.model }}.txt"]
run = "cat {{ steps['serve-' ~ matrix.model ~ '-1'].outputs[0] }} {{ steps['serve-' ~ matrix.model ~ '-2'].outputs[0] }} > {{ outputs[0] }}"
"#);
    let (code, statuses, stderr) = run_json(&ws, &["pipeline.toml"]);
    assert_eq!(code, 0, "{stderr}");
    let ids: Vec<&str> = statuses.keys().map(String::as_str).collect();
    assert_eq!(
        ids,
        [
            "eval-awq",
            "eval-bf16",
            "serve-awq-1",
            "serve-awq-2",
            "serve-bf16-1",
            "serve-bf16-2"
        ]
    );
    assert_eq!(ws.read("out/eval-awq.txt"), "awq 1\nawq 2\n");
    let graph = ws.forge(&["graph", "pipeline.toml"]);
    assert!(
        graph.stdout().contains("serve_awq_1 --> eval_awq"),
        "{}",
        graph.stdout()
    );
    assert!(!graph.stdout().contains("serve_bf16_1 --> eval_awq"));
}

#[test]
fn profiles_overlay_with_written_precedence() {
    let ws = Workspace::new();
    ws.write("pipeline.toml", r#"
[params]
model = "manifest"
levels = [1]

[steps.show]
kind = "command"
outputs = ["out/{{ profile.name }}.txt"]
env = { EXTRA = "manifest" }
run = "echo {{ params.model }} {{ params.levels }} $EXTRA > {{ outputs[0] }}"
"#)
    .write("profiles/base.toml", "[params]\nmodel = \"base\"\nlevels = [1, 2]\n")
    .write("profiles/child.toml", "extends = \"base\"\n[params]\nmodel = \"child\"\n[steps.show]\nenv = { EXTRA = \"child\" }\n");
    ws.forge(&["run", "pipeline.toml", "--profile", "child"])
        .success();
    assert_eq!(ws.read("out/child.txt"), "child [1, 2] child\n");
    ws.forge(&[
        "run",
        "pipeline.toml",
        "--profile",
        "child",
        "--set",
        "model=cli",
        "--set",
        "levels=[8]",
    ])
    .success();
    assert_eq!(ws.read("out/child.txt"), "cli [8] child\n");
    let listed = ws.forge(&["profiles", "pipeline.toml"]);
    assert!(
        listed.stdout().contains("child") && listed.stdout().contains("(extends base)"),
        "{}",
        listed.stdout()
    );
}

#[test]
fn two_profiles_that_resolve_the_same_share_a_key() {
    let ws = Workspace::new();
    ws.write("pipeline.toml", "[pipeline]\nresults = \"results\"\n[params]\nn = 1\n[steps.a]\nkind = \"command\"\noutputs = [\"out.txt\"]\nrun = \"echo {{ params.n }} > {{ outputs[0] }}\"\n")
        .write("profiles/one.toml", "[params]\nn = 2\n")
        .write("profiles/two.toml", "[params]\nn = 2\n");
    ws.forge(&["run", "pipeline.toml", "--profile", "one"])
        .success();
    let p = plan(&ws, &["pipeline.toml", "--profile", "two"]);
    assert_eq!(p["a"].0, "fresh", "{p:?}");
}

#[test]
fn undeclared_environment_does_not_reach_commands() {
    let ws = Workspace::new();
    ws.write("pipeline.toml", "[steps.a]\nkind = \"command\"\noutputs = [\"out.txt\"]\nenv = { DECLARED = \"yes\" }\npass_env = [\"PASSED\"]\nrun = \"echo ${DECLARED:-no} ${PASSED:-no} ${SECRET:-no} > {{ outputs[0] }}\"\n");
    let output = std::process::Command::new(crate::support::forge_bin())
        .args(["run", "pipeline.toml"])
        .current_dir(ws.path())
        .env("PASSED", "p")
        .env("SECRET", "s")
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(ws.read("out.txt"), "yes p no\n");
    // Planned without `PASSED` set: a passed-through variable enters the key by name only.
    let p = plan(&ws, &["pipeline.toml"]);
    assert_eq!(p["a"].0, "fresh", "{p:?}");
}

#[test]
fn fresh_clone_reruns_only_the_edited_chart_and_starts_no_service() {
    let ws = Workspace::new();
    let port = crate::support::free_port();
    let manifest = format!(
        r#"
[pipeline]
workspace = ".."

[params]
title = "Throughput"

[steps.quantize]
kind = "command"
outputs = [".forge/models/awq"]
run = "mkdir -p {{{{ outputs[0] }}}} && echo weights > {{{{ outputs[0] }}}}/w.bin && echo q >> runs.log"

[steps.serve]
kind = "service"
needs = ["quantize"]
url = "http://127.0.0.1:{port}"
run = "echo started >> service-starts.log; exec python3 -m http.server {port} --bind 127.0.0.1"
ready = {{ http = "{{{{ url }}}}/", timeout = "20s" }}

[steps.bench]
kind = "command"
needs = ["serve"]
outputs = ["results/bench.json"]
run = "curl -s {{{{ steps.serve.url }}}}/ > /dev/null; echo '{{\"tps\": 5}}' > {{{{ outputs[0] }}}}; echo b >> runs.log"

[steps.charts]
kind = "command"
needs = ["bench"]
outputs = ["results/chart.txt"]
run = "echo {{{{ params.title }}}} $(cat {{{{ steps.bench.outputs[0] }}}}) > {{{{ outputs[0] }}}}; echo c >> runs.log"
"#
    );
    ws.write("pipelines/forge.toml", &manifest);
    let (code, statuses, stderr) = run_json(&ws, &["pipelines/forge.toml"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(statuses["serve"], "started");
    assert_eq!(ws.read("service-starts.log").lines().count(), 1);

    // A fresh clone: intermediate outputs and `.forge/` are gone; results and the lock remain.
    std::fs::remove_dir_all(ws.path().join(".forge")).unwrap();
    ws.write(
        "pipelines/forge.toml",
        &manifest.replace("title = \"Throughput\"", "title = \"Output tokens/s\""),
    );
    let p = plan(&ws, &["pipelines/forge.toml"]);
    assert_eq!(
        p["charts"],
        (
            "run".to_string(),
            vec!["param `title` changed: \"Throughput\" -> \"Output tokens/s\"".to_string()]
        )
    );
    assert_eq!(p["bench"].0, "fresh");
    assert_eq!(p["serve"].0, "idle");
    assert_eq!(p["quantize"].0, "will-skip");
    assert!(
        p["quantize"].1[0].contains("`.forge/models/awq` is missing"),
        "{p:?}"
    );

    let (code, statuses, stderr) = run_json(&ws, &["pipelines/forge.toml"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(statuses["charts"], "ran");
    assert_eq!(statuses["bench"], "fresh");
    assert_eq!(statuses["quantize"], "skipped");
    assert_eq!(
        ws.read("service-starts.log").lines().count(),
        1,
        "no service started"
    );
    assert_eq!(ws.read("runs.log"), "q\nb\nc\nc\n");
    assert!(ws.read("results/chart.txt").starts_with("Output tokens/s"));
}

#[test]
fn only_and_from_select_steps() {
    let ws = chain();
    run_json(&ws, &["pipeline.toml"]);
    ws.write("data/input.txt", "1\n2\n3\n4\n5\n");
    let p = plan(&ws, &["pipeline.toml", "--only", "parity"]);
    assert_eq!(
        p["parity"].0, "fresh",
        "--only reuses stale-but-present upstream outputs: {p:?}"
    );
    assert_eq!(p["source"].0, "will-skip");
    let p = plan(
        &ws,
        &["pipeline.toml", "--from", "scale", "--force", "scale"],
    );
    assert_eq!(p["source"].0, "will-skip");
    assert_eq!(p["scale"].0, "run");
    assert_eq!(p["parity"].0, "pending");
    let bad = ws.forge(&["plan", "pipeline.toml", "--only", "scael"]);
    assert_eq!(bad.code(), 2);
    assert!(
        bad.stderr().contains("did you mean `scale`?"),
        "{}",
        bad.stderr()
    );
}

#[test]
fn a_failed_step_stops_the_run_and_shows_its_log() {
    let ws = Workspace::new();
    ws.write(
        "pipeline.toml",
        r#"
[steps.bad]
kind = "command"
outputs = ["out/bad.txt"]
run = "echo partial > {{ outputs[0] }}; echo 'line one'; echo 'it broke' >&2; exit 3"

[steps.after]
kind = "command"
needs = ["bad"]
outputs = ["out/after.txt"]
run = "touch {{ outputs[0] }}"

[steps.lazy]
kind = "command"
outputs = ["out/lazy.txt"]
run = "echo fine > {{ outputs[0] }}"
"#,
    );
    let (code, statuses, stderr) = run_json(&ws, &["pipeline.toml", "--jobs", "1", "--keep-going"]);
    assert_eq!(code, 1);
    assert_eq!(statuses["bad"], "failed");
    assert_eq!(statuses["after"], "not-run");
    assert_eq!(
        statuses["lazy"], "ran",
        "--keep-going runs independent steps"
    );
    assert!(
        stderr.contains("exited with code 3") && stderr.contains("it broke"),
        "{stderr}"
    );
    assert!(!ws.exists("out/bad.txt"), "a failed step leaves no output");
    assert!(
        stderr.contains("partial outputs (not recorded)"),
        "{stderr}"
    );
    let show = ws.forge(&["show", "pipeline.toml", "bad"]);
    assert!(show.stdout().contains("never run"), "{}", show.stdout());
}

#[test]
fn outputs_written_to_the_final_path_are_an_error() {
    let ws = Workspace::new();
    ws.write(
        "pipeline.toml",
        "[steps.a]\nkind = \"command\"\noutputs = [\"out.txt\"]\nrun = \"echo x > out.txt\"\n",
    );
    let run = ws.forge(&["run", "pipeline.toml"]);
    assert_eq!(run.code(), 1);
    assert!(
        run.stderr()
            .contains("declared output `out.txt` was not produced"),
        "{}",
        run.stderr()
    );
    assert!(
        run.stderr().contains("{{ outputs[0] }}"),
        "{}",
        run.stderr()
    );
}

#[test]
fn kill_9_mid_step_keeps_the_previous_outputs_and_no_false_record() {
    let ws = Workspace::new();
    let manifest = |text: &str, sleep: u32| {
        format!(
            "[steps.a]\nkind = \"command\"\noutputs = [\"out.txt\"]\nrun = \"echo {text} > {{{{ outputs[0] }}}}; sleep {sleep}\"\n"
        )
    };
    ws.write("pipeline.toml", &manifest("good", 0));
    ws.forge(&["run", "pipeline.toml"]).success();
    ws.write("pipeline.toml", &manifest("new", 30));
    let mut child = ws.spawn_forge(&["run", "pipeline.toml"]);
    ws.wait_for(".forge/staging/default/a/0/out.txt");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(
        ws.read("out.txt"),
        "good\n",
        "the previous good output is untouched"
    );
    let p = plan(&ws, &["pipeline.toml"]);
    assert_eq!(p["a"].0, "run", "no record claims the killed run succeeded");
    // The lock was released with the killed process: a new run proceeds (and finishes fast).
    ws.write("pipeline.toml", &manifest("new", 0));
    ws.forge(&["run", "pipeline.toml"]).success();
    assert_eq!(ws.read("out.txt"), "new\n");
}

#[test]
fn a_second_run_in_the_same_workspace_is_refused() {
    let ws = Workspace::new();
    ws.write("pipeline.toml", "[steps.a]\nkind = \"command\"\noutputs = [\"out.txt\"]\nrun = \"touch started; sleep 20; touch {{ outputs[0] }}\"\n");
    let mut first = ws.spawn_forge(&["run", "pipeline.toml"]);
    ws.wait_for("started");
    let second = ws.forge(&["run", "pipeline.toml"]);
    assert_eq!(second.code(), 2);
    let pid = first.id().to_string();
    assert!(
        second.stderr().contains(&format!("pid {pid}")),
        "{}",
        second.stderr()
    );
    first.kill().unwrap();
    first.wait().unwrap();
}

#[test]
fn clean_removes_machine_local_state_but_never_results() {
    let ws = chain();
    run_json(&ws, &["pipeline.toml"]);
    assert!(ws.exists(".forge/logs/default/source.log"));
    let dry = ws.forge(&["clean", "pipeline.toml", "--dry-run"]);
    assert!(
        dry.stdout().contains("would remove") && ws.exists(".forge/logs"),
        "{}",
        dry.stdout()
    );
    ws.forge(&["clean", "pipeline.toml"]).success();
    assert!(!ws.exists(".forge/logs") && !ws.exists(".forge/stat-cache.json"));
    assert!(ws.exists("out/parity.txt") && ws.exists("results/default/forge.lock"));
    let p = plan(&ws, &["pipeline.toml"]);
    assert!(
        p.values().all(|(action, _)| action == "fresh"),
        "records survive a clean: {p:?}"
    );
}
