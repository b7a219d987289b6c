//! The network half of preflight: is the package registry reachable, is the hub reachable, and
//! can the hub token read each gated repository. The token's value is sent to the hub only, never
//! printed, logged or written.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

/// The hub Forge and huggingface_hub talk to (`HF_ENDPOINT` overrides it for both).
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// What an HTTP probe got: a status code, or why there was none.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// The server answered with this status.
    Status(u16),
    /// No answer (DNS, refused, timeout, TLS), in words.
    Unreachable(String),
}

/// Where the hub token came from (its value is never kept here).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenSource {
    /// `HF_TOKEN`, or the token file's path.
    pub from: String,
}

/// What the hub said about the token and the gated repositories.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HubFacts {
    /// The hub's base URL.
    pub endpoint: String,
    /// Where the token came from; `None` when there is none.
    pub token: Option<TokenSource>,
    /// `GET /api/whoami-v2` with the token, and the account name it returned.
    pub whoami: Option<(Answer, Option<String>)>,
    /// `GET /api/{models,datasets}/<repo>/auth-check` per gated repository.
    pub repos: Vec<(String, Answer)>,
}

/// The hub base URL: `HF_ENDPOINT`, else huggingface.co.
pub fn endpoint() -> String {
    std::env::var("HF_ENDPOINT")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map_or_else(
            || DEFAULT_ENDPOINT.to_string(),
            |v| v.trim_end_matches('/').to_string(),
        )
}

/// The web page of a repository, where its license is accepted.
pub fn repo_page(endpoint: &str, repo: &str) -> String {
    format!("{endpoint}/{repo}")
}

/// The token huggingface_hub would use: `HF_TOKEN`, else `HF_TOKEN_PATH`, else
/// `$HF_HOME/token` (default `~/.cache/huggingface/token`).
fn token() -> Option<(String, TokenSource)> {
    if let Ok(value) = std::env::var("HF_TOKEN")
        && !value.trim().is_empty()
    {
        let source = TokenSource {
            from: "`HF_TOKEN`".into(),
        };
        return Some((value.trim().to_string(), source));
    }
    let path = std::env::var_os("HF_TOKEN_PATH")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HF_HOME").map(|h| PathBuf::from(h).join("token")))
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface/token"))
        })?;
    let value = std::fs::read_to_string(&path).ok()?;
    let value = value.trim();
    (!value.is_empty()).then(|| {
        let source = TokenSource {
            from: format!("`{}`", path.display()),
        };
        (value.to_string(), source)
    })
}

fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .user_agent(concat!("forge/", env!("CARGO_PKG_VERSION"), " (preflight)"))
        .build()
        .map_err(|e| format!("cannot start an HTTP client: {e}"))
}

async fn get(client: &reqwest::Client, url: &str, token: Option<&str>) -> (Answer, String) {
    if url.starts_with("https://") && !cfg!(feature = "tls") {
        return curl_get(url, token).await;
    }
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            (Answer::Status(status), body)
        }
        Err(err) => (Answer::Unreachable(describe(&err)), String::new()),
    }
}

