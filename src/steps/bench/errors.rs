//! Failed requests grouped by class: `http <status>`, `connection refused`, `connection reset`,
//! `truncated stream`, `stalled`, `timeout`, `other`, each with a count and one example
//! message. A class never carries a request-specific detail (ids, offsets, timings), so a level
//! where every request fails the same way has one key, not one per request.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use super::record::RequestRecord;

/// Longest example message kept per class, in characters.
const EXAMPLE_CHARS: usize = 300;

/// One class of failures in a level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ErrorClass {
    /// Failed requests of this class.
    pub count: u64,
    /// The first such request's message (in prompt order), cut at 300 characters.
    pub example: String,
}

/// Failure classes of a level, keyed by class name (sorted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ErrorBreakdown(pub BTreeMap<String, ErrorClass>);

impl ErrorBreakdown {
    /// Group the failed records' reasons by class.
    pub fn of(records: &[RequestRecord]) -> Self {
        let mut out = ErrorBreakdown::default();
        for r in records {
            if let Some(message) = r.error.as_deref() {
                out.add(&classify(r.http_status, message), message, 1);
            }
        }
        out
    }

    fn add(&mut self, class: &str, message: &str, count: u64) {
        let entry = self
            .0
            .entry(class.to_string())
            .or_insert_with(|| ErrorClass {
                count: 0,
                example: message.chars().take(EXAMPLE_CHARS).collect(),
            });
        entry.count += count;
    }

    /// Whether no request failed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The most frequent class and its example (the first name on a tie).
    pub fn most_frequent(&self) -> Option<(&str, &ErrorClass)> {
        self.0
            .iter()
            .rev()
            .max_by_key(|(_, class)| class.count)
            .map(|(name, class)| (name.as_str(), class))
    }
}

/// Reads both shapes: `{class: {count, example}}`, and the older `{message: count}` of result
/// files written before classes existed (each message is classified, and is its own example).
impl<'de> Deserialize<'de> for ErrorBreakdown {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Entry {
            Class(ErrorClass),
            Count(u64),
        }
        let raw = BTreeMap::<String, Entry>::deserialize(deserializer)?;
        let mut out = ErrorBreakdown::default();
        for (key, entry) in raw {
            match entry {
                Entry::Class(class) => {
                    out.0.insert(key, class);
                }
                Entry::Count(count) => out.add(&classify(None, &key), &key, count),
            }
        }
        Ok(out)
    }
}

/// What [`ErrorBreakdown`]'s reader accepts: an object of classes, each `{count, example}` (what
/// Forge writes) or a bare count (the older `{message: count}` shape).
impl schemars::JsonSchema for ErrorBreakdown {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ErrorBreakdown".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let class = generator.subschema_for::<ErrorClass>();
        schemars::json_schema!({
            "description": "Failed requests by class name: `{count, example}` per class (written), or a count per message (read from older files).",
            "type": "object",
            "additionalProperties": {
                "anyOf": [class, {"type": "integer", "format": "uint64", "minimum": 0}]
            }
        })
    }
}

/// The class of one failure, from its HTTP status (when one other than 200 arrived) and the
/// recorded reason (Forge's messages from `client.rs`/`sse.rs`, or `vllm bench serve`'s, which
/// give a non-200 response as its reason phrase and an exception as its traceback).
pub fn classify(http_status: Option<u16>, message: &str) -> String {
    if let Some(status) = http_status.filter(|&s| s != 200) {
        return format!("http {status}");
    }
    if let Some(status) = status_in(message) {
        return format!("http {status}");
    }
    let m = message.to_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| m.contains(n));
    let class = if has(&["stream stalled"]) {
        "stalled"
    } else if has(&["timeout", "timed out"]) {
        "timeout"
    } else if has(&["connection refused", "tcp connect error", "cannot connect"]) {
        "connection refused"
    } else if has(&[
        "stream broken",
        "connection reset",
        "connection closed",
        "broken pipe",
        "disconnected",
        "incomplete message",
    ]) {
        "connection reset"
    } else if has(&["stream ended before", "never received a valid chunk"]) {
        "truncated stream"
    } else {
        "other"
    };
    class.to_string()
}

