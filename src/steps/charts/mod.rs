//! The built-in `charts` step: the five canonical charts, then one "server view" chart per model
//! label, as SVG and PNG, regenerated from result files alone, with a bundled font,
//! deterministic bytes. See `docs/charts.md`.

pub mod data;
pub mod font;
pub mod render;
pub mod server_data;
pub mod server_render;
pub mod settings;

use std::path::{Path, PathBuf};

use plotters::prelude::{BitMapBackend, IntoDrawingArea, SVGBackend};

pub use settings::ChartsSettings;

use crate::results::bench::BenchSummary;
use crate::results::cost::ComparisonFile;
use crate::steps::bench::server_view;
use crate::steps::bench::uncertainty::{BenchIntervals, IntervalsError};
use crate::steps::cost::inputs::{self, InputError};
use crate::steps::io::StepIo;
use data::{BarChart, LineChart, RetentionChart};
use server_data::ServerChart;

/// An error of the charts step.
#[derive(Debug, thiserror::Error)]
pub enum ChartsError {
    /// The step was given no output path.
    #[error(
        "charts step `{0}` declares no output\nhint: add `outputs = [\"results/<profile>/charts\"]` to the step"
    )]
    NoOutput(String),
    /// A setting has a value the charts cannot use.
    #[error("charts step `{step}`: setting `{field}` is {problem}")]
    Setting {
        /// The step id.
        step: String,
        /// The settings key.
        field: String,
        /// What is wrong.
        problem: String,
    },
    /// `bench` names no summary.
    #[error(
        "charts step `{0}`: setting `bench` is empty\nhint: name at least one bench summary.json"
    )]
    NoBench(String),
    /// A bench or retention file is missing or unusable.
    #[error(transparent)]
    Input(#[from] InputError),
    /// A bench's `intervals.json` exists but is unusable.
    #[error(transparent)]
    Intervals(#[from] IntervalsError),
    /// `comparison.json` is missing or unusable.
    #[error(
        "cannot use `{path}`: {message}\nhint: run the cost step first, or drop `cost` from the charts settings"
    )]
    Comparison {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The bundled font could not be registered.
    #[error("{0}")]
    Font(String),
    /// The output directory could not be created.
    #[error("cannot create `{path}`: {source}")]
    Write {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// plotters failed drawing a chart.
    #[error("cannot draw `{path}`: {message}")]
    Render {
        /// The file being drawn.
        path: PathBuf,
        /// plotters' error.
        message: String,
    },
    /// The drawing task panicked or was cancelled.
    #[error("charts step `{0}` was interrupted")]
    Interrupted(String),
}

/// One chart, shaped and ready to draw.
#[derive(Debug, Clone, PartialEq)]
pub enum Chart {
    /// Charts 1-3.
    Lines(LineChart),
    /// Chart 4.
    Bars(BarChart),
    /// Chart 5.
    Retention(RetentionChart),
    /// A model label's server view.
    Server(ServerChart),
}

/// The shaped charts, and why any chart was skipped.
#[derive(Debug, Clone, PartialEq)]
pub struct Shaped {
    /// `(file stem, chart)`: the canonical charts, then the server views in label order.
    pub charts: Vec<(String, Chart)>,
    /// One line per skipped server view, naming the label and each level's reason.
    pub notes: Vec<String>,
}

/// Runs the charts step: reads the result files named in `s`, and writes `<name>.svg` and
/// `<name>.png` for each chart into the directory `io.outputs[0]`; returns the files written.
pub async fn run_step(s: &ChartsSettings, io: &StepIo) -> Result<Vec<PathBuf>, ChartsError> {
    let out_dir = io
        .outputs
        .first()
        .ok_or_else(|| ChartsError::NoOutput(io.step_id.clone()))?
        .clone();
    let Shaped { charts, notes } = shape(s, &io.workspace, &io.step_id)?;
    font::register().map_err(ChartsError::Font)?;
    std::fs::create_dir_all(&out_dir).map_err(|source| ChartsError::Write {
        path: out_dir.clone(),
        source,
    })?;
    let size = (s.width, s.height);
    let step = io.step_id.clone();
    if io.cancel.is_cancelled() {
        return Err(ChartsError::Interrupted(step));
    }
    let written = tokio::task::spawn_blocking(move || draw_all(&charts, &out_dir, size))
        .await
        .map_err(|_| ChartsError::Interrupted(step))??;
    let names: Vec<String> = written
        .iter()
        .filter_map(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    let mut log = format!("charts: wrote {}\n", names.join(", "));
    for note in &notes {
        log.push_str(&format!("charts: {note}\n"));
    }
    // The log is best effort: a failed append must not fail a step whose charts are written.
    let _ = append_log(&io.log, &log);
    Ok(written)
}

/// Reads the inputs and shapes every chart that has data (`(file stem, chart)` in canonical
/// order, then a server view per label whose level files recorded `/metrics` series).
pub fn shape(s: &ChartsSettings, workspace: &Path, step: &str) -> Result<Shaped, ChartsError> {
    if s.bench.is_empty() {
        return Err(ChartsError::NoBench(step.to_string()));
    }
    s.validate()
        .map_err(|(field, problem)| ChartsError::Setting {
            step: step.to_string(),
            field,
            problem,
        })?;
    let mut bench: Vec<(String, BenchSummary)> = Vec::new();
    let mut sweeps = Vec::new();
    let mut intervals = data::Intervals::new();
    for (label, path) in &s.bench {
        let path = workspace.join(path);
        let summary = inputs::read_bench_summary(&path)?;
        sweeps.push(server_view::read_sweep(&path, &summary)?);
        // `intervals.json` beside the summary; results from before Forge drew intervals have none.
        if let Some(i) = BenchIntervals::read(path.parent().unwrap_or(workspace))? {
            intervals.insert(label.clone(), i);
        }
        bench.push((label.clone(), summary));
    }
    let t = &s.titles;
    let mut charts = vec![
        (
            "throughput".to_string(),
            Chart::Lines(data::throughput(
                &bench,
                &intervals,
                s.roofline.as_ref(),
                &t.throughput,
            )),
        ),
        (
            "ttft".to_string(),
            Chart::Lines(data::latency(
                &bench,
                &intervals,
                data::Latency::Ttft,
                &t.ttft,
            )),
        ),
        (
            "tpot".to_string(),
            Chart::Lines(data::latency(
                &bench,
                &intervals,
                data::Latency::Tpot,
                &t.tpot,
            )),
        ),
    ];
    let mut banner = None;
    if let Some(dir) = &s.cost {
        let comparison = read_comparison(&workspace.join(dir))?;
        banner = comparison.rehearsal.clone();
        charts.push((
            "cost".into(),
            Chart::Bars(data::cost(&comparison, s.apis.as_deref(), &t.cost)),
        ));
    }
    if let Some(path) = &s.retention {
        let retention = inputs::read_retention(&workspace.join(path))?;
        charts.push((
            "retention".into(),
            Chart::Retention(data::retention(&retention, &t.retention)),
        ));
    }
    let mut notes = Vec::new();
    for ((label, summary), sweep) in bench.iter().zip(&sweeps) {
        match server_data::server(label, &summary.metadata.common, sweep, &t.server) {
            Some(chart) => charts.push((server_data::file_stem(label), Chart::Server(chart))),
            None => notes.push(format!(
                "no server view for `{label}`: {}",
                sweep.missing.join("; ")
            )),
        }
    }
    if let Some(banner) = banner {
        for (_, chart) in &mut charts {
            let title = chart.title_mut();
            *title = format!("[{banner}] {title}");
        }
    }
    Ok(Shaped { charts, notes })
}

impl Chart {
    /// The chart's title (a rehearsal's banner is prefixed to it).
    pub fn title_mut(&mut self) -> &mut String {
        match self {
            Chart::Lines(c) => &mut c.title,
            Chart::Bars(c) => &mut c.title,
            Chart::Retention(c) => &mut c.title,
            Chart::Server(c) => &mut c.title,
        }
    }
}

/// Reads `comparison.json` from the cost step's output directory (or the file itself).
pub fn read_comparison(path: &Path) -> Result<ComparisonFile, ChartsError> {
    let file = if path.is_dir() {
        path.join("comparison.json")
    } else {
        path.to_path_buf()
    };
    let bytes = std::fs::read(&file).map_err(|e| ChartsError::Comparison {
        path: file.clone(),
        message: e.to_string(),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ChartsError::Comparison {
        path: file,
        message: e.to_string(),
    })
}

/// Draws every chart as SVG and PNG into `dir`.
pub fn draw_all(
    charts: &[(String, Chart)],
    dir: &Path,
    size: (u32, u32),
) -> Result<Vec<PathBuf>, ChartsError> {
    let mut written = Vec::new();
    for (stem, chart) in charts {
        let svg = dir.join(format!("{stem}.svg"));
        let png = dir.join(format!("{stem}.png"));
        draw(chart, &SVGBackend::new(&svg, size).into_drawing_area()).map_err(|message| {
            ChartsError::Render {
                path: svg.clone(),
                message,
            }
        })?;
        draw(chart, &BitMapBackend::new(&png, size).into_drawing_area()).map_err(|message| {
            ChartsError::Render {
                path: png.clone(),
                message,
            }
        })?;
        written.extend([svg, png]);
    }
    Ok(written)
}

fn draw<DB: plotters::prelude::DrawingBackend>(
    chart: &Chart,
    root: &plotters::prelude::DrawingArea<DB, plotters::coord::Shift>,
) -> Result<(), String> {
    match chart {
        Chart::Lines(c) => render::line_chart(root, c),
        Chart::Bars(c) => render::bar_chart(root, c),
        Chart::Retention(c) => render::retention_chart(root, c),
        Chart::Server(c) => server_render::server_chart(root, c),
    }
}

fn append_log(log: &Path, line: &str) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log)?
        .write_all(line.as_bytes())
}

#[cfg(test)]
mod server_tests;
#[cfg(test)]
mod tests;
