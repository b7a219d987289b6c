//! What a run would do and why: for every step, fresh / stale / will-skip / pending, with the
//! reasons at field level. A step runs only if it is stale *and* it was asked for, or a step that
//! runs needs its outputs. `forge plan`, `forge run --dry-run` and the executor share this.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;
use serde_json::json;

use crate::cache::{InputDigest, KeyParts, LockFile, StatCache, travel};
use crate::manifest::diagnostics::did_you_mean;
use crate::manifest::{Body, Kind, Pipeline, Step, StepId};

/// Which steps a run asks for and which it forces.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// `--only`: just these steps (their missing upstream outputs are still produced).
    pub only: Vec<String>,
    /// `--from`: this step and everything downstream of it.
    pub from: Option<String>,
    /// `--force`: rerun these even if fresh.
    pub force: Vec<String>,
    /// `--force-all`.
    pub force_all: bool,
}

/// What the executor will do with a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Stale and needed: it runs.
    Run,
    /// Decided when its upstream finishes: runs only if the upstream outputs changed.
    Pending,
    /// Fresh: nothing to do.
    Fresh,
    /// Stale or absent, but nothing asks for it.
    WillSkip,
    /// A service some running step needs: it starts.
    Start,
    /// A service nothing running needs: it stays down.
    Idle,
}

impl Action {
    /// The word `forge plan` prints.
    pub fn label(self) -> &'static str {
        match self {
            Action::Run => "stale",
            Action::Pending => "pending",
            Action::Fresh => "fresh",
            Action::WillSkip => "will-skip",
            Action::Start => "will-start",
            Action::Idle => "idle",
        }
    }

    /// True when the step may execute.
    pub fn may_run(self) -> bool {
        matches!(self, Action::Run | Action::Pending)
    }
}

/// The plan for one step.
#[derive(Debug, Clone, Serialize)]
pub struct StepPlan {
    /// The step id.
    pub id: StepId,
    /// Its kind.
    pub kind: Kind,
    /// What will happen.
    pub action: Action,
    /// Why, one line per reason.
    pub reasons: Vec<String>,
}

/// A step's state against its record.
#[derive(Debug, Clone)]
pub enum State {
    /// Key matches and outputs are as recorded.
    Fresh,
    /// Key matches but some outputs are missing.
    Absent(Vec<String>),
    /// Must rerun, with reasons.
    Stale(Vec<String>),
}

/// Errors in a selection (unknown step names): usage errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SelectionError(pub String);

/// Expands names (instance or declared ids) to instance ids.
pub fn expand_names(
    pipeline: &Pipeline,
    names: &[String],
    flag: &str,
) -> Result<BTreeSet<StepId>, SelectionError> {
    let mut out = BTreeSet::new();
    for name in names
        .iter()
        .flat_map(|n| n.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        let found: Vec<&StepId> = pipeline
            .steps
            .values()
            .filter(|s| s.id == name || s.base == name)
            .map(|s| &s.id)
            .collect();
        if found.is_empty() {
            let ids: BTreeSet<&str> = pipeline
                .steps
                .values()
                .flat_map(|s| [s.id.as_str(), s.base.as_str()])
                .collect();
            let hint = did_you_mean(name, ids.iter().copied())
                .unwrap_or_else(|| format!("steps: {}", crate::manifest::diagnostics::list(&ids)));
            return Err(SelectionError(format!(
                "`{flag} {name}`: no step `{name}` in `{}`\nhint: {hint}",
                pipeline.manifest_path.display()
            )));
        }
        out.extend(found.into_iter().cloned());
    }
    Ok(out)
}

/// Computes the key parts of `step` from the lock file's upstream records.
pub fn key_parts(pipeline: &Pipeline, step: &Step, lock: &LockFile, stat: &StatCache) -> KeyParts {
    let schema = step.kind().schema_version();
    // The shape every recorded key has: a command's `with` is an empty table and a built-in
    // kind's `run` is null, as when every kind's options sat on one struct.
    let config = match &step.body {
        Body::Service(service) => {
            json!({"run": service.run, "url": service.url, "model": service.model})
        }
        Body::Command(command) => json!({"run": command.run, "with": {}, "outputs": step.outputs}),
        builtin @ (Body::Bench(_)
        | Body::Eval(_)
        | Body::Retention(_)
        | Body::Cost(_)
        | Body::Charts(_)
        | Body::Report(_)) => {
            json!({"run": null, "with": builtin.with(), "outputs": step.outputs})
        }
    };
    let config = travel::relative_json(config, &pipeline.workspace);
    let mut upstream = BTreeMap::new();
    let mut services = BTreeMap::new();
    for need in &step.needs {
        let Some(dep) = pipeline.steps.get(need) else {
            continue;
        };
        if dep.is_service() {
            services.insert(need.to_string(), key_parts(pipeline, dep, lock, stat));
        } else {
            let digests = lock
                .steps
                .get(need.as_str())
                .map(|r| r.output_digests())
                .unwrap_or_default();
            upstream.insert(need.to_string(), digests);
        }
    }
    KeyParts {
        kind: step.kind().name().to_string(),
        schema,
        params: step.params.clone(),
        config,
        inputs: input_digests(&pipeline.workspace, &step.inputs, stat),
        env: travel::env(step, &pipeline.workspace),
        platform: travel::platform(step),
        upstream,
        services,
        reads: read_digests(pipeline, step, stat),
    }
}

