//! `forge bench`: an ad-hoc sweep against any OpenAI-compatible endpoint, outside a manifest.
//! Prints a table (or the summary JSON with `--json`) and writes result files with `--out`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use super::BenchError;
use super::result::BenchSummary;
use super::settings::{
    BenchSettings, DatasetKind, DatasetSettings, Driver, Endpoint, OnLevelFailure,
};
use super::sweep::{SweepContext, first_model, run_sweep};
use crate::steps::io::Provenance;

/// Arguments of `forge bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Server base URL (`http://127.0.0.1:8000`).
    #[arg(long)]
    pub url: String,
    /// Model name to send (default: the first of `GET /v1/models`).
    #[arg(long)]
    pub model: Option<String>,
    /// The OpenAI route to drive.
    #[arg(long, value_enum, default_value_t = Endpoint::Completions)]
    pub endpoint: Endpoint,
    /// Concurrency levels, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,32,64")]
    pub concurrency: Vec<u32>,
    /// Requests per level.
    #[arg(long, default_value_t = 256)]
    pub num_prompts: u32,
    /// Dataset file: ShareGPT JSON, or JSONL trace when it ends in `.jsonl`.
    #[arg(long, conflicts_with = "random_input_len")]
    pub dataset: Option<PathBuf>,
    /// Random prompts of this many tokens (needs `--random-output-len`).
    #[arg(long, requires = "random_output_len")]
    pub random_input_len: Option<u32>,
    /// Output tokens of random prompts.
    #[arg(long)]
    pub random_output_len: Option<u32>,
    /// Fixed `max_tokens` for every request.
    #[arg(long)]
    pub max_tokens: Option<u32>,
    /// Send `ignore_eos: true`.
    #[arg(long)]
    pub ignore_eos: bool,
    /// Sampling temperature.
    #[arg(long)]
    pub temperature: Option<f64>,
    /// Open loop at this many requests per second (each level caps requests in flight).
    #[arg(long)]
    pub request_rate: Option<f64>,
    /// Gamma shape of open-loop arrivals (1 = Poisson).
    #[arg(long, default_value_t = 1.0)]
    pub burstiness: f64,
    /// Warmup requests per level.
    #[arg(long, default_value_t = 1)]
    pub warmup: u32,
    /// Seed for sampling and arrivals.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Local `tokenizer.json` or tokenizer directory.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Extra header `NAME:VALUE` (repeatable).
    #[arg(long = "header")]
    pub headers: Vec<String>,
    /// Environment variable holding an API key.
    #[arg(long)]
    pub api_key_env: Option<String>,
    /// Per-request deadline in seconds.
    #[arg(long, default_value_t = 900.0)]
    pub request_timeout: f64,
    /// Stall deadline in seconds.
    #[arg(long, default_value_t = 60.0)]
    pub stall_timeout: f64,
    /// Do not scrape `/metrics`.
    #[arg(long)]
    pub no_scrape: bool,
    /// Keep per-request ITLs in the result files.
    #[arg(long)]
    pub save_detailed: bool,
    /// The load generator.
    #[arg(long, value_enum, default_value_t = Driver::Native)]
    pub driver: Driver,
    /// Command that runs the vllm CLI, space-separated (for `--driver vllm`).
    #[arg(long, default_value = "vllm")]
    pub vllm_command: String,
    /// Label for the results.
    #[arg(long)]
    pub label: Option<String>,
    /// Write `c<N>.json` and `summary.json` here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the summary as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl BenchArgs {
    /// The equivalent manifest settings.
    pub fn settings(&self) -> Result<BenchSettings, BenchError> {
        let dataset = match (&self.dataset, self.random_input_len) {
            (Some(path), _) => DatasetSettings {
                kind: if path.extension().is_some_and(|e| e == "jsonl") {
                    DatasetKind::Jsonl
                } else {
                    DatasetKind::Sharegpt
                },
                path: Some(path.clone()),
                input_len: None,
                output_len: None,
                range_ratio: 0.0,
            },
            (None, Some(input)) => DatasetSettings {
                kind: DatasetKind::Random,
                path: None,
                input_len: Some(input),
                output_len: self.random_output_len,
                range_ratio: 0.0,
            },
            (None, None) => {
                return Err(BenchError::Settings {
                    field: "--dataset".into(),
                    message:
                        "give `--dataset FILE` or `--random-input-len N --random-output-len M`"
                            .into(),
                });
            }
        };
        let mut headers = BTreeMap::new();
        for h in &self.headers {
            let (k, v) = h.split_once(':').ok_or_else(|| BenchError::Settings {
                field: "--header".into(),
                message: format!("`{h}` is not NAME:VALUE"),
            })?;
            headers.insert(k.trim().to_string(), v.trim().to_string());
        }
        let mut s = BenchSettings::with_dataset(dataset);
        s.label = self.label.clone();
        s.endpoint = self.endpoint;
        s.base_url = Some(self.url.clone());
        s.model = self.model.clone();
        s.concurrency = self.concurrency.clone();
        s.prompts_per_level = self.num_prompts;
        s.warmup = self.warmup;
        s.seed = self.seed;
        s.max_tokens = self.max_tokens;
        s.ignore_eos = self.ignore_eos;
        s.temperature = self.temperature;
        s.headers = headers;
        s.api_key_env = self.api_key_env.clone();
        s.request_rate = self.request_rate;
        s.burstiness = self.burstiness;
        s.request_timeout_s = self.request_timeout;
        s.stall_timeout_s = self.stall_timeout;
        s.on_level_failure = OnLevelFailure::Continue;
        s.scrape_metrics = !self.no_scrape;
        s.save_detailed = self.save_detailed;
        s.driver = self.driver;
        s.vllm_command = self
            .vllm_command
            .split_whitespace()
            .map(str::to_string)
            .collect();
        s.tokenizer = self.tokenizer.clone();
        s.validate()?;
        Ok(s)
    }
}

