//! How the AWQ model will be served on this machine, said before the hour of work that precedes
//! serving it (the `awq_serving` parameter; `docs/serving.md`).

use super::{Context, row};
use crate::preflight::{Row, Verdict};

/// The parameter's values (`pipelines/forge.toml`, `profiles/m1-rehearsal.toml`).
const MODES: [&str; 3] = ["auto", "int4", "dequantized"];

/// One row: the path `awq_weights` will take, and what it means; a mode that cannot run here (or
/// does not exist) fails before any environment is built.
pub fn awq_serving(cx: &Context) -> Vec<Row> {
    let Some(mode) = cx.params.get("awq_serving").and_then(|v| v.as_str()) else {
        return Vec::new();
    };
    let isa = cx.facts.host.isa.name();
    let int4_here = cx
        .params
        .get("cpu_int4_isas")
        .and_then(|v| v.as_array())
        .is_some_and(|isas| isas.iter().any(|i| i.as_str() == Some(isa)));
    // A profile that expects a GPU serves with the GPU's kernels; the CPU does not matter.
    let gpu = cx.spec.gpu.is_some();
    let check = "AWQ serving";
    let found = format!("awq_serving = {mode}, CPU {isa}");
    let dequantized = "the AWQ weights dequantized to BF16: the same quantization error (eval and \
                       retention hold), BF16 speed, not INT4's";
    match mode {
        _ if !MODES.contains(&mode) => vec![row(
            check,
            found,
            "auto, int4 or dequantized".into(),
            Verdict::Fail,
            "set `awq_serving` to `auto`, `int4` or `dequantized` in the profile".into(),
        )],
        "int4" if gpu => vec![row(
            check,
            found,
            "-".into(),
            Verdict::Info,
            "the INT4 checkpoint, with vLLM's GPU kernels".into(),
        )],
        "int4" | "auto" if int4_here => vec![row(
            check,
            found,
            "-".into(),
            Verdict::Info,
            "the INT4 checkpoint, with the INT4 kernel of vLLM's CPU build".into(),
        )],
        "int4" => vec![row(
            check,
            found,
            format!("a CPU of `cpu_int4_isas` ({isa} has no INT4 kernel)"),
            Verdict::Fail,
            "vLLM's CPU build has no INT4 kernel for this CPU: set `awq_serving = \"auto\"` (or \
             \"dequantized\") in the profile"
                .into(),
        )],
        "auto" => vec![row(
            check,
            found,
            "-".into(),
            Verdict::Warn,
            format!("vLLM's CPU build has no INT4 kernel for {isa}: serving {dequantized}"),
        )],
        _ => vec![row(
            check,
            found,
            "-".into(),
            Verdict::Info,
            format!("forced by the profile: {dequantized}"),
        )],
    }
}
