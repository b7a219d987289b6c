//! What a step does: its [`Kind`] and, in [`Body`], the options that kind takes and no others.
//! Resolution builds the body once, after rendering and checking; code after it matches on the
//! variant instead of comparing kind names or reading options another kind would leave empty.

use std::fmt;
use std::time::Duration;

use serde_json::Value as Json;

use super::model::Ready;
use crate::steps::{bench, charts, cost, eval, report};

/// A step kind: `command`, `service` or a built-in kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A one-shot command line.
    Command,
    /// A long-running process other steps talk to.
    Service,
    /// The benchmark sweep against a served model.
    Bench,
    /// lm-evaluation-harness against a served model.
    Eval,
    /// Quality retention of one model's scores against a baseline's.
    Retention,
    /// $/1M tokens against commercial APIs.
    Cost,
    /// The canonical charts.
    Charts,
    /// The report.
    Report,
}

impl Kind {
    /// Every kind, in the order `forge` lists them.
    pub const ALL: [Kind; 8] = [
        Kind::Command,
        Kind::Service,
        Kind::Bench,
        Kind::Eval,
        Kind::Retention,
        Kind::Cost,
        Kind::Charts,
        Kind::Report,
    ];

    /// Where a kind sits in [`Kind::ALL`]. Listing every variant, it stops the tests from
    /// compiling when a kind is added until it is given a place in `ALL` too.
    #[cfg(test)]
    fn position(self) -> usize {
        match self {
            Kind::Command => 0,
            Kind::Service => 1,
            Kind::Bench => 2,
            Kind::Eval => 3,
            Kind::Retention => 4,
            Kind::Cost => 5,
            Kind::Charts => 6,
            Kind::Report => 7,
        }
    }

