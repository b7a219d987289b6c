//! Reading the result files the decision steps (cost, charts, report) consume: a bench
//! `summary.json` and the eval `retention.json`, through their types in [`crate::results`].
//! Reading is lenient about extra keys (other steps may add fields) and strict about the figures
//! the decision math needs.

use std::path::{Path, PathBuf};

use crate::results::ReadError;
use crate::results::bench::BenchSummary;
use crate::results::eval::Retention;

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
    /// The file is not the JSON its type expects, or has a schema version this Forge does not
    /// know.
    #[error(transparent)]
    Invalid(ReadError),
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

/// Reads a bench `summary.json` and checks every level has positive, finite throughputs.
pub fn read_bench_summary(path: &Path) -> Result<BenchSummary, InputError> {
    let summary: BenchSummary = read(path)?;
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
    read(path)
}

/// Reads a result file; an absent or unreadable file keeps the "run the step first" hint.
fn read<T: crate::results::Versioned>(path: &Path) -> Result<T, InputError> {
    crate::results::read_json(path).map_err(|error| match error {
        ReadError::Read { path, source } => InputError::Read { path, source },
        other => InputError::Invalid(other),
    })
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
