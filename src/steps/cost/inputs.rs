//! Readers for the result files the decision steps consume: a bench `summary.json` and the eval
//! `retention.json` (schemas in the helpers' brief). Reading is lenient about extra keys (other
//! steps may add fields) and strict about the figures the decision math needs.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::steps::bench::ErrorBreakdown;

/// An error reading one result file.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file could not be read.
    #[error("cannot read `{path}`: {source}\nhint: run the step that writes it first")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not the JSON the schema expects.
    #[error("`{path}` is not a valid {what}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Which schema was expected.
        what: &'static str,
        /// The serde error (names the field and line).
        source: serde_json::Error,
    },
    /// A figure the math needs is absent, zero, negative or not finite.
    #[error("`{path}`: field `{field}` is {problem}\nhint: {hint}")]
    BadFigure {
        /// The file.
        path: PathBuf,
        /// The field, as a JSON path (`levels[2].output_throughput`).
        field: String,
        /// What is wrong with it.
        problem: String,
        /// What to do about it.
        hint: &'static str,
    },
}

/// The `metadata` object every result JSON carries (only the keys the decision steps show).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ResultMetadata {
    /// The profile the run resolved.
    pub profile: String,
    /// When the result was written (RFC 3339 UTC).
    pub date: String,
    /// The host name.
    pub host: String,
    /// The GPU, or null on a CPU run.
    pub gpu: Option<GpuFacts>,
    /// The CPU model name.
    pub cpu: Option<String>,
    /// The serving engine, or null.
    pub engine: Option<EngineFacts>,
    /// The served model, or null.
    pub model: Option<ModelFacts>,
}

/// GPU facts recorded in result metadata.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct GpuFacts {
    /// GPU name as the driver reports it.
    pub name: String,
    /// Total memory in MiB.
    pub memory_mib: Option<u64>,
    /// Driver version.
    pub driver: Option<String>,
    /// The newest CUDA the driver supports (absent in files written before Forge recorded it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cuda_driver: Option<String>,
}

/// Serving engine facts recorded in result metadata.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct EngineFacts {
    /// Engine name (`vllm`).
    pub name: String,
    /// Engine version (`0.32.0`).
    pub version: String,
    /// The torch build it runs on (`2.10.0+cu128`), when recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub torch: Option<String>,
    /// That build's CUDA runtime (`12.8`); absent for a CPU build or when not recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cuda: Option<String>,
}

/// Served model facts recorded in result metadata.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ModelFacts {
    /// The name the server serves the model under.
    pub served_name: String,
    /// The model id.
    pub id: String,
    /// The model's content digest.
    pub sha: String,
    /// The model label (`awq`, `bf16`).
    pub label: String,
    /// How the weights reached the engine (INT4, or dequantized to BF16), when recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weights: Option<crate::steps::metadata::WeightsInfo>,
    /// Where the weights came from (absent in files written before Forge recorded it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl ResultMetadata {
    /// The provenance caption charts and tables carry: profile, hardware, engine, model SHA, date.
    pub fn caption(&self) -> String {
        let hardware = match (&self.gpu, &self.cpu) {
            (Some(gpu), _) => {
                let driver = gpu.driver.as_deref().map(|d| format!(", driver {d}"));
                let cuda = gpu.cuda_driver.as_deref().map(|c| format!(" (CUDA {c})"));
                format!(
                    "{}{}{}",
                    gpu.name,
                    driver.unwrap_or_default(),
                    cuda.unwrap_or_default()
                )
            }
            (None, Some(cpu)) if !cpu.is_empty() => format!("CPU {cpu}"),
            _ => "unknown hardware".to_string(),
        };
        let engine =
            self.engine
                .as_ref()
                .map_or("engine ?".to_string(), |e| match (&e.torch, &e.cuda) {
                    (_, Some(cuda)) => format!("{} {} on CUDA {cuda}", e.name, e.version),
                    (Some(torch), None) => format!("{} {} on torch {torch}", e.name, e.version),
                    (None, None) => format!("{} {}", e.name, e.version),
                });
        let sha = self.model.as_ref().map_or("?", |m| short_sha(&m.sha));
        let profile = if self.profile.is_empty() {
            "?"
        } else {
            &self.profile
        };
        let weights = self
            .model
            .as_ref()
            .and_then(|m| m.source.as_ref())
            .map(|s| format!(" | weights {s}"))
            .unwrap_or_default();
        format!(
            "profile {profile} | {hardware} | {engine} | model sha {sha}{weights} | {}",
            self.date
        )
    }
}

