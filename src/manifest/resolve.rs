//! Raw manifest + profile chain + `--set` -> the validated [`Pipeline`]: parameters overlaid,
//! steps overlaid and matrix-expanded, templates rendered, kinds and references checked.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;
use serde_json::{Value as Json, json};
use toml::Spanned;

use super::diagnostics::{
    ManifestDiagnostic, ManifestErrors, SourceFile, did_you_mean, from_toml, list,
};
use super::model::{Pipeline, Probe, Ready, Step};
use super::profiles::{self, LoadedProfile, toml_to_json};
use super::schema::{RawManifest, RawReady, RawStep};
use super::templating::Renderer;

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

/// A value and where it was written.
#[derive(Debug, Clone)]
struct Loc<T> {
    value: T,
    file: usize,
    span: Range<usize>,
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

fn locs<T: Clone>(items: &[Spanned<T>], file: usize) -> Vec<Loc<T>> {
    items.iter().map(|s| Loc::of(s, file)).collect()
}

/// A declared step with its profile overlays applied, before matrix expansion.
struct Declared {
    id: Loc<String>,
    kind: Loc<String>,
    description: Option<String>,
    needs: Vec<Loc<String>>,
    inputs: Vec<Loc<String>>,
    outputs: Vec<Loc<String>>,
    env: IndexMap<String, Loc<String>>,
    pass_env: Vec<Loc<String>>,
    resources: Vec<Loc<String>>,
    matrix: Vec<(String, Vec<Json>)>,
    run: Option<Loc<String>>,
    url: Option<Loc<String>>,
    model: Option<Loc<String>>,
    ready: Option<Loc<RawReady>>,
    timeout: Option<Loc<String>>,
    stop_grace: Option<Loc<String>>,
    with: Option<Loc<toml::Table>>,
    span: Range<usize>,
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
    for profile in &chain {
        profiles::overlay_params(
            &mut params,
            &profile.raw.params,
            &files[profile.file],
            &mut errors,
        );
    }
    profiles::apply_sets(&mut params, &options.sets, &mut errors);
    let declared = declare_steps(&raw, &chain, &files, &mut errors);
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
        "profile": {"name": profile_name},
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
        profile_digest: profile_digest(&chain, &files),
        requires: chain
            .iter()
            .rev()
            .find_map(|p| p.raw.requires.as_ref().map(|r| r.get_ref().clone())),
    };
    crate::graph::validate(&pipeline, &files[0], &declared_spans(&declared))?;
    Ok(pipeline)
}

fn declared_spans(declared: &[Declared]) -> BTreeMap<String, Range<usize>> {
    declared
        .iter()
        .map(|d| (d.id.value.clone(), d.span.clone()))
        .collect()
}

