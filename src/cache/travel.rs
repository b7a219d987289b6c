//! The machine-independent parts of a key: what a step's environment and platform contribute,
//! and workspace-relative text. The same step on another machine, at another path, with another
//! token or another number of cores gets the same key (`docs/manifest.md`, "Keys that travel").

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value as Json;

use crate::manifest::Step;

/// What stands for the workspace's absolute path in keys.
pub const WORKSPACE: &str = "{{ workspace }}";

/// What a `pass_env` variable that is not in `key_env` contributes: its name only.
pub const BY_NAME: &str = "passed through (by name)";

/// A step's environment in its key: name -> digest. Declared values enter as digests of their
/// workspace-relative text, except those rendered from platform facts the step does not key
/// (their template enters instead); `pass_env` variables enter by name unless `key_env` names
/// them, then as the digest of their value (`unset` when absent).
pub fn env(step: &Step, workspace: &Path) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = step
        .env
        .iter()
        .map(|(name, value)| {
            let entry = match step.platform_env.get(name) {
                Some(template) => format!("template {}", digest(template)),
                None => digest(&relative(value, workspace)),
            };
            (name.clone(), entry)
        })
        .collect();
    for name in &step.pass_env {
        let entry = if step.key_env.contains(name) {
            std::env::var(name).map_or_else(|_| "unset".to_string(), |v| digest(&v))
        } else {
            BY_NAME.to_string()
        };
        out.insert(name.clone(), entry);
    }
    out
}

/// The platform facts a step keys (`key_platform`), with this machine's values.
pub fn platform(step: &Step) -> BTreeMap<String, Json> {
    step.key_platform
        .iter()
        .map(|fact| {
            let value = step.context["platform"].get(fact).cloned();
            (fact.clone(), value.unwrap_or(Json::Null))
        })
        .collect()
}

/// `text` with the workspace's absolute path replaced by [`WORKSPACE`].
pub fn relative(text: &str, workspace: &Path) -> String {
    let root = workspace.display().to_string();
    if root.len() <= 1 {
        return text.to_string(); // a workspace at `/` has nothing to strip
    }
    text.replace(&root, WORKSPACE)
}

/// Every string in `value` made workspace-relative.
pub fn relative_json(value: Json, workspace: &Path) -> Json {
    match value {
        Json::String(s) => Json::String(relative(&s, workspace)),
        Json::Array(items) => Json::Array(
            items
                .into_iter()
                .map(|v| relative_json(v, workspace))
                .collect(),
        ),
        Json::Object(map) => Json::Object(
            map.into_iter()
                .map(|(k, v)| (k, relative_json(v, workspace)))
                .collect(),
        ),
        other => other,
    }
}

fn digest(text: &str) -> String {
    blake3::hash(text.as_bytes()).to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_workspace_paths_become_relative() {
        let ws = Path::new("/tmp/a/ws");
        assert_eq!(
            relative("cp /tmp/a/ws/x /tmp/b", ws),
            "cp {{ workspace }}/x /tmp/b"
        );
        let value = serde_json::json!({"cmd": ["/tmp/a/ws/bin/python", 3]});
        assert_eq!(
            relative_json(value, ws),
            serde_json::json!({"cmd": ["{{ workspace }}/bin/python", 3]})
        );
    }
}
