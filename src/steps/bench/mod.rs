//! The `bench` step kind: a native OpenAI-compatible streaming load generator whose numbers
//! follow `vllm bench serve`'s definitions, with concurrency sweeps, open-loop schedules,
//! server-metric time series and provenance; plus a driver that runs `vllm bench serve` itself
//! and normalizes its output into the same schema. Settings: `docs/bench.md`; result schema:
//! `docs/results.md`.

mod adhoc;
mod body;
mod client;
mod dataset;
mod errors;
mod metadata;
mod metrics;
mod record;
mod repeats;
mod result;
mod schedule;
mod scrape;
pub mod server_view;
mod settings;
mod sse;
mod sweep;
mod tokenize;
pub mod uncertainty;
mod vllm_driver;
mod vllm_result;

use std::path::PathBuf;

pub use adhoc::{BenchArgs, run_adhoc};
pub use errors::{ErrorBreakdown, ErrorClass};
pub use metadata::BenchMetadata;
pub use metrics::{LevelMetrics, Stats, percentile_sorted, stats_ms};
pub use record::RequestRecord;
pub use result::{BenchSummary, LagStats, LevelSummary};
pub use scrape::ServerMetrics;
pub use settings::{
    BenchSettings, DatasetKind, DatasetSettings, Driver, Endpoint, OnLevelFailure, Slo,
};
pub use sse::{SseError, StreamState};
pub use sweep::run_step;

/// Everything that can stop a bench step.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A setting has a bad value.
    #[error("bench setting `{field}`: {message}")]
    Settings {
        /// The setting's key.
        field: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// No server to benchmark.
    #[error(
        "no server to benchmark: {0}\nhint: set `base_url` in the bench settings or make the step need exactly one service with a `url`"
    )]
    NoBaseUrl(String),
    /// A dataset file is unreadable or an entry is malformed.
    #[error("dataset `{path}`{}: {message}", if entry.is_empty() { String::new() } else { format!(", {entry}") })]
    Dataset {
        /// The dataset file.
        path: PathBuf,
        /// Which entry (`entry 17 (id ...)`, `line 3`), empty for the whole file.
        entry: String,
        /// What is wrong.
        message: String,
    },
    /// A local tokenizer could not be loaded.
    #[error("tokenizer `{path}`: {message}")]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// The loader's message.
        message: String,
    },
    /// Token ids are needed but there is no tokenizer.
    #[error(
        "this dataset needs a tokenizer: the server has no `/tokenize` route\nhint: set `tokenizer` to a `tokenizer.json` (or its directory)"
    )]
    NeedsTokenizer,
    /// An HTTP exchange outside the measured requests failed (model list, tokenize ...).
    #[error("{0}")]
    Http(String),
    /// A configured header is invalid.
    #[error("header `{name}`: {message}")]
    Header {
        /// Header name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// Writing results failed.
    #[error("cannot write `{path}`: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The run was cancelled.
    #[error("bench cancelled")]
    Cancelled,
    /// A level failed and `on_level_failure = "stop"`; its result and the summary were written.
    #[error(
        "bench level c={concurrency} failed: {failed} of {total} requests failed (most frequent reason: {reason}); results written to `{dir}`"
    )]
    LevelFailed {
        /// The level.
        concurrency: u32,
        /// Failed requests.
        failed: u64,
        /// Requests in the level.
        total: u64,
        /// An example message of the most frequent failure class.
        reason: String,
        /// The output directory.
        dir: PathBuf,
    },
    /// `vllm bench serve` could not run or its output could not be read.
    #[error("vllm driver: {0}")]
    Vllm(String),
}

impl BenchError {
    fn header(name: &str, message: &str) -> Self {
        BenchError::Header {
            name: name.to_string(),
            message: message.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages() {
        let errors = [
            BenchError::Settings {
                field: "dataset.output_len".into(),
                message: "is required (>= 1) for `random`".into(),
            },
            BenchError::NoBaseUrl("the step's service publishes no `url`".into()),
            BenchError::Dataset {
                path: "data/bad.json".into(),
                entry: "entry 1 (id `e1`)".into(),
                message: "missing field `value`".into(),
            },
            BenchError::NeedsTokenizer,
            BenchError::LevelFailed {
                concurrency: 4,
                failed: 12,
                total: 12,
                reason: "HTTP 500 Internal Server Error: engine crashed".into(),
                dir: "results/m1/bench/bf16".into(),
            },
        ];
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        insta::assert_snapshot!(text.join("\n---\n"));
    }
}
