//! Matrix expansion, `needs` matching, and the `steps` template context.

use std::collections::{BTreeMap, BTreeSet};
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

/// Resolves one `needs` entry: an instance id, or a declared id whose instances agree with this
/// step's matrix values on the keys they share.
pub(super) fn match_need(
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
pub(super) fn closure(start: usize, instances: &[Instance], needs: &[Vec<String>]) -> Vec<usize> {
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
pub(super) fn steps_context(closure: &[usize], all: &[Instance]) -> Json {
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