/// Digests of the files a built-in kind's `with` makes it read, except those inside the outputs
/// of the steps it needs (their records already stand for them).
fn read_digests(
    pipeline: &Pipeline,
    step: &Step,
    stat: &StatCache,
) -> BTreeMap<String, InputDigest> {
    let reads = step.body.reads();
    if reads.is_empty() {
        return BTreeMap::new();
    }
    let upstream: Vec<&Path> = material_upstream(pipeline, &step.id)
        .iter()
        .filter_map(|id| pipeline.steps.get(id))
        .flat_map(|s| s.outputs.iter().map(Path::new))
        .collect();
    let own: Vec<String> = reads
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let normal = crate::manifest::paths::lexical(p, &pipeline.workspace);
            !normal.is_some_and(|n| upstream.iter().any(|out| n.starts_with(out)))
        })
        .collect();
    input_digests(&pipeline.workspace, &own, stat)
}

fn input_digests(
    workspace: &Path,
    inputs: &[String],
    stat: &StatCache,
) -> BTreeMap<String, InputDigest> {
    let mut out = BTreeMap::new();
    for input in inputs {
        if input.contains(['*', '?', '[']) {
            let pattern = workspace.join(input).display().to_string();
            let mut matched: Vec<_> = glob::glob(&pattern)
                .map(|paths| paths.filter_map(Result::ok).collect())
                .unwrap_or_default();
            matched.sort();
            if matched.is_empty() {
                out.insert(input.clone(), InputDigest::Missing);
            }
            for path in matched {
                let relative = path
                    .strip_prefix(workspace)
                    .unwrap_or(&path)
                    .display()
                    .to_string();
                out.insert(relative, InputDigest::of(stat, &path));
            }
        } else {
            out.insert(
                travel::relative(input, workspace),
                InputDigest::of(stat, &workspace.join(input)),
            );
        }
    }
    out
}

/// Compares a step with its record.
pub fn state(
    pipeline: &Pipeline,
    step: &Step,
    parts: &KeyParts,
    lock: &LockFile,
    stat: &StatCache,
    forced: bool,
) -> State {
    let Some(record) = lock.steps.get(step.id.as_str()) else {
        return State::Stale(vec!["never run".into()]);
    };
    let mut reasons = Vec::new();
    if forced {
        reasons.push("forced".into());
    }
    if record.key != parts.digest() {
        let diff = parts.diff(&record.parts);
        reasons.extend(if diff.is_empty() {
            vec!["key format changed (recorded by another Forge version)".to_string()]
        } else {
            diff
        });
    }
    let mut missing = Vec::new();
    for output in &step.outputs {
        let recorded = record.outputs.get(output);
        match stat.digest(&pipeline.workspace.join(output)) {
            Ok(None) => missing.push(format!("output `{output}` is missing")),
            Ok(Some(d)) if recorded.is_some_and(|r| r.digest == d.digest) => {}
            Ok(Some(_)) => reasons.push(format!(
                "output `{output}` was modified since it was recorded"
            )),
            Err(err) => reasons.push(format!("output `{output}` is unreadable: {err}")),
        }
    }
    match (reasons.is_empty(), missing.is_empty()) {
        (true, true) => State::Fresh,
        (true, false) => State::Absent(missing),
        (false, _) => {
            reasons.extend(missing);
            State::Stale(reasons)
        }
    }
}

/// Non-service steps whose outputs `id` uses: its own needs, and those of the services it needs.
pub fn material_upstream(pipeline: &Pipeline, id: &str) -> Vec<StepId> {
    let mut out = Vec::new();
    for need in &pipeline.steps[id].needs {
        if pipeline.steps[need].is_service() {
            out.extend(material_upstream(pipeline, need));
        } else {
            out.push(need.clone());
        }
    }
    out
}