fn profile_digest(chain: &[LoadedProfile], files: &[SourceFile]) -> String {
    if chain.is_empty() {
        return String::new();
    }
    let mut hasher = blake3::Hasher::new();
    for profile in chain {
        hasher.update(files[profile.file].text.as_bytes());
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
    json!({
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "cpus": std::thread::available_parallelism().map_or(1, |n| n.get()),
    })
}

fn declare_steps(
    raw: &RawManifest,
    chain: &[LoadedProfile],
    files: &[SourceFile],
    errors: &mut ManifestErrors,
) -> Vec<Declared> {
    let mut declared: Vec<Declared> = raw
        .steps
        .iter()
        .map(|(id, step)| declare(id, step))
        .collect();
    for profile in chain {
        for (id, overlay) in &profile.raw.steps {
            let Some(step) = declared.iter_mut().find(|d| d.id.value == *id.get_ref()) else {
                let names: Vec<&str> = declared.iter().map(|d| d.id.value.as_str()).collect();
                errors.push(
                    ManifestDiagnostic::at(
                        &files[profile.file],
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
            overlay_step(step, overlay.get_ref(), profile.file);
        }
    }
    for step in &declared {
        check_id(&step.id, files, errors);
    }
    declared
}

fn declare(id: &Spanned<String>, step: &Spanned<RawStep>) -> Declared {
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
        with: s.with.as_ref().map(|r| Loc::of(r, 0)),
        span: id.span(),
    }
}

fn overlay_step(step: &mut Declared, overlay: &super::schema::RawStepOverlay, file: usize) {
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
fn deep_merge(base: &mut toml::Table, over: &toml::Table) {
    for (key, value) in over {
        match (base.get_mut(key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => deep_merge(b, o),
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

fn check_id(id: &Loc<String>, files: &[SourceFile], errors: &mut ManifestErrors) {
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

struct Resolver<'a> {
    files: &'a [SourceFile],
    renderer: Renderer,
    errors: ManifestErrors,
    base: Json,
}

/// A matrix instance after the first rendering pass (ids, needs, outputs, url).
struct Instance<'d> {
    declared: &'d Declared,
    id: String,
    matrix: BTreeMap<String, Json>,
    context: Json,
    needs: Vec<(String, &'d Loc<String>)>,
    outputs: Vec<String>,
    url: Option<String>,
}

impl<'a> Resolver<'a> {
    fn diag(&self, loc: &Loc<impl Sized>, message: impl Into<String>) -> ManifestDiagnostic {
        ManifestDiagnostic::at(&self.files[loc.file], loc.span.clone(), message)
    }

    fn render(&mut self, loc: &Loc<String>, context: &Json) -> Option<String> {
        match self.renderer.render(&loc.value, context) {
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

    fn render_all(&mut self, items: &[Loc<String>], context: &Json) -> Vec<String> {
        items
            .iter()
            .filter_map(|l| self.render(l, context))
            .collect()
    }

    fn resolve_steps(&mut self, declared: &[Declared]) -> IndexMap<String, Step> {
        let mut instances = Vec::new();
        for d in declared {
            for matrix in expand(&d.matrix) {
                instances.push(self.first_pass(d, matrix));
            }
        }
        self.check_duplicates(&instances);
        let ids: Vec<(String, String, BTreeMap<String, Json>)> = instances
            .iter()
            .map(|i| (i.id.clone(), i.declared.id.value.clone(), i.matrix.clone()))
            .collect();
        let mut resolved_needs: Vec<Vec<String>> = Vec::new();
        for inst in &instances {
            let mut needs = Vec::new();
            for (need, loc) in &inst.needs {
                match match_need(need, &inst.matrix, &ids) {
                    Ok(found) => needs.extend(found),
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
            needs.dedup();
            resolved_needs.push(needs);
        }
        let mut steps = IndexMap::new();
        for (index, inst) in instances.iter().enumerate() {
            let closure = closure(index, &instances, &resolved_needs);
            if let Some(step) = self.second_pass(inst, &resolved_needs[index], &closure, &instances)
            {
                steps.insert(step.id.clone(), step);
            }
        }
        self.check_paths(&steps, &instances);
        steps
    }

    fn first_pass<'d>(&mut self, d: &'d Declared, matrix: BTreeMap<String, Json>) -> Instance<'d> {
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
        let needs = d
            .needs
            .iter()
            .filter_map(|l| self.render(l, &context).map(|n| (n, l)))
            .collect();
        let outputs = self.render_all(&d.outputs, &context);
        let url = d.url.as_ref().and_then(|u| self.render(u, &context));
        Instance {
            declared: d,
            id,
            matrix,
            context,
            needs,
            outputs,
            url,
        }
    }

    fn check_duplicates(&mut self, instances: &[Instance]) {
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

    fn second_pass(
        &mut self,
        inst: &Instance,
        needs: &[String],
        closure: &[usize],
        all: &[Instance],
    ) -> Option<Step> {
        let d = inst.declared;
        let mut context = inst.context.clone();
        context["outputs"] = json!(inst.outputs);
        if let Some(url) = &inst.url {
            context["url"] = json!(url);
        }
        context["steps"] = steps_context(closure, all);
        let errors_before = self.errors.items.len();
        let inputs = self.render_all(&d.inputs, &context);
        let run = d.run.as_ref().and_then(|r| self.render(r, &context));
        let model = d.model.as_ref().and_then(|r| self.render(r, &context));
        let env: BTreeMap<String, String> = d
            .env
            .iter()
            .filter_map(|(k, v)| self.render(v, &context).map(|v| (k.clone(), v)))
            .collect();
        let ready = d.ready.as_ref().and_then(|r| self.ready(r, &context));
        let timeout = d.timeout.as_ref().and_then(|t| self.duration(t));
        let stop_grace = d
            .stop_grace
            .as_ref()
            .map_or(Some(Duration::from_secs(10)), |t| self.duration(t));
        let with = match &d.with {
            Some(w) => self.render_table(w, &context),
            None => Json::Object(Default::default()),
        };
        let step = Step {
            id: inst.id.clone(),
            base: d.id.value.clone(),
            kind: d.kind.value.clone(),
            description: d.description.clone(),
            needs: needs.to_vec(),
            inputs,
            outputs: inst.outputs.clone(),
            env,
            pass_env: d.pass_env.iter().map(|l| l.value.clone()).collect(),
            resources: d.resources.iter().map(|l| l.value.clone()).collect(),
            run,
            url: inst.url.clone(),
            ready,
            model,
            timeout,
            stop_grace: stop_grace.unwrap_or_default(),
            with,
            params: self.params_used(d),
            matrix: inst.matrix.clone(),
            context,
            run_source: d.run.as_ref().map(|r| r.value.clone()),
        };
        self.check_kind(d, &step);
        (self.errors.items.len() == errors_before).then_some(step)
    }

    /// Parameters read by any template of the step, with their values.
    fn params_used(&self, d: &Declared) -> BTreeMap<String, Json> {
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

    fn ready(&mut self, loc: &Loc<RawReady>, context: &Json) -> Option<Ready> {
        let r = &loc.value;
        let given: Vec<(&str, &String)> = [("http", &r.http), ("tcp", &r.tcp), ("log", &r.log)]
            .into_iter()
            .filter_map(|(k, v)| Some((k, v.as_ref()?)))
            .collect();
        let [(kind, value)] = given.as_slice() else {
            let d = self
                .diag(
                    loc,
                    "a readiness probe takes exactly one of `http`, `tcp`, `log`",
                )
                .help("for example `ready = { http = \"{{ url }}/health\", timeout = \"5m\" }`");
            self.errors.push(d);
            return None;
        };
        let value = self.render(
            &Loc {
                value: (*value).clone(),
                file: loc.file,
                span: loc.span.clone(),
            },
            context,
        )?;
        let timeout = match &r.timeout {
            Some(t) => self.duration(&Loc {
                value: t.clone(),
                file: loc.file,
                span: loc.span.clone(),
            })?,
            None => Duration::from_secs(300),
        };
        let probe = match *kind {
            "http" => Probe::Http(value),
            "tcp" => Probe::Tcp(value),
            _ => Probe::Log(value),
        };
        let contains = match &r.contains {
            Some(text) if matches!(probe, Probe::Http(_)) => Some(self.render(
                &Loc {
                    value: text.clone(),
                    file: loc.file,
                    span: loc.span.clone(),
                },
                context,
            )?),
            Some(_) => {
                let d = self.diag(loc, "`contains` goes with an `http` probe")
                    .help("for example `ready = { http = \"{{ url }}/v1/models\", contains = \"smollm2\" }`");
                self.errors.push(d);
                return None;
            }
            None => None,
        };
        Some(Ready {
            probe,
            contains,
            timeout,
        })
    }

    fn duration(&mut self, loc: &Loc<String>) -> Option<Duration> {
        match humantime::parse_duration(&loc.value) {
            Ok(d) => Some(d),
            Err(err) => {
                let d = self
                    .diag(loc, format!("invalid duration `{}`: {err}", loc.value))
                    .help("write a duration like `90s`, `10m` or `1h 30m`");
                self.errors.push(d);
                None
            }
        }
    }

    /// Renders every string in a `with` table; a lone `{{ expr }}` keeps its type.
    fn render_table(&mut self, loc: &Loc<toml::Table>, context: &Json) -> Json {
        let json = toml_to_json(&toml::Value::Table(loc.value.clone()));
        self.render_json(json, loc, context)
    }

    fn render_json(&mut self, value: Json, loc: &Loc<toml::Table>, context: &Json) -> Json {
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

    fn check_kind(&mut self, d: &Declared, step: &Step) {
        let kind = &d.kind;
        let forbid = |this: &mut Self, present: bool, field: &str, why: &str| {
            if present {
                let diag = this
                    .diag(
                        &d.id,
                        format!(
                            "step `{}` of kind `{}` does not take `{field}`",
                            step.id, kind.value
                        ),
                    )
                    .help(why.to_string());
                this.errors.push(diag);
            }
        };
        match kind.value.as_str() {
            "command" => {
                if d.run.is_none() {
                    let diag = self
                        .diag(
                            &d.id,
                            format!("step `{}` of kind `command` has no `run`", step.id),
                        )
                        .help("add `run = \"...\"`: the command line, run with `sh -c`");
                    self.errors.push(diag);
                }
                forbid(
                    self,
                    d.ready.is_some() || d.url.is_some() || d.model.is_some(),
                    "ready`/`url`/`model",
                    "only services have readiness probes, URLs and models",
                );
                forbid(
                    self,
                    d.with.is_some(),
                    "with",
                    "`with` holds settings of built-in kinds; a command takes `run`",
                );
            }
            "service" => {
                if d.run.is_none() || d.ready.is_none() {
                    let diag = self.diag(&d.id, format!("service `{}` needs both `run` and `ready`", step.id))
                        .help("for example `run = \"vllm serve ...\"` and `ready = { http = \"{{ url }}/health\" }`");
                    self.errors.push(diag);
                }
                forbid(
                    self,
                    !d.outputs.is_empty(),
                    "outputs",
                    "a service produces no files; its consumers do",
                );
                forbid(
                    self,
                    d.timeout.is_some(),
                    "timeout",
                    "a service's startup limit is `ready.timeout`",
                );
                forbid(
                    self,
                    d.with.is_some(),
                    "with",
                    "a service takes `run`, `url` and `ready`",
                );
            }
            name => match crate::steps::builtin(name) {
                Some(builtin) => {
                    forbid(
                        self,
                        d.run.is_some(),
                        "run",
                        "built-in kinds take their settings in `with`",
                    );
                    forbid(
                        self,
                        d.ready.is_some() || d.url.is_some() || d.model.is_some(),
                        "ready`/`url`/`model",
                        "only services have readiness probes, URLs and models",
                    );
                    if let Err(message) = builtin.check(&step.with) {
                        let loc = d
                            .with
                            .as_ref()
                            .map_or(kind.span.clone(), |w| w.span.clone());
                        let file = d.with.as_ref().map_or(kind.file, |w| w.file);
                        let span = field_span(&self.files[file].text, &loc, &message);
                        let diag = ManifestDiagnostic::at(
                            &self.files[file],
                            span,
                            format!("invalid settings for step `{}`: {message}", step.id),
                        )
                        .help(format!("see docs/manifest.md, kind `{name}`"));
                        self.errors.push(diag);
                    }
                }
                None => {
                    let mut names = vec!["command", "service"];
                    names.extend(crate::steps::builtin_names());
                    let diag = self
                        .diag(kind, format!("unknown step kind `{name}`"))
                        .label("not a step kind")
                        .help(
                            did_you_mean(name, names.iter().copied())
                                .unwrap_or_else(|| format!("kinds: {}", list(&names))),
                        );
                    self.errors.push(diag);
                }
            },
        }
    }

    /// Outputs are written by one step only; an input that is another step's output is a `needs`.
    fn check_paths(&mut self, steps: &IndexMap<String, Step>, instances: &[Instance]) {
        let mut writers: BTreeMap<&str, &str> = BTreeMap::new();
        for inst in instances {
            for out in &inst.outputs {
                if let Some(other) = writers.insert(out, &inst.id)
                    && other != inst.id
                {
                    let d = self.diag(&inst.declared.id, format!("steps `{other}` and `{}` both write `{out}`", inst.id))
                            .help("give each step its own outputs (use `{{ step.id }}` or a matrix value in the path)");
                    self.errors.push(d);
                }
            }
        }
        for inst in instances {
            let Some(step) = steps.get(&inst.id) else {
                continue;
            };
            for input in &step.inputs {
                let producer = writers
                    .iter()
                    .find(|(out, _)| Path::new(input).starts_with(out));
                if let Some((out, producer)) = producer {
                    let d = self.diag(&inst.declared.id, format!("step `{}` declares input `{input}`, which step `{producer}` writes (`{out}`)", inst.id))
                        .help(format!("depend on it with `needs = [\"{producer}\"]` and refer to `{{{{ steps.{producer}.outputs[0] }}}}`; inputs are source files"));
                    self.errors.push(d);
                }
            }
        }
    }
}

fn collect_strings(value: &toml::Value, out: &mut Vec<String>) {
    match value {
        toml::Value::String(s) => out.push(s.clone()),
        toml::Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        toml::Value::Table(t) => t.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

/// Every combination of the matrix lists (one empty combination without a matrix).
fn expand(matrix: &[(String, Vec<Json>)]) -> Vec<BTreeMap<String, Json>> {
    let mut combos = vec![BTreeMap::new()];
    for (key, values) in matrix {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                values.iter().map(move |v| {
                    let mut c = c.clone();
                    c.insert(key.clone(), v.clone());
                    c
                })
            })
            .collect();
    }
    combos
}

fn matrix_order<'m>(d: &Declared, matrix: &'m BTreeMap<String, Json>) -> Vec<&'m Json> {
    d.matrix.iter().filter_map(|(k, _)| matrix.get(k)).collect()
}

fn id_fragment(value: &Json) -> String {
    let text = match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Resolves one `needs` entry: an instance id, or a declared id whose instances agree with this
/// step's matrix values on the keys they share.
fn match_need(
    need: &str,
    matrix: &BTreeMap<String, Json>,
    ids: &[(String, String, BTreeMap<String, Json>)],
) -> Result<Vec<String>, String> {
    if ids.iter().any(|(id, _, _)| id == need) {
        return Ok(vec![need.to_string()]);
    }
    let of_base: Vec<_> = ids.iter().filter(|(_, base, _)| base == need).collect();
    if of_base.is_empty() {
        let names: BTreeSet<&str> = ids
            .iter()
            .flat_map(|(id, base, _)| [id.as_str(), base.as_str()])
            .collect();
        return Err(did_you_mean(need, names.iter().copied())
            .unwrap_or_else(|| format!("steps: {}", list(&names))));
    }
    let agree = |m: &BTreeMap<String, Json>| {
        m.iter()
            .all(|(k, v)| matrix.get(k).is_none_or(|mine| mine == v))
    };
    let found: Vec<String> = of_base
        .iter()
        .filter(|(_, _, m)| agree(m))
        .map(|(id, _, _)| id.clone())
        .collect();
    if found.is_empty() {
        return Err(format!(
            "no instance of `{need}` has this step's matrix values"
        ));
    }
    Ok(found)
}

/// Indexes of every step reachable through `needs` (cycles are reported by the graph check).
fn closure(start: usize, instances: &[Instance], needs: &[Vec<String>]) -> Vec<usize> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![start];
    while let Some(i) = stack.pop() {
        for need in &needs[i] {
            if let Some(j) = instances.iter().position(|x| &x.id == need)
                && seen.insert(j)
            {
                stack.push(j);
            }
        }
    }
    seen.remove(&start);
    seen.into_iter().collect()
}

/// `steps.<id>.outputs` / `.url` for every step this one reaches, also under the declared id when
/// exactly one instance of it is reachable.
fn steps_context(closure: &[usize], all: &[Instance]) -> Json {
    let mut map = serde_json::Map::new();
    let mut per_base: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for &i in closure {
        let inst = &all[i];
        let entry = json!({"id": inst.id, "outputs": inst.outputs, "url": inst.url});
        map.insert(inst.id.clone(), entry);
        per_base.entry(&inst.declared.id.value).or_default().push(i);
    }
    for (base, members) in per_base {
        if let [only] = members.as_slice() {
            let inst = &all[*only];
            map.entry(base.to_string()).or_insert_with(
                || json!({"id": inst.id, "outputs": inst.outputs, "url": inst.url}),
            );
        }
    }
    Json::Object(map)
}

/// The span of `needle` inside `within`, or `within` itself.
fn find_in(text: &str, within: &Range<usize>, needle: &str) -> Range<usize> {
    let end = within.end.min(text.len());
    let start = within.start.min(end);
    text.get(start..end)
        .and_then(|hay| hay.find(needle))
        .map_or(within.clone(), |at| start + at..start + at + needle.len())
}

/// Points a serde message like "unknown field `x`" at `x` inside the `with` table.
fn field_span(text: &str, within: &Range<usize>, message: &str) -> Range<usize> {
    let field = message.split('`').nth(1).unwrap_or("");
    if field.is_empty() {
        return within.clone();
    }
    find_in(text, within, field)
}
