//! The GPU rows: which GPU, how much memory, and whether the driver runs each GPU lock's CUDA.

use super::{Context, at_least, row};
use crate::preflight::gpu::Cuda;
use crate::preflight::{Row, Verdict};

pub(super) fn gpu(cx: &Context) -> Vec<Row> {
    let expected = cx.spec.gpu.clone();
    let shown = expected.clone().unwrap_or_else(|| "-".into());
    let found = match &cx.facts.gpu {
        Err(why) => Err(why.clone()),
        Ok(report) if report.gpus.is_empty() => {
            Err("no GPU visible (`CUDA_VISIBLE_DEVICES`)".into())
        }
        Ok(report) => Ok(&report.gpus[0]),
    };
    let Some(want) = expected else {
        let found = found.map_or_else(|why| format!("none ({why})"), |g| g.name.clone());
        return vec![row("GPU", found, shown, Verdict::Info, String::new())];
    };
    match found {
        Err(why) => vec![row(
            "GPU",
            format!("none ({why})"),
            shown,
            Verdict::Fail,
            format!(
                "run this profile on a machine with an NVIDIA `{want}` and its driver (`nvidia-smi` must list it)"
            ),
        )],
        Ok(g) if g.name.to_lowercase().contains(&want.to_lowercase()) => {
            vec![row(
                "GPU",
                g.name.clone(),
                shown,
                Verdict::Pass,
                String::new(),
            )]
        }
        Ok(g) => vec![row(
            "GPU",
            g.name.clone(),
            shown,
            Verdict::Fail,
            format!(
                "this profile's prices and limits are for a `{want}`: rent one, or use a profile for a `{}`",
                g.name
            ),
        )],
    }
}

pub(super) fn gpu_memory(cx: &Context) -> Vec<Row> {
    let gpu = cx.facts.gpu.as_ref().ok().and_then(|r| r.gpus.first());
    match (gpu, cx.spec.gpu_min_memory_gb) {
        (None, None) => Vec::new(),
        (None, Some(min)) => vec![row(
            "GPU memory",
            "no GPU".into(),
            format!(">= {min} GB"),
            Verdict::Fail,
            "see `GPU`".into(),
        )],
        (Some(g), min) => vec![at_least(
            "GPU memory",
            g.memory_gb(),
            format!("{} MiB ({:.1} GB)", g.memory_mib, g.memory_gb()),
            min,
            "GB",
            "the model and its KV cache do not fit: rent a GPU with more memory",
        )],
    }
}

pub(super) fn cuda(cx: &Context) -> Vec<Row> {
    if cx.spec.gpu.is_none() {
        return Vec::new();
    }
    let driver = cx.facts.gpu.as_ref().ok().map(|r| r.driver_cuda);
    let mut rows = Vec::new();
    for (lock, needs) in &cx.facts.locks {
        let Ok(needs) = needs else { continue };
        let Some(need) = needs.cuda.filter(|_| cx.spec.gpu_locks.contains(lock)) else {
            continue;
        };
        let check = format!("CUDA for `{lock}`");
        let expected = match need.min_driver() {
            Some(d) => format!("CUDA {need} (driver >= {d})"),
            None => format!("CUDA {need}"),
        };
        let verdict_row =
            |found: String, verdict, todo| row(&check, found, expected.clone(), verdict, todo);
        let row = match driver {
            None => verdict_row("no NVIDIA driver".into(), Verdict::Fail, "see `GPU`".into()),
            Some(None) => verdict_row(
                "driver's CUDA version unknown".into(),
                Verdict::Warn,
                "`nvidia-smi` printed no `CUDA Version:`; check the driver by hand".into(),
            ),
            Some(Some(have)) if have.major > need.major || have >= need => verdict_row(
                format!("driver supports CUDA {have}"),
                Verdict::Pass,
                String::new(),
            ),
            Some(Some(have)) if have.major == need.major => verdict_row(
                format!("driver supports CUDA {have}"),
                Verdict::Warn,
                format!(
                    "runs under CUDA minor-version compatibility (most kernels; PTX JIT needs a CUDA {need} driver)"
                ),
            ),
            Some(Some(have)) => verdict_row(
                format!("driver supports CUDA {have}"),
                Verdict::Fail,
                cuda_fix(cx, lock, have),
            ),
        };
        rows.push(row);
    }
    rows
}

/// A sibling lock (same name before the first `-`) whose CUDA the driver supports.
fn cuda_fix(cx: &Context, lock: &str, have: Cuda) -> String {
    let family = |path: &str| {
        let stem = std::path::Path::new(path)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        stem.split('-').next().unwrap_or_default().to_string()
    };
    let fits = cx
        .facts
        .cuda_locks
        .iter()
        .filter(|(other, cuda)| {
            other != lock && family(other) == family(lock) && cuda.major <= have.major
        })
        .max_by_key(|(_, cuda)| *cuda);
    match fits {
        Some((other, cuda)) => format!(
            "the driver needs a CUDA {} build: {} ({other} pins CUDA {cuda}); or rent a host with a newer driver",
            have.major,
            cx.switch(lock, other)
        ),
        None => format!(
            "no lock beside `{lock}` is built for CUDA {}: rent a host whose driver supports CUDA {}, or add a lock",
            have.major,
            cx.facts
                .locks
                .iter()
                .find(|(l, _)| l == lock)
                .and_then(|(_, n)| n.as_ref().ok()?.cuda)
                .map_or_else(|| "the lock's version".into(), |c| c.to_string())
        ),
    }
}
