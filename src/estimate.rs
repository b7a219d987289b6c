//! What a run would take and cost before it starts: for every step the plan runs (or service it
//! starts), its last recorded duration in this profile's lock file, else its declared `estimate`,
//! priced at the profile's `hourly_usd`; and the check that refuses a run over `budget_usd`.
//!
//! The total adds the steps up as if they ran one after another: an upper bound when steps run in
//! parallel, and the honest figure on one GPU, which the paid steps hold one at a time. The pod
//! bills wall time, so steps that do not use the GPU are priced too.

use std::fmt::Write as _;

use serde::Serialize;

use crate::cache::LockFile;
use crate::manifest::Pipeline;
use crate::plan::{Action, StepPlan};

/// Where a step's duration comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Basis {
    /// Its last successful run in this profile's lock file.
    Recorded,
    /// Its `estimate` key.
    Declared,
    /// Neither.
    Unknown,
}

/// One step's share.
#[derive(Debug, Clone, Serialize)]
pub struct StepCost {
    /// The step id.
    pub id: String,
    /// Where the duration comes from.
    pub basis: Basis,
    /// Expected wall time in seconds.
    pub seconds: Option<f64>,
    /// Expected dollars at the profile's hourly rate.
    pub usd: Option<f64>,
}

/// The whole run's estimate.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    /// The profile's price per hour.
    pub hourly_usd: Option<f64>,
    /// The profile's budget.
    pub budget_usd: Option<f64>,
    /// Every step that runs or starts, in plan order.
    pub steps: Vec<StepCost>,
    /// Sum of the known durations, in seconds.
    pub total_seconds: f64,
    /// Sum of the known costs.
    pub total_usd: Option<f64>,
    /// Steps with neither a record nor an estimate.
    pub unknown: Vec<String>,
}

/// Estimates the steps the plan runs or starts.
pub fn estimate(pipeline: &Pipeline, plans: &[StepPlan], lock: &LockFile) -> Estimate {
    let hourly = pipeline.budget.hourly_usd;
    let steps: Vec<StepCost> = plans
        .iter()
        .filter(|p| p.action.may_run() || p.action == Action::Start)
        .map(|p| {
            let recorded = lock.steps.get(p.id.as_str()).map(|r| r.duration_s);
            let declared = pipeline.steps[&p.id].estimate.map(|d| d.as_secs_f64());
            let (basis, seconds) = match (recorded, declared) {
                (Some(s), _) => (Basis::Recorded, Some(s)),
                (None, Some(s)) => (Basis::Declared, Some(s)),
                (None, None) => (Basis::Unknown, None),
            };
            StepCost {
                id: p.id.to_string(),
                basis,
                seconds,
                usd: seconds.zip(hourly).map(|(s, h)| s / 3600.0 * h),
            }
        })
        .collect();
    let total_seconds = steps.iter().filter_map(|s| s.seconds).sum();
    Estimate {
        hourly_usd: hourly,
        budget_usd: pipeline.budget.budget_usd,
        total_usd: hourly.map(|h| total_seconds / 3600.0 * h),
        unknown: steps
            .iter()
            .filter(|s| s.basis == Basis::Unknown)
            .map(|s| s.id.clone())
            .collect(),
        total_seconds,
        steps,
    }
}

impl Estimate {
    /// `Err` says why the run may not start: over budget, or not checkable against it.
    pub fn check_budget(&self) -> Result<(), String> {
        let Some(budget) = self.budget_usd else {
            return Ok(());
        };
        if !self.unknown.is_empty() {
            return Err(format!(
                "cannot hold this run to `budget_usd` (${budget:.2}): {} ha{} no recorded duration and no `estimate`\nhint: declare `estimate = \"20m\"` for {} in the manifest or the profile (`[steps.<id>]`)",
                crate::manifest::diagnostics::list(&self.unknown),
                if self.unknown.len() == 1 { "s" } else { "ve" },
                if self.unknown.len() == 1 {
                    "it"
                } else {
                    "them"
                },
            ));
        }
        let total = self.total_usd.unwrap_or_default();
        if total > budget {
            return Err(format!(
                "this run is estimated at ${total:.2} ({}), over the profile's `budget_usd` (${budget:.2})\nhint: `forge plan` shows the estimate per step; run fewer steps (`--only`), or raise `budget_usd` in the profile",
                format_hours(self.total_seconds)
            ));
        }
        Ok(())
    }

