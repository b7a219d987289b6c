//! The rehearsal gate, and the shipped profiles resolving to complete, plausible settings.

use crate::support::{Workspace, run_json};

/// Step `a` holds the GPU (paid work); step `render` re-renders from its output (free).
const GATED: &str = r#"[params]
size = 1
title = "A"

[steps.a]
kind = "command"
resources = ["gpu"]
inputs = ["step.sh"]
outputs = ["{{ results }}/a.txt"]
run = "sh step.sh {{ params.size }} > {{ outputs[0] }}"

[steps.render]
kind = "command"
needs = ["a"]
outputs = ["{{ results }}/render.txt"]
run = "echo '{{ params.title }}' | cat - {{ steps.a.outputs[0] }} > {{ outputs[0] }}"
"#;

fn gated() -> Workspace {
    let ws = Workspace::new();
    ws.write("pipeline.toml", GATED)
        .write("step.sh", "echo size $1\n")
        .write("profiles/rehearsal.toml", "[params]\nsize = 1\n")
        .write(
            "profiles/paid.toml",
            "requires = \"rehearsal\"\n[params]\nsize = 100\n",
        );
    ws
}

#[test]
fn the_paid_profile_waits_for_a_complete_rehearsal_of_the_same_code() {
    let ws = gated();
    let refused = ws.forge(&["run", "pipeline.toml", "--profile", "paid"]);
    assert_eq!(refused.code(), 2);
    assert!(
        refused
            .stderr()
            .contains("requires a successful `rehearsal` run"),
        "{}",
        refused.stderr()
    );
    assert!(
        refused
            .stderr()
            .contains("forge run pipeline.toml --profile rehearsal"),
        "{}",
        refused.stderr()
    );
    assert!(!ws.exists("results/paid/a.txt"), "nothing ran");

    ws.forge(&["run", "pipeline.toml", "--profile", "rehearsal"])
        .success();
    ws.forge(&["run", "pipeline.toml", "--profile", "paid"])
        .success();
    assert_eq!(ws.read("results/paid/a.txt"), "size 100\n");

    ws.write("step.sh", "echo changed $1\n");
    let refused = ws.forge(&["run", "pipeline.toml", "--profile", "paid"]);
    assert_eq!(refused.code(), 2);
    assert!(
        refused
            .stderr()
            .contains("`step.sh` (an input of `a`) changed since `rehearsal` last ran it"),
        "{}",
        refused.stderr()
    );

    let skipped = ws.forge(&["run", "pipeline.toml", "--profile", "paid", "--skip-gate"]);
    skipped.success();
    assert!(
        skipped
            .stderr()
            .contains("warning: skipping the `rehearsal` gate"),
        "{}",
        skipped.stderr()
    );
    assert!(
        ws.read("results/paid/gate.json")
            .contains("\"status\": \"skipped\"")
    );
    assert!(ws.read("results/paid/forge.lock").contains("gate_skipped"));
}

#[test]
fn an_edited_manifest_closes_the_gate() {
    let ws = gated();
    ws.forge(&["run", "pipeline.toml", "--profile", "rehearsal"])
        .success();
    let text = ws.read("pipeline.toml");
    ws.write("pipeline.toml", &format!("{text}\n# edited\n"));
    let refused = ws.forge(&["run", "pipeline.toml", "--profile", "paid"]);
    assert_eq!(refused.code(), 2);
    assert!(
        refused
            .stderr()
            .contains("`pipeline.toml` changed since `rehearsal` last completed"),
        "{}",
        refused.stderr()
    );
}

