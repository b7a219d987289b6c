//! The checks: each a pure function from the profile's expectations and the gathered facts to
//! rows of the table. Adding a check is adding an entry to [`CHECKS`].

use indexmap::IndexMap;
use serde_json::Value as Json;

mod awq;
mod gpu;
mod network;
mod programs;

use super::facts::Facts;
use super::{Row, Verdict};
use crate::host::IsaLevel;
use crate::manifest::preflight::Preflight;
use awq::awq_serving;
use gpu::{cuda, gpu, gpu_memory};
use network::{hub, registry};
use programs::programs;

/// What a check reads.
pub struct Context<'a> {
    /// The profile's expectations.
    pub spec: &'a Preflight,
    /// What the machine and network said.
    pub facts: &'a Facts,
    /// The pipeline's resolved parameters (to name the one that selects a value).
    pub params: &'a IndexMap<String, Json>,
}

impl Context<'_> {
    /// "`--set NAME=VALUE`" when a string parameter holds `current`, else a generic hint.
    fn switch(&self, current: &str, value: &str) -> String {
        // A parameter holding `current`, as a string or as one platform's entry of a per-platform
        // table (`{ linux-x86_64 = "constraints/serve.txt" }`): `--set` with a plain string
        // replaces either, since `for_platform` passes a string through.
        let holds = |v: &serde_json::Value| {
            v.as_str() == Some(current)
                || v.as_object()
                    .is_some_and(|t| t.values().any(|e| e.as_str() == Some(current)))
        };
        match self.params.iter().find(|(_, v)| holds(v)) {
            Some((name, _)) => format!(
                "set `{name} = \"{value}\"` in the profile (or pass `--set {name}={value}`)"
            ),
            None => format!("use `{value}` instead of `{current}`"),
        }
    }
}

/// One check: a name for the docs and a function producing its rows.
pub struct Check {
    /// What it checks, in a word.
    pub name: &'static str,
    /// The rows it produces (none when it does not apply).
    pub rows: fn(&Context) -> Vec<Row>,
}

/// Every check, in table order.
pub static CHECKS: &[Check] = &[
    Check {
        name: "cpu",
        rows: cpu,
    },
    Check {
        name: "awq-serving",
        rows: awq_serving,
    },
    Check {
        name: "cores",
        rows: cores,
    },
    Check {
        name: "memory",
        rows: memory,
    },
    Check {
        name: "gpu",
        rows: gpu,
    },
    Check {
        name: "gpu-memory",
        rows: gpu_memory,
    },
    Check {
        name: "cuda",
        rows: cuda,
    },
    Check {
        name: "disk",
        rows: disk,
    },
    Check {
        name: "python",
        rows: python,
    },
    Check {
        name: "programs",
        rows: programs,
    },
    Check {
        name: "registry",
        rows: registry,
    },
    Check {
        name: "hub",
        rows: hub,
    },
];

pub(super) fn row(
    check: &str,
    found: String,
    expected: String,
    verdict: Verdict,
    todo: String,
) -> Row {
    Row {
        check: check.to_string(),
        found,
        expected,
        verdict,
        todo,
    }
}

pub(super) fn at_least(
    check: &str,
    found: f64,
    shown: String,
    min: Option<f64>,
    unit: &str,
    todo: &str,
) -> Row {
    match min {
        None => row(check, shown, "-".into(), Verdict::Info, String::new()),
        Some(min) if found >= min => row(
            check,
            shown,
            format!(">= {min} {unit}"),
            Verdict::Pass,
            String::new(),
        ),
        Some(min) => row(
            check,
            shown,
            format!(">= {min} {unit}"),
            Verdict::Fail,
            todo.to_string(),
        ),
    }
}

fn cpu(cx: &Context) -> Vec<Row> {
    let host = &cx.facts.host;
    let meaning = match host.isa {
        IsaLevel::Avx512 => "vLLM's CPU build uses its AVX-512 kernels",
        IsaLevel::Avx2 => "no AVX-512: vLLM's CPU build loads its AVX2 kernel library",
        IsaLevel::X86Baseline => "no AVX2: vLLM's CPU wheels are built for AVX2 or AVX-512",
        IsaLevel::Arm64 => "Arm: vLLM's CPU build for Arm (NEON)",
        IsaLevel::Other => "no vLLM CPU build for this architecture",
    };
    let emulated = host
        .emulated
        .as_ref()
        .map(|e| format!(", emulating {e}"))
        .unwrap_or_default();
    let found = format!(
        "{}: {}{emulated} ({})",
        host.cpu_model,
        host.isa.name(),
        host.cpu_features.join(" ")
    );
    vec![row(
        "CPU instruction set",
        found,
        "-".into(),
        Verdict::Info,
        meaning.into(),
    )]
}

