//! Matrix expansion, `needs` matching, and the `steps` template context.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;

use serde_json::{Value as Json, json};

use super::declare::Declared;
use super::diagnostics::{did_you_mean, list};
use super::resolve::Instance;

pub(super) fn collect_strings(value: &toml::Value, out: &mut Vec<String>) {
    match value {
        toml::Value::String(s) => out.push(s.clone()),
        toml::Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        toml::Value::Table(t) => t.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

/// Every template of a step that is rendered with the `steps` context.
pub(super) fn template_sources(d: &Declared) -> Vec<&str> {
    let mut sources: Vec<&str> = d.inputs.iter().map(|l| l.value.as_str()).collect();
    sources.extend(d.env.values().map(|l| l.value.as_str()));
    sources.extend(
        [&d.run, &d.model]
            .into_iter()
            .flatten()
            .map(|l| l.value.as_str()),
    );
    if let Some(r) = &d.ready {
        let r = &r.value;
        sources.extend(
            [&r.http, &r.tcp, &r.log, &r.contains]
                .into_iter()
                .flatten()
                .map(String::as_str),
        );
    }
    if let Some(w) = &d.with {
        sources.extend(table_strings(&w.value));
    }
    sources
}

fn table_strings(table: &toml::Table) -> Vec<&str> {
    fn walk<'t>(value: &'t toml::Value, out: &mut Vec<&'t str>) {
        match value {
            toml::Value::String(s) => out.push(s),
            toml::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            toml::Value::Table(t) => t.values().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    table.values().for_each(|v| walk(v, &mut out));
    out
}

/// Every combination of the matrix lists (one empty combination without a matrix).
pub(super) fn expand(matrix: &[(String, Vec<Json>)]) -> Vec<BTreeMap<String, Json>> {
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

pub(super) fn matrix_order<'m>(d: &Declared, matrix: &'m BTreeMap<String, Json>) -> Vec<&'m Json> {
    d.matrix.iter().filter_map(|(k, _)| matrix.get(k)).collect()
}

pub(super) fn id_fragment(value: &Json) -> String {
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

/// Every instance by id and by declared id, so that `needs` and `steps.<id>` lookups cost a hash
/// probe, not a scan of the pipeline.
pub(super) struct Lookup<'i> {
    by_id: HashMap<&'i str, usize>,
    by_base: HashMap<&'i str, Vec<usize>>,
}

impl<'i> Lookup<'i> {
    pub(super) fn new(instances: &'i [Instance]) -> Self {
        let mut by_id = HashMap::new();
        let mut by_base: HashMap<&str, Vec<usize>> = HashMap::new();
        for (index, inst) in instances.iter().enumerate() {
            by_id.entry(inst.id.as_str()).or_insert(index);
            by_base
                .entry(inst.declared.id.value.as_str())
                .or_default()
                .push(index);
        }
        Self { by_id, by_base }
    }
}

/// Resolves one `needs` entry: an instance id, or a declared id whose instances agree with this
/// step's matrix values on the keys they share.
pub(super) fn match_need(
    need: &str,
    matrix: &BTreeMap<String, Json>,
    instances: &[Instance],
    lookup: &Lookup,
) -> Result<Vec<usize>, String> {
    if let Some(&index) = lookup.by_id.get(need) {
        return Ok(vec![index]);
    }
    let Some(of_base) = lookup.by_base.get(need) else {
        let names: BTreeSet<&str> = instances
            .iter()
            .flat_map(|i| [i.id.as_str(), i.declared.id.value.as_str()])
            .collect();
        return Err(did_you_mean(need, names.iter().copied())
            .unwrap_or_else(|| format!("steps: {}", list(&names))));
    };
    let agree = |m: &BTreeMap<String, Json>| {
        m.iter()
            .all(|(k, v)| matrix.get(k).is_none_or(|mine| mine == v))
    };
    let found: Vec<usize> = of_base
        .iter()
        .copied()
        .filter(|&i| agree(&instances[i].matrix))
        .collect();
    if found.is_empty() {
        return Err(format!(
            "no instance of `{need}` has this step's matrix values"
        ));
    }
    Ok(found)
}

/// Indexes of every step reachable through `needs` (cycles are reported by the graph check).
fn closure(start: usize, needs: &[Vec<usize>]) -> BTreeSet<usize> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![start];
    while let Some(i) = stack.pop() {
        for &j in &needs[i] {
            if seen.insert(j) {
                stack.push(j);
            }
        }
    }
    seen.remove(&start);
    seen
}

/// The names a step's templates look up under `steps` (`steps.x`, `steps['x-1']`), or `None`
/// when one uses `steps` any other way (a loop, a filter, a computed key): then every reachable
/// step goes into the context.
pub(super) fn step_references<'s>(
    sources: impl IntoIterator<Item = &'s str>,
) -> Option<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for source in sources {
        let mut rest = source;
        while let Some(at) = rest.find("steps") {
            let before = rest[..at].chars().next_back();
            let after = &rest[at + "steps".len()..];
            rest = after;
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
                || after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            {
                continue; // part of another name
            }
            names.insert(referenced_name(after)?);
        }
    }
    Some(names)
}

