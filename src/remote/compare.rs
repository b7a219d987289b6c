//! GPUs side by side: per profile, the cost step's `$/1M tokens` and p99 latency at the peak level
//! and at the cheapest level that meets the SLO, and the cheapest GPU that meets it. Read from
//! each profile's `cost/cost.json` and `cost/comparison.json` (the cost step's own types).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::results::cost::{ComparisonFile, CostFile, CostSummary};

/// One GPU's row.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GpuRow {
    /// The profile.
    pub profile: String,
    /// GPU name (from the cost step's inputs).
    pub gpu_name: String,
    /// USD per hour.
    pub gpu_hourly_usd: f64,
    /// The peak level (headline utilization).
    pub peak: CostSummary,
    /// The cheapest level meeting the SLO, when one does.
    pub slo: Option<CostSummary>,
    /// The objectives the cost step checked: p99 TTFT and p99 TPOT (ms).
    pub slo_p99_ttft_ms: f64,
    /// p99 TPOT objective (ms).
    pub slo_p99_tpot_ms: f64,
}

/// The comparison.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Comparison {
    /// Rows in the order the profiles were given.
    pub rows: Vec<GpuRow>,
    /// Profiles whose cost results could not be read, with why.
    pub missing: Vec<(String, String)>,
    /// The profile whose GPU meets the SLO at the lowest $/1M tokens (input + output).
    pub cheapest_meeting_slo: Option<String>,
    /// True when the profiles checked different objectives (then "cheapest" compares unlike).
    pub objectives_differ: bool,
}

fn read<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("`{}` is not a cost result: {e}", path.display()))
}

fn row(profile: &str, results: &Path) -> Result<GpuRow, String> {
    let cost: CostFile = read(&results.join("cost/cost.json"))?;
    let comparison: ComparisonFile = read(&results.join("cost/comparison.json"))?;
    Ok(GpuRow {
        profile: profile.to_string(),
        gpu_name: comparison.gpu_name,
        gpu_hourly_usd: comparison.gpu_hourly_usd,
        peak: comparison.self_hosted.headline,
        slo: comparison.self_hosted.slo,
        slo_p99_ttft_ms: cost.inputs.slo_p99_ttft_ms.value,
        slo_p99_tpot_ms: cost.inputs.slo_p99_tpot_ms.value,
    })
}

