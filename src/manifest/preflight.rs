//! The profile chain's `[preflight]` tables -> the validated [`Preflight`] expectations: later
//! profiles replace the values they set, strings are rendered against `params`, and every value
//! is checked where it was written.

use serde::Serialize;
use serde_json::Value as Json;
use toml::Spanned;

use super::diagnostics::{ManifestDiagnostic, ManifestErrors, SourceFile};
use super::profiles::LoadedProfile;
use super::schema::RawPreflight;
use super::templating::Renderer;

/// What the machine must offer before a run of this profile does any work. Never part of a
/// step's key: it is checked, not hashed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Preflight {
    /// A case-insensitive part of the GPU name `nvidia-smi` must report.
    pub gpu: Option<String>,
    /// Least GPU memory in GB (10^9 bytes).
    pub gpu_min_memory_gb: Option<f64>,
    /// Workspace-relative lock files the run installs (their Python version is checked).
    pub locks: Vec<String>,
    /// Lock files whose environments use the GPU (their CUDA build is checked).
    pub gpu_locks: Vec<String>,
    /// The interpreter environments are built from.
    pub python: String,
    /// Least free disk under the workspace, in GB.
    pub min_free_disk_gb: Option<f64>,
    /// Fewest logical CPUs.
    pub min_cpus: Option<usize>,
    /// Least memory, in GB.
    pub min_memory_gb: Option<f64>,
    /// The package index the profile installs from.
    pub registry: Option<String>,
    /// Gated hub repositories (`owner/name` or `datasets/owner/name`).
    pub gated_repos: Vec<String>,
    /// Programs that must be on PATH (each answers `--version`).
    pub programs: Vec<String>,
}

/// One file's `[preflight]` table and where it is.
struct Layer<'a> {
    raw: &'a RawPreflight,
    file: &'a SourceFile,
}

/// Overlays the chain's `[preflight]` tables (base first) and validates the result; `None` when
/// no profile declares one.
pub(super) fn resolve(
    chain: &[LoadedProfile],
    files: &[SourceFile],
    renderer: &Renderer,
    context: &Json,
    errors: &mut ManifestErrors,
) -> Option<Preflight> {
    let layers: Vec<Layer> = chain
        .iter()
        .filter_map(|p| {
            Some(Layer {
                raw: p.raw.preflight.as_ref()?.get_ref(),
                file: &files[p.file],
            })
        })
        .collect();
    if layers.is_empty() {
        return None;
    }
    let mut checker = Checker {
        renderer,
        context,
        errors,
    };
    let pick = |get: fn(&RawPreflight) -> bool| layers.iter().rev().find(|l| get(l.raw));
    let mut out = Preflight {
        python: "python3".into(),
        ..Preflight::default()
    };
    if let Some(l) = pick(|r| r.gpu.is_some()) {
        out.gpu = l.raw.gpu.as_ref().and_then(|v| checker.text(v, l.file));
    }
    if let Some(l) = pick(|r| r.python.is_some())
        && let Some(python) = l.raw.python.as_ref().and_then(|v| checker.text(v, l.file))
    {
        out.python = python;
    }
    if let Some(l) = pick(|r| r.registry.is_some()) {
        out.registry = l.raw.registry.as_ref().and_then(|v| checker.url(v, l.file));
    }
    if let Some(l) = pick(|r| r.locks.is_some()) {
        for lock in l.raw.locks.iter().flatten() {
            out.locks.extend(checker.entry(lock, l.file));
        }
    }
    if let Some(l) = pick(|r| r.gpu_locks.is_some()) {
        for lock in l.raw.gpu_locks.iter().flatten() {
            out.gpu_locks.extend(checker.entry(lock, l.file));
        }
    }
    if let Some(l) = pick(|r| r.gated_repos.is_some()) {
        for repo in l.raw.gated_repos.iter().flatten() {
            if let Some(id) = checker.entry(repo, l.file) {
                out.gated_repos
                    .extend(checker.repo(id, repo.span(), l.file));
            }
        }
    }
    if let Some(l) = pick(|r| r.programs.is_some()) {
        for program in l.raw.programs.iter().flatten() {
            out.programs.extend(checker.entry(program, l.file));
        }
    }
    out.gpu_min_memory_gb = checker.positive(&layers, |r| r.gpu_min_memory_gb.as_ref());
    out.min_free_disk_gb = checker.positive(&layers, |r| r.min_free_disk_gb.as_ref());
    out.min_memory_gb = checker.positive(&layers, |r| r.min_memory_gb.as_ref());
    out.min_cpus = layers
        .iter()
        .rev()
        .find_map(|l| l.raw.min_cpus.as_ref())
        .map(|v| *v.get_ref() as usize);
    Some(out)
}

