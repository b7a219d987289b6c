//! The `metadata` object of every bench result: provenance, host hardware (GPU from
//! `nvidia-smi`, CPU model from `/proc/cpuinfo`), engine version (`GET /version`), model
//! identity and the workload.

use serde::Serialize;

use super::settings::BenchSettings;
use super::sweep::SweepContext;
use super::tokenize::TokenCounter;
use crate::steps::io::{Provenance, ServiceInfo};

/// Shared result metadata (schema in the brief; bench extras at the end).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BenchMetadata {
    /// Forge's version.
    pub forge_version: String,
    /// Profile the run resolved.
    pub profile: String,
    /// blake3 of the manifest.
    pub manifest_digest: String,
    /// blake3 of the profile chain.
    pub profile_digest: String,
    /// When the sweep started (RFC 3339, UTC).
    pub date: String,
    /// Host name of the machine running the client.
    pub host: String,
    /// First GPU of the client host, `null` when `nvidia-smi` is absent.
    pub gpu: Option<Gpu>,
    /// CPU model name of the client host.
    pub cpu: String,
    /// Serving engine, from `GET /version` (`null` when the server has no such route).
    pub engine: Option<Engine>,
    /// The model under test.
    pub model: Option<ModelInfo>,
    /// `native` or `vllm`.
    pub driver: String,
    /// Server base URL.
    pub base_url: String,
    /// Route driven (`/v1/completions` or `/v1/chat/completions`).
    pub endpoint: String,
    /// The workload every level sent.
    pub workload: Workload,
}

/// A GPU as `nvidia-smi` reports it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Gpu {
    /// Product name.
    pub name: String,
    /// Total memory in MiB.
    pub memory_mib: u64,
    /// Driver version.
    pub driver: String,
}

/// Serving engine.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Engine {
    /// Engine name (`vllm`).
    pub name: String,
    /// Engine version (`0.32.0`).
    pub version: String,
}

/// Model identity.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ModelInfo {
    /// Name the server serves the model under.
    pub served_name: String,
    /// Model id (Hugging Face id or path) from the service fact `model_id`.
    pub id: Option<String>,
    /// Weights digest or HF revision from the service fact `model_sha`.
    pub sha: Option<String>,
    /// The bench step's label.
    pub label: Option<String>,
}

/// What was sent, reproducibly.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Workload {
    /// Dataset kind.
    pub dataset: String,
    /// Dataset file, when there is one.
    pub path: Option<String>,
    /// Sampling seed.
    pub seed: u64,
    /// Requests per level.
    pub num_prompts: u64,
    /// How prompt tokens were counted while sampling.
    pub token_counter: String,
    /// blake3 of the prompts and their lengths (same value = same prompts).
    pub prompts_fingerprint: String,
    /// Fixed `max_tokens`, if any.
    pub max_tokens: Option<u32>,
    /// Whether `ignore_eos` was sent.
    pub ignore_eos: bool,
    /// Temperature sent, if any.
    pub temperature: Option<f64>,
    /// `closed` or `open`.
    pub mode: String,
    /// Open-loop rate, requests per second.
    pub request_rate: Option<f64>,
    /// Open-loop gamma shape.
    pub burstiness: f64,
    /// Warmup requests per level.
    pub warmup: u32,
}

/// Parse one `nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader` line.
pub fn parse_nvidia_smi(line: &str) -> Option<Gpu> {
    let mut parts = line.split(',').map(str::trim);
    let name = parts.next()?.to_string();
    let memory = parts.next()?.trim_end_matches("MiB").trim().parse().ok()?;
    let driver = parts.next()?.to_string();
    (!name.is_empty()).then_some(Gpu {
        name,
        memory_mib: memory,
        driver,
    })
}

/// The first GPU, or `None` without `nvidia-smi`.
pub async fn gpu() -> Option<Gpu> {
    let out = tokio::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,memory.total,driver_version",
            "--format=csv,noheader",
        ])
        .output()
        .await
        .ok()?;
    out.status.success().then_some(())?;
    parse_nvidia_smi(String::from_utf8_lossy(&out.stdout).lines().next()?)
}

/// CPU model name from `/proc/cpuinfo` (`unknown` elsewhere).
pub fn cpu() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

/// Host name of this machine.
pub fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_string())
}

