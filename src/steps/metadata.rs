//! The shared `metadata` object at the top of every result file (schema in `docs/results.md`):
//! provenance, host facts (host name, CPU model from [`crate::host`], GPU from `nvidia-smi`),
//! the serving engine (service fact, else `GET /version`) and the model (service facts).
//! The types themselves live in [`crate::results::metadata`]; each kind flattens [`Metadata`]
//! into its own metadata type and appends its extra keys.

use std::time::Duration;

pub use crate::results::metadata::{EngineInfo, GpuInfo, Metadata, ModelInfo, WeightsInfo};
use crate::steps::io::{Provenance, ServiceInfo};

/// Facts about the machine, gathered once per step (injected in tests).
#[derive(Debug, Clone, PartialEq)]
pub struct HostFacts {
    /// RFC 3339 UTC time, whole seconds.
    pub date: String,
    /// Host name.
    pub host: String,
    /// CPU model name.
    pub cpu: String,
    /// GPU, when `nvidia-smi` answers.
    pub gpu: Option<GpuInfo>,
}

impl HostFacts {
    /// Reads the clock, the host name, the CPU model and `nvidia-smi`.
    pub async fn gather() -> Self {
        Self {
            date: crate::time::now_rfc3339(),
            host: host_name(),
            cpu: crate::host::Host::cpu_model(),
            gpu: nvidia_smi().await,
        }
    }
}

impl Metadata {
    /// Provenance plus host facts; engine and model are filled by the caller. An empty
    /// provenance (an ad-hoc run without a manifest) gets this binary's version and profile
    /// `default`.
    pub fn new(provenance: &Provenance, host: &HostFacts) -> Self {
        let or = |value: &str, default: &str| {
            if value.is_empty() {
                default.to_string()
            } else {
                value.to_string()
            }
        };
        Self {
            forge_version: or(&provenance.forge_version, env!("CARGO_PKG_VERSION")),
            profile: or(&provenance.profile, "default"),
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

    /// All keys empty or `null`: a placeholder until the real metadata is attached.
    pub fn pending() -> Self {
        Self {
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
        }
    }
}

/// `/proc/sys/kernel/hostname` (Linux), else `gethostname` (macOS), else `$HOSTNAME`, else
/// `unknown`.
fn host_name() -> String {
    read_trimmed("/proc/sys/kernel/hostname")
        .or_else(system_host_name)
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "unknown".to_string())
}

fn read_trimmed(path: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// `gethostname(3)`.
fn system_host_name() -> Option<String> {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is valid for its length; the result is NUL-terminated within it when the
    // call succeeds (the last byte stays 0 for a name that fills it).
    let status = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len() - 1) };
    if status != 0 {
        return None;
    }
    let name = std::ffi::CStr::from_bytes_until_nul(&buffer).ok()?;
    let name = name.to_string_lossy().trim().to_string();
    (!name.is_empty()).then_some(name)
}

/// Parses one `nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader`
/// line (`NVIDIA RTX A5000, 24564 MiB, 550.54.15`; the unit is optional).
pub fn parse_nvidia_smi(line: &str) -> Option<GpuInfo> {
    let mut fields = line.split(',').map(str::trim);
    let name = fields.next()?.to_string();
    let memory_mib = fields.next()?.trim_end_matches("MiB").trim().parse().ok()?;
    let driver = fields.next()?.to_string();
    (!name.is_empty()).then_some(GpuInfo {
        name,
        memory_mib,
        driver,
        cuda_driver: None,
    })
}

/// The first GPU from `nvidia-smi` (10 s at most); `None` without one.
async fn nvidia_smi() -> Option<GpuInfo> {
    let query = tokio::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,memory.total,driver_version",
            "--format=csv,noheader",
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
    let mut gpu = parse_nvidia_smi(String::from_utf8_lossy(&output.stdout).lines().next()?)?;
    let header = tokio::process::Command::new("nvidia-smi")
        .kill_on_drop(true)
        .output();
    if let Ok(Ok(output)) = tokio::time::timeout(Duration::from_secs(10), header).await {
        gpu.cuda_driver = driver_cuda(&String::from_utf8_lossy(&output.stdout));
    }
    Some(gpu)
}

/// The `CUDA Version: 12.8` of `nvidia-smi`'s header, as text (preflight's parser).
pub fn driver_cuda(header: &str) -> Option<String> {
    crate::preflight::gpu::parse_driver_cuda(header).map(|cuda| cuda.to_string())
}

