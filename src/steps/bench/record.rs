//! One request's outcome, kept compactly so a 100k-request level stays small in memory
//! (a fixed-size record plus one `f32` per streamed chunk).

use serde::Serialize;

/// What the client observed for one request. Times are seconds from the level's start
/// (a monotonic clock), except `ttft_s`/`latency_s`, which are durations from `start_s`.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct RequestRecord {
    /// Position of the prompt in the sweep's prompt list.
    pub index: u32,
    /// Scheduled arrival (0 for every request of a closed loop, as vLLM records it).
    pub arrival_s: f64,
    /// When the request could have been sent: its arrival, or later when it waited for a
    /// concurrency slot (the moment the slot freed).
    pub ready_s: f64,
    /// When it was actually sent (just before the HTTP POST).
    pub start_s: f64,
    /// Time to the first SSE message with a non-empty `choices` list (0 when none came).
    pub ttft_s: f64,
    /// Time to the last SSE message with a non-empty `choices` list (vLLM's `latency`);
    /// 0 for a failed request, as vLLM records it.
    pub latency_s: f64,
    /// Prompt tokens: the server's `usage.prompt_tokens`, else the dataset's count.
    pub prompt_tokens: u32,
    /// Output tokens: the server's `usage.completion_tokens`, else the number of choices messages.
    pub output_tokens: u32,
    /// `max_tokens` that was requested.
    pub requested_output_tokens: u32,
    /// Choices messages received (one per SSE event carrying choices).
    pub chunks: u32,
    /// Whether `usage` came from the server (false: `output_tokens` is the chunk count).
    pub server_usage: bool,
    /// HTTP status of the response, when one arrived.
    pub http_status: Option<u16>,
    /// Why the request failed; `None` when it succeeded.
    pub error: Option<String>,
    /// Which run of the level it belongs to (0-based), only when the level ran more than once
    /// (`repeats` > 1); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeat: Option<u32>,
    /// Gaps between consecutive choices messages, seconds (vLLM's per-request `itl`).
    #[serde(skip)]
    pub itl: Vec<f32>,
}

impl RequestRecord {
    /// A request succeeded: HTTP 200, at least one choices message and no error.
    pub fn success(&self) -> bool {
        self.error.is_none()
    }

    /// Client-side wait for a concurrency slot, vLLM's `queue_times` entry.
    pub fn queue_time_s(&self) -> f64 {
        self.start_s - self.arrival_s
    }

    /// How late the client sent the request after it could have: the client's own lag.
    pub fn send_lag_s(&self) -> f64 {
        (self.start_s - self.ready_s).max(0.0)
    }

    /// TPOT as vLLM defines it, only for more than one output token.
    pub fn tpot_s(&self) -> Option<f64> {
        (self.success() && self.output_tokens > 1)
            .then(|| (self.latency_s - self.ttft_s) / f64::from(self.output_tokens - 1))
    }
}
