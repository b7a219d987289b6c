//! `run_step` end to end with a stand-in for lm-eval: a shell script that checks its arguments
//! and writes the 0.4.13 fixture results where lm-eval would.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

use super::super::scores::EvalScores;
use super::super::settings::{EvalSettings, TaskSpec};
use super::super::{EvalError, run_step};
use super::{fixed_host, provenance};
use crate::steps::io::{ServiceInfo, StepIo};

/// Writes `results_<task>.json` from the fixtures into `<output_path>/smollm2/`, as lm-eval
/// does, after appending its arguments to `calls.txt`. `FAKE_MODE=fail` fails like lm-eval.
const FAKE_LM_EVAL: &str = r#"#!/bin/sh
echo "$@" >> "$FAKE_DIR/calls.txt"
if [ "$FAKE_MODE" = fail ]; then
  for i in $(seq 1 25); do echo "INFO progress $i"; done
  echo "requests.exceptions.ConnectionError: Connection refused" >&2
  exit 1
fi
out=""; tasks=""
while [ $# -gt 0 ]; do
  case "$1" in --output_path) out="$2"; shift;; --tasks) tasks="$2"; shift;; esac
  shift
done
[ "$HF_HUB_OFFLINE" = 1 ] || { echo "not offline" >&2; exit 2; }
mkdir -p "$out/smollm2"
cp "$FAKE_DIR/results_$tasks.json" "$out/smollm2/results_2026-11-28T12-00-00.000001.json"
echo "|tiny| ok |"
"#;

struct Fixture {
    dir: tempfile::TempDir,
    io: StepIo,
}

fn fixture(mode: &str, url: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lm-eval-0.4.13");
    for task in ["tiny_mc", "tiny_gen"] {
        std::fs::copy(
            fixtures.join(format!("results_{task}.json")),
            ws.join(format!("results_{task}.json")),
        )
        .unwrap();
    }
    std::fs::create_dir_all(ws.join("env/bin")).unwrap();
    std::fs::create_dir_all(ws.join("tasks")).unwrap();
    std::fs::create_dir_all(ws.join("models/tok")).unwrap();
    let script = FAKE_LM_EVAL
        .replace("$FAKE_DIR", &ws.display().to_string())
        .replace("$FAKE_MODE", mode);
    std::fs::write(ws.join("env/bin/lm_eval"), script).unwrap();
    std::fs::write(ws.join("step.log"), "").unwrap();
    let service = ServiceInfo {
        url: Some(url.to_string()),
        identity: "id".into(),
        facts: BTreeMap::from([
            ("served_name".to_string(), serde_json::json!("smollm2")),
            ("engine_version".to_string(), serde_json::json!("0.32.0")),
            (
                "model_id".to_string(),
                serde_json::json!("HuggingFaceTB/SmolLM2-135M-Instruct"),
            ),
            ("model_sha".to_string(), serde_json::json!("blake3:0123")),
        ]),
    };
    let io = StepIo {
        step_id: "eval-bf16".into(),
        workspace: ws.to_path_buf(),
        outputs: vec![ws.join("out")],
        log: ws.join("step.log"),
        services: BTreeMap::from([("serve-bf16".to_string(), service)]),
        provenance: provenance(),
        cancel: CancellationToken::new(),
        progress: indicatif::ProgressBar::hidden(),
    };
    Fixture { dir, io }
}

fn task(name: &str, metric: &str, filter: Option<&str>, limit: Option<f64>) -> TaskSpec {
    TaskSpec {
        name: name.into(),
        shots: 0,
        metric: metric.into(),
        filter: filter.map(String::from),
        limit,
    }
}

fn settings() -> EvalSettings {
    let toml = r#"
        label = "bf16"
        lm_eval = ["env/bin/lm_eval"]
        include_path = "tasks"
        tokenizer = "models/tok"
        num_concurrent = 4
        offline = true
        tasks = [
            { name = "tiny_mc", shots = 0, metric = "acc" },
            { name = "tiny_mc", shots = 0, metric = "acc_norm" },
            { name = "tiny_gen", shots = 0, metric = "exact_match", filter = "strip", limit = 5 },
        ]
        [extra_model_args]
        timeout = 600
    "#;
    toml::from_str(toml).unwrap()
}

