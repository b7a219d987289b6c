//! Raw manifest + profile chain + `--set` -> the validated [`Pipeline`]: parameters overlaid,
//! steps overlaid and matrix-expanded, templates rendered, kinds and references checked.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;
use serde_json::{Value as Json, json};

use super::diagnostics::{ManifestDiagnostic, ManifestErrors, SourceFile, from_toml};
use super::id::StepId;
use super::model::{Pipeline, Step};
use super::profiles::{self, Overlay, toml_to_json};
use super::schema::RawManifest;
use super::templating::Renderer;
use super::validate::Rendered;

use super::declare::{Declared, Loc, declare_steps};
use super::expand::{
    Lookup, collect_strings, expand, find_in, id_fragment, match_need, matrix_order,
    step_references, steps_context, template_sources,
};

/// What to load.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The manifest file.
    pub manifest: PathBuf,
    /// The profile name, if any.
    pub profile: Option<String>,
    /// `--set KEY=VALUE` arguments.
    pub sets: Vec<String>,
}

/// Loads, overlays, expands and validates a pipeline.
pub fn load(options: &LoadOptions) -> Result<Pipeline, ManifestErrors> {
    let mut files = vec![SourceFile::read(&options.manifest)?];
    let raw: RawManifest = toml::from_str(&files[0].text).map_err(|e| from_toml(&files[0], &e))?;
    let workspace = workspace_of(&options.manifest, &raw, &files[0])?;
    let profile_name = options
        .profile
        .clone()
        .unwrap_or_else(|| String::from("default"));
    let chain = match &options.profile {
        Some(name) => profiles::load_chain(&workspace.join("profiles"), name, &mut files)?,
        None => Vec::new(),
    };
    let mut errors = ManifestErrors::default();
    let mut params: IndexMap<String, Json> = raw
        .params
        .iter()
        .map(|(k, v)| (k.get_ref().clone(), toml_to_json(v.get_ref())))
        .collect();
    let overlay = Overlay::new(&chain, &files);
    for layer in overlay.base_first() {
        profiles::overlay_params(&mut params, &layer.profile.params, layer.file, &mut errors);
    }
    profiles::apply_sets(&mut params, &options.sets, &mut errors);
    let remote = crate::remote::config::resolve(overlay, &mut errors);
    let declared = declare_steps(&raw, overlay, &files, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    let name = raw
        .pipeline
        .as_ref()
        .and_then(|p| p.get_ref().name.clone())
        .unwrap_or_else(|| {
            options
                .manifest
                .file_stem()
                .map_or_else(|| "pipeline".into(), |s| s.to_string_lossy().into_owned())
        });
    let renderer = Renderer::default();
    let mut base = json!({
        "pipeline": {"name": name},
        "profile": {"name": profile_name, "rehearsal": overlay.nearest(|p| p.rehearsal.as_ref()).is_some_and(|(r, _)| *r)},
        "params": params,
        "platform": platform(),
        "workspace": workspace.display().to_string(),
    });
    let results_template = raw
        .pipeline
        .as_ref()
        .and_then(|p| p.get_ref().results.clone());
    let results = match &results_template {
        Some(t) => renderer.render(t.get_ref(), &base).map_err(|e| {
            ManifestDiagnostic::at(&files[0], t.span(), e.message).maybe_help(e.help)
        })?,
        None => format!("results/{profile_name}"),
    };
    base["results"] = Json::String(results.clone());
    let preflight = super::preflight::resolve(overlay, &renderer, &base, &mut errors);
    let budget = super::budget::resolve(overlay, &renderer, &base, &mut errors);
    let mut resolver = Resolver {
        files: &files,
        renderer,
        errors,
        base,
    };
    let steps = resolver.resolve_steps(&declared);
    if !resolver.errors.is_empty() {
        return Err(resolver.errors);
    }
    let pipeline = Pipeline {
        name,
        manifest_path: options.manifest.clone(),
        workspace,
        profile: profile_name,
        results_dir: PathBuf::from(results),
        params,
        steps,
        manifest_digest: blake3::hash(files[0].text.as_bytes()).to_hex().to_string(),
        profile_digest: profile_digest(overlay),
        requires: overlay
            .nearest(|p| p.requires.as_ref())
            .map(|(r, _)| r.get_ref().clone()),
        preflight,
        budget,
        remote,
    };
    let spans = declared_spans(&declared);
    crate::graph::validate(&pipeline, &files[0], &spans)?;
    super::deadlock::validate(&pipeline, &files[0], &spans)?;
    Ok(pipeline)
}

fn declared_spans(declared: &[Declared]) -> BTreeMap<String, Range<usize>> {
    declared
        .iter()
        .map(|d| (d.id.value.clone(), d.span.clone()))
        .collect()
}

fn profile_digest(overlay: Overlay) -> String {
    let mut files = overlay.files().peekable();
    if files.peek().is_none() {
        return String::new();
    }
    let mut hasher = blake3::Hasher::new();
    for file in files {
        hasher.update(file.text.as_bytes());
    }
    hasher.finalize().to_hex().to_string()
}

fn workspace_of(
    manifest: &Path,
    raw: &RawManifest,
    file: &SourceFile,
) -> Result<PathBuf, ManifestErrors> {
    let dir = manifest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let declared = raw
        .pipeline
        .as_ref()
        .and_then(|p| p.get_ref().workspace.clone());
    let path = dir.join(declared.as_ref().map_or(".", |w| w.get_ref().as_str()));
    std::fs::canonicalize(&path).map_err(|err| {
        let message = format!("workspace `{}` does not exist: {err}", path.display());
        match &declared {
            Some(w) => ManifestDiagnostic::at(file, w.span(), message),
            None => ManifestDiagnostic::plain(message),
        }
        .help("`[pipeline] workspace` is relative to the manifest's directory")
        .into()
    })
}

fn platform() -> Json {
    crate::host::Host::detect().template_facts()
}

pub(super) struct Resolver<'a> {
    pub(super) files: &'a [SourceFile],
    pub(super) renderer: Renderer,
    pub(super) errors: ManifestErrors,
    pub(super) base: Json,
}