/// `GET {base}/version` → engine `vllm` with its version.
pub async fn engine(http: &reqwest::Client, base: &str) -> Option<Engine> {
    let v: serde_json::Value = http
        .get(format!("{base}/version"))
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await
        .ok()?
        .error_for_status()
        .ok()?
        .json()
        .await
        .ok()?;
    let version = v.get("version")?.as_str()?.to_string();
    Some(Engine {
        name: "vllm".to_string(),
        version,
    })
}

/// Model identity from the settings and the service's facts.
pub fn model(served_name: &str, label: Option<&str>, service: Option<&ServiceInfo>) -> ModelInfo {
    let fact = |k: &str| {
        service
            .and_then(|s| s.facts.get(k))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    ModelInfo {
        served_name: served_name.to_string(),
        id: fact("model_id"),
        sha: fact("model_sha"),
        label: label.map(str::to_string),
    }
}

/// Provenance fields, with `default` for an ad-hoc run without a profile.
pub fn provenance(p: &Provenance) -> (String, String, String, String) {
    let or = |s: &str, d: &str| {
        if s.is_empty() {
            d.to_string()
        } else {
            s.to_string()
        }
    };
    (
        or(&p.forge_version, env!("CARGO_PKG_VERSION")),
        or(&p.profile, "default"),
        p.manifest_digest.clone(),
        p.profile_digest.clone(),
    )
}

/// The sweep's metadata: provenance, hardware, engine, model and workload.
pub async fn build(
    settings: &BenchSettings,
    ctx: &SweepContext,
    counter: &TokenCounter,
    fp: String,
) -> BenchMetadata {
    let (forge_version, profile, manifest_digest, profile_digest) = provenance(&ctx.provenance);
    let http = reqwest::Client::new();
    BenchMetadata {
        forge_version,
        profile,
        manifest_digest,
        profile_digest,
        date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        host: host(),
        gpu: gpu().await,
        cpu: cpu(),
        engine: engine(&http, &ctx.base).await,
        model: Some(model(
            &ctx.model,
            settings.label.as_deref(),
            ctx.service.as_ref(),
        )),
        driver: format!("{:?}", settings.driver).to_lowercase(),
        base_url: ctx.base.clone(),
        endpoint: settings.endpoint.path().to_string(),
        workload: Workload {
            dataset: format!("{:?}", settings.dataset.kind).to_lowercase(),
            path: settings
                .dataset
                .path
                .as_ref()
                .map(|p| p.display().to_string()),
            seed: settings.seed,
            num_prompts: u64::from(settings.prompts_per_level),
            token_counter: counter.describe(),
            prompts_fingerprint: fp,
            max_tokens: settings.max_tokens,
            ignore_eos: settings.effective_ignore_eos(),
            temperature: settings.temperature,
            mode: if settings.replay_timestamps {
                "trace"
            } else if settings.request_rate.is_some() {
                "open"
            } else {
                "closed"
            }
            .to_string(),
            request_rate: settings.request_rate,
            burstiness: settings.burstiness,
            warmup: settings.warmup,
        },
    }
}

/// Metadata is filled by the sweep once per run; levels are built before it is attached.
pub fn pending() -> BenchMetadata {
    BenchMetadata {
        forge_version: String::new(),
        profile: String::new(),
        manifest_digest: String::new(),
        profile_digest: String::new(),
        date: String::new(),
        host: String::new(),
        gpu: None,
        cpu: String::new(),
        engine: None,
        model: None,
        driver: String::new(),
        base_url: String::new(),
        endpoint: String::new(),
        workload: Workload {
            dataset: String::new(),
            path: None,
            seed: 0,
            num_prompts: 0,
            token_counter: String::new(),
            prompts_fingerprint: String::new(),
            max_tokens: None,
            ignore_eos: false,
            temperature: None,
            mode: String::new(),
            request_rate: None,
            burstiness: 1.0,
            warmup: 0,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvidia_smi_line() {
        let g = parse_nvidia_smi("NVIDIA RTX A5000, 24564 MiB, 550.54.15").unwrap();
        assert_eq!(
            g,
            Gpu {
                name: "NVIDIA RTX A5000".into(),
                memory_mib: 24564,
                driver: "550.54.15".into()
            }
        );
        assert!(parse_nvidia_smi("garbage").is_none());
    }
}
