//! Programs a run starts besides the environments it builds: each must answer `--version`
//! (the profile's `[preflight] programs`; `prometheus` when `monitoring = true`).

use super::{Context, row};
use crate::preflight::{Row, Verdict};

/// How to get a program the pipeline knows about, else a generic hint.
fn install_hint(program: &str) -> String {
    match program {
        "prometheus" => {
            "install it (Debian/Ubuntu: `apt-get install -y prometheus`; elsewhere the \
                         release tarball from prometheus.io) or set `monitoring = false`"
                .to_string()
        }
        other => format!(
            "install `{other}` or put it on PATH (the profile's `[preflight] programs` asks for it)"
        ),
    }
}

/// One row per declared program: its version line, or why it did not answer.
pub fn programs(cx: &Context) -> Vec<Row> {
    cx.facts
        .programs
        .iter()
        .map(|(program, answer)| {
            let check = format!("program `{program}`");
            match answer {
                Ok(version) => row(
                    &check,
                    version.clone(),
                    "on PATH".into(),
                    Verdict::Pass,
                    String::new(),
                ),
                Err(why) => row(
                    &check,
                    why.clone(),
                    "on PATH".into(),
                    Verdict::Fail,
                    install_hint(program),
                ),
            }
        })
        .collect()
}
