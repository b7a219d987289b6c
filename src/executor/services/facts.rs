//! What a ready service's users and results learn about it: engine version, served model, the
//! model's identity, and the facts its launcher published in its facts file.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::manifest::body::Service;

/// The variable naming the file where a service's launcher may publish facts about itself (the
/// engine's torch and CUDA runtime versions, which only its own environment knows).
pub const FACTS_FILE_ENV: &str = "FORGE_FACTS_FILE";

/// The facts file of a service whose log is `log` (`.forge/logs/<id>.log.facts.json`).
pub(super) fn facts_file(log: &std::path::Path) -> std::path::PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".facts.json");
    std::path::PathBuf::from(name)
}

/// Merges the string facts a launcher published in `file` (a JSON object) into `facts`; the facts
/// Forge gathered itself win, and a missing or unreadable file adds nothing.
pub(super) fn published_facts(
    file: &std::path::Path,
    facts: &mut BTreeMap<String, serde_json::Value>,
) {
    let Ok(text) = std::fs::read_to_string(file) else {
        return;
    };
    let Ok(serde_json::Value::Object(published)) = serde_json::from_str(&text) else {
        return;
    };
    for (key, value) in published {
        if value.is_string() {
            facts.entry(key).or_insert(value);
        }
    }
}

/// What results need to know about a running server: engine version (`/version`), served model
/// (`/v1/models`), and the model's identity (blake3 of its weights directory, or the hub id).
pub(super) async fn gather_facts(
    service: &Service,
    workspace: &std::path::Path,
    stat: &Arc<crate::cache::StatCache>,
) -> BTreeMap<String, serde_json::Value> {
    use serde_json::{Value, json};
    let mut facts = BTreeMap::new();
    if let Some(url) = &service.url {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build();
        if let Ok(client) = client {
            let get = |path: &str| {
                client
                    .get(format!("{}{path}", url.trim_end_matches('/')))
                    .send()
            };
            if let Ok(response) = get("/version").await
                && let Ok(body) = response.json::<Value>().await
                && let Some(version) = body.get("version")
            {
                facts.insert("engine_version".into(), version.clone());
            }
            if let Ok(response) = get("/v1/models").await
                && let Ok(body) = response.json::<Value>().await
                && let Some(id) = body.pointer("/data/0/id")
            {
                facts.insert("served_name".into(), id.clone());
            }
        }
    }
    if let Some(model) = &service.model {
        facts.insert("model_id".into(), json!(model));
        let dir = workspace.join(model);
        // Hashing weights (gigabytes the first time) runs off the async threads.
        let digest = {
            let (stat, dir) = (stat.clone(), dir.clone());
            tokio::task::spawn_blocking(move || stat.input_digest(&dir)).await
        };
        match digest {
            Ok(Ok(Some(digest))) => {
                facts.insert(
                    "model_sha".into(),
                    json!(format!("blake3:{}", digest.digest)),
                );
                if let Ok(text) = std::fs::read_to_string(dir.join("forge-model.json"))
                    && let Ok(source) = serde_json::from_str::<Value>(&text)
                {
                    facts.insert("model_source".into(), source);
                }
                if let Ok(text) = std::fs::read_to_string(dir.join("forge-quant.json"))
                    && let Ok(record) = serde_json::from_str::<Value>(&text)
                {
                    facts.insert("model_quantization".into(), record);
                }
            }
            _ => {
                // A hub id: the server resolves it; its revision is not pinned here.
                facts.insert("model_sha".into(), Value::Null);
            }
        }
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_launcher_adds_string_facts_without_overriding_forges() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = facts_file(&dir.path().join("serve.log"));
        assert!(file.ends_with("serve.log.facts.json"));
        let mut facts =
            BTreeMap::from([("engine_version".to_string(), serde_json::json!("0.32.0"))]);
        published_facts(&file, &mut facts);
        assert_eq!(facts.len(), 1, "a missing file adds nothing");
        std::fs::write(
            &file,
            r#"{"engine_torch": "2.10.0+cu128", "engine_cuda": "12.8", "engine_version": "9", "n": 1}"#,
        )
        .expect("write");
        published_facts(&file, &mut facts);
        assert_eq!(facts["engine_version"], "0.32.0");
        assert_eq!(facts["engine_torch"], "2.10.0+cu128");
        assert_eq!(facts["engine_cuda"], "12.8");
        assert!(!facts.contains_key("n"), "only strings");
    }
}
