//! What a child sees of Forge's environment: a policy (the base set only, or everything), plus
//! the variables its caller sets.

use std::collections::BTreeMap;
use std::path::Path;

/// Variables every child gets from Forge's environment, besides the declared ones: the basics of
/// a shell, and how this machine reaches the network (proxies, CA bundles, package indexes,
/// caches). None of these decide what a step produces, so none enter keys.
pub const BASE_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "TERM",
    "TMPDIR",
    "SHELL",
    "XDG_CACHE_HOME",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "PIP_CERT",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_DEFAULT_TIMEOUT",
    "UV_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_EXTRA_INDEX_URL",
    "UV_CACHE_DIR",
    "UV_NATIVE_TLS",
    "HF_HOME",
];

/// Which of Forge's own variables a child inherits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inherit {
    /// Only [`BASE_ENV`]: what a manifest step sees is what it declares (`env`, `pass_env`).
    Base,
    /// All of them: for the tools a built-in kind drives (lm-eval, `vllm bench serve`), which
    /// read whatever their own documentation names (`HF_TOKEN`, `HF_DATASETS_CACHE`, ...).
    Whole,
}

/// A child's environment: the inherited part, then `set` on top (a value in `set` wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    /// What is taken from Forge's environment.
    pub inherit: Inherit,
    /// Variables set for the child.
    pub set: BTreeMap<String, String>,
}

impl Environment {
    /// The base set plus `set`.
    pub fn cleared(set: BTreeMap<String, String>) -> Self {
        Self {
            inherit: Inherit::Base,
            set,
        }
    }

    /// Forge's whole environment plus `set`.
    pub fn inherited(set: BTreeMap<String, String>) -> Self {
        Self {
            inherit: Inherit::Whole,
            set,
        }
    }

    /// Applies the policy to `command`.
    pub(super) fn apply(&self, command: &mut tokio::process::Command) {
        if self.inherit == Inherit::Base {
            command.env_clear();
            for name in BASE_ENV {
                if let Some(value) = std::env::var_os(name) {
                    command.env(name, value);
                }
            }
        }
        command.envs(&self.set);
    }
}

/// What a step's process sees besides the base set: its declared env, the `pass_env` values from
/// Forge's environment, and `FORGE_STEP`, `FORGE_PROFILE`, `FORGE_WORKSPACE`.
pub fn step_env(
    step: &crate::manifest::Step,
    profile: &str,
    workspace: &Path,
) -> BTreeMap<String, String> {
    let mut env = step.env.clone();
    for name in &step.pass_env {
        if let Ok(value) = std::env::var(name) {
            env.insert(name.clone(), value);
        }
    }
    env.insert("FORGE_STEP".into(), step.id.to_string());
    env.insert("FORGE_PROFILE".into(), profile.to_string());
    env.insert("FORGE_WORKSPACE".into(), workspace.display().to_string());
    env
}
