//! The rehearsal gate, and the shipped profiles resolving to complete, plausible settings.

use crate::support::Workspace;

fn gated() -> Workspace {
    let ws = Workspace::new();
    ws.write("pipeline.toml", "[params]\nsize = 1\n[steps.a]\nkind = \"command\"\ninputs = [\"step.sh\"]\noutputs = [\"{{ results }}/a.txt\"]\nrun = \"sh step.sh {{ params.size }} > {{ outputs[0] }}\"\n")
        .write("step.sh", "echo size $1\n")
        .write("profiles/rehearsal.toml", "[params]\nsize = 1\n")
        .write("profiles/paid.toml", "requires = \"rehearsal\"\n[params]\nsize = 100\n");
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
    assert!(p.steps["serve-awq"].needs.contains(&"quantize".to_string()));
    assert!(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("constraints/serve.txt")
            .is_file()
    );
}

#[test]
fn the_rehearsal_profile_resolves_every_step() {
    let p = repo_pipeline("m1-rehearsal");
    let ids: Vec<&str> = p.steps.keys().map(String::as_str).collect();
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
fn the_rehearsal_model_is_offline_by_default_and_a_hub_model_through_set() {
    let run = |p: &forge::manifest::Pipeline, id: &str| p.steps[id].run.clone().unwrap_or_default();
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
        let run = step.run.clone().unwrap_or_default();
        assert!(run.contains(&format!("build{flags} --out")), "{id}: {run}");
        for l in &locks {
            assert!(step.inputs.contains(l), "{id}: {:?}", step.inputs);
            assert!(root.join(l).is_file(), "{l}");
        }
    }
}
