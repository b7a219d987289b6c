//! Prompt sampling: ShareGPT (vLLM's rules), random prompts of exact token lengths, and JSONL
//! traces. The sweep samples once, so every level sends the same prompts in the same order.
//!
//! ShareGPT rules follow vLLM `vllm/benchmarks/datasets.py::ShareGPTDataset.sample` and
//! `dataset_utils.py::is_valid_sequence`: keep conversations with >= 2 turns, seeded shuffle,
//! prompt = turn 0, completion = turn 1, drop prompt < 4 or > 1024 tokens, output < 4 (unless
//! the output length is fixed) or prompt + output > 2048, oversample with replacement when short.
//! The shuffle uses ChaCha8 (portable), not Python's Mersenne Twister, so the chosen subset
//! differs from vLLM's for the same seed; the rules are the same.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::BenchError;
use super::settings::{BenchSettings, DatasetKind};
use super::tokenize::TokenCounter;

/// One prompt of the workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    /// The prompt text (the user message for chat).
    pub text: Arc<str>,
    /// Prompt tokens as sampled (the server's `usage` replaces it in results).
    pub prompt_len: u32,
    /// Output tokens requested (`max_tokens`).
    pub output_len: u32,
    /// Arrival offset in seconds from a JSONL trace.
    pub timestamp: Option<f64>,
    /// ShareGPT: the reply turn (lets the vLLM driver derive the same output length).
    pub completion: Option<Arc<str>>,
}

#[derive(Deserialize)]
struct ShareGptEntry {
    #[serde(default)]
    id: Option<String>,
    conversations: Vec<ShareGptTurn>,
}

#[derive(Deserialize)]
struct ShareGptTurn {
    value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TraceLine {
    prompt: String,
    output_len: u32,
    #[serde(default)]
    prompt_len: Option<u32>,
    #[serde(default)]
    timestamp: Option<f64>,
}

fn bad(path: &Path, entry: impl Into<String>, message: impl Into<String>) -> BenchError {
    BenchError::Dataset {
        path: path.to_path_buf(),
        entry: entry.into(),
        message: message.into(),
    }
}

/// Resolve a dataset path against the workspace.
pub fn resolve_path(workspace: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        workspace.join(path)
    }
}

