//! The profile chain's `[preflight]` tables -> the validated [`Preflight`] expectations: later
//! profiles replace the values they set, strings are rendered against `params`, and every value
//! is checked where it was written.

use serde::Serialize;
use serde_json::Value as Json;
use toml::Spanned;

use super::diagnostics::{ManifestDiagnostic, ManifestErrors, SourceFile};
use super::profiles::Overlay;
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

/// Overlays the chain's `[preflight]` tables (base first) and validates the result; `None` when
/// no profile declares one.
pub(super) fn resolve(
    overlay: Overlay,
    renderer: &Renderer,
    context: &Json,
    errors: &mut ManifestErrors,
) -> Option<Preflight> {
    overlay.nearest(|p| p.preflight.as_ref())?;
    let mut checker = Checker {
        renderer,
        context,
        errors,
    };
    // Each key from the nearest profile whose `[preflight]` sets it.
    macro_rules! nearest {
        ($field:ident) => {
            overlay.nearest(|p| p.preflight.as_ref()?.get_ref().$field.as_ref())
        };
    }
    let mut out = Preflight {
        python: "python3".into(),
        ..Preflight::default()
    };
    if let Some((gpu, file)) = nearest!(gpu) {
        out.gpu = checker.text(gpu, file);
    }
    if let Some((python, file)) = nearest!(python)
        && let Some(python) = checker.text(python, file)
    {
        out.python = python;
    }
    if let Some((registry, file)) = nearest!(registry) {
        out.registry = checker.url(registry, file);
    }
    if let Some((locks, file)) = nearest!(locks) {
        for lock in locks {
            out.locks.extend(checker.entry(lock, file));
        }
    }
    if let Some((locks, file)) = nearest!(gpu_locks) {
        for lock in locks {
            out.gpu_locks.extend(checker.entry(lock, file));
        }
    }
    if let Some((repos, file)) = nearest!(gated_repos) {
        for repo in repos {
            if let Some(id) = checker.entry(repo, file) {
                out.gated_repos.extend(checker.repo(id, repo.span(), file));
            }
        }
    }
    if let Some((programs, file)) = nearest!(programs) {
        for program in programs {
            out.programs.extend(checker.entry(program, file));
        }
    }
    out.gpu_min_memory_gb = nearest!(gpu_min_memory_gb).and_then(|(v, f)| checker.positive(v, f));
    out.min_free_disk_gb = nearest!(min_free_disk_gb).and_then(|(v, f)| checker.positive(v, f));
    out.min_memory_gb = nearest!(min_memory_gb).and_then(|(v, f)| checker.positive(v, f));
    out.min_cpus = nearest!(min_cpus).map(|(v, _)| *v.get_ref() as usize);
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

    fn positive(&mut self, value: &Spanned<f64>, file: &SourceFile) -> Option<f64> {
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