/// HTTPS in a build without the `tls` feature: `curl`, which every supported system has (the
/// README requires it). The token travels in curl's config on its standard input, never in its
/// arguments, so no process listing shows it.
pub(crate) async fn curl_get(url: &str, token: Option<&str>) -> (Answer, String) {
    use std::process::Stdio;
    use tokio::io::AsyncWriteExt;
    let quote = |text: &str| text.replace('\\', "\\\\").replace('"', "\\\"");
    let mut config = format!("url = \"{}\"\n", quote(url));
    if let Some(token) = token {
        config.push_str(&format!(
            "header = \"Authorization: Bearer {}\"\n",
            quote(token)
        ));
    }
    let spawned = tokio::process::Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--connect-timeout",
            "5",
            "--max-time",
            "10",
        ])
        .args([
            "--user-agent",
            concat!("forge/", env!("CARGO_PKG_VERSION"), " (preflight)"),
        ])
        .args(["--write-out", "\n%{http_code}", "--config", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(err) => {
            return (
                Answer::Unreachable(format!("cannot run `curl`: {err}")),
                String::new(),
            );
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(config.as_bytes()).await;
    }
    let Ok(output) = child.wait_with_output().await else {
        return (
            Answer::Unreachable("`curl` did not finish".into()),
            String::new(),
        );
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    match code.trim().parse::<u16>() {
        Ok(status) if status > 0 && output.status.success() => {
            (Answer::Status(status), body.to_string())
        }
        _ => {
            let err = String::from_utf8_lossy(&output.stderr);
            let reason = err.trim().trim_start_matches("curl: ").to_string();
            (
                Answer::Unreachable(if reason.is_empty() {
                    "no answer".into()
                } else {
                    reason
                }),
                String::new(),
            )
        }
    }
}

/// The innermost cause of a request error: "connection refused" says more than the URL again.
fn describe(err: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = err;
    while let Some(inner) = source.source() {
        source = inner;
    }
    if err.is_timeout() {
        "no answer within 10 s".into()
    } else {
        source.to_string()
    }
}

/// Probes the package index.
pub async fn registry(url: &str) -> Answer {
    match client() {
        Ok(client) => get(&client, url, None).await.0,
        Err(message) => Answer::Unreachable(message),
    }
}

/// Asks the hub about the token and each gated repository (concurrently).
pub async fn hub(repos: &[String]) -> HubFacts {
    let endpoint = endpoint();
    let token = token();
    let mut facts = HubFacts {
        endpoint: endpoint.clone(),
        token: token.as_ref().map(|(_, source)| source.clone()),
        whoami: None,
        repos: Vec::new(),
    };
    let client = match client() {
        Ok(client) => client,
        Err(message) => {
            facts.repos = repos
                .iter()
                .map(|r| (r.clone(), Answer::Unreachable(message.clone())))
                .collect();
            return facts;
        }
    };
    let secret = token.as_ref().map(|(value, _)| value.as_str());
    let whoami = async {
        let secret = secret?;
        let url = format!("{endpoint}/api/whoami-v2");
        let (answer, body) = get(&client, &url, Some(secret)).await;
        let name = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["name"].as_str().map(String::from));
        Some((answer, name))
    };
    let checks = futures_util::future::join_all(repos.iter().map(|repo| {
        let url = match repo.strip_prefix("datasets/") {
            Some(id) => format!("{endpoint}/api/datasets/{id}/auth-check"),
            None => format!("{endpoint}/api/models/{repo}/auth-check"),
        };
        let client = &client;
        async move { (repo.clone(), get(client, &url, secret).await.0) }
    }));
    let (whoami, repos) = tokio::join!(whoami, checks);
    facts.whoami = whoami;
    facts.repos = repos;
    facts
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A one-request HTTP server on loopback that answers 200 when the bearer token is `secret`.
    fn one_request_server() -> (String, std::thread::JoinHandle<String>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!(
            "http://{}/api/whoami-v2",
            listener.local_addr().expect("addr")
        );
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut request = [0u8; 4096];
            let n = stream.read(&mut request).expect("read");
            let request = String::from_utf8_lossy(&request[..n]).to_string();
            let status = if request.contains("Authorization: Bearer secret") {
                "200 OK"
            } else {
                "401 Unauthorized"
            };
            let body = r#"{"name":"someone"}"#;
            let reply = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(reply.as_bytes()).expect("write");
            request
        });
        (url, server)
    }

    #[tokio::test]
    async fn curl_sends_the_token_in_its_config_and_reads_status_and_body() {
        let (url, server) = one_request_server();
        let (answer, body) = curl_get(&url, Some("secret")).await;
        assert_eq!(answer, Answer::Status(200));
        assert_eq!(body, r#"{"name":"someone"}"#);
        assert!(server.join().expect("server").contains("forge/"));
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let dead = format!("http://{}/", closed.local_addr().expect("addr"));
        drop(closed);
        let (answer, _) = curl_get(&dead, None).await;
        assert!(
            matches!(answer, Answer::Unreachable(ref why) if !why.is_empty()),
            "{answer:?}"
        );
    }
}
