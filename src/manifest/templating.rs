//! minijinja templates over params, profile, step outputs and platform facts, rendered in strict
//! mode: an undefined variable is an error naming the variable, never an empty string. A step's
//! `run` renders in shell mode: every value is shell-quoted unless the template asks for raw text
//! with the `raw` filter.

use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Output, State, UndefinedBehavior};
use serde_json::Value as Json;

use super::diagnostics::{closest, list};

/// Renders manifest strings.
pub struct Renderer {
    env: Environment<'static>,
    shell: Environment<'static>,
}

/// Why a template did not render.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateError {
    /// What went wrong, for the user.
    pub message: String,
    /// A hint, such as "did you mean `params.model`?".
    pub help: Option<String>,
}

impl Default for Renderer {
    fn default() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.add_filter("for_platform", for_platform);
        env.add_filter("raw", raw);
        let mut shell = env.clone();
        shell.set_auto_escape_callback(|_| AutoEscape::Custom("shell".into()));
        shell.set_formatter(shell_formatter);
        Self { env, shell }
    }
}

/// `{{ value | raw }}`: the value's text as is, not quoted, in a `run` line.
fn raw(value: Value) -> Value {
    if value.is_safe() {
        return value;
    }
    Value::from_safe_string(value.to_string())
}

/// Writes a value into a shell command line as one word (POSIX quoting), so a path with spaces,
/// quotes or `$` stays one argument and runs nothing. Text marked `raw` goes in as is.
fn shell_formatter(out: &mut Output, _state: &mut State, value: &Value) -> Result<(), Error> {
    let text = value.to_string();
    if value.is_safe() {
        return out.write_str(&text).map_err(Error::from);
    }
    let quoted = shlex::try_quote(&text).map_err(|_| {
        Error::new(
            ErrorKind::InvalidOperation,
            "a value contains a NUL byte, which no shell argument can hold",
        )
    })?;
    out.write_str(&quoted).map_err(Error::from)
}

impl Renderer {
    /// Renders `source` to a string.
    pub fn render(&self, source: &str, context: &Json) -> Result<String, TemplateError> {
        if !source.contains("{{") && !source.contains("{%") {
            return Ok(source.to_string());
        }
        let ctx = minijinja::Value::from(minijinja::value::Serde(context));
        self.env
            .render_str(source, ctx)
            .map_err(|err| self.explain(source, context, &err))
    }

    /// Renders a `run` line: every `{{ value }}` becomes one shell word (quoted as needed) unless
    /// it goes through the `raw` filter.
    pub fn render_shell(&self, source: &str, context: &Json) -> Result<String, TemplateError> {
        if !source.contains("{{") && !source.contains("{%") {
            return Ok(source.to_string());
        }
        let ctx = minijinja::Value::from(minijinja::value::Serde(context));
        self.shell
            .render_str(source, ctx)
            .map_err(|err| self.explain(source, context, &err))
    }

    /// Renders `source` to a typed value: a string that is exactly one `{{ expression }}` keeps
    /// the expression's type (a list stays a list); anything else renders to a string.
    pub fn render_value(&self, source: &str, context: &Json) -> Result<Json, TemplateError> {
        if let Some(expr) = single_expression(source) {
            let ctx = minijinja::Value::from(minijinja::value::Serde(context));
            let compiled = self
                .env
                .compile_expression(expr)
                .map_err(|err| self.explain(source, context, &err))?;
            let value = compiled
                .eval(ctx)
                .map_err(|err| self.explain(source, context, &err))?;
            if value.is_undefined() {
                return Err(self.explain(
                    source,
                    context,
                    &minijinja::Error::from(minijinja::ErrorKind::UndefinedError),
                ));
            }
            return serde_json::to_value(&value).map_err(|err| TemplateError {
                message: format!("template `{source}` produced a value that is not data: {err}"),
                help: None,
            });
        }
        self.render(source, context).map(Json::String)
    }

    /// Names of the parameters a template reads (`params.x` -> `x`; bare `params` -> `*`).
    pub fn params_used(&self, source: &str) -> Vec<String> {
        self.reads(source, "params")
    }

