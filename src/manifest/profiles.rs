//! Profiles and parameter resolution, with written precedence:
//! manifest defaults < profile chain (the base that `extends` names first) < `--set KEY=VALUE`.

use indexmap::IndexMap;
use serde_json::Value as Json;
use std::path::Path;
use toml::Spanned;

use super::diagnostics::{
    ManifestDiagnostic, ManifestErrors, SourceFile, did_you_mean, from_toml, list,
};
use super::schema::RawProfile;

/// A loaded profile file.
pub struct LoadedProfile {
    /// The profile's name (its file stem).
    pub name: String,
    /// Index of its source in the loader's file table.
    pub file: usize,
    /// Its parsed content.
    pub raw: RawProfile,
}

/// The profile chain with its source files: the one place that says how profiles combine.
///
/// - A key outside `params` and `steps` (`hourly_usd`, `requires`, each key of `[preflight]` and
///   `[remote]`) takes the value of the nearest profile that sets it: the named profile over the
///   profile it extends ([`Overlay::nearest`]).
/// - `params` and step overlays apply base first, key by key ([`Overlay::base_first`]), after the
///   manifest's defaults and before `--set`.
#[derive(Clone, Copy)]
pub struct Overlay<'a> {
    profiles: &'a [LoadedProfile],
    files: &'a [SourceFile],
}

impl<'a> Overlay<'a> {
    /// The chain (base first, as [`load_chain`] returns it) and the loader's file table.
    pub fn new(profiles: &'a [LoadedProfile], files: &'a [SourceFile]) -> Self {
        Self { profiles, files }
    }

    /// A key's value from the nearest profile that sets it, with that profile's file.
    pub fn nearest<T: ?Sized + 'a>(
        &self,
        get: impl Fn(&'a RawProfile) -> Option<&'a T>,
    ) -> Option<(&'a T, &'a SourceFile)> {
        self.profiles
            .iter()
            .rev()
            .find_map(|p| Some((get(&p.raw)?, &self.files[p.file])))
    }

    /// Each profile with its file, base first.
    pub fn base_first(&self) -> impl Iterator<Item = Layer<'a>> + 'a {
        let files = self.files;
        self.profiles.iter().map(move |p| Layer {
            profile: &p.raw,
            file: &files[p.file],
            index: p.file,
        })
    }

    /// The files of the chain, base first.
    pub fn files(&self) -> impl Iterator<Item = &'a SourceFile> + 'a {
        self.base_first().map(|layer| layer.file)
    }
}

/// One profile of an [`Overlay`], with its file.
pub struct Layer<'a> {
    /// The profile as written.
    pub profile: &'a RawProfile,
    /// Its source.
    pub file: &'a SourceFile,
    /// Its index in the loader's file table (what spans in declared steps refer to).
    pub index: usize,
}