/// The first 12 characters of a digest (or the whole thing when shorter), after its algorithm
/// prefix (`blake3:4764...` reads `4764...`, as a hub commit does).
pub fn short_sha(sha: &str) -> &str {
    let hex = sha.strip_prefix("blake3:").unwrap_or(sha);
    if hex.is_empty() {
        return "?";
    }
    hex.get(..12).unwrap_or(hex)
}

/// A bench step's `summary.json`: one row per concurrency level, sorted by concurrency.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchSummary {
    /// Provenance of the sweep.
    #[serde(default)]
    pub metadata: ResultMetadata,
    /// One entry per concurrency level.
    pub levels: Vec<BenchLevel>,
}

/// One concurrency level of a bench sweep (vLLM `--save-result` key names).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BenchLevel {
    /// Maximum concurrent requests the client kept in flight.
    pub max_concurrency: u32,
    /// Requests that completed.
    pub completed: u64,
    /// Requests that failed.
    pub failed: u64,
    /// Wall time of the level in seconds.
    pub duration: f64,
    /// Prompt tokens over the level.
    pub total_input_tokens: u64,
    /// Generated tokens over the level.
    pub total_output_tokens: u64,
    /// Completed requests per second.
    pub request_throughput: Option<f64>,
    /// Generated tokens per second.
    pub output_throughput: Option<f64>,
    /// Prompt plus generated tokens per second.
    pub total_token_throughput: Option<f64>,
    /// Median time to first token (ms).
    pub median_ttft_ms: Option<f64>,
    /// 99th percentile time to first token (ms).
    pub p99_ttft_ms: Option<f64>,
    /// Median time per output token after the first (ms).
    pub median_tpot_ms: Option<f64>,
    /// 99th percentile time per output token (ms).
    pub p99_tpot_ms: Option<f64>,
    /// Whether the client kept its send schedule.
    pub client_kept_up: Option<bool>,
    /// Failed requests by class (`{}` in summaries written before the classes existed; the
    /// older `{message: count}` shape of level files is read too).
    pub errors: ErrorBreakdown,
    /// The level's full result file, relative to the summary.
    pub file: String,
}

/// The eval step's `retention.json`: candidate quality as a share of the baseline's.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Retention {
    /// Provenance of the comparison.
    #[serde(default)]
    pub metadata: ResultMetadata,
    /// Baseline label (`bf16`).
    pub baseline: String,
    /// Candidate label (`awq`).
    pub candidate: String,
    /// One row per task.
    pub tasks: Vec<RetentionTask>,
    /// Means over tasks.
    pub summary: RetentionSummary,
}

/// Retention on one task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RetentionTask {
    /// lm-eval task name.
    pub task: String,
    /// Metric key.
    pub metric: String,
    /// Baseline score.
    pub baseline: f64,
    /// Baseline standard error.
    pub baseline_stderr: Option<f64>,
    /// Candidate score.
    pub candidate: f64,
    /// Candidate standard error.
    pub candidate_stderr: Option<f64>,
    /// candidate / baseline.
    pub retention: f64,
    /// Standard error of the retention ratio.
    pub retention_stderr: Option<f64>,
    /// (candidate - baseline) in percentage points.
    pub delta_points: f64,
}

/// Retention means over tasks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RetentionSummary {
    /// Mean retention over tasks.
    pub mean_retention: f64,
    /// Its standard error.
    pub mean_retention_stderr: Option<f64>,
    /// Mean delta in percentage points.
    pub mean_delta_points: f64,
}

fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &'static str,
) -> Result<T, InputError> {
    let bytes = std::fs::read(path).map_err(|source| InputError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| InputError::Parse {
        path: path.to_path_buf(),
        what,
        source,
    })
}

/// Reads a bench `summary.json` and checks every level has positive, finite throughputs.
pub fn read_bench_summary(path: &Path) -> Result<BenchSummary, InputError> {
    let summary: BenchSummary = read_json(path, "bench summary.json")?;
    if summary.levels.is_empty() {
        return Err(InputError::BadFigure {
            path: path.to_path_buf(),
            field: "levels".into(),
            problem: "empty".into(),
            hint: "the bench sweep recorded no concurrency level; rerun the bench step",
        });
    }
    for (index, level) in summary.levels.iter().enumerate() {
        for (name, value) in [
            ("output_throughput", level.output_throughput),
            ("total_token_throughput", level.total_token_throughput),
        ] {
            positive(path, &format!("levels[{index}].{name}"), value)?;
        }
    }
    Ok(summary)
}

/// Reads the eval step's `retention.json`.
pub fn read_retention(path: &Path) -> Result<Retention, InputError> {
    read_json(path, "retention.json")
}

/// Checks that a figure is present, finite and above zero.
pub fn positive(path: &Path, field: &str, value: Option<f64>) -> Result<f64, InputError> {
    let problem = match value {
        None => "missing".to_string(),
        Some(v) if !v.is_finite() || v <= 0.0 => format!("{v}, but must be above zero"),
        Some(v) => return Ok(v),
    };
    Err(InputError::BadFigure {
        path: path.to_path_buf(),
        field: field.to_string(),
        problem,
        hint: "a level with no measured throughput cannot be priced; check the bench step's log",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caption_names_the_driver_and_both_cuda_versions() {
        let meta: ResultMetadata = serde_json::from_value(serde_json::json!({
            "profile": "a5000",
            "date": "2026-12-01T10:00:00Z",
            "gpu": {"name": "NVIDIA RTX A5000", "memory_mib": 24564, "driver": "570.124.06", "cuda_driver": "12.8"},
            "engine": {"name": "vllm", "version": "0.19.1", "torch": "2.10.0+cu128", "cuda": "12.8"},
            "model": {"sha": "0123456789abcdef"}
        }))
        .expect("metadata parses");
        let caption = meta.caption();
        assert!(
            caption.contains(
                "NVIDIA RTX A5000, driver 570.124.06 (CUDA 12.8) | vllm 0.19.1 on CUDA 12.8"
            ),
            "{caption}"
        );
        assert!(caption.contains("model sha 0123456789ab |"), "{caption}");
        assert_eq!(short_sha("blake3:47647a1b2c3d4e5f6"), "47647a1b2c3d");
        assert_eq!(short_sha("blake3:"), "?");
        let round_trip = serde_json::to_value(&meta).expect("serializes");
        assert_eq!(round_trip["engine"]["torch"], "2.10.0+cu128");
        assert_eq!(round_trip["gpu"]["cuda_driver"], "12.8");
    }

    #[test]
    fn summary_levels_read_error_classes_old_and_new() {
        let summary: BenchSummary = serde_json::from_value(serde_json::json!({"levels": [
            {"max_concurrency": 1, "file": "c1.json"},
            {"max_concurrency": 4, "file": "c4.json",
             "errors": {"http 500": {"count": 3, "example": "HTTP 500 Internal Server Error: x"}}},
            {"max_concurrency": 8, "file": "c8.json",
             "errors": {"stream stalled: no data for 60.0 s": 2}}
        ]}))
        .expect("summary parses");
        assert!(
            summary.levels[0].errors.is_empty(),
            "absent in older summaries"
        );
        assert_eq!(summary.levels[1].errors.0["http 500"].count, 3);
        assert_eq!(summary.levels[2].errors.0["stalled"].count, 2);
    }
}
