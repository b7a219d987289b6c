//! The `metadata` object at the top of `scores.json` and `retention.json` (BRIEF schema), and
//! how the eval step learns the host, the engine and the model it measured.

use std::time::Duration;

use crate::steps::io::{Provenance, ServiceInfo};

/// Shared provenance of a result file.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct Metadata {
    /// `CARGO_PKG_VERSION` of the forge binary that wrote the file.
    pub forge_version: String,
    /// The profile the run resolved.
    pub profile: String,
    /// blake3 of the manifest file's bytes.
    pub manifest_digest: String,
    /// blake3 of the profile chain's bytes.
    pub profile_digest: String,
    /// When the file was written, RFC 3339 UTC.
    pub date: String,
    /// Host name of the machine that ran the step.
    pub host: String,
    /// The GPU the host has, `null` on a CPU-only host.
    pub gpu: Option<GpuInfo>,
    /// CPU model name (`/proc/cpuinfo`).
    pub cpu: String,
    /// The serving engine measured, `null` when unknown.
    pub engine: Option<EngineInfo>,
    /// The model measured, `null` for files comparing two models.
    pub model: Option<ModelInfo>,
}

/// A GPU as `nvidia-smi` reports it.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct GpuInfo {
    /// Product name (`NVIDIA RTX A5000`).
    pub name: String,
    /// Total memory in MiB.
    pub memory_mib: u64,
    /// Driver version.
    pub driver: String,
}

/// The serving engine.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct EngineInfo {
    /// Engine name (`vllm`).
    pub name: String,
    /// Engine version (`0.32.0`).
    pub version: String,
}

/// The model a result is about.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct ModelInfo {
    /// Name the server serves it under (`smollm2`).
    pub served_name: String,
    /// Model id (hub id or local path), from the service's `model_id` fact.
    pub id: Option<String>,
    /// Revision SHA or weights digest, from the service's `model_sha` fact.
    pub sha: Option<String>,
    /// The step's label (`bf16`, `awq`).
    pub label: String,
}

/// Facts about the machine, gathered once per step (injected in tests).
#[derive(Debug, Clone, PartialEq)]
pub struct HostFacts {
    /// RFC 3339 UTC time.
    pub date: String,
    /// Host name.
    pub host: String,
    /// CPU model name.
    pub cpu: String,
    /// GPU, when `nvidia-smi` answers.
    pub gpu: Option<GpuInfo>,
}

impl HostFacts {
    /// Reads the clock, `/proc/sys/kernel/hostname`, `/proc/cpuinfo` and `nvidia-smi`.
    pub async fn gather() -> Self {
        let date = jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .map_or_else(
                |_| jiff::Timestamp::now().to_string(),
                |now| now.to_string(),
            );
        let host =
            read_trimmed("/proc/sys/kernel/hostname").unwrap_or_else(|| "unknown".to_string());
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| cpu_model(&text))
            .unwrap_or_else(|| std::env::consts::ARCH.to_string());
        Self {
            date,
            host,
            cpu,
            gpu: nvidia_smi().await,
        }
    }
}

impl Metadata {
    /// Provenance plus host facts; engine and model are filled by the caller.
    pub fn new(provenance: &Provenance, host: &HostFacts) -> Self {
        Self {
            forge_version: provenance.forge_version.clone(),
            profile: provenance.profile.clone(),
            manifest_digest: provenance.manifest_digest.clone(),
            profile_digest: provenance.profile_digest.clone(),
            date: host.date.clone(),
            host: host.host.clone(),
            gpu: host.gpu.clone(),
            cpu: host.cpu.clone(),
            engine: None,
            model: None,
        }
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split_once(':'))
        .map(|(_, name)| name.trim().to_string())
}

/// `nvidia-smi --query-gpu=name,memory.total,driver_version`; `None` without a GPU.
async fn nvidia_smi() -> Option<GpuInfo> {
    let query = tokio::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,memory.total,driver_version",
            "--format=csv,noheader,nounits",
        ])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(10), query)
        .await
        .ok()?
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut fields = text.lines().next()?.split(',').map(str::trim);
    Some(GpuInfo {
        name: fields.next()?.to_string(),
        memory_mib: fields.next()?.parse().ok()?,
        driver: fields.next()?.to_string(),
    })
}

/// A string fact a service published (`served_name`, `model_sha` ...).
pub fn fact(service: Option<&ServiceInfo>, key: &str) -> Option<String> {
    match service?.facts.get(key)? {
        serde_json::Value::String(text) if !text.is_empty() => Some(text.clone()),
        serde_json::Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// The engine from the service's facts (`engine_version`, optional `engine`), else from the
/// server's `GET /version` (vLLM answers `{"version": "0.32.0"}`).
pub async fn engine(service: Option<&ServiceInfo>, base_url: &str) -> Option<EngineInfo> {
    if let Some(version) = fact(service, "engine_version") {
        let name = fact(service, "engine").unwrap_or_else(|| "vllm".to_string());
        return Some(EngineInfo { name, version });
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?;
    let response = client
        .get(format!("{base_url}/version"))
        .send()
        .await
        .ok()?;
    let body: serde_json::Value = response.error_for_status().ok()?.json().await.ok()?;
    let version = body.get("version")?.as_str()?.to_string();
    Some(EngineInfo {
        name: "vllm".to_string(),
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_model_reads_the_first_model_name() {
        let text = "processor\t: 0\nmodel name\t: AMD EPYC\nflags: x\nmodel name\t: other\n";
        assert_eq!(cpu_model(text).as_deref(), Some("AMD EPYC"));
        assert_eq!(cpu_model("processor: 0\n"), None);
    }

    #[test]
    fn facts_accept_strings_and_numbers_only() {
        let mut service = ServiceInfo::default();
        service
            .facts
            .insert("served_name".into(), serde_json::json!("smollm2"));
        service
            .facts
            .insert("engine_version".into(), serde_json::json!(32));
        service
            .facts
            .insert("model_sha".into(), serde_json::json!(["x"]));
        assert_eq!(
            fact(Some(&service), "served_name").as_deref(),
            Some("smollm2")
        );
        assert_eq!(
            fact(Some(&service), "engine_version").as_deref(),
            Some("32")
        );
        assert_eq!(fact(Some(&service), "model_sha"), None);
        assert_eq!(fact(None, "served_name"), None);
    }
}
