//! The HTTP side of one streaming request: POST a prebuilt body, read the SSE stream with
//! per-request and stall deadlines, and fill a [`RequestRecord`]. Every failure (refused
//! connection, non-200 status, malformed SSE, stall, reset, cancellation) becomes a recorded
//! reason; nothing here can hang longer than the request deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use tokio_util::sync::CancellationToken;

use super::BenchError;
use super::record::RequestRecord;
use super::sse::{StreamState, error_message};

/// How long `preconnect` leaves hyper's background tasks to return connections to the pool
/// (they need microseconds; the margin covers a loaded machine, and it is spent before the
/// level's clock starts).
const POOL_SETTLE: Duration = Duration::from_millis(50);

/// A shared streaming client for one endpoint.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    url: String,
    headers: HeaderMap,
    request_timeout: Duration,
    stall_timeout: Duration,
    /// A cheap route (`GET {base}/v1/models`) used to open connections before a level.
    preconnect_url: String,
    /// Choices messages received by all requests so far (for live tokens/s).
    pub live_chunks: Arc<AtomicU64>,
}

/// What the client needs to know besides the body.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Full URL of the route (`http://host:port/v1/completions`).
    pub url: String,
    /// Extra headers (name, value).
    pub headers: Vec<(String, String)>,
    /// Bearer token, when an API key is configured.
    pub api_key: Option<String>,
    /// Deadline per request, from send to the end of the stream.
    pub request_timeout: Duration,
    /// Longest silence allowed between reads of the response.
    pub stall_timeout: Duration,
    /// A cheap GET route on the same server (`http://host:port/v1/models`) for opening
    /// connections before a level's clock starts.
    pub preconnect_url: String,
}

