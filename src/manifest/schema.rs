//! Raw, wire-level types for pipeline manifests and profiles, exactly as written in TOML.
//!
//! Everything here is `deny_unknown_fields` and carries spans for the values other places refer
//! to, so that later checks can point at the line that is wrong. Nothing here is validated beyond
//! types: `resolve.rs` turns these into the validated model.

use indexmap::IndexMap;
use serde::Deserialize;
use toml::Spanned;

/// A pipeline manifest (`pipelines/*.toml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawManifest {
    /// Pipeline-wide settings.
    pub pipeline: Option<Spanned<RawPipeline>>,
    /// Parameters with their defaults; profiles and `--set` override them.
    #[serde(default)]
    pub params: IndexMap<Spanned<String>, Spanned<toml::Value>>,
    /// Steps by id, in declaration order.
    #[serde(default)]
    pub steps: IndexMap<Spanned<String>, Spanned<RawStep>>,
}

/// The `[pipeline]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPipeline {
    /// A short name used in messages.
    pub name: Option<String>,
    /// One line on what the pipeline does.
    pub description: Option<String>,
    /// The workspace root, relative to the manifest's directory (default `.`).
    pub workspace: Option<Spanned<String>>,
    /// Where results and the lock file go (template; default `results/{{ profile.name }}`).
    pub results: Option<Spanned<String>>,
}

/// One `[steps.<id>]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    /// The step kind: `command`, `service`, or a built-in kind.
    pub kind: Spanned<String>,
    /// One line on what the step does.
    pub description: Option<String>,
    /// Steps whose outputs (or, for services, whose running server) this step uses.
    #[serde(default)]
    pub needs: Vec<Spanned<String>>,
    /// Files, directories or globs whose contents enter the step's key.
    #[serde(default)]
    pub inputs: Vec<Spanned<String>>,
    /// Files or directories the step writes.
    #[serde(default)]
    pub outputs: Vec<Spanned<String>>,
    /// Variables set for the process; their values enter the key.
    #[serde(default)]
    pub env: IndexMap<String, Spanned<String>>,
    /// Variables passed through from Forge's environment; they enter the key by name only.
    #[serde(default)]
    pub pass_env: Vec<Spanned<String>>,
    /// `pass_env` variables whose values decide the outputs: their values enter the key (as
    /// digests). A secret or a device choice never belongs here.
    #[serde(default)]
    pub key_env: Vec<Spanned<String>>,
    /// Platform facts (`cpus`, `isa`, ...) the step's outputs depend on: their values enter the
    /// key, and only these may appear in templates outside `env`.
    #[serde(default)]
    pub key_platform: Vec<Spanned<String>>,
    /// Exclusive resources held while the step (or service) runs, e.g. `gpu`.
    #[serde(default)]
    pub resources: Vec<Spanned<String>>,
    /// Fan-out: one step per combination of these lists.
    #[serde(default)]
    pub matrix: IndexMap<Spanned<String>, Spanned<Vec<toml::Value>>>,
    /// The command line (`command` and `service`), run by `sh -c`.
    pub run: Option<Spanned<String>>,
    /// The base URL a service publishes to the steps that need it.
    pub url: Option<Spanned<String>>,
    /// A service's readiness probe.
    pub ready: Option<Spanned<RawReady>>,
    /// Longest a `command` step may run (e.g. `30m`).
    pub timeout: Option<Spanned<String>>,
    /// How long a stopped process gets between SIGTERM and SIGKILL (default `10s`).
    pub stop_grace: Option<Spanned<String>>,
    /// How long the step is expected to take on the profile's machine (`25m`; for a service, its
    /// startup): what `forge plan` prices when there is no recorded duration. Never in the key.
    pub estimate: Option<Spanned<String>>,
    /// The model a service serves: a directory in the workspace (its blake3 digest is recorded
    /// as the model SHA) or a hub id.
    pub model: Option<Spanned<String>>,
    /// Settings of a built-in kind.
    pub with: Option<Spanned<toml::Table>>,
}

/// A readiness probe: exactly one of `http`, `tcp`, `log`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReady {
    /// Ready when a GET of this URL answers 2xx.
    pub http: Option<String>,
    /// Ready when this `host:port` accepts a connection.
    pub tcp: Option<String>,
    /// Ready when this text appears in the service's log.
    pub log: Option<String>,
    /// With `http`: the response body must also contain this text (for example the served
    /// model's name in `/v1/models`).
    pub contains: Option<String>,
    /// How long to wait for readiness (default `5m`).
    pub timeout: Option<String>,
}

