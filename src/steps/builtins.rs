//! The built-in kinds as [`StepKind`]s: each deserializes its `with` settings and calls its
//! module's `run_step`.

use serde_json::Value as Json;

use super::{Outcome, PlanCheck, StepError, StepFuture, StepIo, StepKind, check_settings};
use crate::manifest::Step;

macro_rules! builtin {
    ($ty:ident, $name:literal, $schema:literal, $settings:ty, $run:path) => {
        #[doc = concat!("The `", $name, "` kind.")]
        pub struct $ty;

        impl StepKind for $ty {
            fn name(&self) -> &'static str {
                $name
            }

            fn schema_version(&self) -> u32 {
                $schema
            }

            fn check(&self, with: &Json) -> Result<(), String> {
                check_settings::<$settings>(with).and_then(|s| PlanCheck::plan_check(&s))
            }

            fn reads(&self, with: &Json) -> Vec<std::path::PathBuf> {
                check_settings::<$settings>(with)
                    .map(|s| s.reads())
                    .unwrap_or_default()
            }

            fn run<'a>(&'a self, step: &'a Step, io: StepIo) -> StepFuture<'a> {
                Box::pin(async move {
                    let settings: $settings = check_settings(&step.with).map_err(StepError::new)?;
                    $run(&settings, &io)
                        .await
                        .map(|_| Outcome::default())
                        .map_err(|err| StepError::new(err.to_string()))
                })
            }
        }
    };
}

builtin!(
    Eval,
    "eval",
    1,
    super::eval::EvalSettings,
    super::eval::run_step
);
builtin!(
    Retention,
    "retention",
    1,
    super::eval::RetentionSettings,
    super::eval::run_retention
);
builtin!(
    Cost,
    "cost",
    1,
    super::cost::CostSettings,
    super::cost::run_step
);
builtin!(
    Charts,
    "charts",
    2,
    super::charts::ChartsSettings,
    super::charts::run_step
);
builtin!(
    Report,
    "report",
    2,
    super::report::ReportSettings,
    super::report::run_step
);
builtin!(
    Bench,
    "bench",
    1,
    super::bench::BenchSettings,
    super::bench::run_step
);
