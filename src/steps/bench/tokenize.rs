//! Counting and producing tokens for dataset sampling: the server's own tokenizer
//! (vLLM `/tokenize` + `/detokenize`), a local `tokenizer.json` (the `tokenizers` crate), or,
//! when neither is available, an estimate (4 characters per token) that only affects ShareGPT
//! length filtering; reported token totals always come from the server's `usage`.

use std::path::Path;

use serde_json::json;

use super::BenchError;
use super::client::chain;

/// Where token counts come from.
pub enum TokenCounter {
    /// The server's `/tokenize` and `/detokenize` routes.
    Server {
        /// Shared HTTP client.
        http: reqwest::Client,
        /// Base URL of the server.
        base: String,
        /// Served model name.
        model: String,
    },
    /// A local Hugging Face tokenizer.
    Local(Box<tokenizers::Tokenizer>),
    /// `ceil(chars / 4)`: no tokenizer available.
    Estimate,
}

impl std::fmt::Debug for TokenCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl TokenCounter {
    /// Pick a counter: the local tokenizer when `path` is given (a `tokenizer.json` or a
    /// directory holding one), else the server's `/tokenize` when it answers, else an estimate.
    pub async fn resolve(path: Option<&Path>, base: &str, model: &str) -> Result<Self, BenchError> {
        if let Some(path) = path {
            return Self::local(path);
        }
        let server = TokenCounter::Server {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_string(),
            model: model.to_string(),
        };
        match server.encode("hello world", true).await {
            Ok(ids) if !ids.is_empty() => Ok(server),
            _ => Ok(TokenCounter::Estimate),
        }
    }

    /// Load a local `tokenizer.json` (or `<dir>/tokenizer.json`).
    pub fn local(path: &Path) -> Result<Self, BenchError> {
        let file = if path.is_dir() {
            path.join("tokenizer.json")
        } else {
            path.to_path_buf()
        };
        let tokenizer =
            tokenizers::Tokenizer::from_file(&file).map_err(|e| BenchError::Tokenizer {
                path: file.clone(),
                message: e.to_string(),
            })?;
        Ok(TokenCounter::Local(Box::new(tokenizer)))
    }

    /// A short description for metadata and logs.
    pub fn describe(&self) -> String {
        match self {
            TokenCounter::Server { base, .. } => format!("server {base}/tokenize"),
            TokenCounter::Local(_) => "local tokenizer.json".to_string(),
            TokenCounter::Estimate => "estimate (4 chars/token)".to_string(),
        }
    }

    /// Tokens in `text` as the server counts a prompt (special tokens included).
    pub async fn count(&self, text: &str) -> Result<u32, BenchError> {
        match self {
            TokenCounter::Estimate => Ok((text.chars().count() as u32).div_ceil(4)),
            _ => Ok(self.encode(text, true).await?.len() as u32),
        }
    }

    /// Token ids of `text`.
    pub async fn encode(&self, text: &str, special: bool) -> Result<Vec<u32>, BenchError> {
        match self {
            TokenCounter::Server { http, base, model } => {
                let body = json!({"model": model, "prompt": text, "add_special_tokens": special});
                let v = post_json(http, &format!("{base}/tokenize"), &body).await?;
                let tokens = v.get("tokens").and_then(|t| t.as_array()).ok_or_else(|| {
                    BenchError::Http(format!("{base}/tokenize: answer has no `tokens` array"))
                })?;
                Ok(tokens
                    .iter()
                    .filter_map(|t| t.as_u64())
                    .map(|t| t as u32)
                    .collect())
            }
            TokenCounter::Local(tokenizer) => tokenizer
                .encode(text, special)
                .map(|e| e.get_ids().to_vec())
                .map_err(|e| BenchError::Http(format!("tokenizer: {e}"))),
            TokenCounter::Estimate => Err(BenchError::NeedsTokenizer),
        }
    }

    /// Text of token ids (special tokens skipped).
    pub async fn decode(&self, ids: &[u32]) -> Result<String, BenchError> {
        match self {
            TokenCounter::Server { http, base, model } => {
                let body = json!({"model": model, "tokens": ids});
                let v = post_json(http, &format!("{base}/detokenize"), &body).await?;
                v.get("prompt")
                    .and_then(|p| p.as_str())
                    .map(str::to_string)
                    .ok_or_else(|| {
                        BenchError::Http(format!(
                            "{base}/detokenize: answer has no `prompt` string"
                        ))
                    })
            }
            TokenCounter::Local(tokenizer) => tokenizer
                .decode(ids, true)
                .map_err(|e| BenchError::Http(format!("tokenizer: {e}"))),
            TokenCounter::Estimate => Err(BenchError::NeedsTokenizer),
        }
    }
}

async fn post_json(
    http: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value, BenchError> {
    let response = http
        .post(url)
        .json(body)
        .timeout(std::time::Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| BenchError::Http(format!("{url}: {}", chain(&e))))?;
    let status = response.status();
    if !status.is_success() {
        return Err(BenchError::Http(format!("{url}: HTTP {status}")));
    }
    response
        .json()
        .await
        .map_err(|e| BenchError::Http(format!("{url}: {}", chain(&e))))
}