struct Checker<'a> {
    renderer: &'a Renderer,
    context: &'a Json,
    errors: &'a mut ManifestErrors,
}

impl Checker<'_> {
    fn text(&mut self, value: &Spanned<String>, file: &SourceFile) -> Option<String> {
        match self.renderer.render(value.get_ref(), self.context) {
            Ok(text) if !text.trim().is_empty() => Some(text.trim().to_string()),
            Ok(_) => {
                self.errors.push(
                    ManifestDiagnostic::at(file, value.span(), "empty `[preflight]` value")
                        .help("remove the key to check nothing, or give it a value"),
                );
                None
            }
            Err(e) => {
                self.errors.push(
                    ManifestDiagnostic::at(file, value.span(), e.message)
                        .label("in this template")
                        .maybe_help(e.help),
                );
                None
            }
        }
    }

    /// A list entry: rendered, and dropped when it renders empty.
    fn entry(&mut self, value: &Spanned<String>, file: &SourceFile) -> Option<String> {
        match self.renderer.render(value.get_ref(), self.context) {
            Ok(text) => Some(text.trim().to_string()).filter(|t| !t.is_empty()),
            Err(e) => {
                self.errors.push(
                    ManifestDiagnostic::at(file, value.span(), e.message)
                        .label("in this template")
                        .maybe_help(e.help),
                );
                None
            }
        }
    }

    fn url(&mut self, value: &Spanned<String>, file: &SourceFile) -> Option<String> {
        let url = self.text(value, file)?;
        if url.starts_with("http://") || url.starts_with("https://") {
            return Some(url);
        }
        self.errors.push(
            ManifestDiagnostic::at(file, value.span(), format!("`{url}` is not an http(s) URL"))
                .label("registry")
                .help("for example `registry = \"https://pypi.org/simple/\"`"),
        );
        None
    }

    fn repo(
        &mut self,
        repo: String,
        span: std::ops::Range<usize>,
        file: &SourceFile,
    ) -> Option<String> {
        let id = repo.strip_prefix("datasets/").unwrap_or(&repo);
        let parts: Vec<&str> = id.split('/').collect();
        let valid_part = |p: &&str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        if parts.len() == 2 && parts.iter().all(valid_part) {
            return Some(repo);
        }
        self.errors.push(
            ManifestDiagnostic::at(file, span, format!("`{repo}` is not a hub repository id"))
                .label("gated repository")
                .help("write `owner/name` for a model, `datasets/owner/name` for a dataset"),
        );
        None
    }

    fn positive(
        &mut self,
        layers: &[Layer],
        get: fn(&RawPreflight) -> Option<&Spanned<f64>>,
    ) -> Option<f64> {
        let (value, file) = layers
            .iter()
            .rev()
            .find_map(|l| Some((get(l.raw)?, l.file)))?;
        let number = *value.get_ref();
        if number.is_finite() && number > 0.0 {
            return Some(number);
        }
        self.errors.push(
            ManifestDiagnostic::at(
                file,
                value.span(),
                format!("`{number}` is not a positive size"),
            )
            .help("sizes are in GB (10^9 bytes): for example `24`"),
        );
        None
    }
}
