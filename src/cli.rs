//! Command-line arguments (clap derive structs only).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Forge: a declarative pipeline runner that answers "self-host an open LLM or pay for an API?"
/// with numbers you can defend.
#[derive(Debug, Parser)]
#[command(name = "forge", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline: every stale step that is needed, in dependency order.
    Run(RunArgs),
    /// Show what `run` would do, and why, without running anything.
    Plan(PlanArgs),
    /// Check that this machine offers what the profile's `[preflight]` expects (GPU, driver,
    /// disk, Python, registry, hub access), without running anything.
    Preflight(PreflightArgs),
    /// Print the step graph (mermaid by default, or dot).
    Graph(GraphArgs),
    /// Show a step's last record: key, inputs, outputs, timings, exit code.
    Show(ShowArgs),
    /// Benchmark any OpenAI-compatible endpoint now (the `bench` kind's engine, ad hoc).
    Bench(Box<crate::steps::bench::BenchArgs>),
    /// Remove machine-local state under `.forge/` (staging, logs, stat cache).
    Clean(CleanArgs),
    /// List the profiles a pipeline can use.
    Profiles(ProfilesArgs),
    /// Compare GPUs: $/1M tokens and p99 latency per profile, and the cheapest that meets the SLO.
    Compare(CompareArgs),
    /// Print shell completions.
    Completions(CompletionsArgs),
}

/// Which pipeline, profile and overrides.
#[derive(Debug, Args, Clone)]
pub struct PipelineArgs {
    /// The pipeline manifest (for example `pipelines/forge.toml`).
    pub manifest: PathBuf,
    /// A profile from `profiles/<name>.toml` in the workspace.
    #[arg(long, short)]
    pub profile: Option<String>,
    /// Override a parameter: `--set concurrency=[1,8]` (TOML value, or a bare string).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

/// Which steps.
#[derive(Debug, Args, Clone, Default)]
pub struct SelectArgs {
    /// Only these steps (comma-separated or repeated); missing upstream outputs are still produced.
    #[arg(long, value_name = "STEP")]
    pub only: Vec<String>,
    /// This step and everything downstream of it.
    #[arg(long, value_name = "STEP")]
    pub from: Option<String>,
    /// Rerun these steps even if fresh.
    #[arg(long, value_name = "STEP")]
    pub force: Vec<String>,
    /// Rerun every step.
    #[arg(long)]
    pub force_all: bool,
}

/// `forge run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The manifest and the profiles.
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Which steps, and which to force.
    #[command(flatten)]
    pub select: SelectArgs,
    /// Steps run at once (default: the number of CPUs).
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// After a failure, keep running steps that do not depend on it.
    #[arg(long)]
    pub keep_going: bool,
    /// Run even though the rehearsal this profile requires has not passed (recorded in the
    /// lock file and in `<results>/gate.json`).
    #[arg(long)]
    pub skip_gate: bool,
    /// Print the plan and exit (same as `forge plan`).
    #[arg(long)]
    pub dry_run: bool,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Run on a rented GPU through SkyPilot (the profile's `[remote]` table), bring the results
    /// back and tear the cluster down; `--profile a5000,l4` launches one cluster per profile.
    #[arg(long)]
    pub remote: bool,
}

/// `forge plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The manifest and the profiles.
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Which steps, and which to force.
    #[command(flatten)]
    pub select: SelectArgs,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `forge preflight`.
#[derive(Debug, Args)]
pub struct PreflightArgs {
    /// The manifest and the profiles.
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Print the table as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `forge graph`.
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// The manifest and the profiles.
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
    pub format: GraphFormat,
}

/// Graph output formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GraphFormat {
    /// A mermaid flowchart (renders on GitHub).
    Mermaid,
    /// Graphviz dot.
    Dot,
}

/// `forge show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The manifest and the profiles.
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// The step id.
    pub step: String,
    /// Print the record as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `forge clean`.
#[derive(Debug, Args)]
pub struct CleanArgs {
    /// The manifest and the profiles.
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Also remove everything else under `.forge/` (environments, models built there).
    #[arg(long)]
    pub all: bool,
    /// Say what would be removed, remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `forge profiles`.
#[derive(Debug, Args)]
pub struct ProfilesArgs {
    /// The pipeline manifest whose workspace holds `profiles/`.
    pub manifest: PathBuf,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `forge compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The pipeline manifest the profiles ran.
    pub manifest: PathBuf,
    /// The profiles, separated by commas (`a5000,l4,a100`).
    #[arg(long, short)]
    pub profile: String,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `forge completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}