impl Client {
    /// Build the client (connection pool without limits: the scheduler bounds concurrency, and
    /// every idle connection is kept, so the ones `preconnect` opens stay for the level).
    pub fn new(config: ClientConfig) -> Result<Self, BenchError> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(key) = &config.api_key {
            let value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                BenchError::header("Authorization", "API key is not a valid header value")
            })?;
            headers.insert(AUTHORIZATION, value);
        }
        for (name, value) in &config.headers {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| BenchError::header(name, "not a valid header name"))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| BenchError::header(name, "value is not a valid header value"))?;
            headers.insert(header, value);
        }
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(usize::MAX)
            .pool_idle_timeout(Duration::from_secs(90))
            .http1_only()
            .build()
            .map_err(|e| BenchError::Http(chain(&e)))?;
        Ok(Self {
            http,
            url: config.url,
            headers,
            request_timeout: config.request_timeout,
            stall_timeout: config.stall_timeout,
            preconnect_url: config.preconnect_url,
            live_chunks: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Leave `n` open connections idle in the pool, so a level's first requests do not pay
    /// connection set-up inside their TTFT: `n` GETs of the preconnect route sent at once
    /// (all are dispatched before any can finish, so each one holds its own connection; idle
    /// ones left by the warmup are reused), their bodies read only once every response has
    /// arrived. hyper hands a connection back to the pool from a background task once its
    /// response has ended, so this then waits [`POOL_SETTLE`] for those tasks to run (otherwise
    /// the level's first wave finds the pool still empty and connects anew). Returns how many
    /// connections answered (any HTTP status keeps its connection).
    pub async fn preconnect(&self, n: u32) -> u32 {
        let send = |_| {
            self.http
                .get(&self.preconnect_url)
                .headers(self.headers.clone())
                .timeout(self.stall_timeout)
                .send()
        };
        let responses = futures_util::future::join_all((0..n).map(send)).await;
        let bodies = responses
            .into_iter()
            .flatten()
            .map(reqwest::Response::bytes);
        let read = futures_util::future::join_all(bodies).await;
        tokio::time::sleep(POOL_SETTLE).await;
        read.iter().filter(|body| body.is_ok()).count() as u32
    }

    /// Send one request and fill `record` (whose `start_s` is set here, relative to `clock`).
    /// `record.prompt_tokens` should hold the dataset's count; the server's usage overrides it.
    pub async fn send(
        &self,
        request_id: &str,
        body: Bytes,
        clock: Instant,
        record: &mut RequestRecord,
        cancel: &CancellationToken,
    ) {
        let start = Instant::now();
        record.start_s = start.duration_since(clock).as_secs_f64();
        let mut state = StreamState::default();
        let outcome = tokio::select! {
            biased;
            _ = cancel.cancelled() => Err("cancelled".to_string()),
            r = tokio::time::timeout(self.request_timeout, self.stream(request_id, body, start, &mut state, record)) => {
                r.unwrap_or_else(|_| Err(format!("request timeout after {:.1} s", self.request_timeout.as_secs_f64())))
            }
        };
        finish_record(record, state, outcome);
    }

    async fn stream(
        &self,
        request_id: &str,
        body: Bytes,
        start: Instant,
        state: &mut StreamState,
        record: &mut RequestRecord,
    ) -> Result<(), String> {
        let response = self
            .http
            .post(&self.url)
            .headers(self.headers.clone())
            .header("x-request-id", request_id)
            .body(body)
            .send()
            .await
            .map_err(|e| chain(&e))?;
        let status = response.status();
        record.http_status = Some(status.as_u16());
        if status != reqwest::StatusCode::OK {
            return Err(status_error(status, response, self.stall_timeout).await);
        }
        let mut body = response.bytes_stream();
        // One timer per request, re-armed only when it fires early (cheaper than a new
        // timeout per read): it fails the request once the stream is silent for the whole span.
        let stall = tokio::time::sleep(self.stall_timeout);
        tokio::pin!(stall);
        let mut last_data = Instant::now();
        loop {
            let next = tokio::select! {
                biased;
                next = body.next() => next,
                _ = &mut stall => {
                    if last_data.elapsed() >= self.stall_timeout {
                        let silent = self.stall_timeout.as_secs_f64();
                        return Err(format!("stream stalled: no data for {silent:.1} s"));
                    }
                    stall.as_mut().reset((last_data + self.stall_timeout).into());
                    continue;
                }
            };
            last_data = Instant::now();
            let t = last_data.duration_since(start).as_secs_f64();
            match next {
                Some(Ok(bytes)) => {
                    let new = state.feed(&bytes, t).map_err(|e| e.to_string())?;
                    if new > 0 {
                        self.live_chunks
                            .fetch_add(u64::from(new), Ordering::Relaxed);
                    }
                }
                Some(Err(e)) => return Err(format!("stream broken: {}", chain(&e))),
                None => {
                    state.finish(t).map_err(|e| e.to_string())?;
                    return Ok(());
                }
            }
        }
    }
}

/// Turn the stream's state and outcome into the record's fields (vLLM's success rule).
/// A failed request keeps latency 0, as vLLM's `RequestFuncOutput` does (its `latency` is set
/// only once the stream completed), so `latencies` in the level file match vLLM's; every
/// statistic is computed over successful requests only (`metrics.rs`).
fn finish_record(record: &mut RequestRecord, state: StreamState, outcome: Result<(), String>) {
    record.ttft_s = state.first_s.unwrap_or(0.0);
    record.chunks = state.chunks;
    if let Some(p) = state.prompt_tokens {
        record.prompt_tokens = p;
    }
    record.server_usage = state.completion_tokens.is_some();
    record.output_tokens = state.completion_tokens.unwrap_or(state.chunks);
    record.error = match outcome {
        Err(e) => Some(e),
        Ok(()) if state.chunks == 0 => {
            Some("never received a valid chunk to calculate TTFT (no `choices` message)".into())
        }
        Ok(()) if !state.done => Some("stream ended before `data: [DONE]`".into()),
        Ok(()) => None,
    };
    record.latency_s = match record.error {
        None => state.last_s.unwrap_or(0.0),
        Some(_) => 0.0,
    };
    record.itl = state.itl;
}

async fn status_error(
    status: reqwest::StatusCode,
    response: reqwest::Response,
    wait: Duration,
) -> String {
    let body = tokio::time::timeout(wait, response.bytes()).await;
    let text = match body {
        Ok(Ok(b)) => String::from_utf8_lossy(&b[..b.len().min(2048)]).into_owned(),
        _ => String::new(),
    };
    let detail = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            v.get("error")
                .map(error_message)
                .or(v.get("message").map(|m| m.to_string()))
        })
        .unwrap_or(text);
    format!("HTTP {status}: {}", detail.trim())
}

/// An error and its sources, joined (reqwest's top-level message alone hides the cause).
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let message = s.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = s.source();
    }
    text
}
