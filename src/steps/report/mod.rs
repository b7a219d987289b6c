//! The built-in `report` step: `report.md` and a self-contained `report.html` (charts inlined as
//! SVG, no network) rendered with minijinja from templates users can edit without code.

pub mod charts;
pub mod context;
pub mod format;
pub mod gate;
pub mod server;
pub mod tiers;
pub mod uncertainty;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::results::cost::CostFile;
use crate::steps::bench::server_view;
use crate::steps::bench::uncertainty::{BenchIntervals, IntervalsError};
use crate::steps::charts::read_comparison;
use crate::steps::charts::server_data::file_stem;
use crate::steps::charts::settings::{intervals_file, level_files};
use crate::steps::cost::inputs::{self, InputError};
use crate::steps::io::StepIo;
use charts::{chart_ref, charts};
use context::{ReportContext, Sources};

/// The built-in Markdown template (used when the workspace has no `templates/report.md.j2`).
pub const MARKDOWN_TEMPLATE: &str = include_str!("../../../templates/report.md.j2");
/// The built-in HTML template (used when the workspace has no `templates/report.html.j2`).
pub const HTML_TEMPLATE: &str = include_str!("../../../templates/report.html.j2");

impl ReportSettings {
    /// What these settings make the step read: its inputs (the level files beside each bench
    /// summary included) and both templates (the workspace's default templates when none is
    /// set, so adding one reruns the report).
    pub fn reads(&self) -> Vec<PathBuf> {
        let mut out = vec![self.cost.clone()];
        out.extend(self.bench.values().cloned());
        out.extend(self.bench.values().map(|p| level_files(p)));
        out.extend(self.bench.values().map(|p| intervals_file(p)));
        out.extend(self.retention.iter().cloned());
        out.extend(self.charts.iter().cloned());
        out.extend(self.gate.iter().cloned());
        out.push(
            self.markdown_template
                .clone()
                .unwrap_or_else(|| "templates/report.md.j2".into()),
        );
        out.push(
            self.html_template
                .clone()
                .unwrap_or_else(|| "templates/report.html.j2".into()),
        );
        out
    }
}

/// The chart file stems the report looks for, in canonical order.
pub const CHARTS: [&str; 5] = ["throughput", "ttft", "tpot", "cost", "retention"];

/// Settings of the `report` step. Paths are relative to the workspace.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSettings {
    /// The cost step's output directory (`cost.json`, `comparison.json`).
    pub cost: PathBuf,
    /// Bench `summary.json` per model label.
    pub bench: BTreeMap<String, PathBuf>,
    /// The eval step's `retention.json`, when quality was measured.
    #[serde(default)]
    pub retention: Option<PathBuf>,
    /// The charts step's output directory; charts found there are linked and inlined.
    #[serde(default)]
    pub charts: Option<PathBuf>,
    /// The API the headline compares against (the first API in `comparison.json` when absent).
    #[serde(default)]
    pub headline_api: Option<String>,
    /// The decode roofline facts chart 1 used (same shape as the charts step's `roofline`).
    #[serde(default)]
    pub roofline: Option<crate::steps::charts::settings::RooflineSettings>,
    /// The run's gate file (`<results>/gate.json`): a skipped gate shows as a warning, a passed
    /// one names the rehearsal. Absent file: nothing to say.
    #[serde(default)]
    pub gate: Option<PathBuf>,
    /// Report title.
    #[serde(default = "default_title")]
    pub title: String,
    /// Where the report is published, for relative links (default `results/<profile>`).
    #[serde(default)]
    pub report_dir: Option<PathBuf>,
    /// Markdown template (default `templates/report.md.j2`, else the built-in one).
    #[serde(default)]
    pub markdown_template: Option<PathBuf>,
    /// HTML template (default `templates/report.html.j2`, else the built-in one).
    #[serde(default)]
    pub html_template: Option<PathBuf>,
}

fn default_title() -> String {
    "Self-host or pay an API?".into()
}

