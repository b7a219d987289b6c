//! The profile chain's `hourly_usd` and `budget_usd` -> the validated [`Budget`]: what an hour of
//! the profile's machine costs, and the most a run may be estimated to cost.

use serde::Serialize;
use serde_json::Value as Json;

use super::diagnostics::{ManifestDiagnostic, ManifestErrors, SourceFile};
use super::profiles::Overlay;
use super::templating::Renderer;

/// Price and limit for `forge plan`'s estimate and `forge run`'s budget check.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Budget {
    /// Dollars per hour of the machine (the pod bills wall time).
    pub hourly_usd: Option<f64>,
    /// The most a run may be estimated to cost.
    pub budget_usd: Option<f64>,
}

/// Takes each key from the nearest profile that sets it ([`Overlay::nearest`]).
pub(super) fn resolve(
    overlay: Overlay,
    renderer: &Renderer,
    context: &Json,
    errors: &mut ManifestErrors,
) -> Budget {
    let mut budget = Budget::default();
    let hourly = overlay.nearest(|p| p.hourly_usd.as_ref());
    if let Some((value, file)) = hourly {
        let number = match value.get_ref() {
            toml::Value::Integer(i) => Ok(*i as f64),
            toml::Value::Float(f) => Ok(*f),
            toml::Value::String(s) => match renderer.render_value(s, context) {
                Ok(v) => v
                    .as_f64()
                    .ok_or_else(|| format!("`{s}` renders to `{v}`, not a number")),
                Err(e) => Err(e.message),
            },
            other => Err(format!("`{other}` is not a number")),
        };
        match number {
            Ok(n) if n.is_finite() && n >= 0.0 => budget.hourly_usd = Some(n),
            Ok(n) => errors.push(negative(file, value.span(), n)),
            Err(message) => errors.push(
                ManifestDiagnostic::at(file, value.span(), message)
                    .label("hourly_usd")
                    .help("write dollars per hour: `hourly_usd = 0.27` or `hourly_usd = \"{{ params.gpu_hourly_usd }}\"`"),
            ),
        }
    }
    let limit = overlay.nearest(|p| p.budget_usd.as_ref());
    if let Some((value, file)) = limit {
        let n = *value.get_ref();
        if !(n.is_finite() && n >= 0.0) {
            errors.push(negative(file, value.span(), n));
        } else if budget.hourly_usd.is_none() {
            errors.push(
                ManifestDiagnostic::at(file, value.span(), "`budget_usd` needs `hourly_usd`")
                    .label("a budget without a price")
                    .help("add `hourly_usd = ...`: the machine's price per hour, which estimates are priced at"),
            );
        } else {
            budget.budget_usd = Some(n);
        }
    }
    budget
}

fn negative(file: &SourceFile, span: std::ops::Range<usize>, n: f64) -> ManifestDiagnostic {
    ManifestDiagnostic::at(file, span, format!("`{n}` is not an amount of dollars"))
        .help("write a number of dollars, 0 or more")
}