/// `.name` or `['name']` / `["name"]` at the start of `text`.
fn referenced_name(text: &str) -> Option<String> {
    if let Some(attr) = text.strip_prefix('.') {
        let end = attr
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(attr.len());
        return (end > 0).then(|| attr[..end].to_string());
    }
    let inner = text.strip_prefix('[')?.trim_start();
    let quote = inner.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let body = &inner[1..];
    let end = body.find(quote)?;
    body[end + 1..]
        .trim_start()
        .starts_with(']')
        .then(|| body[..end].to_string())
}

/// `steps.<id>.outputs` / `.url` for the steps this one reaches that its templates look up (all
/// of them when `referenced` is `None`), also under the declared id when exactly one instance of
/// it is reachable. A name that is a direct `needs` resolves without walking the graph, so a
/// long chain costs one lookup per step.
pub(super) fn steps_context(
    start: usize,
    all: &[Instance],
    needs: &[Vec<usize>],
    lookup: &Lookup,
    referenced: Option<&BTreeSet<String>>,
) -> Json {
    let entry = |inst: &Instance| json!({"id": inst.id, "outputs": inst.outputs, "url": inst.url});
    let mut map = serde_json::Map::new();
    let mut reachable: Option<BTreeSet<usize>> = None;
    let names: Vec<&str> = match referenced {
        Some(names) => names.iter().map(String::as_str).collect(),
        None => {
            let every = closure(start, needs);
            let names = every
                .iter()
                .flat_map(|&i| [all[i].id.as_str(), all[i].declared.id.value.as_str()])
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            reachable = Some(every);
            names
        }
    };
    for name in names {
        let direct = |i: usize| needs[start].contains(&i);
        let by_id = lookup.by_id.get(name).copied();
        let single_base = match lookup.by_base.get(name).map(Vec::as_slice) {
            Some([only]) => Some(*only),
            _ => None,
        };
        let found = match by_id.or(single_base) {
            Some(i) if direct(i) => Some(i),
            _ => {
                let every = reachable.get_or_insert_with(|| closure(start, needs));
                let of_base: Vec<usize> = lookup
                    .by_base
                    .get(name)
                    .map(|v| v.iter().copied().filter(|i| every.contains(i)).collect())
                    .unwrap_or_default();
                match (by_id.filter(|i| every.contains(i)), of_base.as_slice()) {
                    (Some(i), _) | (None, &[i]) => Some(i),
                    _ => None,
                }
            }
        };
        if let Some(i) = found {
            map.insert(name.to_string(), entry(&all[i]));
        }
    }
    Json::Object(map)
}

/// The span of `needle` inside `within`, or `within` itself.
pub(super) fn find_in(text: &str, within: &Range<usize>, needle: &str) -> Range<usize> {
    let end = within.end.min(text.len());
    let start = within.start.min(end);
    text.get(start..end)
        .and_then(|hay| hay.find(needle))
        .map_or(within.clone(), |at| start + at..start + at + needle.len())
}

/// Points a serde message like "unknown field `x`" at `x` inside the `with` table.
pub(super) fn field_span(text: &str, within: &Range<usize>, message: &str) -> Range<usize> {
    let field = message.split('`').nth(1).unwrap_or("");
    if field.is_empty() {
        return within.clone();
    }
    find_in(text, within, field)
}