/// A matrix instance after the first rendering pass (ids, needs, outputs, url).
pub(super) struct Instance<'d> {
    pub(super) declared: &'d Declared,
    pub(super) id: String,
    pub(super) matrix: BTreeMap<String, Json>,
    pub(super) context: Json,
    pub(super) needs: Vec<(String, &'d Loc<String>)>,
    /// The normalized outputs, and the index of each in `declared.outputs`.
    pub(super) outputs: Vec<String>,
    pub(super) output_at: Vec<usize>,
    pub(super) url: Option<String>,
}

impl<'a> Resolver<'a> {
    pub(super) fn diag(
        &self,
        loc: &Loc<impl Sized>,
        message: impl Into<String>,
    ) -> ManifestDiagnostic {
        ManifestDiagnostic::at(&self.files[loc.file], loc.span.clone(), message)
    }

    pub(super) fn render(&mut self, loc: &Loc<String>, context: &Json) -> Option<String> {
        let result = self.renderer.render(&loc.value, context);
        self.rendered(loc, result)
    }

    /// Renders a `run` line with every value shell-quoted (see [`Renderer::render_shell`]).
    pub(super) fn render_run(&mut self, loc: &Loc<String>, context: &Json) -> Option<String> {
        let result = self.renderer.render_shell(&loc.value, context);
        self.rendered(loc, result)
    }

    fn rendered(
        &mut self,
        loc: &Loc<String>,
        result: Result<String, super::templating::TemplateError>,
    ) -> Option<String> {
        match result {
            Ok(s) => Some(s),
            Err(e) => {
                let d = self
                    .diag(loc, e.message)
                    .label("in this template")
                    .maybe_help(e.help);
                self.errors.push(d);
                None
            }
        }
    }

    pub(super) fn render_all(&mut self, items: &[Loc<String>], context: &Json) -> Vec<String> {
        items
            .iter()
            .filter_map(|l| self.render(l, context))
            .collect()
    }

