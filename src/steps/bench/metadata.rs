//! The `metadata` object of every bench result: the shared keys ([`crate::steps::metadata`]:
//! provenance, host hardware, engine, model), then the driver, the endpoint and the workload.

use serde::Serialize;

use super::settings::BenchSettings;
use super::sweep::SweepContext;
use super::tokenize::TokenCounter;
use crate::steps::metadata::{self, HostFacts, Metadata};

/// Shared result metadata (schema in the brief; bench extras at the end).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BenchMetadata {
    /// The shared keys (`forge_version` ... `model`); `date` is when the sweep started, host
    /// facts are the client host's.
    #[serde(flatten)]
    pub common: Metadata,
    /// `native` or `vllm`.
    pub driver: String,
    /// Server base URL.
    pub base_url: String,
    /// Route driven (`/v1/completions` or `/v1/chat/completions`).
    pub endpoint: String,
    /// The workload every level sent.
    pub workload: Workload,
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

/// The sweep's metadata: provenance, hardware, engine, model and workload.
pub async fn build(
    settings: &BenchSettings,
    ctx: &SweepContext,
    counter: &TokenCounter,
    fp: String,
) -> BenchMetadata {
    let mut common = Metadata::new(&ctx.provenance, &HostFacts::gather().await);
    let service = ctx.service.as_ref();
    common.engine = metadata::engine(service, &ctx.base).await;
    common.model = Some(metadata::model(
        &ctx.model,
        settings.label.as_deref(),
        service,
    ));
    BenchMetadata {
        common,
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
        common: Metadata::pending(),
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
