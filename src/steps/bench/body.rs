//! Request bodies: one OpenAI JSON body per prompt, built once per sweep and shared (as
//! `Bytes`) by every level; repeated prompts share one body.

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::{Map, json};

use super::dataset::Prompt;
use super::schedule::Requests;
use super::settings::{BenchSettings, Endpoint};

/// One JSON body per prompt, built once and shared by every level.
pub fn build_requests(settings: &BenchSettings, model: &str, prompts: &[Prompt]) -> Requests {
    let mut bodies = Vec::with_capacity(prompts.len());
    // Oversampled datasets repeat prompts: repeated prompts share one body.
    let mut seen: HashMap<(&str, u32), Bytes> = HashMap::new();
    for p in prompts {
        let max_tokens = settings.output_len_for(p.output_len);
        if let Some(body) = seen.get(&(&*p.text, max_tokens)) {
            bodies.push(body.clone());
            continue;
        }
        let mut body = Map::new();
        body.insert("model".into(), json!(model));
        match settings.endpoint {
            Endpoint::Completions => {
                body.insert("prompt".into(), json!(&*p.text));
                body.insert("max_tokens".into(), json!(max_tokens));
            }
            Endpoint::Chat => {
                body.insert(
                    "messages".into(),
                    json!([{"role": "user", "content": &*p.text}]),
                );
                body.insert("max_completion_tokens".into(), json!(max_tokens));
            }
        }
        body.insert("stream".into(), json!(true));
        body.insert("stream_options".into(), json!({"include_usage": true}));
        if settings.effective_ignore_eos() {
            body.insert("ignore_eos".into(), json!(true));
        }
        if let Some(t) = settings.temperature {
            body.insert("temperature".into(), json!(t));
        }
        for (k, v) in &settings.extra_body {
            body.insert(k.clone(), v.clone());
        }
        let bytes = Bytes::from(serde_json::to_vec(&body).expect("a JSON map serializes"));
        seen.insert((&*p.text, max_tokens), bytes.clone());
        bodies.push(bytes);
    }
    Requests {
        bodies,
        prompt_lens: prompts.iter().map(|p| p.prompt_len).collect(),
        output_lens: prompts
            .iter()
            .map(|p| settings.output_len_for(p.output_len))
            .collect(),
    }
}