    pub(super) fn resolve_steps(&mut self, declared: &[Declared]) -> IndexMap<StepId, Step> {
        let mut instances = Vec::new();
        for d in declared {
            self.check_key_declarations(d);
            for matrix in expand(&d.matrix) {
                instances.push(self.first_pass(d, matrix));
            }
        }
        self.check_duplicates(&instances);
        let lookup = Lookup::new(&instances);
        let mut resolved_needs: Vec<Vec<usize>> = Vec::with_capacity(instances.len());
        for inst in &instances {
            let mut needs = Vec::new();
            let mut seen = HashSet::new();
            for (need, loc) in &inst.needs {
                match match_need(need, &inst.matrix, &instances, &lookup) {
                    Ok(found) => needs.extend(found.into_iter().filter(|i| seen.insert(*i))),
                    Err(help) => {
                        let d = self
                            .diag(
                                loc,
                                format!("step `{}` needs unknown step `{need}`", inst.id),
                            )
                            .label("no such step")
                            .help(help);
                        self.errors.push(d);
                    }
                }
            }
            resolved_needs.push(needs);
        }
        let mut steps = IndexMap::with_capacity(instances.len());
        for (index, inst) in instances.iter().enumerate() {
            let referenced = step_references(template_sources(inst.declared));
            let context = steps_context(
                index,
                &instances,
                &resolved_needs,
                &lookup,
                referenced.as_ref(),
            );
            let needs: Vec<StepId> = resolved_needs[index]
                .iter()
                .map(|&i| StepId::from(instances[i].id.as_str()))
                .collect();
            if let Some(step) = self.second_pass(inst, &needs, context) {
                steps.insert(step.id.clone(), step);
            }
        }
        self.check_paths(&steps, &instances);
        steps
    }

