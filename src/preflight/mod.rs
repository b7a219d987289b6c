//! Preflight: before a run does any work, check that the machine offers what the profile's
//! `[preflight]` table expects (GPU, driver CUDA, memory, disk, Python, registry, hub access) and
//! print one table: check, found, expected, verdict, what to do.
//!
//! Preflight is not a step: it has no key and no outputs, so machine facts never reach a step's
//! key. `forge run` calls it only when the plan would run or start something other than
//! re-rendering results (see [`needed`]); `forge preflight` calls it on demand.

mod checks;
mod facts;
pub mod gpu;
pub mod hub;
#[cfg(test)]
mod tests;

use std::fmt::Write as _;

use serde::Serialize;

pub use checks::{CHECKS, Check, Context};
pub use facts::Facts;

use crate::manifest::preflight::Preflight;
use crate::manifest::{Kind, Pipeline};
use crate::plan::StepPlan;

/// A check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Meets the expectation.
    Pass,
    /// Probably fine, but look.
    Warn,
    /// The run would fail or mislead: it does not start.
    Fail,
    /// A fact shown for the record; nothing was expected.
    Info,
}

impl Verdict {
    fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "ok",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
            Verdict::Info => "-",
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// What is checked.
    pub check: String,
    /// What the machine has.
    pub found: String,
    /// What the profile expects (`-`: nothing).
    pub expected: String,
    /// The outcome.
    pub verdict: Verdict,
    /// What to do about it (for `info` rows: what the fact means).
    pub todo: String,
}

/// The whole table.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The profile checked.
    pub profile: String,
    /// True when no row failed.
    pub passed: bool,
    /// The rows, in [`CHECKS`] order.
    pub checks: Vec<Row>,
}

/// Kinds that only re-render results from other steps' files: running them needs no preflight.
fn only_renders(kind: Kind) -> bool {
    match kind {
        Kind::Retention | Kind::Cost | Kind::Charts | Kind::Report => true,
        Kind::Command | Kind::Service | Kind::Bench | Kind::Eval => false,
    }
}

/// True when the plan runs or starts a step that does more than re-render results.
pub fn needed(pipeline: &Pipeline, plans: &[StepPlan]) -> bool {
    plans.iter().any(|p| {
        let active = p.action.may_run() || p.action == crate::plan::Action::Start;
        active && !only_renders(pipeline.steps[&p.id].kind())
    })
}

/// Evaluates every check on gathered facts (pure: tests call it with their own facts).
pub fn evaluate(cx: &Context) -> Vec<Row> {
    CHECKS.iter().flat_map(|c| (c.rows)(cx)).collect()
}

/// Gathers the facts and checks them against the pipeline's expectations (an empty
/// expectation when the profile declares none: the table then only shows facts).
pub fn check(pipeline: &Pipeline) -> Result<Report, String> {
    let spec = pipeline.preflight.clone().unwrap_or_else(|| Preflight {
        python: "python3".into(),
        ..Preflight::default()
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let facts = runtime.block_on(facts::gather(&spec, &pipeline.workspace));
    let rows = evaluate(&Context {
        spec: &spec,
        facts: &facts,
        params: &pipeline.params,
    });
    Ok(Report {
        profile: pipeline.profile.clone(),
        passed: rows.iter().all(|r| r.verdict != Verdict::Fail),
        checks: rows,
    })
}

impl Report {
    /// The table as text, columns aligned; long cells are not cut.
    pub fn table(&self) -> String {
        let width = |get: fn(&Row) -> &str, title: &str| {
            self.checks
                .iter()
                .map(|r| get(r).chars().count())
                .max()
                .unwrap_or(0)
                .max(title.len())
        };
        let (c, f, e) = (
            width(|r| &r.check, "CHECK"),
            width(|r| &r.found, "FOUND"),
            width(|r| &r.expected, "EXPECTED"),
        );
        let mut out = format!("preflight for profile `{}`\n", self.profile);
        let _ = writeln!(
            out,
            "  {:c$}  {:f$}  {:e$}  {:7}  WHAT TO DO",
            "CHECK", "FOUND", "EXPECTED", "VERDICT"
        );
        for r in &self.checks {
            let line = format!(
                "  {:c$}  {:f$}  {:e$}  {:7}  {}",
                r.check,
                r.found,
                r.expected,
                r.verdict.label(),
                r.todo
            );
            let _ = writeln!(out, "{}", line.trim_end());
        }
        let failed = self
            .checks
            .iter()
            .filter(|r| r.verdict == Verdict::Fail)
            .count();
        let warned = self
            .checks
            .iter()
            .filter(|r| r.verdict == Verdict::Warn)
            .count();
        let _ = writeln!(
            out,
            "{} checks: {failed} failed, {warned} warnings",
            self.checks.len()
        );
        out
    }
}
