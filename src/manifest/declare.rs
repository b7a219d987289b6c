//! Declared steps: the manifest's step tables with the profile chain's overlays applied
//! (before matrix expansion), each value remembering the file and span it came from.

use std::ops::Range;

use indexmap::IndexMap;
use serde_json::Value as Json;
use toml::Spanned;

use super::diagnostics::{ManifestDiagnostic, ManifestErrors, SourceFile, did_you_mean, list};
use super::profiles::{Overlay, toml_to_json};
use super::schema::{RawManifest, RawReady, RawStep};

/// A value and where it was written.
#[derive(Debug, Clone)]
pub(super) struct Loc<T> {
    pub(super) value: T,
    pub(super) file: usize,
    pub(super) span: Range<usize>,
}

impl<T: Clone> Loc<T> {
    fn of(spanned: &Spanned<T>, file: usize) -> Self {
        Self {
            value: spanned.get_ref().clone(),
            file,
            span: spanned.span(),
        }
    }
}

pub(super) fn locs<T: Clone>(items: &[Spanned<T>], file: usize) -> Vec<Loc<T>> {
    items.iter().map(|s| Loc::of(s, file)).collect()
}

/// A declared step with its profile overlays applied, before matrix expansion.
pub(super) struct Declared {
    pub(super) id: Loc<String>,
    pub(super) kind: Loc<String>,
    pub(super) description: Option<String>,
    pub(super) needs: Vec<Loc<String>>,
    pub(super) inputs: Vec<Loc<String>>,
    pub(super) outputs: Vec<Loc<String>>,
    pub(super) env: IndexMap<String, Loc<String>>,
    pub(super) pass_env: Vec<Loc<String>>,
    pub(super) key_env: Vec<Loc<String>>,
    pub(super) key_platform: Vec<Loc<String>>,
    pub(super) resources: Vec<Loc<String>>,
    pub(super) matrix: Vec<(String, Vec<Json>)>,
    pub(super) run: Option<Loc<String>>,
    pub(super) url: Option<Loc<String>>,
    pub(super) model: Option<Loc<String>>,
    pub(super) ready: Option<Loc<RawReady>>,
    pub(super) timeout: Option<Loc<String>>,
    pub(super) stop_grace: Option<Loc<String>>,
    pub(super) estimate: Option<Loc<String>>,
    pub(super) with: Option<Loc<toml::Table>>,
    pub(super) span: Range<usize>,
}

pub(super) fn declare_steps(
    raw: &RawManifest,
    overlay: Overlay,
    files: &[SourceFile],
    errors: &mut ManifestErrors,
) -> Vec<Declared> {
    let mut declared: Vec<Declared> = raw
        .steps
        .iter()
        .map(|(id, step)| declare(id, step))
        .collect();
    for layer in overlay.base_first() {
        for (id, step_overlay) in &layer.profile.steps {
            let Some(step) = declared.iter_mut().find(|d| d.id.value == *id.get_ref()) else {
                let names: Vec<&str> = declared.iter().map(|d| d.id.value.as_str()).collect();
                errors.push(
                    ManifestDiagnostic::at(
                        layer.file,
                        id.span(),
                        format!("unknown step `{}`", id.get_ref()),
                    )
                    .label("not a step of this pipeline")
                    .help(
                        did_you_mean(id.get_ref(), names.iter().copied())
                            .unwrap_or_else(|| format!("steps: {}", list(&names))),
                    ),
                );
                continue;
            };
            overlay_step(step, step_overlay.get_ref(), layer.index);
        }
    }
    for step in &declared {
        check_id(&step.id, files, errors);
    }
    check_matrices(raw, &files[0], errors);
    declared
}

/// An empty matrix list would expand a step into nothing, silently removing it.
fn check_matrices(raw: &RawManifest, file: &SourceFile, errors: &mut ManifestErrors) {
    for (id, step) in &raw.steps {
        for (key, values) in &step.get_ref().matrix {
            if values.get_ref().is_empty() {
                errors.push(
                    ManifestDiagnostic::at(
                        file,
                        values.span(),
                        format!(
                            "matrix `{}` of step `{}` is an empty list",
                            key.get_ref(),
                            id.get_ref()
                        ),
                    )
                    .label("no values")
                    .help("give it at least one value, or remove the matrix entry; an empty list would remove the step"),
                );
            }
        }
    }
}