#[test]
fn re_rendering_from_recorded_results_needs_no_gate() {
    let ws = gated();
    ws.forge(&["run", "pipeline.toml", "--profile", "paid", "--skip-gate"])
        .success();
    std::fs::remove_file(ws.path().join("results/paid/gate.json")).expect("rm gate.json");
    ws.write(
        "profiles/paid.toml",
        "requires = \"rehearsal\"\n[params]\nsize = 100\ntitle = \"B\"\n",
    );
    // No rehearsal ever ran: the gate is closed, but nothing paid is about to run.
    let (code, statuses, stderr) = run_json(
        &ws,
        &["pipeline.toml", "--profile", "paid", "--only", "render"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(statuses["render"], "ran");
    assert_eq!(statuses["a"], "fresh");
    assert!(!stderr.contains("gate"), "{stderr}");
    assert!(!ws.exists("results/paid/gate.json"), "no gate was checked");
    assert_eq!(ws.read("results/paid/render.txt"), "B\nsize 100\n");

    // Forcing the GPU step is paid work again: the gate applies.
    let refused = ws.forge(&["run", "pipeline.toml", "--profile", "paid", "--force", "a"]);
    assert_eq!(refused.code(), 2, "{}", refused.stderr());
    assert!(
        refused
            .stderr()
            .contains("before it starts a service or a `gpu` step"),
        "{}",
        refused.stderr()
    );
}

#[test]
fn a_passing_gate_records_the_rehearsal_and_clears_a_skipped_one() {
    let ws = gated();
    ws.forge(&["run", "pipeline.toml", "--profile", "paid", "--skip-gate"])
        .success();
    let lock: serde_json::Value =
        serde_json::from_str(&ws.read("results/paid/forge.lock")).expect("lock json");
    assert_eq!(lock["gate_skipped"]["required"], "rehearsal");
    assert!(lock.get("gated_by").is_none());

    ws.forge(&["run", "pipeline.toml", "--profile", "rehearsal"])
        .success();
    let rehearsal: serde_json::Value =
        serde_json::from_str(&ws.read("results/rehearsal/forge.lock")).expect("lock json");
    ws.forge(&["run", "pipeline.toml", "--profile", "paid", "--force", "a"])
        .success();
    let lock: serde_json::Value =
        serde_json::from_str(&ws.read("results/paid/forge.lock")).expect("lock json");
    assert!(
        lock.get("gate_skipped").is_none(),
        "the passing gate cleared the skip"
    );
    let gated_by = &lock["gated_by"];
    assert_eq!(gated_by["required"], "rehearsal");
    assert_eq!(
        gated_by["manifest_digest"],
        rehearsal["complete"]["manifest_digest"]
    );
    assert_eq!(
        gated_by["finished_at"],
        rehearsal["complete"]["finished_at"]
    );
    assert_eq!(gated_by["forge_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        gated_by["inputs"]["step.sh"],
        rehearsal["steps"]["a"]["parts"]["inputs"]["step.sh"]
    );
    let gate: serde_json::Value =
        serde_json::from_str(&ws.read("results/paid/gate.json")).expect("gate json");
    assert_eq!(gate["status"], "passed");
    assert_eq!(gate["gate"], *gated_by);
}

fn repo_pipeline(profile: &str) -> forge::manifest::Pipeline {
    repo_pipeline_with(profile, &[])
}

fn repo_pipeline_with(profile: &str, sets: &[&str]) -> forge::manifest::Pipeline {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let options = forge::manifest::LoadOptions {
        manifest: root.join("pipelines/forge.toml"),
        profile: Some(profile.to_string()),
        sets: sets.iter().map(|s| s.to_string()).collect(),
    };
    forge::manifest::load(&options)
        .unwrap_or_else(|e| panic!("{profile} does not load:\n{}", e.render(false)))
}

#[test]
fn the_a5000_profile_is_complete_and_fits_a_24_gb_card() {
    let p = repo_pipeline("a5000");
    assert_eq!(p.requires.as_deref(), Some("m1-rehearsal"));
    let param = |name: &str| p.params[name].clone();
    // Llama 3.1 8B: 8.03e9 parameters in BF16 (2 bytes) take 16.06 GB; the KV cache gets what
    // the utilization leaves, at 128 KiB per token (32 layers x 8 KV heads x 128 x 2 x 2 bytes).
    let budget_gb = param("gpu_memory_utilization").as_f64().unwrap() * 24.0;
    let kv_gb = budget_gb - 16.06 - 1.5; // 1.5 GB for activations and the CUDA graph pool
    let kv_tokens = kv_gb * 1e9 / 131_072.0;
    let max_len = param("max_model_len").as_f64().unwrap();
    assert!(
        kv_tokens >= max_len,
        "one {max_len}-token request must fit: {kv_tokens:.0} tokens of KV cache"
    );
    for name in ["model_revision", "awq_checkpoint_revision"] {
        let revision = param(name);
        let revision = revision.as_str().unwrap_or_default();
        assert!(
            revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit()),
            "`{name}` must pin a hub commit, not `{revision}`"
        );
    }
    assert_eq!(param("awq_group_size"), 128);
    assert_eq!(
        param("serve_lock"),
        serde_json::json!({ "linux-x86_64": "constraints/serve.txt" })
    );
    assert_eq!(param("concurrency"), serde_json::json!([1, 4, 16, 32, 64]));
    assert_eq!(param("prompts_per_level"), 256);
    assert_eq!(param("enforce_eager"), false);
    let tasks: Vec<(String, i64, String)> = param("eval_tasks")
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().into(),
                t["shots"].as_i64().unwrap(),
                t["metric"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        tasks,
        [
            ("mmlu".into(), 5, "acc".into()),
            ("gsm8k".into(), 5, "exact_match".into()),
            ("hellaswag".into(), 5, "acc_norm".into())
        ]
    );
    for id in ["serve-bf16", "serve-awq"] {
        assert_eq!(
            p.steps[id].resources,
            ["gpu"],
            "the two servers never share the GPU"
        );
    }
    assert!(
        p.steps["serve-awq"]
            .needs
            .iter()
            .any(|n| n == "awq_weights")
    );
    let run = p.steps["awq_weights"].run().unwrap_or_default().to_string();
    assert!(
        run.contains("--mode int4") && run.contains("awq_serving = int4 in the profile"),
        "a GPU serves the INT4 checkpoint: {run}"
    );
    assert!(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("constraints/serve.txt")
            .is_file()
    );
}

#[test]
fn the_rehearsal_profile_resolves_every_step() {
    let p = repo_pipeline("m1-rehearsal");
    let ids: Vec<&str> = p.steps.keys().map(|id| id.as_str()).collect();
    for id in [
        "env_serve",
        "model",
        "quantize",
        "serve-bf16",
        "serve-awq",
        "bench-bf16",
        "bench-awq",
        "eval-bf16",
        "eval-awq",
        "retention",
        "cost",
        "charts",
        "report",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    assert_eq!(
        p.steps["eval-awq"].needs,
        ["serve-awq", "env_eval", "model"]
    );
    assert_eq!(p.params["awq_group_size"], 64);
}

#[test]
fn the_rehearsal_serves_awq_as_int4_only_where_the_cpu_build_has_the_kernel() {
    let run = |sets: &[&str]| {
        repo_pipeline_with("m1-rehearsal", sets).steps["awq_weights"]
            .run()
            .unwrap_or_default()
            .to_string()
    };
    let isa = forge::host::Host::detect().isa;
    let auto = run(&[]);
    if isa == forge::host::IsaLevel::Avx512 {
        assert!(auto.contains("--mode int4"), "{auto}");
        assert!(
            auto.contains("this CPU (avx512) runs the INT4 kernel"),
            "{auto}"
        );
    } else {
        assert!(auto.contains("--mode dequantized"), "{auto}");
        assert!(auto.contains("has no AVX-512"), "{auto}");
    }
    let forced = run(&["awq_serving=\"dequantized\""]);
    assert!(forced.contains("--mode dequantized"), "{forced}");
    assert!(forced.contains("awq_serving = dequantized in the profile"));
    let served = repo_pipeline("m1-rehearsal").steps["serve-awq"].clone();
    assert_eq!(
        served.service().and_then(|s| s.model.as_deref()),
        Some(".forge/models/awq-served")
    );
    assert!(served.pass_env.contains(&"FORGE_EMULATE_CPU".to_string()));
}

#[test]
fn the_rehearsal_model_is_offline_by_default_and_a_hub_model_through_set() {
    let run =
        |p: &forge::manifest::Pipeline, id: &str| p.steps[id].run().unwrap_or_default().to_string();
    let default = repo_pipeline("m1-rehearsal");
    assert!(
        run(&default, "model").contains("prepare_tiny_model.py wheel --out"),
        "{}",
        run(&default, "model")
    );
    assert_eq!(default.steps["serve-bf16"].env["HF_HUB_OFFLINE"], "1");

    let qwen = repo_pipeline_with("m1-rehearsal", &["model=Qwen/Qwen2.5-0.5B-Instruct"]);
    assert!(
        run(&qwen, "model").contains(
            "prepare_tiny_model.py hub --id Qwen/Qwen2.5-0.5B-Instruct --revision main --out"
        ),
        "{}",
        run(&qwen, "model")
    );
    assert_eq!(qwen.steps["serve-bf16"].env["HF_HUB_OFFLINE"], "0");
    assert!(
        qwen.steps["model"]
            .pass_env
            .contains(&"HF_TOKEN".to_string())
    );
}

#[test]
fn the_environment_steps_build_this_platforms_locks() {
    let p = repo_pipeline("m1-rehearsal");
    let suffix = match (std::env::consts::OS, std::env::consts::ARCH) {
        ("linux", "x86_64") => "",
        ("linux", "aarch64") => "-linux-aarch64",
        ("macos", "aarch64") => "-macos-aarch64",
        other => panic!("no locks for {other:?}"),
    };
    let lock = |name: &str| format!("constraints/{name}{suffix}.txt");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for (id, locks) in [
        ("env_serve", vec![lock("serve-cpu")]),
        ("env_eval", vec![lock("serve-cpu"), lock("eval")]),
        ("env_quantize", vec![lock("quantize")]),
    ] {
        let step = &p.steps[id];
        let flags: String = locks.iter().map(|l| format!(" --lock {l}")).collect();
        let run = step.run().unwrap_or_default().to_string();
        assert!(run.contains(&format!("build{flags} --out")), "{id}: {run}");
        for l in &locks {
            assert!(step.inputs.contains(l), "{id}: {:?}", step.inputs);
            assert!(root.join(l).is_file(), "{l}");
        }
    }
}