/// Compares the profiles' results directories: (profile, directory).
pub fn compare(dirs: &[(String, PathBuf)]) -> Comparison {
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for (profile, dir) in dirs {
        match row(profile, dir) {
            Ok(r) => rows.push(r),
            Err(why) => missing.push((profile.clone(), why)),
        }
    }
    let cheapest_meeting_slo = rows
        .iter()
        .filter_map(|r| r.slo.as_ref().map(|s| (r, s.usd_per_1m_total)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(r, _)| r.profile.clone());
    let objectives_differ = rows.windows(2).any(|w| {
        w[0].slo_p99_ttft_ms != w[1].slo_p99_ttft_ms || w[0].slo_p99_tpot_ms != w[1].slo_p99_tpot_ms
    });
    Comparison {
        rows,
        missing,
        cheapest_meeting_slo,
        objectives_differ,
    }
}

fn ms(value: Option<f64>) -> String {
    value.map_or("-".into(), |v| format!("{v:.0}"))
}

/// The comparison as a table with the verdict underneath.
pub fn render(c: &Comparison) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:14}  {:12}  {:>6}  {:>12}  {:>10}  {:>10}  {:>12}  {:>10}  {:>10}",
        "PROFILE",
        "GPU",
        "$/H",
        "PEAK $/1M",
        "PEAK TTFT",
        "PEAK TPOT",
        "SLO $/1M",
        "SLO TTFT",
        "SLO TPOT"
    );
    for r in &c.rows {
        let (slo_usd, slo_ttft, slo_tpot) = match &r.slo {
            Some(s) => (
                format!("{:.4}", s.usd_per_1m_total),
                ms(s.p99_ttft_ms),
                ms(s.p99_tpot_ms),
            ),
            None => ("no level".into(), "-".into(), "-".into()),
        };
        let _ = writeln!(
            out,
            "{:14}  {:12}  {:>6.3}  {:>12.4}  {:>10}  {:>10}  {:>12}  {:>10}  {:>10}",
            r.profile,
            r.gpu_name,
            r.gpu_hourly_usd,
            r.peak.usd_per_1m_total,
            ms(r.peak.p99_ttft_ms),
            ms(r.peak.p99_tpot_ms),
            slo_usd,
            slo_ttft,
            slo_tpot
        );
    }
    let _ = writeln!(
        out,
        "PEAK: the highest-throughput level; SLO: the cheapest level that meets the SLO\n$/1M: USD per 1M tokens (input + output) at the cost step's headline utilization; TTFT, TPOT: p99, in ms"
    );
    for (profile, why) in &c.missing {
        let _ = writeln!(out, "{profile}: no cost results ({why})");
    }
    match (&c.cheapest_meeting_slo, c.rows.first()) {
        (Some(best), Some(first)) => {
            let r = c.rows.iter().find(|r| &r.profile == best).unwrap_or(first);
            let _ = writeln!(
                out,
                "cheapest GPU meeting the SLO (p99 TTFT <= {} ms, p99 TPOT <= {} ms): {} (`{best}`)",
                r.slo_p99_ttft_ms, r.slo_p99_tpot_ms, r.gpu_name
            );
        }
        (None, Some(_)) => {
            let _ = writeln!(out, "no GPU met the SLO at any measured concurrency level");
        }
        _ => {}
    }
    if c.objectives_differ {
        let _ = writeln!(
            out,
            "warning: the profiles checked different SLOs; align `slo_ttft_ms` and `slo_tpot_ms` to compare like with like"
        );
    }
    out
}

/// Prints the comparison on stdout.
pub fn print(c: &Comparison) {
    print!("{}", render(c));
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/results/m1-rehearsal"
    );

    /// A copy of the rehearsal fixture with another GPU price and SLO-level cost.
    fn variant(dir: &Path, name: &str, slo_usd: Option<f64>) -> PathBuf {
        let out = dir.join(name).join("cost");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::copy(format!("{FIXTURE}/cost/cost.json"), out.join("cost.json")).unwrap();
        let mut comparison: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{FIXTURE}/cost/comparison.json")).unwrap(),
        )
        .unwrap();
        comparison["gpu_name"] = name.into();
        match slo_usd {
            Some(usd) => comparison["self_hosted"]["slo"]["usd_per_1m_total"] = usd.into(),
            None => comparison["self_hosted"]["slo"] = serde_json::Value::Null,
        }
        std::fs::write(out.join("comparison.json"), comparison.to_string()).unwrap();
        dir.join(name)
    }

    #[test]
    fn the_cheapest_gpu_meeting_the_slo_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = vec![
            (
                "a5000".to_string(),
                variant(dir.path(), "A5000", Some(0.30)),
            ),
            ("l4".to_string(), variant(dir.path(), "L4", Some(0.25))),
            ("a100".to_string(), variant(dir.path(), "A100", None)),
            ("h100".to_string(), dir.path().join("never-ran")),
        ];
        let c = compare(&dirs);
        assert_eq!(c.cheapest_meeting_slo.as_deref(), Some("l4"));
        assert_eq!(c.rows.len(), 3);
        assert_eq!(c.missing.len(), 1);
        assert!(!c.objectives_differ);
        let text = render(&c);
        assert!(
            text.contains("cheapest GPU meeting the SLO (p99 TTFT <= "),
            "{text}"
        );
        assert!(text.contains(": L4 (`l4`)"), "{text}");
        assert!(text.contains("no level"), "{text}");
        assert!(text.contains("h100: no cost results"), "{text}");
        let shown = text.replace(&dir.path().display().to_string(), "[DIR]");
        insta::assert_snapshot!(shown);
    }
}