pub(super) fn declare(id: &Spanned<String>, step: &Spanned<RawStep>) -> Declared {
    let s = step.get_ref();
    Declared {
        id: Loc::of(id, 0),
        kind: Loc::of(&s.kind, 0),
        description: s.description.clone(),
        needs: locs(&s.needs, 0),
        inputs: locs(&s.inputs, 0),
        outputs: locs(&s.outputs, 0),
        env: s
            .env
            .iter()
            .map(|(k, v)| (k.clone(), Loc::of(v, 0)))
            .collect(),
        pass_env: locs(&s.pass_env, 0),
        key_env: locs(&s.key_env, 0),
        key_platform: locs(&s.key_platform, 0),
        resources: locs(&s.resources, 0),
        matrix: s
            .matrix
            .iter()
            .map(|(k, v)| {
                (
                    k.get_ref().clone(),
                    v.get_ref().iter().map(toml_to_json).collect(),
                )
            })
            .collect(),
        run: s.run.as_ref().map(|r| Loc::of(r, 0)),
        url: s.url.as_ref().map(|r| Loc::of(r, 0)),
        model: s.model.as_ref().map(|r| Loc::of(r, 0)),
        ready: s.ready.as_ref().map(|r| Loc::of(r, 0)),
        timeout: s.timeout.as_ref().map(|r| Loc::of(r, 0)),
        stop_grace: s.stop_grace.as_ref().map(|r| Loc::of(r, 0)),
        estimate: s.estimate.as_ref().map(|r| Loc::of(r, 0)),
        with: s.with.as_ref().map(|r| Loc::of(r, 0)),
        span: id.span(),
    }
}

pub(super) fn overlay_step(
    step: &mut Declared,
    overlay: &super::schema::RawStepOverlay,
    file: usize,
) {
    let one = |v: &Option<Spanned<String>>| v.as_ref().map(|s| Loc::of(s, file));
    if let Some(v) = &overlay.inputs {
        step.inputs = locs(v, file);
    }
    if let Some(v) = &overlay.outputs {
        step.outputs = locs(v, file);
    }
    if let Some(v) = &overlay.pass_env {
        step.pass_env = locs(v, file);
    }
    if let Some(v) = &overlay.key_env {
        step.key_env = locs(v, file);
    }
    if let Some(v) = &overlay.key_platform {
        step.key_platform = locs(v, file);
    }
    if let Some(v) = &overlay.resources {
        step.resources = locs(v, file);
    }
    for (k, v) in &overlay.env {
        step.env.insert(k.clone(), Loc::of(v, file));
    }
    step.run = one(&overlay.run).or(step.run.take());
    step.url = one(&overlay.url).or(step.url.take());
    step.model = one(&overlay.model).or(step.model.take());
    step.timeout = one(&overlay.timeout).or(step.timeout.take());
    step.stop_grace = one(&overlay.stop_grace).or(step.stop_grace.take());
    step.estimate = one(&overlay.estimate).or(step.estimate.take());
    if let Some(ready) = &overlay.ready {
        step.ready = Some(Loc::of(ready, file));
    }
    if let Some(with) = &overlay.with {
        let mut merged = step
            .with
            .as_ref()
            .map(|w| w.value.clone())
            .unwrap_or_default();
        deep_merge(&mut merged, with.get_ref());
        step.with = Some(Loc {
            value: merged,
            file,
            span: with.span(),
        });
    }
}

/// Merges `over` into `base`: tables merge key by key, anything else is replaced.
pub(super) fn deep_merge(base: &mut toml::Table, over: &toml::Table) {
    for (key, value) in over {
        match (base.get_mut(key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => deep_merge(b, o),
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

pub(super) fn check_id(id: &Loc<String>, files: &[SourceFile], errors: &mut ManifestErrors) {
    let ok = !id.value.is_empty()
        && id
            .value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && id.value.starts_with(|c: char| c.is_ascii_alphabetic());
    if !ok {
        errors.push(
            ManifestDiagnostic::at(
                &files[id.file],
                id.span.clone(),
                format!("invalid step id `{}`", id.value),
            )
            .help("a step id starts with a letter and uses letters, digits, `_` and `-`"),
        );
    }
}