/// Sample `n` prompts as the settings say.
pub async fn sample(
    settings: &BenchSettings,
    workspace: &Path,
    counter: &TokenCounter,
    n: usize,
) -> Result<Vec<Prompt>, BenchError> {
    let ds = &settings.dataset;
    let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
    match ds.kind {
        DatasetKind::Sharegpt => {
            let path = resolve_path(workspace, ds.path.as_deref().expect("validated"));
            sharegpt(&path, settings.max_tokens, counter, n, &mut rng).await
        }
        DatasetKind::Jsonl => {
            let path = resolve_path(workspace, ds.path.as_deref().expect("validated"));
            let prompts = jsonl(&path)?;
            Ok(prompts.into_iter().cycle().take(n).collect())
        }
        DatasetKind::Random => {
            let (input, output) = (
                ds.input_len.expect("validated"),
                ds.output_len.expect("validated"),
            );
            random(counter, input, output, ds.range_ratio, n, &mut rng).await
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, BenchError> {
    std::fs::read(path).map_err(|e| bad(path, "", format!("cannot read the file: {e}")))
}

async fn sharegpt(
    path: &Path,
    fixed_output: Option<u32>,
    counter: &TokenCounter,
    n: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<Prompt>, BenchError> {
    let bytes = read(path)?;
    let raw: Vec<&RawValue> = serde_json::from_slice(&bytes)
        .map_err(|e| bad(path, "", format!("not a JSON list of conversations: {e}")))?;
    let mut entries = Vec::with_capacity(raw.len());
    for (i, value) in raw.iter().enumerate() {
        let entry: ShareGptEntry = serde_json::from_str(value.get()).map_err(|e| {
            bad(
                path,
                format!("entry {i}"),
                format!("{e} (expected {{\"conversations\": [{{\"from\", \"value\"}}, ...]}})"),
            )
        })?;
        if entry.conversations.len() >= 2 {
            entries.push((i, entry));
        }
    }
    entries.shuffle(rng);
    let mut out = Vec::with_capacity(n);
    for (i, entry) in &entries {
        if out.len() >= n {
            break;
        }
        let name = || {
            format!(
                "entry {i}{}",
                entry
                    .id
                    .as_deref()
                    .map(|id| format!(" (id `{id}`)"))
                    .unwrap_or_default()
            )
        };
        let prompt = &entry.conversations[0].value;
        let prompt_len = counter
            .count(prompt)
            .await
            .map_err(|e| bad(path, name(), e.to_string()))?;
        let output_len = match fixed_output {
            Some(l) => l,
            None => counter
                .count(&entry.conversations[1].value)
                .await
                .map_err(|e| bad(path, name(), e.to_string()))?,
        };
        if !is_valid_sequence(prompt_len, output_len, fixed_output.is_some()) {
            continue;
        }
        let completion = Some(entry.conversations[1].value.as_str().into());
        out.push(Prompt {
            text: prompt.as_str().into(),
            prompt_len,
            output_len,
            timestamp: None,
            completion,
        });
    }
    if out.is_empty() {
        return Err(bad(
            path,
            "",
            "no conversation passes vLLM's filters (>= 2 turns, prompt 4..=1024 tokens, output >= 4, total <= 2048)",
        ));
    }
    // vLLM oversamples with replacement (`random.choices`) to reach the requested count.
    let have = out.clone();
    while out.len() < n {
        out.push(have.choose(rng).expect("non-empty").clone());
    }
    Ok(out)
}

/// vLLM `is_valid_sequence` with its defaults (min 4, max prompt 1024, max total 2048).
pub fn is_valid_sequence(prompt_len: u32, output_len: u32, skip_min_output_check: bool) -> bool {
    let prompt_too_short = prompt_len < 4;
    let output_too_short = !skip_min_output_check && output_len < 4;
    let prompt_too_long = prompt_len > 1024;
    let total_too_long = prompt_len + output_len > 2048;
    !(prompt_too_short || output_too_short || prompt_too_long || total_too_long)
}

/// Read a JSONL trace; errors name the line.
pub fn jsonl(path: &Path) -> Result<Vec<Prompt>, BenchError> {
    let bytes = read(path)?;
    let text = String::from_utf8(bytes).map_err(|e| bad(path, "", format!("not UTF-8: {e}")))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let entry = format!("line {}", i + 1);
        let t: TraceLine = serde_json::from_str(line).map_err(|e| {
            bad(path, entry.clone(), format!("{e} (expected {{\"prompt\": str, \"output_len\": int, \"timestamp\"?: seconds}})"))
        })?;
        if t.output_len == 0 {
            return Err(bad(path, entry, "`output_len` must be >= 1"));
        }
        if t.timestamp.is_some_and(|ts| ts.is_nan() || ts < 0.0) {
            return Err(bad(path, entry, "`timestamp` must be >= 0 seconds"));
        }
        out.push(Prompt {
            prompt_len: t.prompt_len.unwrap_or(0),
            text: t.prompt.into(),
            output_len: t.output_len,
            timestamp: t.timestamp,
            completion: None,
        });
    }
    if out.is_empty() {
        return Err(bad(path, "", "no entries"));
    }
    Ok(out)
}

const WORDS: &[&str] = &[
    "the", "model", "server", "token", "latency", "stream", "batch", "cache", "memory", "river",
    "mountain", "city", "garden", "music", "history", "science", "market", "energy", "travel",
    "story", "number", "answer", "question", "simple", "result", "value", "data", "time", "kernel",
];

/// vLLM random lengths: uniform integer in `[floor(L(1-r)), ceil(L(1+r))]`.
fn length(rng: &mut ChaCha8Rng, l: u32, r: f64, min: u32) -> u32 {
    let lo = ((f64::from(l) * (1.0 - r)).floor() as u32).max(min);
    let hi = ((f64::from(l) * (1.0 + r)).ceil() as u32).max(lo);
    rng.random_range(lo..=hi)
}

async fn random(
    counter: &TokenCounter,
    input: u32,
    output: u32,
    ratio: f64,
    n: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<Prompt>, BenchError> {
    if matches!(counter, TokenCounter::Estimate) {
        return Err(BenchError::NeedsTokenizer);
    }
    let special =
        counter.count("hello").await? as i64 - counter.encode("hello", false).await?.len() as i64;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let target = length(rng, input, ratio, 1);
        let output_len = length(rng, output, ratio, 1);
        let (text, prompt_len) = exact_prompt(counter, rng, target, special.max(0) as u32).await?;
        out.push(Prompt {
            text: text.into(),
            prompt_len,
            output_len,
            timestamp: None,
            completion: None,
        });
    }
    Ok(out)
}

/// Random words cut to `target` tokens: decode a prefix of the ids, re-count, adjust (<= 10 tries).
async fn exact_prompt(
    counter: &TokenCounter,
    rng: &mut ChaCha8Rng,
    target: u32,
    special: u32,
) -> Result<(String, u32), BenchError> {
    let words: Vec<&str> = (0..target as usize * 2 + 8)
        .map(|_| *WORDS.choose(rng).expect("non-empty"))
        .collect();
    let ids = counter.encode(&words.join(" "), false).await?;
    let mut take = (target.saturating_sub(special).max(1) as usize).min(ids.len());
    let mut best = (String::new(), 0);
    for _ in 0..10 {
        let text = counter.decode(&ids[..take]).await?;
        let count = counter.count(&text).await?;
        best = (text, count);
        if count == target {
            break;
        }
        let next = take as i64 + i64::from(target) - i64::from(count);
        let next = next.clamp(1, ids.len() as i64) as usize;
        if next == take {
            break;
        }
        take = next;
    }
    Ok(best)
}

/// blake3 of every prompt's text and lengths, in order: equal fingerprints mean equal prompts.
pub fn fingerprint(prompts: &[Prompt]) -> blake3::Hash {
    let mut h = blake3::Hasher::new();
    for p in prompts {
        h.update(&(p.text.len() as u64).to_le_bytes());
        h.update(p.text.as_bytes());
        h.update(&p.prompt_len.to_le_bytes());
        h.update(&p.output_len.to_le_bytes());
        h.update(&p.timestamp.unwrap_or(-1.0).to_le_bytes());
    }
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_rules_match_vllm() {
        assert!(is_valid_sequence(4, 4, false));
        assert!(!is_valid_sequence(3, 100, false));
        assert!(!is_valid_sequence(10, 3, false));
        assert!(is_valid_sequence(10, 3, true));
        assert!(!is_valid_sequence(1025, 10, false));
        assert!(!is_valid_sequence(1024, 1025, false));
        assert!(is_valid_sequence(1024, 1024, false));
    }

    #[tokio::test]
    async fn sample_file_is_deterministic_and_filtered() {
        let settings: BenchSettings = toml::from_str(
            "seed = 3\ndataset = { kind = \"sharegpt\", path = \"data/sharegpt-sample.json\" }",
        )
        .unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let a = sample(&settings, root, &TokenCounter::Estimate, 300)
            .await
            .unwrap();
        let b = sample(&settings, root, &TokenCounter::Estimate, 300)
            .await
            .unwrap();
        assert_eq!(a.len(), 300);
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert!(
            a.iter()
                .all(|p| is_valid_sequence(p.prompt_len, p.output_len, false))
        );
        let other: BenchSettings = toml::from_str(
            "seed = 4\ndataset = { kind = \"sharegpt\", path = \"data/sharegpt-sample.json\" }",
        )
        .unwrap();
        let c = sample(&other, root, &TokenCounter::Estimate, 300)
            .await
            .unwrap();
        assert_ne!(fingerprint(&a), fingerprint(&c));
    }

    /// A word-level tokenizer over `WORDS` that prepends a BOS special token, like many LLMs.
    fn word_tokenizer(dir: &Path) -> PathBuf {
        let mut vocab = serde_json::Map::new();
        vocab.insert("[UNK]".into(), 0.into());
        vocab.insert("<s>".into(), 1.into());
        for (i, w) in WORDS.iter().enumerate() {
            vocab.insert((*w).into(), (i + 2).into());
        }
        let json = serde_json::json!({
            "version": "1.0", "truncation": null, "padding": null,
            "added_tokens": [{"id": 1, "content": "<s>", "single_word": false, "lstrip": false,
                              "rstrip": false, "normalized": false, "special": true}],
            "normalizer": null, "pre_tokenizer": {"type": "Whitespace"},
            "post_processor": {"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
            "decoder": null,
            "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
        });
        let path = dir.join("tokenizer.json");
        std::fs::write(&path, json.to_string()).unwrap();
        path
    }

    #[tokio::test]
    async fn random_prompts_have_exact_lengths_with_a_local_tokenizer() {
        let dir = tempfile::tempdir().unwrap();
        let counter = TokenCounter::local(&word_tokenizer(dir.path())).unwrap();
        assert_eq!(
            counter.count("the model").await.unwrap(),
            3,
            "BOS + 2 words"
        );
        let settings: BenchSettings = toml::from_str(
            "dataset = { kind = \"random\", input_len = 32, output_len = 8, range_ratio = 0.25 }",
        )
        .unwrap();
        let prompts = sample(&settings, dir.path(), &counter, 20).await.unwrap();
        for p in &prompts {
            assert!((24..=40).contains(&p.prompt_len), "{}", p.prompt_len);
            assert_eq!(counter.count(&p.text).await.unwrap(), p.prompt_len);
            assert!((6..=10).contains(&p.output_len));
        }
        let again = sample(&settings, dir.path(), &counter, 20).await.unwrap();
        assert_eq!(fingerprint(&prompts), fingerprint(&again));
    }

    #[tokio::test]
    async fn random_needs_a_tokenizer() {
        let settings: BenchSettings =
            toml::from_str("dataset = { kind = \"random\", input_len = 8, output_len = 8 }")
                .unwrap();
        let err = sample(&settings, Path::new("."), &TokenCounter::Estimate, 2)
            .await
            .unwrap_err();
        assert!(matches!(err, BenchError::NeedsTokenizer));
    }
}