/// Plans every step.
pub fn plan(
    pipeline: &Pipeline,
    lock: &LockFile,
    stat: &StatCache,
    selection: &Selection,
) -> Result<Vec<StepPlan>, SelectionError> {
    let order = crate::graph::order(pipeline);
    let forced = if selection.force_all {
        pipeline.steps.keys().cloned().collect()
    } else {
        expand_names(pipeline, &selection.force, "--force")?
    };
    let only = expand_names(pipeline, &selection.only, "--only")?;
    let targets: BTreeSet<StepId> = if !only.is_empty() {
        only.clone()
    } else if let Some(from) = &selection.from {
        crate::graph::downstream(
            pipeline,
            &expand_names(pipeline, std::slice::from_ref(from), "--from")?,
        )
    } else {
        pipeline.steps.keys().cloned().collect()
    };
    let states: BTreeMap<&str, State> = order
        .iter()
        .filter(|id| !pipeline.steps[*id].is_service())
        .map(|id| {
            let step = &pipeline.steps[id];
            let parts = key_parts(pipeline, step, lock, stat);
            (
                id.as_str(),
                state(pipeline, step, &parts, lock, stat, forced.contains(id)),
            )
        })
        .collect();
    let mut actions: BTreeMap<&str, Action> = BTreeMap::new();
    let mut why: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let needed: BTreeSet<&str> = pipeline
        .steps
        .values()
        .flat_map(|s| s.needs.iter().map(StepId::as_str))
        .collect();
    for (id, st) in &states {
        let final_step = !needed.contains(id);
        let action = match st {
            State::Stale(r) if targets.contains(*id) => {
                why.insert(id, r.clone());
                Action::Run
            }
            State::Absent(r) if targets.contains(*id) && (final_step || only.contains(*id)) => {
                why.insert(id, r.clone());
                Action::Run
            }
            State::Fresh => Action::Fresh,
            State::Stale(r) | State::Absent(r) => {
                why.insert(id, r.clone());
                Action::WillSkip
            }
        };
        actions.insert(id, action);
    }
    let narrowed = !only.is_empty() || selection.from.is_some();
    propagate(
        pipeline,
        &order,
        &states,
        &targets,
        narrowed,
        &mut actions,
        &mut why,
    );
    Ok(order
        .iter()
        .map(|id| step_plan(pipeline, id, &actions, &mut why))
        .collect())
}

/// Materializes upstream outputs that running steps need, and marks downstream steps pending.
fn propagate<'p>(
    pipeline: &'p Pipeline,
    order: &'p [StepId],
    states: &BTreeMap<&str, State>,
    targets: &BTreeSet<StepId>,
    narrowed: bool,
    actions: &mut BTreeMap<&'p str, Action>,
    why: &mut BTreeMap<&'p str, Vec<String>>,
) {
    loop {
        let mut changed = false;
        for id in order.iter().rev() {
            if !actions.get(id.as_str()).is_some_and(|a| a.may_run()) {
                continue;
            }
            for up in material_upstream(pipeline, id) {
                let up = pipeline
                    .steps
                    .get_key_value(&up)
                    .map_or("", |(id, _)| id.as_str());
                let materialize = match &states[up] {
                    State::Absent(_) => true,
                    State::Stale(_) => !narrowed || targets.contains(up),
                    State::Fresh => false,
                };
                if materialize && actions[up] == Action::WillSkip {
                    actions.insert(up, Action::Run);
                    why.entry(up).or_default().push(format!("needed by `{id}`"));
                    changed = true;
                }
            }
        }
        for id in order {
            if pipeline.steps[id].is_service()
                || !targets.contains(id)
                || actions[id.as_str()] != Action::Fresh
            {
                continue;
            }
            let running: Vec<StepId> = material_upstream(pipeline, id)
                .into_iter()
                .filter(|u| actions[u.as_str()].may_run())
                .collect();
            if !running.is_empty() {
                actions.insert(id, Action::Pending);
                why.insert(
                    id,
                    vec![format!(
                        "reruns if the outputs of {} change",
                        crate::manifest::diagnostics::list(&running)
                    )],
                );
                changed = true;
            }
        }
        if !changed {
            return;
        }
    }
}

fn step_plan(
    pipeline: &Pipeline,
    id: &str,
    actions: &BTreeMap<&str, Action>,
    why: &mut BTreeMap<&str, Vec<String>>,
) -> StepPlan {
    let step = &pipeline.steps[id];
    let (action, reasons) = if step.is_service() {
        let users: Vec<&str> = service_users(pipeline, id)
            .into_iter()
            .filter(|c| actions.get(*c).is_some_and(|a| a.may_run()))
            .collect();
        if users.is_empty() {
            (Action::Idle, vec!["no step that runs needs it".to_string()])
        } else {
            (
                Action::Start,
                vec![format!(
                    "needed by {}",
                    crate::manifest::diagnostics::list(&users)
                )],
            )
        }
    } else {
        let action = actions[id];
        let mut reasons = why.remove(id).unwrap_or_default();
        if action == Action::WillSkip {
            reasons.push("not needed: nothing that runs uses its outputs".into());
        }
        if action == Action::Fresh {
            reasons.push("key and outputs match the record".into());
        }
        (action, reasons)
    };
    StepPlan {
        id: StepId::from(id),
        kind: step.kind(),
        action,
        reasons,
    }
}

/// Non-service steps that need the service `id`, directly or through other services.
pub fn service_users<'p>(pipeline: &'p Pipeline, id: &str) -> Vec<&'p str> {
    let mut out = Vec::new();
    for consumer in crate::graph::consumers(pipeline, id) {
        if pipeline.steps[consumer].is_service() {
            out.extend(service_users(pipeline, consumer));
        } else {
            out.push(consumer);
        }
    }
    out
}
