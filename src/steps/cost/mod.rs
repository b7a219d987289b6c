//! The built-in `cost` step: $/1M tokens self-hosted (per level, at the peak, at the SLO level,
//! across utilizations) against dated API prices, with break-even volumes. See `docs/cost.md`.

pub mod build;
pub mod gpu;
pub mod inputs;
pub mod math;
pub mod pricing;
pub mod settings;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

pub use crate::results::cost::CostReport;
pub use settings::CostSettings;

use crate::results::cost::CostMetadata;
use crate::results::metadata::Metadata;
use crate::steps::bench::uncertainty::{BenchIntervals, IntervalsError};
use crate::steps::io::{Provenance, StepIo};
use build::LoadedInputs;
use inputs::InputError;
use pricing::PricingError;

/// An error of the cost step.
#[derive(Debug, thiserror::Error)]
pub enum CostError {
    /// A setting has a value the model cannot use.
    #[error("cost step `{step}`: setting `{field}` is {problem}")]
    Setting {
        /// The step id.
        step: String,
        /// The settings key.
        field: String,
        /// What is wrong.
        problem: String,
    },
    /// A bench or retention file is missing or unusable.
    #[error(transparent)]
    Input(#[from] InputError),
    /// A pricing file is missing or unusable.
    #[error(transparent)]
    Pricing(#[from] PricingError),
    /// A bench's `intervals.json` exists but is unusable.
    #[error(transparent)]
    Intervals(#[from] IntervalsError),
    /// The bench results were measured on another GPU than the one priced.
    #[error(
        "cost step `{step}`: `{file}` ({label}) was measured on {measured}, but the price is for {priced}\nhint: price the GPU that was measured (`gpu_name` and `gpu_hourly_usd` in the profile), or declare the profile a rehearsal (`rehearsal = true`) if these figures are not meant to decide anything"
    )]
    GpuMismatch {
        /// The step id.
        step: String,
        /// The bench label.
        label: String,
        /// The bench summary file.
        file: String,
        /// What the results were measured on.
        measured: String,
        /// The GPU that was priced.
        priced: String,
    },
    /// The step was given no output path.
    #[error(
        "cost step `{0}` declares no output\nhint: add `outputs = [\"results/<profile>/cost\"]` to the step"
    )]
    NoOutput(String),
    /// An output file could not be written.
    #[error("cannot write `{path}`: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Runs the cost step: reads the inputs named in `settings`, writes `cost.json` and
/// `comparison.json` into the directory `io.outputs[0]`, and returns what it wrote.
pub async fn run_step(s: &CostSettings, io: &StepIo) -> Result<CostReport, CostError> {
    let out_dir = io
        .outputs
        .first()
        .ok_or_else(|| CostError::NoOutput(io.step_id.clone()))?;
    s.validate()
        .map_err(|(field, problem)| CostError::Setting {
            step: io.step_id.clone(),
            field,
            problem,
        })?;
    let loaded = load(s, &io.workspace)?;
    if !s.rehearsal
        && let Some(m) = gpu::first_mismatch(&s.gpu.name, &loaded.bench)
    {
        return Err(CostError::GpuMismatch {
            step: io.step_id.clone(),
            label: m.label,
            file: m.file,
            measured: m.measured,
            priced: s.gpu.name.clone(),
        });
    }
    let candidate_meta = &loaded.bench[&s.candidate].1.metadata.common;
    let metadata = metadata(&io.provenance, candidate_meta, &crate::time::now_rfc3339());
    let report = build::build(s, &loaded, metadata, &format!("settings:{}", io.step_id));
    write_json(out_dir, "cost.json", &report.cost)?;
    write_json(out_dir, "comparison.json", &report.comparison)?;
    log(io, &report);
    Ok(report)
}

/// Loads and checks every input the settings name (paths relative to `workspace`).
pub fn load(s: &CostSettings, workspace: &Path) -> Result<LoadedInputs, CostError> {
    let mut bench = BTreeMap::new();
    let mut intervals = BTreeMap::new();
    for (label, path) in &s.bench {
        let full = workspace.join(path);
        let summary = inputs::read_bench_summary(&full)?;
        // `intervals.json` lies beside `summary.json`; results from before it existed have none.
        let dir = full.parent().unwrap_or(Path::new("."));
        if let Some(i) = BenchIntervals::read(dir)? {
            intervals.insert(label.clone(), i);
        }
        if label == &s.candidate {
            let output: u64 = summary.levels.iter().map(|l| l.total_output_tokens).sum();
            if output == 0 {
                return Err(InputError::BadFigure {
                    path: full,
                    field: "levels[*].total_output_tokens".into(),
                    problem: "0 over the whole sweep".into(),
                    hint: "the input:output ratio needs generated tokens; check the bench step",
                }
                .into());
            }
        }
        bench.insert(label.clone(), (path.display().to_string(), summary));
    }
    let retention = match &s.retention {
        Some(path) => Some((
            path.display().to_string(),
            inputs::read_retention(&workspace.join(path))?,
        )),
        None => None,
    };
    let files = pricing::expand(workspace, &s.pricing)?;
    let prices = pricing::select(pricing::load(workspace, &files)?, s.apis.as_deref())?;
    Ok(LoadedInputs {
        bench,
        retention,
        prices,
        pricing_files: files.iter().map(|f| f.display().to_string()).collect(),
        intervals,
    })
}

/// The `metadata` object of both files: the run's provenance plus the candidate's hardware,
/// engine and model as its bench summary recorded them.
pub fn metadata(p: &Provenance, bench: &Metadata, date: &str) -> CostMetadata {
    CostMetadata {
        common: Metadata {
            forge_version: p.forge_version.clone(),
            profile: p.profile.clone(),
            manifest_digest: p.manifest_digest.clone(),
            profile_digest: p.profile_digest.clone(),
            date: date.to_string(),
            ..bench.clone()
        },
        bench_date: bench.date.clone(),
    }
}

fn write_json<T: serde::Serialize>(dir: &Path, name: &str, value: &T) -> Result<(), CostError> {
    let path = dir.join(name);
    crate::results::write_json(&path, value).map_err(|source| CostError::Write { path, source })
}

fn log(io: &StepIo, report: &CostReport) {
    let c = &report.comparison;
    let h = &c.self_hosted.headline;
    let mut line = format!(
        "cost: {} on {} at ${}/h: ${:.4}/1M output, ${:.4}/1M total at c={} (peak, utilization {})\n",
        c.candidate,
        c.gpu_name,
        c.gpu_hourly_usd,
        h.usd_per_1m_output,
        h.usd_per_1m_total,
        h.max_concurrency,
        h.utilization
    );
    for api in &c.apis {
        if let Some(b) = &api.break_even {
            line.push_str(&format!(
                "cost: vs {}: ${:.4}/1M blended, break-even {:.1}M tokens/month (reachable: {})\n",
                api.model,
                api.blended_usd_per_1m_total,
                b.tokens_per_month / 1e6,
                b.reachable
            ));
        }
    }
    // The log is best effort: a failed append must not fail a step whose results are written.
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&io.log)
    {
        let _ = file.write_all(line.as_bytes());
    }
}

#[cfg(test)]
pub(crate) mod testkit;

#[cfg(test)]
mod tests;