/// Run `forge bench`: sweep, print, and write results when `--out` is given.
pub async fn run_adhoc(args: BenchArgs) -> Result<(), BenchError> {
    let settings = args.settings()?;
    let base = args.url.trim_end_matches('/').to_string();
    crate::steps::url::check_scheme(&base).map_err(|message| BenchError::Settings {
        field: "--url".into(),
        message,
    })?;
    let model = match &args.model {
        Some(m) => m.clone(),
        None => first_model(&base).await?,
    };
    let scratch = tempfile::tempdir().map_err(|e| BenchError::Io {
        path: std::env::temp_dir(),
        source: e,
    })?;
    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| scratch.path().join("bench"));
    let cancel = CancellationToken::new();
    let on_ctrl_c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_ctrl_c.cancel();
        }
    });
    let progress = indicatif::ProgressBar::new(0);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{msg:>20} [{bar:30}] {pos}/{len} {prefix}")
            .expect("static template")
            .progress_chars("=> "),
    );
    let ctx = SweepContext {
        base,
        model,
        service: None,
        workspace: std::env::current_dir().unwrap_or_default(),
        out_dir,
        log: None,
        provenance: Provenance::default(),
        cancel,
        progress: progress.clone(),
    };
    let summary = run_sweep(&settings, &ctx).await;
    progress.finish_and_clear();
    let summary = summary?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).expect("summary serializes")
        );
    } else {
        print!("{}", table(&summary));
    }
    Ok(())
}

/// A figure the summary wrote as `null` (not finite) prints as `NaN`, as it did before.
fn nan(value: Option<f64>) -> f64 {
    value.unwrap_or(f64::NAN)
}

/// The summary as an aligned text table.
pub fn table(summary: &BenchSummary) -> String {
    let mut out = format!(
        "{:>5} {:>6} {:>5} {:>8} {:>8} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>5}\n",
        "c",
        "ok",
        "fail",
        "dur s",
        "req/s",
        "out tok/s",
        "TTFT p50",
        "TTFT p99",
        "TPOT p50",
        "TPOT p99",
        "ITL p50",
        "E2E p50",
        "kept"
    );
    for l in &summary.levels {
        out.push_str(&format!(
            "{:>5} {:>6} {:>5} {:>8.2} {:>8.2} {:>10.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.1} {:>5}\n",
            l.max_concurrency, l.completed, l.failed, l.duration, nan(l.request_throughput), nan(l.output_throughput),
            nan(l.median_ttft_ms), nan(l.p99_ttft_ms), nan(l.median_tpot_ms), nan(l.p99_tpot_ms), l.median_itl_ms, l.median_e2el_ms,
            l.client_kept_up.map_or("n/a", |k| if k { "yes" } else { "NO" }),
        ));
    }
    out.push_str("(times in ms; TTFT/TPOT/ITL/E2E as `vllm bench serve` defines them)\n");
    out
}