    /// The name manifests use (`kind = "..."`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Command => "command",
            Kind::Service => "service",
            Kind::Bench => "bench",
            Kind::Eval => "eval",
            Kind::Retention => "retention",
            Kind::Cost => "cost",
            Kind::Charts => "charts",
            Kind::Report => "report",
        }
    }

    /// The kind a manifest names, if there is one by that name.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Bumped when the kind changes what it writes; part of every key of this kind.
    pub fn schema_version(self) -> u32 {
        match self {
            Kind::Charts | Kind::Report => 2,
            Kind::Command
            | Kind::Service
            | Kind::Bench
            | Kind::Eval
            | Kind::Retention
            | Kind::Cost => 1,
        }
    }

    /// True for kinds that take their settings in `with`.
    pub fn is_builtin(self) -> bool {
        !matches!(self, Kind::Command | Kind::Service)
    }

    /// The built-in body of this kind from its rendered `with` table: `Err` says what is wrong
    /// (serde's words, naming the field, or the kind's own plan check). `None` for `command` and
    /// `service`, whose bodies are not built from `with`.
    pub fn builtin_body(self, with: Json) -> Option<Result<Body, String>> {
        Some(match self {
            Kind::Command | Kind::Service => return None,
            Kind::Bench => Builtin::parse(with).map(Body::Bench),
            Kind::Eval => Builtin::parse(with).map(Body::Eval),
            Kind::Retention => Builtin::parse(with).map(Body::Retention),
            Kind::Cost => Builtin::parse(with).map(Body::Cost),
            Kind::Charts => Builtin::parse(with).map(Body::Charts),
            Kind::Report => Builtin::parse(with).map(Body::Report),
        })
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl serde::Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// A step's kind with its options.
#[derive(Debug, Clone)]
pub enum Body {
    /// `command`.
    Command(Command),
    /// `service`.
    Service(Service),
    /// `bench`.
    Bench(Builtin<bench::BenchSettings>),
    /// `eval`.
    Eval(Builtin<eval::EvalSettings>),
    /// `retention`.
    Retention(Builtin<eval::RetentionSettings>),
    /// `cost`.
    Cost(Builtin<cost::CostSettings>),
    /// `charts`.
    Charts(Builtin<charts::ChartsSettings>),
    /// `report`.
    Report(Builtin<report::ReportSettings>),
}

impl Body {
    /// The kind.
    pub fn kind(&self) -> Kind {
        match self {
            Body::Command(_) => Kind::Command,
            Body::Service(_) => Kind::Service,
            Body::Bench(_) => Kind::Bench,
            Body::Eval(_) => Kind::Eval,
            Body::Retention(_) => Kind::Retention,
            Body::Cost(_) => Kind::Cost,
            Body::Charts(_) => Kind::Charts,
            Body::Report(_) => Kind::Report,
        }
    }

    /// A built-in kind's `with` table as rendered (what its key records); `None` for `command`
    /// and `service`.
    pub fn with(&self) -> Option<&Json> {
        match self {
            Body::Command(_) | Body::Service(_) => None,
            Body::Bench(b) => Some(&b.with),
            Body::Eval(b) => Some(&b.with),
            Body::Retention(b) => Some(&b.with),
            Body::Cost(b) => Some(&b.with),
            Body::Charts(b) => Some(&b.with),
            Body::Report(b) => Some(&b.with),
        }
    }

    /// Files and directories a built-in kind's settings make it read (task directories, pricing
    /// files, templates, tokenizers), workspace-relative or absolute. Their contents enter the
    /// step's key, so editing one reruns the step. Empty for `command` and `service`, whose
    /// inputs are declared.
    pub fn reads(&self) -> Vec<std::path::PathBuf> {
        match self {
            Body::Command(_) | Body::Service(_) => Vec::new(),
            Body::Bench(b) => b.settings.reads(),
            Body::Eval(b) => b.settings.reads(),
            Body::Retention(b) => b.settings.reads(),
            Body::Cost(b) => b.settings.reads(),
            Body::Charts(b) => b.settings.reads(),
            Body::Report(b) => b.settings.reads(),
        }
    }
}

/// A `command` step's options.
#[derive(Debug, Clone)]
pub struct Command {
    /// The command line, rendered with the final output paths.
    pub run: String,
    /// The `run` template source (rendered again against the staging paths when it runs).
    pub run_source: String,
    /// Longest it may run.
    pub timeout: Option<Duration>,
}

/// A `service` step's options.
#[derive(Debug, Clone)]
pub struct Service {
    /// The command line that starts it.
    pub run: String,
    /// Its base URL.
    pub url: Option<String>,
    /// Its readiness probe.
    pub ready: Ready,
    /// The model it serves (a workspace directory or a hub id).
    pub model: Option<String>,
}

/// A built-in kind's options: its `with` table, rendered, and the settings parsed from it.
#[derive(Debug, Clone)]
pub struct Builtin<S> {
    /// The rendered table (what the key records, so it reads as the manifest wrote it).
    pub with: Json,
    /// The typed settings.
    pub settings: S,
}

impl<S: serde::de::DeserializeOwned + crate::steps::PlanCheck> Builtin<S> {
    /// Parses and checks the settings: serde's error names the field; the plan check catches
    /// values that are wrong whatever the inputs hold (a negative price, an empty SLO).
    fn parse(with: Json) -> Result<Self, String> {
        let settings: S = serde_json::from_value(with.clone()).map_err(|err| err.to_string())?;
        settings.plan_check()?;
        Ok(Self { with, settings })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_from_its_name() {
        for (index, kind) in Kind::ALL.into_iter().enumerate() {
            assert_eq!(kind.position(), index, "{kind} sits at its position in ALL");
            assert_eq!(Kind::from_name(kind.name()), Some(kind));
            assert_eq!(kind.to_string(), kind.name());
        }
        assert_eq!(Kind::from_name("Command"), None);
        assert_eq!(Kind::from_name("benchmark"), None);
    }

    #[test]
    fn a_builtin_body_names_the_bad_field_and_keeps_the_table() {
        let error = Kind::Cost
            .builtin_body(serde_json::json!({"nonsense": 1}))
            .expect("cost is built in")
            .expect_err("no such setting");
        assert!(error.contains("nonsense"), "{error}");
        assert!(Kind::Command.builtin_body(Json::Null).is_none());
        assert!(Kind::Service.builtin_body(Json::Null).is_none());
    }
}