/// An error of the report step.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The step did not declare both outputs.
    #[error(
        "report step `{0}` needs two outputs\nhint: `outputs = [\"results/<profile>/report.md\", \"results/<profile>/report.html\"]`"
    )]
    Outputs(String),
    /// An input file is missing or unusable.
    #[error(transparent)]
    Input(#[from] InputError),
    /// A bench's `intervals.json` exists but is unusable.
    #[error(transparent)]
    Intervals(#[from] IntervalsError),
    /// The cost files are missing or unusable.
    #[error("cannot use `{path}`: {message}\nhint: run the cost step first")]
    Cost {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The gate file is unusable.
    #[error(
        "cannot use `{path}`: {message}\nhint: restore it from git, or delete it and run the gated profile again"
    )]
    Gate {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A template is missing.
    #[error("cannot read template `{path}`: {source}")]
    Template {
        /// The template file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A template failed to render.
    #[error("template `{name}` failed: {source:#}")]
    Render {
        /// The template name.
        name: String,
        /// minijinja's error (names line and expression).
        source: minijinja::Error,
    },
    /// An output could not be written.
    #[error("cannot write `{path}`: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// What the report step wrote.
#[derive(Debug, Clone)]
pub struct ReportOutput {
    /// The Markdown report.
    pub markdown: String,
    /// The HTML report.
    pub html: String,
}

/// Runs the report step: writes `io.outputs[0]` (Markdown) and `io.outputs[1]` (HTML).
pub async fn run_step(s: &ReportSettings, io: &StepIo) -> Result<ReportOutput, ReportError> {
    let [md_path, html_path] = io
        .outputs
        .get(..2)
        .and_then(|o| <&[PathBuf; 2]>::try_from(o).ok())
        .ok_or_else(|| ReportError::Outputs(io.step_id.clone()))?;
    let ctx = build_context(s, &io.workspace, &io.provenance.profile)?;
    let md_source = template(
        &io.workspace,
        s.markdown_template.as_deref(),
        "templates/report.md.j2",
        MARKDOWN_TEMPLATE,
    )?;
    let html_source = template(
        &io.workspace,
        s.html_template.as_deref(),
        "templates/report.html.j2",
        HTML_TEMPLATE,
    )?;
    let output = ReportOutput {
        markdown: render("report.md.j2", &md_source, &ctx)?,
        html: render("report.html.j2", &html_source, &ctx)?,
    };
    for (path, text) in [(md_path, &output.markdown), (html_path, &output.html)] {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| ReportError::Write {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(path, text).map_err(|source| ReportError::Write {
            path: path.clone(),
            source,
        })?;
    }
    let server_charts = ctx.server.iter().filter(|t| t.chart.is_some()).count();
    let line = format!(
        "report: wrote {} and {} ({} charts inlined)\n",
        md_path.display(),
        html_path.display(),
        ctx.charts.len() + server_charts
    );
    // The log is best effort: a failed append must not fail a step whose report is written.
    if let Ok(mut log) = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&io.log)
    {
        let _ = std::io::Write::write_all(&mut log, line.as_bytes());
    }
    Ok(output)
}

/// Reads every input and builds the template context (a pure function of the files).
pub fn build_context(
    s: &ReportSettings,
    workspace: &Path,
    profile: &str,
) -> Result<ReportContext, ReportError> {
    let report_dir = s
        .report_dir
        .clone()
        .unwrap_or_else(|| format::default_report_dir(profile));
    let link = |p: &Path| format::relative_link(&report_dir, p);
    let cost_file = s.cost.join("cost.json");
    let cost: CostFile = read_cost(&workspace.join(&cost_file))?;
    let comparison = read_comparison(&workspace.join(&s.cost)).map_err(|e| ReportError::Cost {
        path: workspace.join(&s.cost).join("comparison.json"),
        message: e.to_string(),
    })?;
    let mut bench = Vec::new();
    let mut intervals = BTreeMap::new();
    let mut server = Vec::new();
    let mut inputs = vec![
        ("cost".to_string(), link(&cost_file)),
        (
            "comparison".to_string(),
            link(&s.cost.join("comparison.json")),
        ),
    ];
    for (label, path) in &s.bench {
        let summary = inputs::read_bench_summary(&workspace.join(path))?;
        let sweep = server_view::read_sweep(&workspace.join(path), &summary)?;
        inputs.push((format!("bench {label}"), link(path)));
        for level in &sweep.levels {
            let file = summary
                .levels
                .iter()
                .find(|l| l.max_concurrency == level.max_concurrency)
                .map(|l| path.with_file_name(&l.file));
            if let Some(file) = file {
                let c = level.max_concurrency;
                inputs.push((format!("bench {label} c={c}"), link(&file)));
            }
        }
        let chart = s
            .charts
            .as_deref()
            .and_then(|dir| chart_ref(workspace, dir, &file_stem(label), &link));
        server.push(server::server_table(label, &summary, &sweep, chart));
        let dir = workspace.join(path);
        let dir = dir.parent().unwrap_or(workspace);
        if let Some(i) = BenchIntervals::read(dir)? {
            intervals.insert(label.clone(), i);
        }
        bench.push((label.clone(), link(path), summary));
    }
    let retention = match &s.retention {
        Some(path) => {
            inputs.push(("retention".into(), link(path)));
            Some((link(path), inputs::read_retention(&workspace.join(path))?))
        }
        None => None,
    };
    for file in &cost.inputs.pricing_files {
        inputs.push(("pricing".to_string(), link(Path::new(file))));
    }
    let gate = gate::notes(workspace, s.gate.as_deref())?;
    let sources = Sources {
        cost,
        comparison,
        bench,
        retention,
    };
    let headline = context::headline(&sources, s.headline_api.as_deref());
    let headline_api_name = s.headline_api.clone();
    let headline_api = headline.api.clone();
    Ok(ReportContext {
        title: s.title.clone(),
        profile: profile.to_string(),
        provenance: context::provenance(&sources),
        weights: context::weights(&sources),
        headline,
        self_hosted: context::self_hosted_rows(&sources.comparison),
        labels: sources
            .bench
            .iter()
            .map(|(l, link, b)| context::label_table(&sources.cost, l, link, b))
            .collect(),
        utilization_curve: utilization_rows(&sources.cost),
        apis: context::api_rows(&sources.comparison),
        tiers: tiers::rows(&sources.comparison, &headline_api),
        retention: sources
            .retention
            .as_ref()
            .map(|(_, r)| context::retention_rows(r))
            .unwrap_or_default(),
        method: context::method(&sources.cost, &sources.comparison),
        charts: charts(workspace, s.charts.as_deref(), &link),
        server,
        inputs,
        roofline: context::roofline_rows(s.roofline.as_ref()),
        rehearsal: sources.cost.rehearsal.clone(),
        gate_warning: gate.warning,
        gated_by: gate.gated_by,
        uncertainty: uncertainty::build(&sources, &intervals, headline_api_name.as_deref()),
    })
}

fn read_cost(path: &Path) -> Result<CostFile, ReportError> {
    let bytes = std::fs::read(path).map_err(|e| ReportError::Cost {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ReportError::Cost {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn utilization_rows(cost: &CostFile) -> Vec<[String; 3]> {
    cost.labels
        .get(&cost.candidate)
        .map(|l| {
            l.utilization_curve
                .iter()
                .map(|p| {
                    [
                        format::percent(p.utilization),
                        format::usd(p.usd_per_1m_output),
                        format::usd(p.usd_per_1m_total),
                    ]
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The template text: the explicit path, else the workspace's default file, else built-in.
fn template(
    workspace: &Path,
    explicit: Option<&Path>,
    default: &str,
    builtin: &str,
) -> Result<String, ReportError> {
    let path = match explicit {
        Some(p) => workspace.join(p),
        None if workspace.join(default).is_file() => workspace.join(default),
        None => return Ok(builtin.to_string()),
    };
    std::fs::read_to_string(&path).map_err(|source| ReportError::Template { path, source })
}

fn render(name: &str, source: &str, ctx: &ReportContext) -> Result<String, ReportError> {
    let mut env = minijinja::Environment::new();
    let syntax = minijinja::syntax::SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .keep_trailing_newline(true)
        .build()
        .map_err(|source| ReportError::Render {
            name: name.into(),
            source,
        })?;
    env.set_syntax(syntax);
    env.add_template(name, source)
        .map_err(|source| ReportError::Render {
            name: name.into(),
            source,
        })?;
    env.get_template(name)
        .and_then(|t| t.render(minijinja::value::Serde(ctx)))
        .map_err(|source| ReportError::Render {
            name: name.into(),
            source,
        })
}

#[cfg(test)]
mod server_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod uncertainty_tests;
