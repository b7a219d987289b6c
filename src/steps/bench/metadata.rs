//! The `metadata` object of every bench result: the shared keys ([`crate::steps::metadata`]:
//! provenance, host hardware, engine, model), then the driver, the endpoint and the workload.

use super::settings::BenchSettings;
use super::sweep::SweepContext;
use super::tokenize::TokenCounter;
pub use crate::results::bench::{BenchMetadata, Workload};
use crate::steps::metadata::{self, HostFacts, Metadata};

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
