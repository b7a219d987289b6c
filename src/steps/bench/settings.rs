//! The bench step's manifest settings (`[steps.<id>.settings]` of a `kind = "bench"` step):
//! the wire struct with its defaults, and the checks that turn bad values into errors that
//! name the field.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::BenchError;

/// Settings of one bench sweep. Every field has a default except `dataset`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BenchSettings {
    /// Model label recorded in `metadata.model.label` (for example `bf16` or `awq`).
    #[serde(default)]
    pub label: Option<String>,
    /// Which OpenAI route to drive: `completions` (`/v1/completions`) or `chat`
    /// (`/v1/chat/completions`).
    #[serde(default)]
    pub endpoint: Endpoint,
    /// Server base URL (`http://127.0.0.1:8000`); default: the `url` of the step's only service.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Model name sent in requests; default: the service fact `served_name`, else `GET /v1/models`.
    #[serde(default)]
    pub model: Option<String>,
    /// Concurrency levels of the sweep; one result file `c<N>.json` per level.
    #[serde(default = "default_concurrency")]
    pub concurrency: Vec<u32>,
    /// Measured requests per level (the same prompts, in the same order, at every level).
    #[serde(default = "default_prompts_per_level")]
    pub prompts_per_level: u32,
    /// Warmup requests per level (copies of prompt 0, sent before the level's clock starts and
    /// excluded from its results).
    #[serde(default = "default_warmup")]
    pub warmup: u32,
    /// Runs of each level, back to back (each with its own warmup and connection set-up);
    /// the level's statistics pool every run's requests (`docs/bench.md`, "Repeats").
    #[serde(default = "default_repeats")]
    pub repeats: u32,
    /// Where prompts come from.
    pub dataset: DatasetSettings,
    /// Seed for dataset sampling and the open-loop arrival schedule.
    #[serde(default)]
    pub seed: u64,
    /// Fixed output length (`max_tokens`) for every request; default: each prompt's own
    /// output length from the dataset (like vLLM's `--sharegpt-output-len`).
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Send `ignore_eos: true` so the server generates exactly `max_tokens` tokens
    /// (forced on for the `random` dataset, as vLLM does).
    #[serde(default)]
    pub ignore_eos: bool,
    /// Sampling temperature; not sent when absent (vLLM 0.32 behaviour).
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Extra JSON fields merged into every request body (they win over Forge's own fields).
    #[serde(default)]
    pub extra_body: BTreeMap<String, serde_json::Value>,
    /// Extra HTTP headers sent with every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Name of an environment variable holding an API key, sent as `Authorization: Bearer`.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Open loop: mean arrivals per second. Absent = closed loop (each level keeps exactly N
    /// requests in flight). Present = arrivals follow a gamma process at this rate and each
    /// concurrency level caps the requests in flight (vLLM `--request-rate R --max-concurrency N`).
    #[serde(default)]
    pub request_rate: Option<f64>,
    /// Gamma shape of the open-loop inter-arrival times: 1.0 = Poisson, lower = burstier,
    /// `inf` (any value >= 1e9) = constant spacing.
    #[serde(default = "default_burstiness")]
    pub burstiness: f64,
    /// Replay the `timestamp` of a `jsonl` trace as the arrival schedule (capped per level).
    #[serde(default)]
    pub replay_timestamps: bool,
    /// Service-level objectives for `request_goodput` (DistServe definition, as vLLM).
    #[serde(default)]
    pub slo: Option<Slo>,
    /// Per-request deadline, from send to the end of the stream, in seconds.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_s: f64,
    /// A request fails when its stream goes silent this long after the response headers.
    #[serde(default = "default_stall_timeout")]
    pub stall_timeout_s: f64,
    /// What a failed level does to the sweep: `stop` (default) or `continue`.
    #[serde(default)]
    pub on_level_failure: OnLevelFailure,
    /// A level fails when more than this fraction of its requests fail (0.0: any failure).
    #[serde(default)]
    pub max_failed_fraction: f64,
    /// Scrape the server's Prometheus `/metrics` every second during each level.
    #[serde(default = "default_true")]
    pub scrape_metrics: bool,
    /// The verdict `client_kept_up` fails when the p99 send lag or event-loop lag exceeds this.
    #[serde(default = "default_kept_up_threshold")]
    pub kept_up_threshold_ms: f64,
    /// Keep per-chunk inter-token latencies of every request in the result file (`itls`).
    #[serde(default)]
    pub save_detailed: bool,
    /// `native` (Forge's Rust client) or `vllm` (runs `vllm bench serve` per level).
    #[serde(default)]
    pub driver: Driver,
    /// The command that runs the `vllm` CLI, for `driver = "vllm"`
    /// (for example `["/opt/venv/bin/python", "-m", "vllm.entrypoints.cli.main"]`).
    #[serde(default = "default_vllm_command")]
    pub vllm_command: Vec<String>,
    /// Tokenizer: a `tokenizer.json` file or a directory holding one. Used to count prompt
    /// tokens for dataset filtering (default: the server's `/tokenize`) and passed to
    /// `vllm bench serve --tokenizer` by the vLLM driver (which needs it).
    #[serde(default)]
    pub tokenizer: Option<PathBuf>,
}

