//! What of the machine a step's key may see, so that keys travel between machines: passed-through
//! variables enter by name unless `key_env` names them, and platform facts enter only when
//! `key_platform` declares that the step's outputs depend on them.
//!
//! A platform fact may appear in an `env` value without being keyed (`OMP_NUM_THREADS` from
//! `platform.cpus`): that value's template, not its rendered value, enters the key. Anywhere else
//! (`run`, `with`, `inputs`, ...) the rendered text would carry the fact into the key, so reading
//! an undeclared fact there is an error.

use std::collections::BTreeMap;

use super::declare::{Declared, Loc};
use super::diagnostics::{did_you_mean, list};
use super::expand::{collect_strings, find_in};
use super::resolve::Resolver;

/// The facts under `platform` in templates (`crate::host::Host::template_facts`).
pub(super) const PLATFORM_FACTS: [&str; 5] = ["os", "arch", "cpus", "isa", "cpu_features"];

impl Resolver<'_> {
    /// Checks `key_env` and `key_platform`, and that no template outside `env` reads a platform
    /// fact the step does not key. Called once per declared step.
    pub(super) fn check_key_declarations(&mut self, d: &Declared) {
        let passed: Vec<&str> = d.pass_env.iter().map(|l| l.value.as_str()).collect();
        for name in &d.key_env {
            if !passed.contains(&name.value.as_str()) {
                let diag = self
                    .diag(
                        name,
                        format!(
                            "`key_env` names `{}`, which is not in `pass_env`",
                            name.value
                        ),
                    )
                    .label("not passed through")
                    .help(format!(
                        "add `{}` to `pass_env`, or remove it from `key_env`",
                        name.value
                    ));
                self.errors.push(diag);
            }
        }
        for fact in &d.key_platform {
            if !PLATFORM_FACTS.contains(&fact.value.as_str()) {
                let help = did_you_mean(&fact.value, PLATFORM_FACTS)
                    .unwrap_or_else(|| format!("platform facts: {}", list(PLATFORM_FACTS)));
                let diag = self
                    .diag(fact, format!("unknown platform fact `{}`", fact.value))
                    .label("not a platform fact")
                    .help(help);
                self.errors.push(diag);
            }
        }
        for (field, loc) in self.keyed_templates(d) {
            let unkeyed = self.unkeyed_facts(&loc.value, d);
            if let Some(fact) = unkeyed.first() {
                let diag = self
                    .diag(
                        &loc,
                        format!(
                            "`{field}` of step `{}` reads `platform.{fact}`, a fact of this machine, so its key would change from machine to machine",
                            d.id.value
                        ),
                    )
                    .label("reads a platform fact")
                    .help(format!(
                        "if the step's outputs depend on it, declare `key_platform = [\"{fact}\"]`; otherwise pass it through `env` (an `env` value rendered from platform facts enters the key by its template)"
                    ));
                self.errors.push(diag);
            }
        }
    }

    /// `env` variables rendered from platform facts the step does not key: name -> template.
    pub(super) fn platform_env(&self, d: &Declared) -> BTreeMap<String, String> {
        d.env
            .iter()
            .filter(|(_, loc)| !self.unkeyed_facts(&loc.value, d).is_empty())
            .map(|(name, loc)| (name.clone(), loc.value.clone()))
            .collect()
    }

    /// The platform facts `source` reads that `d` does not key (`*`: the whole `platform`).
    fn unkeyed_facts(&self, source: &str, d: &Declared) -> Vec<String> {
        let keyed = |fact: &str| d.key_platform.iter().any(|k| k.value == fact);
        self.renderer
            .reads(source, "platform")
            .into_iter()
            .filter(|fact| match fact.as_str() {
                "*" => PLATFORM_FACTS.iter().any(|f| !keyed(f)),
                one => !keyed(one),
            })
            .collect()
    }

    /// Every template of a step whose rendered text enters its key, with the field it sits in.
    fn keyed_templates(&self, d: &Declared) -> Vec<(&'static str, Loc<String>)> {
        let mut out: Vec<(&'static str, Loc<String>)> = Vec::new();
        let lists = [
            ("needs", &d.needs),
            ("inputs", &d.inputs),
            ("outputs", &d.outputs),
        ];
        for (field, items) in lists {
            out.extend(items.iter().map(|l| (field, l.clone())));
        }
        for (field, one) in [("run", &d.run), ("url", &d.url), ("model", &d.model)] {
            out.extend(one.iter().map(|l| (field, l.clone())));
        }
        if let Some(ready) = &d.ready {
            let r = &ready.value;
            let probes = [&r.http, &r.tcp, &r.log, &r.contains];
            for text in probes.into_iter().flatten() {
                out.push(("ready", at(text, ready.file, ready.span.clone())));
            }
        }
        if let Some(with) = &d.with {
            let mut strings = Vec::new();
            collect_strings(&toml::Value::Table(with.value.clone()), &mut strings);
            let text = &self.files[with.file].text;
            for s in strings {
                let span = find_in(text, &with.span, &s);
                out.push(("with", at(&s, with.file, span)));
            }
        }
        out
    }
}

fn at(text: &str, file: usize, span: std::ops::Range<usize>) -> Loc<String> {
    Loc {
        value: text.to_string(),
        file,
        span,
    }
}
