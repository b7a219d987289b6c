//! The validated pipeline: what code after resolution sees. No raw strings, no templates left
//! unrendered (except a step's `run`, kept as source so it can be rendered against staging paths).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Serialize;
use serde_json::Value as Json;

use super::body::{Body, Kind, Service};
use super::id::StepId;

/// A resolved pipeline: manifest + profile + `--set`, matrix expanded, templates rendered.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The pipeline's name.
    pub name: String,
    /// The manifest file.
    pub manifest_path: PathBuf,
    /// The workspace root (absolute); relative paths are relative to it.
    pub workspace: PathBuf,
    /// The profile name (`default` when none was given).
    pub profile: String,
    /// Where results go, relative to the workspace.
    pub results_dir: PathBuf,
    /// Resolved parameters.
    pub params: IndexMap<String, Json>,
    /// Steps in declaration order, matrix expanded.
    pub steps: IndexMap<StepId, Step>,
    /// blake3 of the manifest's bytes.
    pub manifest_digest: String,
    /// blake3 of the profile chain's bytes (empty without a profile).
    pub profile_digest: String,
    /// The profile whose complete run this one requires (`requires` in the profile chain).
    pub requires: Option<String>,
    /// What the machine must offer before a run does work (the profile chain's `[preflight]`).
    pub preflight: Option<super::preflight::Preflight>,
    /// The machine's price and the run's budget (the profile chain's `hourly_usd`, `budget_usd`).
    pub budget: super::budget::Budget,
    /// The profile chain's `[remote]` table, validated (what `forge run --remote` rents).
    pub remote: Option<crate::remote::config::Remote>,
}

impl Pipeline {
    /// The lock file that records this profile's step results.
    pub fn lock_path(&self) -> PathBuf {
        self.workspace.join(&self.results_dir).join("forge.lock")
    }

    /// Machine-local state (`.forge/` under the workspace).
    pub fn state_dir(&self) -> PathBuf {
        self.workspace.join(".forge")
    }

    /// The log file of a step.
    pub fn log_path(&self, step: &str) -> PathBuf {
        self.state_dir()
            .join("logs")
            .join(&self.profile)
            .join(format!("{step}.log"))
    }
}

/// One resolved step.
#[derive(Debug, Clone)]
pub struct Step {
    /// The id after matrix expansion (`serve-awq`).
    pub id: StepId,
    /// The id as declared (`serve`).
    pub base: StepId,
    /// What it does: its kind and that kind's options.
    pub body: Body,
    /// One line on what it does.
    pub description: Option<String>,
    /// Ids of the steps it needs.
    pub needs: Vec<StepId>,
    /// Declared inputs (workspace-relative paths or globs).
    pub inputs: Vec<String>,
    /// Declared outputs (workspace-relative paths).
    pub outputs: Vec<String>,
    /// Variables set for the process.
    pub env: BTreeMap<String, String>,
    /// Variables passed through from Forge's environment.
    pub pass_env: Vec<String>,
    /// The `pass_env` variables whose values enter the key (the others enter by name only).
    pub key_env: Vec<String>,
    /// The platform facts whose values enter the key.
    pub key_platform: Vec<String>,
    /// `env` variables rendered from platform facts the step does not key: name -> template
    /// source. Their template, not their value, enters the key.
    pub platform_env: BTreeMap<String, String>,
    /// Exclusive resources.
    pub resources: Vec<String>,
    /// SIGTERM-to-SIGKILL grace period.
    pub stop_grace: Duration,
    /// The declared expected duration (a service: its startup); never part of the key.
    pub estimate: Option<Duration>,
    /// The parameters its templates read, with their resolved values.
    pub params: BTreeMap<String, Json>,
    /// This instance's matrix values.
    pub matrix: BTreeMap<String, Json>,
    /// The template context the step was rendered with (to re-render `run` for staging).
    pub context: Json,
}

impl Step {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        self.body.kind()
    }

    /// True for long-running services.
    pub fn is_service(&self) -> bool {
        matches!(self.body, Body::Service(_))
    }

    /// The command line of a command or service, rendered; `None` for built-in kinds.
    pub fn run(&self) -> Option<&str> {
        match &self.body {
            Body::Command(command) => Some(&command.run),
            Body::Service(service) => Some(&service.run),
            _ => None,
        }
    }

    /// A service's options; `None` for every other kind.
    pub fn service(&self) -> Option<&Service> {
        match &self.body {
            Body::Service(service) => Some(service),
            _ => None,
        }
    }
}

/// A readiness probe.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Ready {
    /// What to probe.
    pub probe: Probe,
    /// With `http`: text the response body must contain.
    pub contains: Option<String>,
    /// How long to wait.
    #[serde(with = "duration_serde")]
    pub timeout: Duration,
}

/// What a readiness probe checks.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Probe {
    /// GET answers 2xx.
    Http(String),
    /// `host:port` accepts a connection.
    Tcp(String),
    /// The log contains this text.
    Log(String),
}

/// A duration serialized as the manifest writes it (`1h 30m`).
mod duration_serde {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::time::format_duration(*d))
    }
}