fn cores(cx: &Context) -> Vec<Row> {
    let cpus = cx.facts.host.cpus;
    let todo = "use a machine with more cores (or fewer parallel jobs: `--jobs`)";
    vec![at_least(
        "CPU cores",
        cpus as f64,
        cpus.to_string(),
        cx.spec.min_cpus.map(|n| n as f64),
        "",
        todo,
    )]
}

fn gb(bytes: u64) -> f64 {
    bytes as f64 / 1e9
}

fn memory(cx: &Context) -> Vec<Row> {
    let Some(bytes) = cx.facts.host.memory_bytes else {
        return vec![row(
            "memory",
            "unknown".into(),
            cx.spec
                .min_memory_gb
                .map_or("-".into(), |m| format!(">= {m} GB")),
            Verdict::Warn,
            "this system does not report its memory; check it by hand".into(),
        )];
    };
    vec![at_least(
        "memory",
        gb(bytes),
        format!("{:.1} GB", gb(bytes)),
        cx.spec.min_memory_gb,
        "GB",
        "use a machine with more memory",
    )]
}

fn disk(cx: &Context) -> Vec<Row> {
    let place = cx.facts.workspace.display();
    match &cx.facts.disk_free {
        Err(why) => vec![row(
            "free disk",
            format!("unknown ({why})"),
            cx.spec
                .min_free_disk_gb
                .map_or("-".into(), |m| format!(">= {m} GB")),
            Verdict::Warn,
            "check free space by hand (`df -h`)".into(),
        )],
        Ok(bytes) => vec![at_least(
            "free disk",
            gb(*bytes),
            format!("{:.1} GB under `{place}`", gb(*bytes)),
            cx.spec.min_free_disk_gb,
            "GB",
            "environments and weights will not fit: free space, or attach a larger volume",
        )],
    }
}

fn python(cx: &Context) -> Vec<Row> {
    let interpreter = &cx.spec.python;
    let mut versions: Vec<&str> = Vec::new();
    let mut rows = Vec::new();
    for (lock, needs) in &cx.facts.locks {
        match needs {
            Ok(needs) if cx.spec.locks.contains(lock) => versions.extend(needs.python.as_deref()),
            Ok(_) => {}
            Err(why) => rows.push(row(
                &format!("lock `{lock}`"),
                why.clone(),
                "a readable lock file".into(),
                Verdict::Fail,
                "restore it from git, or fix the path in the profile".into(),
            )),
        }
    }
    versions.sort();
    versions.dedup();
    let expected = if versions.is_empty() {
        "-".to_string()
    } else {
        format!("{} (the locks)", versions.join(" and "))
    };
    let check = format!("Python (`{interpreter}`)");
    let r = match (&cx.facts.python, versions.as_slice()) {
        (Err(why), _) => row(
            &check,
            why.clone(),
            expected,
            Verdict::Fail,
            format!(
                "install Python{} and point the profile at it",
                versions
                    .first()
                    .map(|v| format!(" {v}"))
                    .unwrap_or_default()
            ),
        ),
        (Ok(have), []) => row(&check, have.clone(), expected, Verdict::Info, String::new()),
        (Ok(have), [want]) if have == want || have.starts_with(&format!("{want}.")) => {
            row(&check, have.clone(), expected, Verdict::Pass, String::new())
        }
        (Ok(have), [want]) => row(
            &check,
            have.clone(),
            expected,
            Verdict::Fail,
            format!(
                "the locks are resolved for Python {want}: install it and {}",
                cx.switch(interpreter, &format!("python{want}"))
            ),
        ),
        (Ok(have), _) => row(
            &check,
            have.clone(),
            expected,
            Verdict::Fail,
            "the locks disagree on the Python version: re-lock them for one version".into(),
        ),
    };
    rows.insert(0, r);
    rows
}