/// A profile (`profiles/<name>.toml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    /// One line on what the profile is for.
    pub description: Option<String>,
    /// A profile this one overlays (its values apply first).
    pub extends: Option<Spanned<String>>,
    /// A profile whose complete, successful run of the same pipeline (same manifest, same step
    /// code) must exist before this profile may run: the rehearsal gate.
    pub requires: Option<Spanned<String>>,
    /// The machine's price per hour (a number, or a template such as
    /// `"{{ params.gpu_hourly_usd }}"`): `forge plan` prices estimates with it.
    pub hourly_usd: Option<Spanned<toml::Value>>,
    /// The most a run may be estimated to cost: `forge run` refuses a run over it.
    pub budget_usd: Option<Spanned<f64>>,
    /// What the machine must offer before a run does any work (`forge preflight`).
    pub preflight: Option<Spanned<RawPreflight>>,
    /// The profile is a rehearsal: its figures are not measured on the priced GPU and decide
    /// nothing (`{{ profile.rehearsal }}` in templates; the cost step's `rehearsal` setting).
    pub rehearsal: Option<bool>,
    /// Parameter overrides.
    #[serde(default)]
    pub params: IndexMap<Spanned<String>, Spanned<toml::Value>>,
    /// Step setting overrides, by step id.
    #[serde(default)]
    pub steps: IndexMap<Spanned<String>, Spanned<RawStepOverlay>>,
    /// Where `forge run --remote` rents its machine (see `crate::remote::config`).
    pub remote: Option<crate::remote::config::RawRemote>,
}

/// A profile's `[preflight]` table: expectations checked before any environment, download or
/// service. Strings are templates over `params`; a profile that extends another replaces the
/// values it sets.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPreflight {
    /// The GPU `nvidia-smi` must report: a case-insensitive part of its name (`RTX A5000`).
    pub gpu: Option<Spanned<String>>,
    /// Least memory of that GPU, in GB (10^9 bytes, as cards are sold).
    pub gpu_min_memory_gb: Option<Spanned<f64>>,
    /// Lock files the run installs: their `#forge: python` must match the interpreter. An
    /// entry that renders empty is dropped (so a template can make it conditional).
    pub locks: Option<Vec<Spanned<String>>>,
    /// Lock files whose environments use the GPU: the CUDA runtime they pin must be one the
    /// driver supports.
    pub gpu_locks: Option<Vec<Spanned<String>>>,
    /// The interpreter environments are built from (default `python3`).
    pub python: Option<Spanned<String>>,
    /// Least free disk under the workspace, in GB: environments, weights and a margin.
    pub min_free_disk_gb: Option<Spanned<f64>>,
    /// Fewest logical CPUs.
    pub min_cpus: Option<Spanned<u32>>,
    /// Least memory, in GB.
    pub min_memory_gb: Option<Spanned<f64>>,
    /// The package index environments install from (`UV_DEFAULT_INDEX`/`UV_INDEX_URL`/
    /// `PIP_INDEX_URL` win when set, as they do for uv).
    pub registry: Option<Spanned<String>>,
    /// Hub repositories the run downloads that need an accepted license: `owner/name`, or
    /// `datasets/owner/name`.
    pub gated_repos: Option<Vec<Spanned<String>>>,
    /// Programs the run starts that must be on PATH (`prometheus` when monitoring is on). An
    /// entry that renders empty is dropped (so a template can make it conditional).
    pub programs: Option<Vec<Spanned<String>>>,
}

/// What a profile may change in a step. The graph (kind, needs, matrix) stays the manifest's.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStepOverlay {
    /// Replaces the step's inputs.
    pub inputs: Option<Vec<Spanned<String>>>,
    /// Replaces the step's outputs.
    pub outputs: Option<Vec<Spanned<String>>>,
    /// Merged into the step's env (profile wins).
    #[serde(default)]
    pub env: IndexMap<String, Spanned<String>>,
    /// Replaces `pass_env`.
    pub pass_env: Option<Vec<Spanned<String>>>,
    /// Replaces `key_env`.
    pub key_env: Option<Vec<Spanned<String>>>,
    /// Replaces `key_platform`.
    pub key_platform: Option<Vec<Spanned<String>>>,
    /// Replaces the resources.
    pub resources: Option<Vec<Spanned<String>>>,
    /// Replaces the command line.
    pub run: Option<Spanned<String>>,
    /// Replaces the service URL.
    pub url: Option<Spanned<String>>,
    /// Replaces the readiness probe.
    pub ready: Option<Spanned<RawReady>>,
    /// Replaces the timeout.
    pub timeout: Option<Spanned<String>>,
    /// Replaces the stop grace period.
    pub stop_grace: Option<Spanned<String>>,
    /// Replaces the estimate.
    pub estimate: Option<Spanned<String>>,
    /// Replaces the service's model.
    pub model: Option<Spanned<String>>,
    /// Deep-merged into the built-in kind's settings (profile wins).
    pub with: Option<Spanned<toml::Table>>,
}