/// `HTTP 503 ...` (Forge's status message), or a bare reason phrase such as `Service
/// Unavailable` (vLLM records `response.reason` and no status).
fn status_in(message: &str) -> Option<u16> {
    if let Some(rest) = message.strip_prefix("HTTP ") {
        return rest.get(..3).and_then(|code| code.parse().ok());
    }
    let phrase = message.trim();
    (100..600u16).find(|&code| {
        reqwest::StatusCode::from_u16(code)
            .ok()
            .and_then(|s| s.canonical_reason())
            .is_some_and(|reason| reason.eq_ignore_ascii_case(phrase))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(index: u32, status: Option<u16>, error: &str) -> RequestRecord {
        RequestRecord {
            index,
            http_status: status,
            error: Some(error.to_string()),
            ..Default::default()
        }
    }

    #[test]
    fn every_recorded_reason_has_a_class() {
        let cases = [
            (
                Some(500),
                "HTTP 500 Internal Server Error: engine crashed",
                "http 500",
            ),
            (None, "HTTP 429 Too Many Requests: slow down", "http 429"),
            (None, "Service Unavailable", "http 503"),
            (None, "stream stalled: no data for 60.0 s", "stalled"),
            (None, "request timeout after 900.0 s", "timeout"),
            (
                None,
                "error sending request for url (http://127.0.0.1:1/v1/completions): client error (Connect): tcp connect error: Connection refused (os error 111)",
                "connection refused",
            ),
            (
                None,
                "stream broken: error decoding response body: connection closed before message completed",
                "connection reset",
            ),
            (
                None,
                "Traceback ...\naiohttp.client_exceptions.ServerDisconnectedError: Server disconnected",
                "connection reset",
            ),
            (
                None,
                "stream ended before `data: [DONE]`",
                "truncated stream",
            ),
            (
                None,
                "never received a valid chunk to calculate TTFT (no `choices` message)",
                "truncated stream",
            ),
            (None, "server error in stream: kv cache full", "other"),
            (None, "malformed SSE data (not JSON: x): `{oops`", "other"),
        ];
        for (status, message, class) in cases {
            assert_eq!(classify(status, message), class, "{message}");
        }
    }

    #[test]
    fn one_class_with_request_numbers_is_one_key() {
        let records: Vec<RequestRecord> = (0..5)
            .map(|i| {
                failed(
                    i,
                    Some(500),
                    &format!("HTTP 500 Internal Server Error: request {i} failed"),
                )
            })
            .chain([RequestRecord::default()])
            .chain([failed(9, None, "stream stalled: no data for 0.3 s")])
            .collect();
        let b = ErrorBreakdown::of(&records);
        assert_eq!(b.0.len(), 2);
        let http = &b.0["http 500"];
        assert_eq!(http.count, 5);
        assert_eq!(
            http.example,
            "HTTP 500 Internal Server Error: request 0 failed"
        );
        assert_eq!(b.most_frequent().unwrap().0, "http 500");
        assert!(ErrorBreakdown::of(&[RequestRecord::default()]).is_empty());
    }

    #[test]
    fn reads_the_new_and_the_old_shape() {
        let new: ErrorBreakdown = serde_json::from_str(
            r#"{"http 500": {"count": 2, "example": "HTTP 500 Internal Server Error: x"}}"#,
        )
        .unwrap();
        assert_eq!(new.0["http 500"].count, 2);
        let json = serde_json::to_string(&new).unwrap();
        assert_eq!(serde_json::from_str::<ErrorBreakdown>(&json).unwrap(), new);
        // Files written before classes existed: `{message: count}`.
        let old: ErrorBreakdown = serde_json::from_str(
            r#"{"HTTP 500 Internal Server Error: request 1": 1,
                "HTTP 500 Internal Server Error: request 2": 1,
                "stream stalled: no data for 60.0 s": 3}"#,
        )
        .unwrap();
        assert_eq!(old.0["http 500"].count, 2);
        assert_eq!(
            old.0["http 500"].example,
            "HTTP 500 Internal Server Error: request 1"
        );
        assert_eq!(old.0["stalled"].count, 3);
    }
}