fn normalized(path: &Path, workspace: &Path) -> String {
    let mut scores: EvalScores = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let host = fixed_host();
    scores.metadata.common.date = host.date;
    scores.metadata.common.host = host.host;
    scores.metadata.common.cpu = host.cpu;
    scores.metadata.common.gpu = None;
    for invocation in &mut scores.metadata.invocations {
        invocation.duration_s = 0.0;
    }
    serde_json::to_string_pretty(&scores)
        .unwrap()
        .replace(&workspace.display().to_string(), "[WS]")
}

fn chmod_x(path: PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test]
async fn writes_scores_json_from_lm_eval_results() {
    let Fixture { dir, io } = fixture("ok", "http://127.0.0.1:9/v1");
    chmod_x(dir.path().join("env/bin/lm_eval"));
    let scores = run_step(&settings(), &io).await.unwrap();
    assert_eq!(scores.results.len(), 3);
    let calls = std::fs::read_to_string(dir.path().join("calls.txt")).unwrap();
    assert_eq!(
        calls.lines().count(),
        2,
        "one invocation per (shots, limit): {calls}"
    );
    assert!(
        calls.contains("--tasks tiny_mc --num_fewshot 0 --batch_size 1"),
        "{calls}"
    );
    assert!(
        calls.contains("--tasks tiny_gen --num_fewshot 0 --limit 5"),
        "{calls}"
    );
    let expected_args = format!(
        "base_url=http://127.0.0.1:9/v1/completions,model=smollm2,tokenizer={}/models/tok,tokenized_requests=True,num_concurrent=4,max_retries=3,timeout=600",
        dir.path().display()
    );
    assert!(calls.contains(&expected_args), "{calls}");
    let log = std::fs::read_to_string(&io.log).unwrap();
    assert!(log.contains("|tiny| ok |") && log.contains("$ "), "{log}");
    let written = io.outputs[0].join("scores.json");
    assert!(io.outputs[0].join("lm-eval/0shot/smollm2").is_dir());
    insta::assert_snapshot!("scores_json", normalized(&written, dir.path()));
}

#[tokio::test]
async fn failing_lm_eval_reports_its_last_lines_and_writes_no_scores() {
    let Fixture { dir, io } = fixture("fail", "http://127.0.0.1:9");
    chmod_x(dir.path().join("env/bin/lm_eval"));
    std::fs::create_dir_all(&io.outputs[0]).unwrap();
    std::fs::write(io.outputs[0].join("scores.json"), "{}").unwrap();
    let error = run_step(&settings(), &io).await.unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, EvalError::LmEvalFailed { .. }), "{text}");
    assert!(
        text.contains("exit status 1") && text.contains("running `tiny_mc`"),
        "{text}"
    );
    assert!(
        text.contains("no longer answers"),
        "port 9 is closed: {text}"
    );
    assert!(text.contains(&io.log.display().to_string()), "{text}");
    let tail: Vec<&str> = text
        .split("last lines of its output:\n")
        .nth(1)
        .unwrap()
        .lines()
        .collect();
    assert_eq!(tail.len(), 20, "{text}");
    assert_eq!(tail[0], "INFO progress 7");
    assert!(tail[19].contains("Connection refused"));
    assert!(
        !io.outputs[0].join("scores.json").exists(),
        "a stale scores.json must not survive"
    );
}

#[tokio::test]
async fn missing_metric_and_missing_program_fail_clearly() {
    let Fixture { dir, io } = fixture("ok", "http://127.0.0.1:9");
    chmod_x(dir.path().join("env/bin/lm_eval"));
    let mut wrong = settings();
    wrong.tasks = vec![task("tiny_gen", "exact_match", Some("strict-match"), None)];
    let error = run_step(&wrong, &io).await.unwrap_err().to_string();
    assert!(
        error.contains(
            "no `exact_match,strict-match` for task `tiny_gen` (it has: exact_match,strip)"
        ),
        "{error}"
    );
    assert!(!io.outputs[0].join("scores.json").exists());

    let mut missing = settings();
    missing.lm_eval = vec!["env/bin/nope".into()];
    let error = run_step(&missing, &io).await.unwrap_err();
    assert!(matches!(error, EvalError::Spawn { .. }), "{error}");
    drop(dir);
}

