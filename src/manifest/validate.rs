//! Checks on a resolved step: readiness probes, durations, and what each kind takes.

use std::time::Duration;

use serde_json::Value as Json;

use super::body::{Body, Command, Kind, Service};
use super::declare::{Declared, Loc};
use super::diagnostics::{ManifestDiagnostic, did_you_mean, list};
use super::expand::field_span;
use super::model::{Probe, Ready};
use super::resolve::Resolver;
use super::schema::RawReady;

impl Resolver<'_> {
    pub(super) fn ready(&mut self, loc: &Loc<RawReady>, context: &Json) -> Option<Ready> {
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

    pub(super) fn duration(&mut self, loc: &Loc<String>) -> Option<Duration> {
        match crate::time::parse_duration(&loc.value) {
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

    /// Checks what the step's kind takes (`run`, `ready`, `url`, `model`, `timeout`, `with`) and
    /// builds its [`Body`]: `None` after pushing the errors that say why not (or when a template in
    /// it failed to render, which already pushed its error).
    pub(super) fn body(&mut self, d: &Declared, id: &str, rendered: Rendered) -> Option<Body> {
        let kind = &d.kind;
        let mut ok = true;
        // Pushes an error when `present`; true when the field is rightly absent.
        let forbid = |this: &mut Self, present: bool, field: &str, why: &str| {
            if present {
                let diag = this
                    .diag(
                        &d.id,
                        format!(
                            "step `{id}` of kind `{}` does not take `{field}`",
                            kind.value
                        ),
                    )
                    .help(why.to_string());
                this.errors.push(diag);
            }
            !present
        };
        let Some(known) = Kind::from_name(&kind.value) else {
            let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
            let diag = self
                .diag(kind, format!("unknown step kind `{}`", kind.value))
                .label("not a step kind")
                .help(
                    did_you_mean(&kind.value, names.iter().copied())
                        .unwrap_or_else(|| format!("kinds: {}", list(&names))),
                );
            self.errors.push(diag);
            return None;
        };
        match known {
            Kind::Command => {
                if d.run.is_none() {
                    let diag = self
                        .diag(&d.id, format!("step `{id}` of kind `command` has no `run`"))
                        .help("add `run = \"...\"`: the command line, run with `sh -c`");
                    self.errors.push(diag);
                    ok = false;
                }
                ok &= forbid(
                    self,
                    d.ready.is_some() || d.url.is_some() || d.model.is_some(),
                    "ready`/`url`/`model",
                    "only services have readiness probes, URLs and models",
                );
                ok &= forbid(
                    self,
                    d.with.is_some(),
                    "with",
                    "`with` holds settings of built-in kinds; a command takes `run`",
                );
                let (true, Some(run), Some(run_source)) =
                    (ok, rendered.run, d.run.as_ref().map(|r| r.value.clone()))
                else {
                    return None;
                };
                Some(Body::Command(Command {
                    run,
                    run_source,
                    timeout: rendered.timeout,
                }))
            }
            Kind::Service => {
                if d.run.is_none() || d.ready.is_none() {
                    let diag = self.diag(&d.id, format!("service `{id}` needs both `run` and `ready`"))
                        .help("for example `run = \"vllm serve ...\"` and `ready = { http = \"{{ url }}/health\" }`");
                    self.errors.push(diag);
                    ok = false;
                }
                ok &= forbid(
                    self,
                    !d.outputs.is_empty(),
                    "outputs",
                    "a service produces no files; its consumers do",
                );
                ok &= forbid(
                    self,
                    d.timeout.is_some(),
                    "timeout",
                    "a service's startup limit is `ready.timeout`",
                );
                ok &= forbid(
                    self,
                    d.with.is_some(),
                    "with",
                    "a service takes `run`, `url` and `ready`",
                );
                let (true, Some(run), Some(ready)) = (ok, rendered.run, rendered.ready) else {
                    return None;
                };
                Some(Body::Service(Service {
                    run,
                    url: rendered.url,
                    ready,
                    model: rendered.model,
                }))
            }
            builtin => {
                ok &= forbid(
                    self,
                    d.run.is_some(),
                    "run",
                    "built-in kinds take their settings in `with`",
                );
                ok &= forbid(
                    self,
                    d.ready.is_some() || d.url.is_some() || d.model.is_some(),
                    "ready`/`url`/`model",
                    "only services have readiness probes, URLs and models",
                );
                match builtin.builtin_body(rendered.with)? {
                    Ok(body) => ok.then_some(body),
                    Err(message) => {
                        let loc = d
                            .with
                            .as_ref()
                            .map_or(kind.span.clone(), |w| w.span.clone());
                        let file = d.with.as_ref().map_or(kind.file, |w| w.file);
                        let span = field_span(&self.files[file].text, &loc, &message);
                        let diag = ManifestDiagnostic::at(
                            &self.files[file],
                            span,
                            format!("invalid settings for step `{id}`: {message}"),
                        )
                        .help(format!("see docs/manifest.md, kind `{builtin}`"));
                        self.errors.push(diag);
                        None
                    }
                }
            }
        }
    }
}

/// A step's kind-specific fields, rendered, for [`Resolver::body`].
pub(super) struct Rendered {
    /// `run`.
    pub run: Option<String>,
    /// `url`.
    pub url: Option<String>,
    /// `ready`.
    pub ready: Option<Ready>,
    /// `model`.
    pub model: Option<String>,
    /// `timeout`.
    pub timeout: Option<Duration>,
    /// `with` (an empty table when absent).
    pub with: Json,
}
