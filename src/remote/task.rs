//! The SkyPilot task a remote run launches: resources from the profile's `[remote]` table, the
//! repository at the current commit as `workdir`, a `setup` that builds Forge from `Cargo.lock`,
//! and a `run` that is the same `forge run` on the pod. Secrets appear by name only.
//!
//! Written as YAML by hand: the structure is fixed and small, every scalar is written as a JSON
//! string (a JSON string is a valid YAML double-quoted scalar), and the scripts as block scalars,
//! so the file stays readable without a YAML serializer dependency.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::config::Remote;

/// The Rust toolchain the pod installs (the one Forge is built and tested with here).
pub const TOOLCHAIN: &str = "1.95.0";
/// Where the pod's run leaves its report and exit code, relative to the workspace.
pub const POD_STATE: &str = ".forge/remote";
/// Where SkyPilot puts the workdir on the pod, relative to the home directory
/// (`SKY_REMOTE_WORKDIR` in SkyPilot's constants).
pub const POD_WORKDIR: &str = "sky_workdir";

/// What one remote run executes.
#[derive(Debug, Clone)]
pub struct TaskSpec {
    /// The task (and cluster) name.
    pub name: String,
    /// The local directory SkyPilot uploads as the workdir (the repository at one commit).
    pub workdir: PathBuf,
    /// The workspace relative to the repository root (`.` for Forge's own repository).
    pub workspace: String,
    /// The manifest relative to the workspace.
    pub manifest: String,
    /// The profile to run.
    pub profile: String,
    /// `--set KEY=VALUE` arguments, passed on to the pod's run.
    pub sets: Vec<String>,
    /// `--skip-gate` on the pod too (only when the local run was told to skip it).
    pub skip_gate: bool,
    /// The commit the workdir holds.
    pub commit: String,
    /// Where to run and what to rent.
    pub remote: Remote,
}

/// Quotes a string as a YAML (JSON) double-quoted scalar.
fn quote(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

/// Quotes a word for `sh`.
pub fn sh_quote(text: &str) -> String {
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c))
    {
        return text.to_string();
    }
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// The `setup` script: a C toolchain if missing, Rust, and `cargo build --release --locked`.
fn setup_script() -> String {
    format!(
        r#"set -eu
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "forge: the image needs Python >= 3.11 as python3 (scripts/forge_env.py); set [remote] image" >&2
  exit 1
fi
if ! command -v cc >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then
  SUDO=$(command -v sudo || true)
  $SUDO apt-get update -q && $SUDO apt-get install -y -q build-essential curl
fi
if [ ! -x "$HOME/.cargo/bin/cargo" ]; then
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain {TOOLCHAIN}
fi
. "$HOME/.cargo/env"
cargo build --release --locked
"#
    )
}

/// The `run` script: the same `forge run` on the pod, its JSON report and exit code kept for
/// Forge to fetch.
fn run_script(spec: &TaskSpec) -> String {
    let mut flags: String = spec
        .sets
        .iter()
        .map(|set| format!(" --set {}", sh_quote(set)))
        .collect();
    if spec.skip_gate {
        flags.push_str(" --skip-gate");
    }
    format!(
        r#"set -u
ROOT=$PWD
cd {workspace}
mkdir -p {POD_STATE}
"$ROOT/target/release/forge" run {manifest} --profile {profile}{flags} --json > {POD_STATE}/report.json
code=$?
echo "$code" > {POD_STATE}/exit-code
exit "$code"
"#,
        workspace = sh_quote(&spec.workspace),
        manifest = sh_quote(&spec.manifest),
        profile = sh_quote(&spec.profile),
    )
}

fn block(out: &mut String, key: &str, script: &str) {
    let _ = writeln!(out, "{key}: |");
    for line in script.lines() {
        if line.is_empty() {
            out.push('\n');
        } else {
            let _ = writeln!(out, "  {line}");
        }
    }
}

/// The task file's text.
pub fn render(spec: &TaskSpec) -> String {
    let r = &spec.remote;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# SkyPilot task written by `forge run --remote` for profile `{}` at commit {}.\n# Secrets are listed by name; SkyPilot takes their values from the launching shell (--secret NAME).",
        spec.profile, spec.commit
    );
    let _ = writeln!(out, "name: {}", quote(&spec.name));
    let _ = writeln!(
        out,
        "workdir: {}",
        quote(&spec.workdir.display().to_string())
    );
    let _ = writeln!(out, "resources:");
    let _ = writeln!(out, "  infra: {}", quote(&r.infra));
    let _ = writeln!(
        out,
        "  accelerators: {}",
        quote(&format!("{}:{}", r.accelerator, r.count))
    );
    let _ = writeln!(out, "  disk_size: {}", r.disk_size);
    let _ = writeln!(out, "  max_hourly_cost: {}", r.max_hourly_cost);
    let _ = writeln!(out, "  autostop:");
    let _ = writeln!(out, "    idle_minutes: {}", r.idle_minutes);
    let _ = writeln!(out, "    down: true");
    if let Some(image) = &r.image {
        let _ = writeln!(out, "  image_id: {}", quote(image));
    }
    if !r.secrets.is_empty() {
        let _ = writeln!(out, "secrets:");
        for name in &r.secrets {
            let _ = writeln!(out, "  {name}: null");
        }
    }
    let _ = writeln!(out, "envs:");
    let _ = writeln!(out, "  FORGE_REMOTE_COMMIT: {}", quote(&spec.commit));
    block(&mut out, "setup", &setup_script());
    block(&mut out, "run", &run_script(spec));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> TaskSpec {
        TaskSpec {
            name: "forge-a5000-1a2b3c4".into(),
            workdir: PathBuf::from("/w/.forge/remote/a5000/workdir"),
            workspace: ".".into(),
            manifest: "pipelines/forge.toml".into(),
            profile: "a5000".into(),
            sets: Vec::new(),
            skip_gate: false,
            commit: "1a2b3c4d".into(),
            remote: Remote {
                infra: "runpod".into(),
                accelerator: "RTXA5000".into(),
                count: 1,
                disk_size: 200,
                max_hourly_cost: 1.0,
                idle_minutes: 30,
                image: None,
                secrets: vec!["HF_TOKEN".into()],
            },
        }
    }

    #[test]
    fn the_task_names_secrets_and_runs_the_same_pipeline() {
        let text = render(&spec());
        assert!(text.contains("  accelerators: \"RTXA5000:1\"\n"), "{text}");
        assert!(text.contains("secrets:\n  HF_TOKEN: null\n"), "{text}");
        assert!(text.contains(
            "\"$ROOT/target/release/forge\" run pipelines/forge.toml --profile a5000 --json"
        ));
        assert!(text.contains("cargo build --release --locked"));
        assert!(text.contains("    down: true\n"));
    }

    #[test]
    fn words_are_quoted_for_the_shell() {
        assert_eq!(sh_quote("pipelines/forge.toml"), "pipelines/forge.toml");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
    }
}