#[tokio::test]
async fn server_and_model_come_from_settings_or_one_service() {
    let Fixture { dir, mut io } = fixture("ok", "http://127.0.0.1:9");
    let mut settings = settings();
    settings.include_path = Some("no-such-dir".into());
    let error = run_step(&settings, &io).await.unwrap_err().to_string();
    assert!(
        error.contains("`include_path`") && error.contains("no-such-dir"),
        "{error}"
    );

    io.services.insert(
        "serve-awq".into(),
        ServiceInfo {
            url: Some("http://127.0.0.1:10".into()),
            ..Default::default()
        },
    );
    let error = run_step(&self::settings(), &io)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("several services publish a `url` (serve-awq, serve-bf16)"),
        "{error}"
    );
    io.services.clear();
    let error = run_step(&self::settings(), &io).await.unwrap_err();
    assert!(matches!(error, EvalError::NoServer(_)), "{error}");
    let mut explicit = self::settings();
    explicit.base_url = Some("http://127.0.0.1:9/".into());
    assert!(matches!(
        run_step(&explicit, &io).await,
        Err(EvalError::NoModel)
    ));
    drop(dir);
}

#[test]
fn settings_reject_what_lm_eval_cannot_take() {
    let check = |edit: &dyn Fn(&mut EvalSettings), needle: &str| {
        let mut settings = settings();
        edit(&mut settings);
        let error = settings.validate().unwrap_err().to_string();
        assert!(error.contains(needle), "{error} lacks {needle}");
    };
    check(&|s| s.tasks.clear(), "`tasks`");
    check(&|s| s.label = "a/b".into(), "`label`");
    check(&|s| s.tokenizer = Some("a,b".into()), "comma");
    check(
        &|s| s.tasks.push(task("tiny_mc", "acc", None, None)),
        "listed twice",
    );
    check(
        &|s| s.tasks.push(task("tiny_mc", "f1", None, Some(3.0))),
        "different `shots` or `limit`",
    );
    check(&|s| s.tasks[0].limit = Some(-1.0), "limit -1");
    check(
        &|s| {
            s.extra_model_args
                .insert("x".into(), serde_json::json!([1]));
        },
        "extra_model_args.x",
    );
    check(&|s| s.num_concurrent = 0, "num_concurrent");
    let error =
        toml::from_str::<EvalSettings>("label = \"x\"\nlm_eval = [\"p\"]\ntasks = []\nbogus = 1")
            .unwrap_err();
    assert!(error.to_string().contains("bogus"), "{error}");
}

/// A loopback server that answers `/version` like vLLM and `/health` with `status`.
async fn fake_server(status: u16) -> String {
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/version",
            get(|| async { axum::Json(serde_json::json!({"version": "0.32.0"})) }),
        )
        .route(
            "/health",
            get(move || async move { axum::http::StatusCode::from_u16(status).unwrap() }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn engine_falls_back_to_get_version_and_unhealthy_server_is_named() {
    let url = fake_server(503).await;
    let Fixture { dir, mut io } = fixture("ok", &url);
    chmod_x(dir.path().join("env/bin/lm_eval"));
    let service = io.services.get_mut("serve-bf16").unwrap();
    service.facts.remove("engine_version");
    let scores = run_step(&settings(), &io).await.unwrap();
    let engine = scores.metadata.common.engine.unwrap();
    assert_eq!(
        (engine.name.as_str(), engine.version.as_str()),
        ("vllm", "0.32.0")
    );

    let Fixture { dir, io } = fixture("fail", &url);
    chmod_x(dir.path().join("env/bin/lm_eval"));
    let error = run_step(&settings(), &io).await.unwrap_err().to_string();
    assert!(
        error.contains("answers `/health` with 503 Service Unavailable"),
        "{error}"
    );
}
