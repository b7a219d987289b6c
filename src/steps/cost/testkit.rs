//! Test helpers shared by the decision steps' tests: a `StepIo` over the crate root as workspace.

use std::path::{Path, PathBuf};

use crate::steps::io::{Provenance, StepIo};

/// The crate root, used as the workspace so fixture and `pricing/` paths resolve.
pub fn crate_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A `StepIo` whose outputs are `outputs` and whose log lives in `scratch`.
pub fn step_io(step_id: &str, scratch: &Path, outputs: Vec<PathBuf>) -> StepIo {
    StepIo {
        step_id: step_id.to_string(),
        workspace: crate_root(),
        outputs,
        log: scratch.join("step.log"),
        services: Default::default(),
        provenance: Provenance {
            profile: "m1-rehearsal".into(),
            manifest_digest: "9f1c2e6a7b3d4c5e".into(),
            profile_digest: "4be0a1d2c3f4e5d6".into(),
            forge_version: "0.1.0".into(),
        },
        cancel: Default::default(),
        progress: indicatif::ProgressBar::hidden(),
    }
}

/// Cost settings for the m1-rehearsal fixtures, as a manifest would write them.
pub const REHEARSAL_COST_TOML: &str = r#"
bench = { awq = "tests/fixtures/results/m1-rehearsal/bench/awq/summary.json", bf16 = "tests/fixtures/results/m1-rehearsal/bench/bf16/summary.json" }
candidate = "awq"
retention = "tests/fixtures/results/m1-rehearsal/eval/retention.json"
pricing = ["pricing"]
apis = ["gpt-4o-mini", "gpt-4.1-nano", "claude-3-haiku", "groq/llama-3.1-8b-instant"]
gpu = { name = "RTX A5000", hourly_usd = 0.468, price_product = "serverless-active", price_source = "https://docs.runpod.io/serverless/pricing", price_date = "2026-07-01", price_tiers = [{ product = "on-demand-pod", hourly_usd = 0.27, source = "https://docs.runpod.io/pods/pricing", date = "2026-12-01", note = "confirm on the console" }], memory_bandwidth_gbs = 768.0 }
slo = { p99_ttft_ms = 500.0, p99_tpot_ms = 30.0 }
rehearsal = true
"#;