    /// The text `forge plan` prints: empty unless the profile has a price or a step that runs
    /// declares an `estimate` (so plans of pipelines that do not care stay as they were).
    pub fn table(&self) -> String {
        let declared = self.steps.iter().any(|s| s.basis == Basis::Declared);
        if self.steps.is_empty() || (self.hourly_usd.is_none() && !declared) {
            return String::new();
        }
        let mut out = match self.hourly_usd {
            Some(h) => format!("estimate at ${h:.3}/h:\n"),
            None => "estimate (no `hourly_usd` in the profile: time only):\n".to_string(),
        };
        let width = self
            .steps
            .iter()
            .map(|s| s.id.len())
            .max()
            .unwrap_or(4)
            .max(5);
        let _ = writeln!(
            out,
            "  {:width$}  {:>9}  {:>8}  FROM",
            "STEP", "TIME", "COST"
        );
        for s in &self.steps {
            let from = match s.basis {
                Basis::Recorded => "last recorded run",
                Basis::Declared => "declared `estimate`",
                Basis::Unknown => "unknown: no record, no `estimate`",
            };
            let time = s.seconds.map_or("?".into(), format_hours);
            let _ = writeln!(
                out,
                "  {:width$}  {time:>9}  {:>8}  {from}",
                s.id,
                money(s.usd)
            );
        }
        let budget = self
            .budget_usd
            .map(|b| format!("budget ${b:.2}"))
            .unwrap_or_else(|| "no budget".into());
        let unknown = if self.unknown.is_empty() {
            String::new()
        } else {
            format!(", {} unknown", self.unknown.len())
        };
        let _ = writeln!(
            out,
            "  {:width$}  {:>9}  {:>8}  {budget}{unknown}",
            "total",
            format_hours(self.total_seconds),
            money(self.total_usd)
        );
        out
    }
}

fn money(usd: Option<f64>) -> String {
    usd.map_or("-".into(), |u| format!("${u:.2}"))
}

/// `1h 05m`, `12m`, `40s`.
fn format_hours(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match (s / 3600, (s % 3600) / 60) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m"),
        (h, m) => format!("{h}h {m:02}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn estimate_of(
        steps: &[(&str, Basis, Option<f64>)],
        hourly: f64,
        budget: Option<f64>,
    ) -> Estimate {
        let steps: Vec<StepCost> = steps
            .iter()
            .map(|(id, basis, seconds)| StepCost {
                id: id.to_string(),
                basis: *basis,
                seconds: *seconds,
                usd: seconds.map(|s| s / 3600.0 * hourly),
            })
            .collect();
        let total_seconds = steps.iter().filter_map(|s| s.seconds).sum();
        Estimate {
            hourly_usd: Some(hourly),
            budget_usd: budget,
            total_usd: Some(total_seconds / 3600.0 * hourly),
            unknown: steps
                .iter()
                .filter(|s| s.basis == Basis::Unknown)
                .map(|s| s.id.clone())
                .collect(),
            total_seconds,
            steps,
        }
    }

    #[test]
    fn the_budget_refuses_an_estimate_over_it_or_one_it_cannot_know() {
        let run = [
            ("quantize", Basis::Declared, Some(1800.0)),
            ("bench", Basis::Recorded, Some(5400.0)),
        ];
        let within = estimate_of(&run, 0.27, Some(1.0));
        assert!((within.total_usd.unwrap() - 0.54).abs() < 1e-9);
        assert!(within.check_budget().is_ok());
        let over = estimate_of(&run, 0.27, Some(0.5))
            .check_budget()
            .unwrap_err();
        assert!(
            over.contains("estimated at $0.54 (2h 00m), over the profile's `budget_usd` ($0.50)"),
            "{over}"
        );
        let unknown = estimate_of(&[("model", Basis::Unknown, None)], 0.27, Some(5.0));
        let why = unknown.check_budget().unwrap_err();
        assert!(
            why.contains("`model` has no recorded duration and no `estimate`"),
            "{why}"
        );
        assert!(estimate_of(&run, 0.27, None).check_budget().is_ok());
    }

    #[test]
    fn the_table_prices_each_step_and_the_total() {
        let table = estimate_of(
            &[
                ("quantize", Basis::Declared, Some(1800.0)),
                ("eval-awq", Basis::Unknown, None),
            ],
            0.27,
            Some(5.0),
        )
        .table();
        assert!(table.contains("estimate at $0.270/h"), "{table}");
        assert!(
            table.contains("quantize        30m     $0.14  declared `estimate`"),
            "{table}"
        );
        assert!(
            table.contains("eval-awq          ?         -  unknown"),
            "{table}"
        );
        assert!(
            table.contains("total           30m     $0.14  budget $5.00, 1 unknown"),
            "{table}"
        );
        assert_eq!(format_hours(3900.0), "1h 05m");
        assert_eq!(format_hours(40.0), "40s");
    }
}