/// Names of the profiles in `dir` (files `*.toml`), sorted.
pub fn available(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| {
                    let path = e.path();
                    (path.extension()? == "toml")
                        .then(|| path.file_stem()?.to_str().map(String::from))?
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Loads `name` and the profiles it extends, base first.
pub fn load_chain(
    dir: &Path,
    name: &str,
    files: &mut Vec<SourceFile>,
) -> Result<Vec<LoadedProfile>, ManifestErrors> {
    let mut chain: Vec<LoadedProfile> = Vec::new();
    let mut next = Some((name.to_string(), None::<(usize, std::ops::Range<usize>)>));
    while let Some((name, referrer)) = next.take() {
        if chain.iter().any(|p| p.name == name) {
            let cycle: Vec<&str> = chain
                .iter()
                .map(|p| p.name.as_str())
                .chain([name.as_str()])
                .collect();
            return Err(ManifestDiagnostic::plain(format!(
                "profiles extend each other in a cycle: {}",
                cycle.join(" -> ")
            ))
            .help("remove one `extends`")
            .into());
        }
        let path = dir.join(format!("{name}.toml"));
        if !path.is_file() {
            let known = available(dir);
            let message = format!("unknown profile `{name}`");
            let help = did_you_mean(&name, known.iter().map(String::as_str)).unwrap_or_else(|| {
                let shown = relative_to_cwd(dir);
                if known.is_empty() {
                    format!("no profiles exist in `{}`", shown.display())
                } else {
                    format!("profiles in `{}`: {}", shown.display(), list(&known))
                }
            });
            let diagnostic = match referrer {
                Some((file, span)) => ManifestDiagnostic::at(&files[file], span, message),
                None => ManifestDiagnostic::plain(message),
            };
            return Err(diagnostic.help(help).into());
        }
        let file = SourceFile::read(&relative_to_cwd(&path))?;
        let raw: RawProfile = toml::from_str(&file.text).map_err(|e| from_toml(&file, &e))?;
        files.push(file);
        let index = files.len() - 1;
        next = raw
            .extends
            .as_ref()
            .map(|e| (e.get_ref().clone(), Some((index, e.span()))));
        chain.push(LoadedProfile {
            name,
            file: index,
            raw,
        });
    }
    chain.reverse();
    Ok(chain)
}

/// `path` relative to the current directory when it lies below it (shorter, stable messages).
fn relative_to_cwd(path: &Path) -> std::path::PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
}

/// Applies one layer of parameter values onto `params`, checking names and types.
pub fn overlay_params(
    params: &mut IndexMap<String, Json>,
    layer: &IndexMap<Spanned<String>, Spanned<toml::Value>>,
    file: &SourceFile,
    errors: &mut ManifestErrors,
) {
    for (key, value) in layer {
        let name = key.get_ref();
        let Some(current) = params.get(name) else {
            errors.push(unknown_param(name, params).map_at(file, key.span()));
            continue;
        };
        let new = toml_to_json(value.get_ref());
        match check_type(name, current, new) {
            Ok(new) => {
                params.insert(name.clone(), new);
            }
            Err(message) => errors.push(
                ManifestDiagnostic::at(file, value.span(), message)
                    .label("wrong type")
                    .help(type_hint(current)),
            ),
        }
    }
}

/// Applies `--set KEY=VALUE` arguments.
pub fn apply_sets(
    params: &mut IndexMap<String, Json>,
    sets: &[String],
    errors: &mut ManifestErrors,
) {
    for set in sets {
        let Some((key, raw)) = set.split_once('=') else {
            errors.push(
                ManifestDiagnostic::plain(format!("invalid `--set {set}`: expected KEY=VALUE"))
                    .help("for example `--set concurrency=[1,8]` or `--set model=Qwen/Qwen2.5-0.5B-Instruct`"),
            );
            continue;
        };
        let key = key.trim();
        let Some(current) = params.get(key) else {
            errors.push(unknown_param(key, params).plain(&format!("invalid `--set {set}`")));
            continue;
        };
        let new = parse_set_value(raw);
        match check_type(key, current, new) {
            Ok(new) => {
                params.insert(key.to_string(), new);
            }
            Err(message) => errors.push(
                ManifestDiagnostic::plain(format!("invalid `--set {set}`: {message}"))
                    .help(format!("{}; `--set` values are TOML", type_hint(current))),
            ),
        }
    }
}

/// A `--set` value is TOML when it parses as TOML (`[1,8]`, `3`, `true`, `"x"`), else a bare string.
fn parse_set_value(raw: &str) -> Json {
    #[derive(serde::Deserialize)]
    struct Wrapper {
        v: toml::Value,
    }
    match toml::from_str::<Wrapper>(&format!("v = {raw}")) {
        Ok(w) => toml_to_json(&w.v),
        Err(_) => Json::String(raw.to_string()),
    }
}

struct UnknownParam {
    message: String,
    help: String,
}

impl UnknownParam {
    fn map_at(self, file: &SourceFile, span: std::ops::Range<usize>) -> ManifestDiagnostic {
        ManifestDiagnostic::at(file, span, self.message)
            .label("not a parameter")
            .help(self.help)
    }
    fn plain(self, context: &str) -> ManifestDiagnostic {
        ManifestDiagnostic::plain(format!("{context}: {}", self.message)).help(self.help)
    }
}

fn unknown_param(name: &str, params: &IndexMap<String, Json>) -> UnknownParam {
    let help = did_you_mean(name, params.keys().map(String::as_str)).unwrap_or_else(|| {
        format!(
            "declare it under `[params]` in the manifest; declared: {}",
            list(params.keys())
        )
    });
    UnknownParam {
        message: format!("unknown parameter `{name}`"),
        help,
    }
}

/// Checks that `new` has the type of the default `current` (an integer may stand for a float,
/// and a string parameter accepts a number written bare on the command line).
fn check_type(name: &str, current: &Json, new: Json) -> Result<Json, String> {
    let same = std::mem::discriminant(current) == std::mem::discriminant(&new);
    match (current, &new) {
        (Json::Number(c), Json::Number(n)) if !c.is_f64() && n.is_f64() => Err(format!(
            "parameter `{name}` takes an integer (its default is `{current}`), not a fractional number"
        )),
        _ if same => Ok(new),
        (Json::Number(c), Json::Number(_)) if c.is_f64() => Ok(new),
        (Json::String(_), Json::Number(_) | Json::Bool(_)) => Ok(Json::String(new.to_string())),
        _ => Err(format!(
            "parameter `{name}` takes {} (its default is `{current}`), not {}",
            type_name(current),
            type_name(&new)
        )),
    }
}

/// How to write a value of the default's type.
fn type_hint(current: &Json) -> String {
    let example = match current {
        Json::Array(_) => "`[1, 8]`",
        Json::Bool(_) => "`true` or `false`",
        Json::Number(n) if n.is_f64() => "`0.9`",
        Json::Number(_) => "`8`",
        Json::Object(_) => "`{ key = \"value\" }`",
        Json::String(_) | Json::Null => "`\"text\"`",
    };
    format!(
        "write {} like the default, for example {example}",
        type_name(current)
    )
}

fn type_name(value: &Json) -> &'static str {
    match value {
        Json::Null => "nothing",
        Json::Bool(_) => "a boolean",
        Json::Number(n) if n.is_f64() => "a number",
        Json::Number(_) => "an integer",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "a table",
    }
}