/// The OpenAI route a bench drives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Endpoint {
    /// `/v1/completions` with `prompt`.
    #[default]
    Completions,
    /// `/v1/chat/completions` with one user message.
    Chat,
}

impl Endpoint {
    /// The URL path of the route.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Completions => "/v1/completions",
            Endpoint::Chat => "/v1/chat/completions",
        }
    }

    /// vLLM's `--backend` name for the route (also its `endpoint_type` and `backend` keys).
    pub fn vllm_backend(self) -> &'static str {
        match self {
            Endpoint::Completions => "openai",
            Endpoint::Chat => "openai-chat",
        }
    }
}

/// What a failed level does to the rest of the sweep.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnLevelFailure {
    /// Write the level's result and the summary, then fail the step.
    #[default]
    Stop,
    /// Record the failure and run the remaining levels; the step succeeds.
    Continue,
}

/// Which load generator runs the levels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// Forge's own tokio + reqwest client.
    #[default]
    Native,
    /// `vllm bench serve`, normalized into the same schema.
    Vllm,
}

/// Service-level objectives in milliseconds; a request is "good" when it meets every one given.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    /// Time to first token.
    #[serde(default)]
    pub ttft_ms: Option<f64>,
    /// Time per output token (excluding the first).
    #[serde(default)]
    pub tpot_ms: Option<f64>,
    /// End-to-end latency.
    #[serde(default)]
    pub e2el_ms: Option<f64>,
}

/// Dataset kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetKind {
    /// ShareGPT JSON (`ShareGPT_V3_unfiltered_cleaned_split.json` shape), vLLM's sampling rules.
    Sharegpt,
    /// Random prompts of exact token lengths.
    Random,
    /// JSON lines: `{"prompt": str, "output_len": int, "timestamp"?: seconds}`.
    Jsonl,
}

/// Where prompts come from. Flat on purpose (clear serde errors); `kind` says which fields apply.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSettings {
    /// `sharegpt`, `random` or `jsonl`.
    pub kind: DatasetKind,
    /// File for `sharegpt` and `jsonl` (relative to the workspace).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// `random`: prompt length in tokens (as the server counts them).
    #[serde(default)]
    pub input_len: Option<u32>,
    /// `random`: output length in tokens.
    #[serde(default)]
    pub output_len: Option<u32>,
    /// `random`: lengths are uniform in `[L(1-r), L(1+r)]` (vLLM `--random-range-ratio`).
    #[serde(default)]
    pub range_ratio: f64,
}

fn default_concurrency() -> Vec<u32> {
    vec![1, 4, 16, 32, 64]
}
fn default_prompts_per_level() -> u32 {
    256
}
fn default_warmup() -> u32 {
    1
}
fn default_repeats() -> u32 {
    1
}
fn default_burstiness() -> f64 {
    1.0
}
fn default_request_timeout() -> f64 {
    900.0
}
fn default_stall_timeout() -> f64 {
    60.0
}
fn default_true() -> bool {
    true
}
fn default_kept_up_threshold() -> f64 {
    10.0
}
fn default_vllm_command() -> Vec<String> {
    vec!["vllm".to_string()]
}

/// `v > 0`, false for NaN.
fn positive(v: f64) -> bool {
    v > 0.0
}

fn invalid(field: &str, message: impl Into<String>) -> BenchError {
    BenchError::Settings {
        field: field.to_string(),
        message: message.into(),
    }
}

impl BenchSettings {
    /// What these settings make the step read: the dataset file and the tokenizer.
    pub fn reads(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self.dataset.path.iter().cloned().collect();
        out.extend(self.tokenizer.iter().cloned());
        out
    }
}

impl BenchSettings {
    /// A minimal settings value around a dataset (every other field at its default).
    pub fn with_dataset(dataset: DatasetSettings) -> Self {
        // Round-trip through serde so the defaults stay defined in one place.
        let value = serde_json::json!({ "dataset": dataset });
        serde_json::from_value(value).expect("defaults deserialize")
    }