    pub(super) fn first_pass<'d>(
        &mut self,
        d: &'d Declared,
        matrix: BTreeMap<String, Json>,
    ) -> Instance<'d> {
        let mut context = self.base.clone();
        context["matrix"] = json!(matrix);
        let id = if matrix.is_empty() {
            d.id.value.clone()
        } else {
            let suffix: Vec<String> = matrix_order(d, &matrix)
                .into_iter()
                .map(id_fragment)
                .collect();
            format!("{}-{}", d.id.value, suffix.join("-"))
        };
        context["step"] = json!({"id": id});
        // A need that renders empty is dropped, so a template can make it conditional
        // (`"{{ 'monitor' if params.monitoring else '' }}"`).
        let needs = d
            .needs
            .iter()
            .filter_map(|l| self.render(l, &context).map(|n| (n.trim().to_string(), l)))
            .filter(|(n, _)| !n.is_empty())
            .collect();
        let (outputs, output_at) = self.outputs(d, &context);
        let url = d.url.as_ref().and_then(|u| self.render(u, &context));
        Instance {
            declared: d,
            id,
            matrix,
            context,
            needs,
            outputs,
            output_at,
            url,
        }
    }

    pub(super) fn check_duplicates(&mut self, instances: &[Instance]) {
        let mut seen: BTreeMap<&str, &Instance> = BTreeMap::new();
        for inst in instances {
            if let Some(first) = seen.insert(&inst.id, inst) {
                let d = self
                    .diag(
                        &inst.declared.id,
                        format!("duplicate step id `{}`", inst.id),
                    )
                    .label("expands to an id that already exists")
                    .help(format!(
                        "`{}` is also produced by step `{}`; rename one of them",
                        inst.id, first.declared.id.value
                    ));
                self.errors.push(d);
            }
        }
    }

    pub(super) fn second_pass(
        &mut self,
        inst: &Instance,
        needs: &[StepId],
        steps: Json,
    ) -> Option<Step> {
        let d = inst.declared;
        let mut context = inst.context.clone();
        context["outputs"] = json!(inst.outputs);
        if let Some(url) = &inst.url {
            context["url"] = json!(url);
        }
        context["steps"] = steps;
        let errors_before = self.errors.items.len();
        let inputs = self.render_all(&d.inputs, &context);
        let run = d.run.as_ref().and_then(|r| self.render_run(r, &context));
        let model = d.model.as_ref().and_then(|r| self.render(r, &context));
        let env: BTreeMap<String, String> = d
            .env
            .iter()
            .filter_map(|(k, v)| self.render(v, &context).map(|v| (k.clone(), v)))
            .collect();
        let ready = d.ready.as_ref().and_then(|r| self.ready(r, &context));
        let timeout = d.timeout.as_ref().and_then(|t| self.duration(t));
        let estimate = d.estimate.as_ref().and_then(|t| self.duration(t));
        let stop_grace = d
            .stop_grace
            .as_ref()
            .map_or(Some(Duration::from_secs(10)), |t| self.duration(t));
        let with = match &d.with {
            Some(w) => self.render_table(w, &context),
            None => Json::Object(Default::default()),
        };
        let rendered = Rendered {
            run,
            url: inst.url.clone(),
            ready,
            model,
            timeout,
            with,
        };
        let body = self.body(d, &inst.id, rendered);
        let step = Step {
            id: StepId::from(inst.id.as_str()),
            base: StepId::from(d.id.value.as_str()),
            body: body?,
            description: d.description.clone(),
            needs: needs.to_vec(),
            inputs,
            outputs: inst.outputs.clone(),
            env,
            pass_env: d.pass_env.iter().map(|l| l.value.clone()).collect(),
            key_env: d.key_env.iter().map(|l| l.value.clone()).collect(),
            key_platform: d.key_platform.iter().map(|l| l.value.clone()).collect(),
            platform_env: self.platform_env(d),
            resources: d.resources.iter().map(|l| l.value.clone()).collect(),
            stop_grace: stop_grace.unwrap_or_default(),
            estimate,
            params: self.params_used(d),
            matrix: inst.matrix.clone(),
            context,
        };
        (self.errors.items.len() == errors_before).then_some(step)
    }

    /// Parameters read by any template of the step, with their values.
    pub(super) fn params_used(&self, d: &Declared) -> BTreeMap<String, Json> {
        let mut sources: Vec<String> = Vec::new();
        let all = [&d.needs, &d.inputs, &d.outputs]
            .into_iter()
            .flatten()
            .map(|l| l.value.clone());
        sources.extend(all);
        sources.extend(d.env.values().map(|l| l.value.clone()));
        sources.extend(
            [&d.run, &d.url, &d.model]
                .into_iter()
                .flatten()
                .map(|l| l.value.clone()),
        );
        if let Some(r) = &d.ready {
            sources.extend(
                [&r.value.http, &r.value.tcp, &r.value.log]
                    .into_iter()
                    .flatten()
                    .cloned(),
            );
        }
        if let Some(w) = &d.with {
            collect_strings(&toml::Value::Table(w.value.clone()), &mut sources);
        }
        let params = &self.base["params"];
        let mut out = BTreeMap::new();
        for name in sources.iter().flat_map(|s| self.renderer.params_used(s)) {
            if name == "*" {
                if let Some(map) = params.as_object() {
                    out.extend(map.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            } else if let Some(value) = params.get(&name) {
                out.insert(name, value.clone());
            }
        }
        out
    }

    /// Renders every string in a `with` table; a lone `{{ expr }}` keeps its type.
    pub(super) fn render_table(&mut self, loc: &Loc<toml::Table>, context: &Json) -> Json {
        let json = toml_to_json(&toml::Value::Table(loc.value.clone()));
        self.render_json(json, loc, context)
    }

    pub(super) fn render_json(
        &mut self,
        value: Json,
        loc: &Loc<toml::Table>,
        context: &Json,
    ) -> Json {
        match value {
            Json::String(s) => match self.renderer.render_value(&s, context) {
                Ok(v) => v,
                Err(e) => {
                    let span = find_in(&self.files[loc.file].text, &loc.span, &s);
                    let d = ManifestDiagnostic::at(&self.files[loc.file], span, e.message)
                        .label("in this template")
                        .maybe_help(e.help);
                    self.errors.push(d);
                    Json::Null
                }
            },
            Json::Array(items) => Json::Array(
                items
                    .into_iter()
                    .map(|v| self.render_json(v, loc, context))
                    .collect(),
            ),
            Json::Object(map) => Json::Object(
                map.into_iter()
                    .map(|(k, v)| (k, self.render_json(v, loc, context)))
                    .collect(),
            ),
            other => other,
        }
    }
}