    /// Names under the context variable `root` that a template reads (`root.x` -> `x`; bare
    /// `root` -> `*`): `params` for the parameters, `platform` for the machine's facts.
    pub fn reads(&self, source: &str, root: &str) -> Vec<String> {
        if !source.contains("{{") && !source.contains("{%") {
            return Vec::new();
        }
        let Ok(template) = self.env.template_from_str(source) else {
            return Vec::new();
        };
        let mut names: Vec<String> = template
            .undeclared_variables(true)
            .into_iter()
            .filter_map(|path| {
                let mut parts = path.split('.');
                (parts.next() == Some(root)).then(|| parts.next().unwrap_or("*").to_string())
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }

    fn explain(&self, source: &str, context: &Json, err: &minijinja::Error) -> TemplateError {
        if let Some((path, help)) = self.find_undefined(source, context) {
            return TemplateError {
                message: format!("undefined variable `{path}` in template"),
                help,
            };
        }
        let detail = err.detail().map(|d| format!(": {d}")).unwrap_or_default();
        TemplateError {
            message: format!("template error: {}{detail}", err.kind()),
            help: Some(String::from(
                "templates are minijinja: `{{ params.x }}` for a value, `{% if ... %}...{% endif %}` for logic; docs/manifest.md (Templates) lists the variables",
            )),
        }
    }

    /// Finds the first variable path the template uses that the context lacks.
    fn find_undefined(&self, source: &str, context: &Json) -> Option<(String, Option<String>)> {
        let template = self.env.template_from_str(source).ok()?;
        let mut paths: Vec<String> = template.undeclared_variables(true).into_iter().collect();
        paths.sort();
        for path in paths {
            let mut node = context;
            let mut walked = Vec::new();
            for part in path.split('.') {
                if !node.is_object() {
                    break; // an attribute or method of a value, not a missing variable
                }
                match node.get(part) {
                    Some(next) => {
                        node = next;
                        walked.push(part);
                    }
                    None => {
                        let prefix = walked.iter().map(|w| format!("{w}.")).collect::<String>();
                        let siblings: Vec<&str> = node
                            .as_object()
                            .map(|o| o.keys().map(String::as_str).collect())
                            .unwrap_or_default();
                        let help = match closest(part, siblings.iter().copied()) {
                            _ if walked == ["steps"] => Some(format!(
                                "a template sees `steps.<id>` only for the steps it needs; add `needs = [\"{part}\"]`"
                            )),
                            Some(best) => Some(format!("did you mean `{prefix}{best}`?")),
                            None if !siblings.is_empty() => Some(format!(
                                "defined here: {}",
                                list(siblings.iter().map(|s| format!("{prefix}{s}")))
                            )),
                            None => Some(String::from(
                                "docs/manifest.md (Templates) lists the variables a template sees",
                            )),
                        };
                        return Some((format!("{prefix}{part}"), help));
                    }
                }
            }
        }
        None
    }
}

/// `{{ params.serve_lock | for_platform }}`: the entry of a table keyed by this machine's
/// `platform.os`-`platform.arch` (`linux-x86_64`, `macos-aarch64`), or an error naming the key
/// and the platforms the table has.
fn for_platform(
    state: &minijinja::State,
    table: minijinja::Value,
) -> Result<minijinja::Value, minijinja::Error> {
    use minijinja::{Error, ErrorKind, Value};
    if table.as_str().is_some() {
        return Ok(table); // one value for every platform (`--set serve_lock=constraints/x.txt`)
    }
    let platform = state.lookup("platform").unwrap_or_default();
    let key = format!(
        "{}-{}",
        platform.get_attr("os")?,
        platform.get_attr("arch")?
    );
    let found = table.get_item(&Value::from(key.as_str()))?;
    if !found.is_undefined() {
        return Ok(found);
    }
    let keys: Vec<String> = table
        .try_iter()
        .map(|keys| keys.map(|k| format!("`{k}`")).collect())
        .unwrap_or_default();
    Err(Error::new(
        ErrorKind::InvalidOperation,
        format!(
            "no entry for this platform `{key}` (it has {}); add one to the table, or run this \
             profile on one of those platforms",
            if keys.is_empty() {
                "none".to_string()
            } else {
                keys.join(", ")
            }
        ),
    ))
}

/// `Some(expr)` when `source` is exactly `{{ expr }}` (surrounding whitespace allowed).
fn single_expression(source: &str) -> Option<&str> {
    let inner = source.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") {
        return None;
    }
    Some(inner.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_strings_and_native_values() {
        let r = Renderer::default();
        let ctx = json!({"params": {"model": "m", "levels": [1, 4]}});
        assert_eq!(r.render("x-{{ params.model }}", &ctx).unwrap(), "x-m");
        assert_eq!(
            r.render_value("{{ params.levels }}", &ctx).unwrap(),
            json!([1, 4])
        );
        assert_eq!(
            r.render_value("{{ params.levels }} ", &ctx).unwrap(),
            json!([1, 4])
        );
        assert_eq!(
            r.render_value("n={{ params.levels[0] }}", &ctx).unwrap(),
            json!("n=1")
        );
        assert_eq!(r.render("no template", &ctx).unwrap(), "no template");
    }

    #[test]
    fn for_platform_picks_this_platforms_entry_or_names_the_missing_one() {
        let r = Renderer::default();
        let ctx = |os: &str, arch: &str| {
            json!({
                "platform": {"os": os, "arch": arch},
                "params": {"lock": {"linux-x86_64": "a.txt", "macos-aarch64": "a-macos-aarch64.txt"}},
            })
        };
        let source = "--lock {{ params.lock | for_platform }}";
        assert_eq!(
            r.render(source, &ctx("linux", "x86_64")).unwrap(),
            "--lock a.txt"
        );
        assert_eq!(
            r.render(source, &ctx("macos", "aarch64")).unwrap(),
            "--lock a-macos-aarch64.txt"
        );
        let err = r.render(source, &ctx("linux", "riscv64")).unwrap_err();
        insta::assert_snapshot!(err.message, @"template error: invalid operation: no entry for this platform `linux-riscv64` (it has `linux-x86_64`, `macos-aarch64`); add one to the table, or run this profile on one of those platforms");
        assert_eq!(r.params_used(source), ["lock"]);
    }

    #[test]
    fn run_lines_quote_every_value_unless_raw() {
        let r = Renderer::default();
        let ctx = json!({
            "workspace": "/tmp/a b/w$(touch x)/it's",
            "params": {"flags": "--a 1", "n": 8, "levels": [1, 4], "word": "plain"},
        });
        let line = r
            .render_shell(
                "cd {{ workspace }} && run {{ params.word }} {{ params.n }}",
                &ctx,
            )
            .unwrap();
        assert_eq!(line, "cd '/tmp/a b/w$(touch x)/it'\"'s\" && run plain 8");
        assert_eq!(
            r.render_shell("x {{ params.flags | raw }} {{ params.levels }}", &ctx)
                .unwrap(),
            "x --a 1 '[1, 4]'"
        );
        assert_eq!(
            r.render_shell("{{ '' }}|{{ params.word ~ ' x' }}", &ctx)
                .unwrap(),
            "''|'plain x'"
        );
        // The same template outside `run` is not quoted.
        assert_eq!(
            r.render("{{ workspace }}", &ctx).unwrap(),
            "/tmp/a b/w$(touch x)/it's"
        );
    }

    #[test]
    fn a_quoted_value_is_one_shell_word_whatever_it_holds() {
        let r = Renderer::default();
        for text in [
            "a b",
            "$(touch x)",
            "`x`",
            "it's",
            "\\\"",
            "a\nb",
            "*",
            "~",
            "-",
            "#x",
        ] {
            let line = r
                .render_shell("printf '%s' {{ v }}", &json!({"v": text}))
                .unwrap();
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(&line)
                .current_dir(std::env::temp_dir())
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), text, "{line}");
        }
    }

    #[test]
    fn undefined_variables_are_errors_with_suggestions() {
        let r = Renderer::default();
        let ctx = json!({"params": {"model": "m"}});
        let err = r.render("{{ params.modle }}", &ctx).unwrap_err();
        assert_eq!(err.message, "undefined variable `params.modle` in template");
        assert_eq!(err.help.as_deref(), Some("did you mean `params.model`?"));
        let err = r.render_value("{{ parms.model }}", &ctx).unwrap_err();
        assert_eq!(err.message, "undefined variable `parms` in template");
        assert_eq!(err.help.as_deref(), Some("did you mean `params`?"));
    }
}