    /// Check values serde cannot: ranges, and fields required by the chosen dataset kind.
    pub fn validate(&self) -> Result<(), BenchError> {
        if self.concurrency.is_empty() {
            return Err(invalid("concurrency", "needs at least one level"));
        }
        if self.concurrency.contains(&0) {
            return Err(invalid("concurrency", "levels must be >= 1"));
        }
        if self.prompts_per_level == 0 {
            return Err(invalid("prompts_per_level", "must be >= 1"));
        }
        if let Some(rate) = self.request_rate
            && !positive(rate)
        {
            return Err(invalid(
                "request_rate",
                "must be > 0 (omit it for closed loop)",
            ));
        }
        if !positive(self.burstiness) {
            return Err(invalid("burstiness", "must be > 0"));
        }
        for (field, v) in [
            ("request_timeout_s", self.request_timeout_s),
            ("stall_timeout_s", self.stall_timeout_s),
        ] {
            if !positive(v) {
                return Err(invalid(field, "must be > 0 seconds"));
            }
        }
        if !(0.0..=1.0).contains(&self.max_failed_fraction) {
            return Err(invalid("max_failed_fraction", "must be within 0.0..=1.0"));
        }
        if self.replay_timestamps && self.dataset.kind != DatasetKind::Jsonl {
            return Err(invalid(
                "replay_timestamps",
                "needs `dataset.kind = \"jsonl\"`",
            ));
        }
        if self.replay_timestamps && self.request_rate.is_some() {
            return Err(invalid(
                "replay_timestamps",
                "conflicts with `request_rate`",
            ));
        }
        if self.repeats == 0 {
            return Err(invalid(
                "repeats",
                "must be an integer >= 1 (1 runs each level once)",
            ));
        }
        if self.repeats > 1 && self.driver == Driver::Vllm {
            return Err(invalid(
                "repeats",
                "is only supported by the native driver; set `repeats = 1` with `driver = \"vllm\"`",
            ));
        }
        if self.driver == Driver::Vllm && self.vllm_command.is_empty() {
            return Err(invalid(
                "vllm_command",
                "must name the program that runs `vllm`",
            ));
        }
        if let Some(slo) = &self.slo {
            for (k, v) in [
                ("ttft_ms", slo.ttft_ms),
                ("tpot_ms", slo.tpot_ms),
                ("e2el_ms", slo.e2el_ms),
            ] {
                if v.is_some_and(|v| v.is_nan() || v < 0.0) {
                    return Err(invalid(&format!("slo.{k}"), "must be >= 0 milliseconds"));
                }
            }
        }
        self.dataset.validate()
    }

    /// `max_tokens` as sent: the fixed value, else the prompt's own output length.
    pub fn output_len_for(&self, dataset_len: u32) -> u32 {
        self.max_tokens.unwrap_or(dataset_len).max(1)
    }

    /// Whether `ignore_eos` is sent (forced for the random dataset, as vLLM does).
    pub fn effective_ignore_eos(&self) -> bool {
        self.ignore_eos || self.dataset.kind == DatasetKind::Random
    }
}

impl DatasetSettings {
    fn validate(&self) -> Result<(), BenchError> {
        match self.kind {
            DatasetKind::Sharegpt | DatasetKind::Jsonl => {
                if self.path.is_none() {
                    return Err(invalid("dataset.path", "is required for this dataset kind"));
                }
            }
            DatasetKind::Random => {
                if self.input_len.is_none_or(|l| l == 0) {
                    return Err(invalid(
                        "dataset.input_len",
                        "is required (>= 1) for `random`",
                    ));
                }
                if self.output_len.is_none_or(|l| l == 0) {
                    return Err(invalid(
                        "dataset.output_len",
                        "is required (>= 1) for `random`",
                    ));
                }
                if !(0.0..1.0).contains(&self.range_ratio) {
                    return Err(invalid("dataset.range_ratio", "must be within 0.0..1.0"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_from_minimal_toml() {
        let s: BenchSettings =
            toml::from_str("dataset = { kind = \"sharegpt\", path = \"data/x.json\" }").unwrap();
        assert_eq!(s.concurrency, vec![1, 4, 16, 32, 64]);
        assert_eq!(s.prompts_per_level, 256);
        assert_eq!(s.endpoint, Endpoint::Completions);
        assert!(s.scrape_metrics);
        assert_eq!(s.repeats, 1);
        s.validate().unwrap();
    }

    #[test]
    fn repeats_must_be_at_least_one_and_native() {
        let zero: BenchSettings =
            toml::from_str("repeats = 0\ndataset = { kind = \"sharegpt\", path = \"x\" }").unwrap();
        let err = zero.validate().unwrap_err().to_string();
        assert!(
            err.contains("bench setting `repeats`: must be an integer >= 1"),
            "{err}"
        );
        let negative = toml::from_str::<BenchSettings>(
            "repeats = -1\ndataset = { kind = \"sharegpt\", path = \"x\" }",
        )
        .unwrap_err();
        assert!(negative.to_string().contains("repeats"), "{negative}");
        let vllm: BenchSettings = toml::from_str(
            "repeats = 3\ndriver = \"vllm\"\ndataset = { kind = \"sharegpt\", path = \"x\" }",
        )
        .unwrap();
        let err = vllm.validate().unwrap_err().to_string();
        assert!(err.contains("only supported by the native driver"), "{err}");
        let three: BenchSettings =
            toml::from_str("repeats = 3\ndataset = { kind = \"sharegpt\", path = \"x\" }").unwrap();
        three.validate().unwrap();
    }

    #[test]
    fn unknown_field_is_rejected() {
        let err = toml::from_str::<BenchSettings>(
            "concurency = [1]\ndataset = { kind = \"sharegpt\", path = \"x\" }",
        )
        .unwrap_err();
        assert!(err.to_string().contains("concurency"), "{err}");
    }

    #[test]
    fn random_needs_lengths() {
        let s: BenchSettings =
            toml::from_str("dataset = { kind = \"random\", input_len = 8 }").unwrap();
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("dataset.output_len"), "{err}");
        assert!(s.effective_ignore_eos());
    }
}
