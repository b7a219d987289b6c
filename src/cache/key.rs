//! A step's cache key: blake3 over a typed struct of everything that decides its outputs.
//! Sorted maps throughout, serialized as JSON, so the same inputs always give the same key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::input::InputDigest;

/// Everything that enters a step's key. Kept whole in the lock file so `forge plan` can say,
/// field by field, why a step is stale.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyParts {
    /// The step kind.
    pub kind: String,
    /// The kind's schema version (bumped when a built-in kind changes what it writes).
    pub schema: u32,
    /// The parameters its templates read: name -> resolved value.
    #[serde(default)]
    pub params: BTreeMap<String, Json>,
    /// The resolved step configuration (command line, settings, output paths).
    pub config: Json,
    /// Declared inputs: path -> content digest, or why there is none.
    pub inputs: BTreeMap<String, InputDigest>,
    /// Environment: name -> blake3 of the value, of the template (values rendered from
    /// platform facts), or a marker (`pass_env` variables enter by name unless keyed).
    pub env: BTreeMap<String, String>,
    /// The platform facts the step declares its outputs depend on (`key_platform`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub platform: BTreeMap<String, Json>,
    /// Recorded output digests of the steps it needs: step -> path -> digest.
    pub upstream: BTreeMap<String, BTreeMap<String, String>>,
    /// Services it needs: id -> the service's own key parts (its identity).
    pub services: BTreeMap<String, KeyParts>,
    /// Files a built-in kind reads because of its `with` settings (task directories, pricing
    /// files, templates, tokenizers): path -> content digest, or why there is none. Empty for
    /// `command` and `service`, and then left out, so their keys are what they were.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reads: BTreeMap<String, InputDigest>,
}

impl KeyParts {
    /// The key: blake3 of the canonical JSON form.
    pub fn digest(&self) -> String {
        // Serializing plain data into a Vec cannot fail.
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        blake3::hash(&bytes).to_hex().to_string()
    }

    /// Why `self` differs from `old`, one line per changed field.
    pub fn diff(&self, old: &KeyParts) -> Vec<String> {
        let mut reasons = Vec::new();
        if self.kind != old.kind || self.schema != old.schema {
            reasons.push(format!(
                "step kind changed: `{}` v{} -> `{}` v{}",
                old.kind, old.schema, self.kind, self.schema
            ));
        }
        // A changed param or platform fact re-renders the config: name it, not every field.
        let params_changed = self.params != old.params || self.platform != old.platform;
        for (name, value) in &self.params {
            match old.params.get(name) {
                Some(before) if before == value => {}
                Some(before) => reasons.push(format!(
                    "param `{name}` changed: {} -> {}",
                    short(before),
                    short(value)
                )),
                None => reasons.push(format!("now reads param `{name}`")),
            }
        }
        if !params_changed {
            diff_json("", &old.config, &self.config, &mut reasons);
        }
        diff_maps("input", &old.inputs, &self.inputs, &mut reasons);
        diff_maps("env", &old.env, &self.env, &mut reasons);
        for (fact, value) in &self.platform {
            match old.platform.get(fact) {
                Some(before) if before == value => {}
                Some(before) => reasons.push(format!(
                    "platform `{fact}` changed: {} -> {}",
                    short(before),
                    short(value)
                )),
                None => reasons.push(format!("now keys platform `{fact}`")),
            }
        }
        for fact in old
            .platform
            .keys()
            .filter(|f| !self.platform.contains_key(*f))
        {
            reasons.push(format!("no longer keys platform `{fact}`"));
        }
        diff_maps("`with` file", &old.reads, &self.reads, &mut reasons);
        for (step, outputs) in &self.upstream {
            match old.upstream.get(step) {
                Some(before) if before == outputs => {}
                Some(_) => reasons.push(format!("outputs of `{step}` changed")),
                None => reasons.push(format!("now needs `{step}`")),
            }
        }
        for step in old
            .upstream
            .keys()
            .filter(|s| !self.upstream.contains_key(*s))
        {
            reasons.push(format!("no longer needs `{step}`"));
        }
        for (id, parts) in &self.services {
            match old.services.get(id) {
                Some(before) if before == parts => {}
                Some(before) => {
                    for reason in parts.diff(before) {
                        reasons.push(format!("service `{id}`: {reason}"));
                    }
                }
                None => reasons.push(format!("now needs service `{id}`")),
            }
        }
        reasons
    }
}

fn diff_maps<T: PartialEq + Missing>(
    what: &str,
    old: &BTreeMap<String, T>,
    new: &BTreeMap<String, T>,
    out: &mut Vec<String>,
) {
    for (name, digest) in new {
        match old.get(name) {
            Some(before) if before == digest => {}
            Some(_) if digest.missing() => out.push(format!("{what} `{name}` is missing")),
            Some(_) => out.push(format!("{what} `{name}` changed")),
            None => out.push(format!("{what} `{name}` added")),
        }
    }
    for name in old.keys().filter(|n| !new.contains_key(*n)) {
        out.push(format!("{what} `{name}` removed"));
    }
}

/// A value of a key's map that can say "absent" (an input digest; an environment entry never).
trait Missing {
    fn missing(&self) -> bool;
}

impl Missing for InputDigest {
    fn missing(&self) -> bool {
        self.is_missing()
    }
}

impl Missing for String {
    fn missing(&self) -> bool {
        // An environment entry is a digest of the value or a marker; it is never absent.
        false
    }
}

/// Field-level differences between two JSON values, as `` `with.title` changed: "a" -> "b" ``.
fn diff_json(path: &str, old: &Json, new: &Json, out: &mut Vec<String>) {
    match (old, new) {
        (Json::Object(a), Json::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let sub = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => diff_json(&sub, x, y, out),
                    (None, Some(y)) => out.push(format!("`{sub}` added: {}", short(y))),
                    (Some(_), None) => out.push(format!("`{sub}` removed")),
                    (None, None) => {}
                }
            }
        }
        _ if old == new => {}
        _ => out.push(format!(
            "`{path}` changed: {} -> {}",
            short(old),
            short(new)
        )),
    }
}

fn short(value: &Json) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(57).collect::<String>())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parts() -> KeyParts {
        KeyParts {
            kind: "command".into(),
            schema: 1,
            config: json!({"run": "echo", "with": {"title": "A"}}),
            inputs: BTreeMap::from([("a.txt".into(), InputDigest::Digest("d1".into()))]),
            env: BTreeMap::from([("X".into(), "e1".into())]),
            ..Default::default()
        }
    }

    #[test]
    fn key_is_stable_and_sensitive() {
        let a = parts();
        assert_eq!(a.digest(), parts().digest());
        let mut b = parts();
        b.env.insert("X".into(), "e2".into());
        assert_ne!(a.digest(), b.digest());
    }

    #[test]
    fn diff_names_fields() {
        let old = parts();
        let mut new = parts();
        new.config = json!({"run": "echo", "with": {"title": "B"}});
        new.inputs
            .insert("a.txt".into(), InputDigest::Digest("d2".into()));
        new.inputs.insert("b.txt".into(), InputDigest::Missing);
        new.env.clear();
        assert_eq!(
            new.diff(&old),
            vec![
                "`with.title` changed: \"A\" -> \"B\"".to_string(),
                "input `a.txt` changed".into(),
                "input `b.txt` added".into(),
                "env `X` removed".into(),
            ]
        );
    }
}