/// A string fact a service published (`served_name`, `model_id`, `model_sha`,
/// `engine_version` ...); numbers are written as text, anything else is ignored.
pub fn fact(service: Option<&ServiceInfo>, key: &str) -> Option<String> {
    match service?.facts.get(key)? {
        serde_json::Value::String(text) if !text.is_empty() => Some(text.clone()),
        serde_json::Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// The model served as `served_name`, with its id and SHA from the service's facts.
pub fn model(served_name: &str, label: Option<&str>, service: Option<&ServiceInfo>) -> ModelInfo {
    ModelInfo {
        served_name: served_name.to_string(),
        id: fact(service, "model_id"),
        sha: fact(service, "model_sha"),
        label: label.map(str::to_string),
        weights: weights(service),
        source: service.and_then(|s| {
            crate::steps::model_source::summary(
                s.facts.get("model_source"),
                s.facts.get("model_quantization"),
            )
        }),
    }
}

/// The `weights` record of the service's `model_source` fact (the model's `forge-model.json`).
fn weights(service: Option<&ServiceInfo>) -> Option<WeightsInfo> {
    let record = service?.facts.get("model_source")?.get("weights")?;
    serde_json::from_value(record.clone()).ok()
}

/// The engine from the service's facts (`engine_version`, optional `engine`), else from the
/// server's `GET {base_url}/version` (vLLM answers `{"version": "0.32.0"}`; 5 s at most).
pub async fn engine(service: Option<&ServiceInfo>, base_url: &str) -> Option<EngineInfo> {
    let torch = fact(service, "engine_torch");
    let cuda = fact(service, "engine_cuda");
    if let Some(version) = fact(service, "engine_version") {
        let name = fact(service, "engine").unwrap_or_else(|| "vllm".to_string());
        return Some(EngineInfo {
            name,
            version,
            torch,
            cuda,
        });
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
        torch,
        cuda,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvidia_smi_line_with_or_without_unit() {
        let gpu = GpuInfo {
            name: "NVIDIA RTX A5000".into(),
            memory_mib: 24564,
            driver: "550.54.15".into(),
            cuda_driver: None,
        };
        assert_eq!(
            parse_nvidia_smi("NVIDIA RTX A5000, 24564 MiB, 550.54.15"),
            Some(gpu.clone())
        );
        assert_eq!(
            parse_nvidia_smi("NVIDIA RTX A5000, 24564, 550.54.15"),
            Some(gpu)
        );
        assert!(parse_nvidia_smi("garbage").is_none());
        assert!(parse_nvidia_smi(", 1 MiB, 1").is_none());
    }

    #[test]
    fn gethostname_is_the_name_linux_keeps_in_proc() {
        let name = system_host_name().expect("gethostname");
        assert!(!name.is_empty());
        #[cfg(target_os = "linux")]
        assert_eq!(
            Some(name),
            read_trimmed("/proc/sys/kernel/hostname"),
            "macOS reads the same name through gethostname"
        );
    }

    fn service() -> ServiceInfo {
        let mut service = ServiceInfo::default();
        for (key, value) in [
            ("served_name", serde_json::json!("smollm2")),
            ("engine_version", serde_json::json!(32)),
            ("model_id", serde_json::json!("org/model")),
            ("model_sha", serde_json::json!(["x"])),
        ] {
            service.facts.insert(key.into(), value);
        }
        service
    }

    #[test]
    fn facts_accept_strings_and_numbers_only() {
        let service = service();
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

    #[test]
    fn model_takes_id_and_sha_from_facts() {
        let info = model("smollm2", Some("bf16"), Some(&service()));
        assert_eq!(info.id.as_deref(), Some("org/model"));
        assert_eq!(info.sha, None);
        assert_eq!(info.label.as_deref(), Some("bf16"));
        assert_eq!(model("m", None, None).label, None);
        assert_eq!(info.weights, None);
    }

    #[test]
    fn model_names_how_its_weights_were_served() {
        let mut service = service();
        service.facts.insert(
            "model_source".into(),
            serde_json::json!({"weights": {"format": "bf16-dequantized", "reason": "no AVX-512", "layers_checked": 210}}),
        );
        let weights = model("smollm2", Some("awq"), Some(&service))
            .weights
            .expect("forge-model.json names the weights");
        assert_eq!(weights.format, "bf16-dequantized");
        assert!(weights.describe().contains("dequantized to BF16"));
        assert!(weights.describe().contains("no AVX-512"));
    }

    #[test]
    fn model_source_comes_from_the_model_directory_records() {
        let mut service = service();
        assert_eq!(model("m", None, Some(&service)).source, None);
        service.facts.insert(
            "model_source".into(),
            serde_json::json!({"source": {"kind": "hub", "id": "org/model", "revision": "0123456789abcdef0123456789abcdef01234567"}}),
        );
        assert_eq!(
            model("m", None, Some(&service)).source.as_deref(),
            Some("hub org/model@0123456789abcdef0123456789abcdef01234567")
        );
    }

    #[tokio::test]
    async fn engine_prefers_the_service_fact() {
        let info = engine(Some(&service()), "http://127.0.0.1:9").await;
        assert_eq!(
            info,
            Some(EngineInfo {
                name: "vllm".into(),
                version: "32".into(),
                torch: None,
                cuda: None,
            })
        );
    }

    #[test]
    fn the_drivers_cuda_comes_from_the_header() {
        let header =
            "| NVIDIA-SMI 570.124.06   Driver Version: 570.124.06   CUDA Version: 12.8     |";
        assert_eq!(driver_cuda(header).as_deref(), Some("12.8"));
        assert_eq!(driver_cuda("No devices were found"), None);
        assert_eq!(driver_cuda("CUDA Version: N/A"), None);
    }

    #[test]
    fn empty_provenance_gets_defaults() {
        let host = HostFacts {
            date: "2026-11-28T12:00:00Z".into(),
            host: "h".into(),
            cpu: "c".into(),
            gpu: None,
        };
        let meta = Metadata::new(&Provenance::default(), &host);
        assert_eq!(meta.profile, "default");
        assert_eq!(meta.forge_version, env!("CARGO_PKG_VERSION"));
        assert_eq!(meta.host, "h");
    }
}
