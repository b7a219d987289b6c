//! A fast OpenAI-compatible streaming server with no model behind it, for measuring load
//! generators (Forge's native client vs `vllm bench serve`) without the server being the limit.
//!
//! `cargo run --release --example stream_server -- --port 8199 [--ttft-ms 0] [--itl-ms 0]`
//!
//! Routes: `POST /v1/completions` and `/v1/chat/completions` stream `max_tokens`
//! (or `max_completion_tokens`) vLLM-shaped chunks, then a usage chunk and `[DONE]`;
//! `GET /v1/models`, `/version`, `/metrics` (no `/tokenize`: clients fall back to their own);
//! `GET /first_chunk_times` returns `{x-request-id: [unix ns, monotonic ns]}` of the moment the
//! first chunk was handed to the socket, for the client-added TTFT measurement.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use clap::Parser;
use futures_util::stream;

#[derive(Parser, Debug, Clone)]
struct Args {
    /// Port on 127.0.0.1.
    #[arg(long, default_value_t = 8199)]
    port: u16,
    /// Delay before the first chunk.
    #[arg(long, default_value_t = 0.0)]
    ttft_ms: f64,
    /// Delay between chunks.
    #[arg(long, default_value_t = 0.0)]
    itl_ms: f64,
    /// Served model name.
    #[arg(long, default_value = "mock")]
    model: String,
}

#[derive(Clone)]
struct App {
    args: Args,
    first_chunk: Arc<Mutex<HashMap<String, (u128, u128)>>>,
    served: Arc<std::sync::atomic::AtomicU64>,
}

/// (Unix ns, CLOCK_MONOTONIC ns): wall time for Forge's records, the monotonic clock for
/// `vllm bench serve`, whose `start_times` are `time.perf_counter()` (CLOCK_MONOTONIC on Linux).
fn now_ns() -> (u128, u128) {
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (wall, ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128)
}

async fn generate(State(app): State<App>, headers: HeaderMap, body: Bytes, chat: bool) -> Response {
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let n = v
        .get("max_tokens")
        .or_else(|| v.get("max_completion_tokens"))
        .and_then(|x| x.as_u64())
        .unwrap_or(16)
        .max(1);
    let prompt_tokens = v
        .get("prompt")
        .and_then(|p| p.as_str())
        .map_or(8, |p| p.split_whitespace().count() as u64);
    let id = headers
        .get("x-request-id")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    app.served
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let chunk: Bytes = if chat {
        Bytes::from(format!(
            "data: {{\"id\":\"chatcmpl-0\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"{}\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\" tok\"}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n",
            app.args.model
        ))
    } else {
        Bytes::from(format!(
            "data: {{\"id\":\"cmpl-0\",\"object\":\"text_completion\",\"created\":0,\"model\":\"{}\",\"choices\":[{{\"index\":0,\"text\":\" tok\",\"logprobs\":null,\"finish_reason\":null,\"stop_reason\":null}}]}}\n\n",
            app.args.model
        ))
    };
    let tail = Bytes::from(format!(
        "data: {{\"id\":\"cmpl-0\",\"object\":\"text_completion\",\"created\":0,\"model\":\"{}\",\"choices\":[],\"usage\":{{\"prompt_tokens\":{prompt_tokens},\"total_tokens\":{},\"completion_tokens\":{n}}}}}\n\ndata: [DONE]\n\n",
        app.args.model,
        prompt_tokens + n
    ));
    let (ttft, itl) = (app.args.ttft_ms, app.args.itl_ms);
    let first = app.first_chunk.clone();
    let s = stream::unfold(0u64, move |i| {
        let (chunk, tail, first, id) = (chunk.clone(), tail.clone(), first.clone(), id.clone());
        async move {
            if i > n {
                return None;
            }
            let delay = if i == 0 { ttft } else { itl };
            if delay > 0.0 && i < n {
                tokio::time::sleep(Duration::from_secs_f64(delay / 1000.0)).await;
            }
            if i == 0 && !id.is_empty() {
                first.lock().expect("not poisoned").insert(id, now_ns());
            }
            let out = if i == n { tail } else { chunk };
            Some((Ok::<_, Infallible>(out), i + 1))
        }
    });
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(s),
    )
        .into_response()
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let app = App {
        args: args.clone(),
        first_chunk: Arc::default(),
        served: Arc::default(),
    };
    let model = args.model.clone();
    let router = Router::new()
        .route("/v1/completions", post(|s, h, b| generate(s, h, b, false)))
        .route("/v1/chat/completions", post(|s, h, b| generate(s, h, b, true)))
        .route("/v1/models", get(move || async move { axum::Json(serde_json::json!({"object": "list", "data": [{"id": model, "object": "model"}]})) }))
        .route("/version", get(|| async { axum::Json(serde_json::json!({"version": "stream-server"})) }))
        .route("/metrics", get(|State(app): State<App>| async move {
            format!("vllm:num_requests_running 0\nvllm:request_success_total {}\n", app.served.load(std::sync::atomic::Ordering::Relaxed))
        }))
        .route("/first_chunk_times", get(|State(app): State<App>| async move {
            let map = app.first_chunk.lock().expect("not poisoned").clone();
            axum::Json(map.into_iter().map(|(k, (w, m))| (k, [w.to_string(), m.to_string()])).collect::<HashMap<_, _>>())
        }))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .expect("bind 127.0.0.1")
        .tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
    eprintln!("stream_server listening on http://127.0.0.1:{}", args.port);
    axum::serve(listener, router).await.expect("serve");
}
