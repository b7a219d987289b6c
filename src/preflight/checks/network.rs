//! The network rows: the package registry, the hub token, and each gated repository.

use super::{Context, row};
use crate::preflight::hub::{Answer, HubFacts, repo_page};
use crate::preflight::{Row, Verdict};

pub(super) fn registry(cx: &Context) -> Vec<Row> {
    let Some((url, answer)) = &cx.facts.registry else {
        return Vec::new();
    };
    let (found, verdict, todo) = match answer {
        Answer::Status(code) if *code < 400 => (format!("HTTP {code} from {url}"), Verdict::Pass, String::new()),
        Answer::Status(code) => (format!("HTTP {code} from {url}"), Verdict::Fail,
            "the index answered with an error: check the URL (`UV_DEFAULT_INDEX`, the profile's `registry`)".into()),
        Answer::Unreachable(why) => (format!("unreachable: {why}"), Verdict::Fail,
            format!("environments install from {url}: check the network, or set `UV_DEFAULT_INDEX` to a reachable mirror")),
    };
    vec![row(
        "package registry",
        found,
        "reachable".into(),
        verdict,
        todo,
    )]
}

pub(super) fn hub(cx: &Context) -> Vec<Row> {
    let Some(hub) = &cx.facts.hub else {
        return Vec::new();
    };
    let tokens = format!("{}/settings/tokens", hub.endpoint);
    let mut rows = vec![token_row(hub, &tokens)];
    for (repo, answer) in &hub.repos {
        let page = repo_page(&hub.endpoint, repo);
        let (found, verdict, todo) = match answer {
            Answer::Status(200) => (
                "readable with the token".to_string(),
                Verdict::Pass,
                String::new(),
            ),
            Answer::Status(401) => (
                "HTTP 401: no valid token".into(),
                Verdict::Fail,
                format!(
                    "create a read token at {tokens}, `export HF_TOKEN=...`, and accept the license at {page}"
                ),
            ),
            Answer::Status(403) => (
                "HTTP 403: the token's account has no access".into(),
                Verdict::Fail,
                format!(
                    "accept the license at {page} with the token's account (approval can take a while), then rerun"
                ),
            ),
            Answer::Status(404) => (
                "HTTP 404: no such repository (or private)".into(),
                Verdict::Fail,
                format!("check the id in the profile's `gated_repos`; open {page}"),
            ),
            Answer::Status(code) => (
                format!("HTTP {code}"),
                Verdict::Fail,
                format!("the hub answered with an error; open {page}"),
            ),
            Answer::Unreachable(why) => (
                format!("hub unreachable: {why}"),
                Verdict::Fail,
                format!("check the network to {} (or `HF_ENDPOINT`)", hub.endpoint),
            ),
        };
        rows.push(row(
            &format!("gated `{repo}`"),
            found,
            "readable".into(),
            verdict,
            todo,
        ));
    }
    rows
}

fn token_row(hub: &HubFacts, tokens: &str) -> Row {
    let expected = "a valid token".to_string();
    let Some(source) = &hub.token else {
        return row(
            "hub token",
            "none (`HF_TOKEN` unset, no token file)".into(),
            expected,
            Verdict::Fail,
            format!("create a read token at {tokens} and `export HF_TOKEN=...` (never commit it)"),
        );
    };
    match &hub.whoami {
        Some((Answer::Status(200), name)) => row(
            "hub token",
            format!(
                "from {}, account `{}`",
                source.from,
                name.as_deref().unwrap_or("?")
            ),
            expected,
            Verdict::Pass,
            String::new(),
        ),
        Some((Answer::Status(code), _)) => row(
            "hub token",
            format!("from {}, rejected (HTTP {code})", source.from),
            expected,
            Verdict::Fail,
            format!("the token is invalid or expired: create a new one at {tokens}"),
        ),
        Some((Answer::Unreachable(why), _)) => row(
            "hub token",
            format!("from {}, hub unreachable: {why}", source.from),
            expected,
            Verdict::Fail,
            format!("check the network to {} (or `HF_ENDPOINT`)", hub.endpoint),
        ),
        None => row(
            "hub token",
            format!("from {}", source.from),
            expected,
            Verdict::Info,
            String::new(),
        ),
    }
}
