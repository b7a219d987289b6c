//! Keys that travel: results committed on one machine are fresh on another, at another path,
//! with another token, without `CUDA_VISIBLE_DEVICES`, on fewer cores and without the rehearsal's
//! lock; re-rendering a chart there reruns only the render steps and starts no service.

use std::path::Path;
use std::process::Command;

use crate::support::{Run, Workspace, forge_bin, free_port, plan_steps};

/// A gated pipeline shaped like `pipelines/forge.toml`: a model fetched with a token, a GPU
/// step whose thread count comes from the platform, a GPU service, a bench step that asks the
/// service, and charts and a report rendered from results alone.
const PIPELINE: &str = r#"[pipeline]
name = "travel"
results = "results/{{ profile.name }}"

[params]
size = 1
title = "Throughput"

[steps.model]
kind = "command"
inputs = ["prepare.sh"]
outputs = [".forge/models/base"]
pass_env = ["HF_TOKEN"]
run = "sh prepare.sh {{ params.size }} {{ outputs[0] }}"

[steps.quantize]
kind = "command"
needs = ["model"]
resources = ["gpu"]
outputs = [".forge/models/awq"]
env = { OMP_NUM_THREADS = "{{ platform.cpus }}" }
pass_env = ["HF_TOKEN"]
run = "mkdir -p {{ outputs[0] }} && cp {{ steps.model.outputs[0] }}/weights {{ outputs[0] }}/weights"

[steps.serve]
kind = "service"
needs = ["quantize"]
resources = ["gpu"]
url = "http://127.0.0.1:PORT"
run = "echo start >> serve.starts; exec python3 -m http.server PORT --bind 127.0.0.1 --directory {{ steps.quantize.outputs[0] }}"
ready = { http = "{{ url }}/weights", timeout = "30s" }
stop_grace = "5s"
pass_env = ["HF_TOKEN", "CUDA_VISIBLE_DEVICES"]

[steps.bench]
kind = "command"
needs = ["serve"]
outputs = ["{{ results }}/bench.txt"]
run = "curl -sf http://127.0.0.1:PORT/weights > {{ outputs[0] }}"

[steps.charts]
kind = "command"
needs = ["bench"]
inputs = ["render.sh"]
outputs = ["{{ results }}/charts.txt"]
run = "sh {{ workspace }}/render.sh {{ params.title }} {{ steps.bench.outputs[0] }} > {{ outputs[0] }}"

[steps.report]
kind = "command"
needs = ["charts", "bench"]
outputs = ["{{ results }}/report.md"]
run = "cat {{ steps.charts.outputs[0] }} {{ steps.bench.outputs[0] }} > {{ outputs[0] }}"
"#;

/// Refuses to run without a token, as a gated hub download would.
const PREPARE: &str = "test -n \"$HF_TOKEN\" || { echo 'no HF_TOKEN' >&2; exit 1; }\nmkdir -p \"$2\" && echo \"weights of size $1\" > \"$2/weights\"\n";

fn workspace_a(port: u16) -> Workspace {
    let ws = Workspace::new();
    ws.write(
        "pipeline.toml",
        &PIPELINE.replace("PORT", &port.to_string()),
    )
    .write("prepare.sh", PREPARE)
    .write("render.sh", "echo \"# $1\"; cat \"$2\"\n")
    .write("profiles/rehearsal.toml", "[params]\nsize = 1\n")
    .write(
        "profiles/paid.toml",
        "requires = \"rehearsal\"\n[params]\nsize = 100\n",
    )
    // As in the repository: machine-local state and the rehearsal's results stay local.
    .write(".gitignore", ".forge/\nresults/rehearsal/\nserve.starts\n");
    ws
}

/// `forge <args>` in `dir` on the CPUs `cpus` (`taskset -c`), with `set` variables set and
/// `unset` variables removed.
fn forge_on(dir: &Path, args: &[&str], cpus: &str, set: &[(&str, &str)], unset: &[&str]) -> Run {
    let mut command = Command::new("taskset");
    command
        .arg("-c")
        .arg(cpus)
        .arg(forge_bin())
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("CI", "1");
    for (name, value) in set {
        command.env(name, value);
    }
    for name in unset {
        command.env_remove(name);
    }
    Run {
        output: command.output().expect("run forge under taskset"),
    }
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args([
            "-c",
            "user.name=forge",
            "-c",
            "user.email=forge@example.invalid",
        ])
        .args(args)
        .current_dir(dir)
        .status()
        .expect("run git");
    assert!(status.success(), "git {args:?} failed");
}