/// TOML data as JSON (datetimes become their TOML text).
pub fn toml_to_json(value: &toml::Value) -> Json {
    match value {
        toml::Value::String(s) => Json::String(s.clone()),
        toml::Value::Integer(i) => Json::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        toml::Value::Boolean(b) => Json::Bool(*b),
        toml::Value::Datetime(d) => Json::String(d.to_string()),
        toml::Value::Array(a) => Json::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Json::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_values_parse_as_toml_or_bare_strings() {
        assert_eq!(parse_set_value("[1,8]"), json!([1, 8]));
        assert_eq!(parse_set_value("3"), json!(3));
        assert_eq!(
            parse_set_value("Qwen/Qwen2.5-0.5B-Instruct"),
            json!("Qwen/Qwen2.5-0.5B-Instruct")
        );
        assert_eq!(parse_set_value("\"quoted\""), json!("quoted"));
    }

    #[test]
    fn types_must_match_the_default() {
        assert_eq!(check_type("x", &json!(1.5), json!(2)), Ok(json!(2)));
        assert_eq!(check_type("x", &json!("a"), json!(3)), Ok(json!("3")));
        assert!(
            check_type("x", &json!([1]), json!("a"))
                .unwrap_err()
                .contains("takes a list")
        );
        assert!(check_type("x", &json!(1), json!(1.5)).is_err());
    }
}
