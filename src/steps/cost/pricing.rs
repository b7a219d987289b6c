//! API price lists: `pricing/*.toml`, one file per provider, each model priced per 1M tokens with
//! the URL the price came from and the date it was checked. Prices are data, never code.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// An error loading price lists.
#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    /// A configured pricing file or directory does not exist.
    #[error(
        "pricing file `{path}` does not exist\nhint: create it (see docs/cost.md for the format) or fix `pricing` in the cost step's settings"
    )]
    Missing {
        /// The missing path.
        path: PathBuf,
    },
    /// A pricing directory holds no `*.toml`.
    #[error("pricing directory `{path}` holds no `*.toml` file")]
    EmptyDir {
        /// The directory.
        path: PathBuf,
    },
    /// A file could not be read.
    #[error("cannot read pricing file `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file is not a valid price list.
    #[error("pricing file `{path}` is invalid: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML error (names line, column and field).
        source: toml::de::Error,
    },
    /// A price is negative or not finite.
    #[error(
        "pricing file `{path}`: `models[{index}].{field}` of `{model}` is {value}, but a price cannot be negative"
    )]
    NegativePrice {
        /// The file.
        path: PathBuf,
        /// The model's position in `models`.
        index: usize,
        /// The model name.
        model: String,
        /// The field.
        field: &'static str,
        /// The value.
        value: f64,
    },
    /// No model left after the `apis` filter.
    #[error("no API model named {wanted:?} in the pricing files\nhint: known models: {known}")]
    UnknownApi {
        /// The names asked for that were not found.
        wanted: Vec<String>,
        /// The names that exist.
        known: String,
    },
}

/// One provider's price file as written on disk.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceFile {
    provider: String,
    models: Vec<PriceEntry>,
}

/// One model's prices as written on disk.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceEntry {
    name: String,
    input_per_1m: f64,
    output_per_1m: f64,
    #[serde(default)]
    cached_input_per_1m: Option<f64>,
    source: String,
    checked: String,
}

/// One API model's list prices with where they came from.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ApiPrice {
    /// Provider (`openai`).
    pub provider: String,
    /// Model name (`gpt-4o-mini`).
    pub model: String,
    /// USD per 1M input tokens.
    pub input_per_1m: f64,
    /// USD per 1M output tokens.
    pub output_per_1m: f64,
    /// USD per 1M cached input tokens, when the provider lists one.
    pub cached_input_per_1m: Option<f64>,
    /// URL the price was read from.
    pub source: String,
    /// Date the price was checked (YYYY-MM-DD).
    pub checked: String,
    /// The pricing file, relative to the workspace.
    pub file: String,
    /// The model's position in the file's `models` array.
    pub index: usize,
}

/// Expands files and directories (a directory contributes its `*.toml`, sorted by name).
pub fn expand(workspace: &Path, entries: &[PathBuf]) -> Result<Vec<PathBuf>, PricingError> {
    let mut files = Vec::new();
    for entry in entries {
        let full = workspace.join(entry);
        if full.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(&full)
                .map_err(|source| PricingError::Read {
                    path: full.clone(),
                    source,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .map(|p| entry.join(p.file_name().unwrap_or_default()))
                .collect();
            if found.is_empty() {
                return Err(PricingError::EmptyDir { path: full });
            }
            found.sort();
            files.extend(found);
        } else if full.is_file() {
            files.push(entry.clone());
        } else {
            return Err(PricingError::Missing { path: full });
        }
    }
    Ok(files)
}

/// Loads every model from the given files (paths relative to `workspace`).
pub fn load(workspace: &Path, files: &[PathBuf]) -> Result<Vec<ApiPrice>, PricingError> {
    let mut prices = Vec::new();
    for file in files {
        let full = workspace.join(file);
        let text = std::fs::read_to_string(&full).map_err(|source| PricingError::Read {
            path: full.clone(),
            source,
        })?;
        let parsed: PriceFile = toml::from_str(&text).map_err(|source| PricingError::Parse {
            path: full.clone(),
            source,
        })?;
        for (index, entry) in parsed.models.into_iter().enumerate() {
            let checks = [
                ("input_per_1m", Some(entry.input_per_1m)),
                ("output_per_1m", Some(entry.output_per_1m)),
                ("cached_input_per_1m", entry.cached_input_per_1m),
            ];
            for (field, value) in checks {
                if let Some(value) = value.filter(|v| !v.is_finite() || *v < 0.0) {
                    return Err(PricingError::NegativePrice {
                        path: full.clone(),
                        index,
                        model: entry.name.clone(),
                        field,
                        value,
                    });
                }
            }
            prices.push(ApiPrice {
                provider: parsed.provider.clone(),
                model: entry.name,
                input_per_1m: entry.input_per_1m,
                output_per_1m: entry.output_per_1m,
                cached_input_per_1m: entry.cached_input_per_1m,
                source: entry.source,
                checked: entry.checked,
                file: file.display().to_string(),
                index,
            });
        }
    }
    Ok(prices)
}

/// Keeps only the named models, in the order asked; `None` keeps all.
pub fn select(
    prices: Vec<ApiPrice>,
    names: Option<&[String]>,
) -> Result<Vec<ApiPrice>, PricingError> {
    let Some(names) = names else {
        return Ok(prices);
    };
    let missing: Vec<String> = names
        .iter()
        .filter(|n| !prices.iter().any(|p| &p.model == *n))
        .cloned()
        .collect();
    if !missing.is_empty() {
        let known = prices
            .iter()
            .map(|p| format!("`{}`", p.model))
            .collect::<Vec<_>>();
        return Err(PricingError::UnknownApi {
            wanted: missing,
            known: known.join(", "),
        });
    }
    Ok(names
        .iter()
        .filter_map(|n| prices.iter().find(|p| &p.model == n).cloned())
        .collect())
}