fn statuses(run: &Run) -> std::collections::BTreeMap<String, String> {
    let value: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap_or_else(|e| {
        panic!(
            "run json: {e}\nstdout:{}\nstderr:{}",
            run.stdout(),
            run.stderr()
        )
    });
    value["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap_or_default().to_string(),
                s["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn committed_results_are_fresh_on_another_machine_and_charts_rerender_without_a_service() {
    let port = free_port();
    let a = workspace_a(port);
    let machine_a = [("HF_TOKEN", "a"), ("CUDA_VISIBLE_DEVICES", "0")];
    forge_on(
        a.path(),
        &["run", "pipeline.toml", "--profile", "rehearsal"],
        "0,1",
        &machine_a,
        &[],
    )
    .success();
    forge_on(
        a.path(),
        &["run", "pipeline.toml", "--profile", "paid"],
        "0,1",
        &machine_a,
        &[],
    )
    .success();
    assert_eq!(
        a.read("serve.starts").lines().count(),
        2,
        "one start per profile"
    );
    git(a.path(), &["init", "-q"]);
    git(a.path(), &["add", "-A"]);
    git(a.path(), &["commit", "-q", "-m", "paid results"]);

    let b = Workspace::new();
    let clone = b.path().join("clone");
    git(
        b.path(),
        &["clone", "-q", &a.path().display().to_string(), "clone"],
    );
    assert!(clone.join("results/paid/forge.lock").is_file());
    assert!(
        !clone.join("results/rehearsal").exists(),
        "no rehearsal lock"
    );
    let machine_b = [("HF_TOKEN", "b")];
    let unset = ["CUDA_VISIBLE_DEVICES"];

    let plan = plan_steps(&forge_on(
        &clone,
        &["plan", "pipeline.toml", "--profile", "paid", "--json"],
        "0",
        &machine_b,
        &unset,
    ));
    for (id, (action, reasons)) in &plan {
        match id.as_str() {
            "bench" | "charts" | "report" => assert_eq!(action, "fresh", "{id}: {reasons:?}"),
            "serve" => assert_eq!(action, "idle", "{id}: {reasons:?}"),
            // Machine-local outputs are absent in a clone; their keys still match.
            _ => {
                assert_eq!(action, "will-skip", "{id}: {reasons:?}");
                assert!(
                    reasons
                        .iter()
                        .all(|r| r.ends_with("is missing") || r.starts_with("not needed")),
                    "{id}: only its local output is missing, its key is unchanged: {reasons:?}"
                );
            }
        }
    }

    let profile = std::fs::read_to_string(clone.join("profiles/paid.toml")).expect("profile");
    std::fs::write(
        clone.join("profiles/paid.toml"),
        format!("{profile}title = \"Throughput on another machine\"\n"),
    )
    .expect("edit profile");
    let run = forge_on(
        &clone,
        &[
            "run",
            "pipeline.toml",
            "--profile",
            "paid",
            "--only",
            "charts,report",
            "--json",
        ],
        "0",
        &machine_b,
        &unset,
    );
    let statuses = statuses(&run);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(statuses["charts"], "ran", "{statuses:?}");
    assert_eq!(statuses["report"], "ran", "{statuses:?}");
    assert_eq!(statuses["serve"], "idle", "{statuses:?}");
    for id in ["model", "quantize", "bench"] {
        assert_ne!(statuses[id], "ran", "{id} must not rerun: {statuses:?}");
    }
    assert!(!clone.join("serve.starts").exists(), "no service started");
    assert_eq!(
        std::fs::read_to_string(clone.join("results/paid/gate.json")).expect("gate.json"),
        a.read("results/paid/gate.json"),
        "the gate recorded in workspace A stands; this run checked none"
    );
    let report = std::fs::read_to_string(clone.join("results/paid/report.md")).expect("report");
    assert!(report.starts_with("# Throughput on another machine\nweights of size 100\n"));
}

#[test]
fn keyed_variables_and_declared_platform_facts_enter_the_key() {
    let ws = Workspace::new();
    ws.write(
        "pipeline.toml",
        r#"[steps.sample]
kind = "command"
outputs = ["out.txt"]
pass_env = ["SEED", "HF_TOKEN"]
key_env = ["SEED"]
key_platform = ["cpus"]
run = "echo seed=$SEED threads={{ platform.cpus }} > {{ outputs[0] }}"
"#,
    );
    let at = |cpus: &str, seed: &str, token: &str| {
        forge_on(
            ws.path(),
            &["plan", "pipeline.toml", "--json"],
            cpus,
            &[("SEED", seed), ("HF_TOKEN", token)],
            &[],
        )
    };
    forge_on(
        ws.path(),
        &["run", "pipeline.toml"],
        "0,1",
        &[("SEED", "1"), ("HF_TOKEN", "a")],
        &[],
    )
    .success();
    assert_eq!(ws.read("out.txt"), "seed=1 threads=2\n");
    let fresh = plan_steps(&at("0,1", "1", "another token"));
    assert_eq!(only(&fresh).0, "fresh", "{fresh:?}");
    let seed = plan_steps(&at("0,1", "2", "a"));
    assert_eq!(only(&seed).1, ["env `SEED` changed"], "{seed:?}");
    let cpus = plan_steps(&at("0", "1", "a"));
    assert_eq!(
        only(&cpus).1,
        ["platform `cpus` changed: 2 -> 1"],
        "{cpus:?}"
    );
}

/// The one step of a one-step plan.
fn only(
    plan: &std::collections::BTreeMap<String, (String, Vec<String>)>,
) -> &(String, Vec<String>) {
    assert_eq!(plan.len(), 1, "{plan:?}");
    plan.values().next().expect("one step")
}
