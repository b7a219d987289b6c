//! Exclusive resources that can deadlock, rejected when the pipeline loads. A step takes its
//! resources in this order: each service it needs (a service first starts the services it needs,
//! then locks its own resources, and holds them until its last planned user finishes), then its
//! own resources, sorted. Three shapes can wait forever, and each is refused with the steps and
//! the resource named:
//!
//! 1. One step takes a resource twice (a service it uses holds `gpu`, and it, or another service
//!    it uses, asks for `gpu` too): it waits for itself.
//! 2. A service holds a resource until its last user finishes, that user needs a step that takes
//!    the same resource another way, and another user can start the service first.
//! 3. Two steps that may run at the same time take two resources in opposite orders.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use super::diagnostics::{ManifestDiagnostic, ManifestErrors, SourceFile};
use super::model::Pipeline;

/// One resource as a step takes it: through `holder` (the step itself, or a service it uses).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Take<'p> {
    holder: &'p str,
    resource: &'p str,
}

/// Checks every step; `spans` locate each declared step in the manifest.
pub fn validate(
    pipeline: &Pipeline,
    manifest: &SourceFile,
    spans: &BTreeMap<String, Range<usize>>,
) -> Result<(), ManifestErrors> {
    let mut errors = ManifestErrors::default();
    let at = |id: &str, message: String, help: String| {
        let base = pipeline.steps.get(id).map_or(id, |s| s.base.as_str());
        ManifestDiagnostic::at(manifest, spans.get(base).cloned().unwrap_or(0..0), message)
            .label("this step can wait forever")
            .help(help)
    };
    let takes: BTreeMap<&str, Vec<Take>> = pipeline
        .steps
        .keys()
        .map(|id| (id.as_str(), takes(pipeline, id)))
        .collect();
    for (id, message, help) in self_waits(&takes) {
        errors.push(at(&id, message, help));
    }
    // Only steps that take a resource can wait for one: ancestor sets hold just those, so a
    // pipeline without resources costs one walk, not a set per pair of steps.
    let taking: BTreeSet<&str> = takes
        .iter()
        .filter(|(_, list)| !list.is_empty())
        .map(|(id, _)| *id)
        .collect();
    let ancestors = ancestors(pipeline, &taking);
    for (id, message, help) in service_spans(pipeline, &takes, &ancestors) {
        errors.push(at(&id, message, help));
    }
    for (id, message, help) in opposite_orders(pipeline, &takes, &ancestors) {
        errors.push(at(&id, message, help));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// What `id` takes, in the order it takes it (services it needs first, then its own, sorted).
fn takes<'p>(pipeline: &'p Pipeline, id: &str) -> Vec<Take<'p>> {
    let mut out = Vec::new();
    let mut started = BTreeSet::new();
    take_into(pipeline, id, &mut started, &mut out);
    out
}

fn take_into<'p>(
    pipeline: &'p Pipeline,
    id: &str,
    started: &mut BTreeSet<&'p str>,
    out: &mut Vec<Take<'p>>,
) {
    let Some(step) = pipeline.steps.get(id) else {
        return;
    };
    for need in &step.needs {
        let service = pipeline.steps.get(need).filter(|s| s.is_service());
        if let Some(service) = service
            && started.insert(service.id.as_str())
        {
            take_into(pipeline, need, started, out);
        }
    }
    let mut own: Vec<&str> = step.resources.iter().map(String::as_str).collect();
    own.sort_unstable();
    own.dedup();
    out.extend(own.into_iter().map(|resource| Take {
        holder: step.id.as_str(),
        resource,
    }));
}

/// Who takes `resource` in `takes`, in order.
fn holders<'p>(takes: &[Take<'p>], resource: &str) -> Vec<&'p str> {
    takes
        .iter()
        .filter(|t| t.resource == resource)
        .map(|t| t.holder)
        .collect()
}

/// Shape 1: a step (or a service starting) takes one resource through two holders.
fn self_waits(takes: &BTreeMap<&str, Vec<Take>>) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (id, list) in takes {
        let resources: BTreeSet<&str> = list.iter().map(|t| t.resource).collect();
        for resource in resources {
            let holders = holders(list, resource);
            if holders.len() < 2 {
                continue;
            }
            let named: Vec<String> = holders
                .iter()
                .map(|h| {
                    if h == id {
                        format!("`{id}` itself")
                    } else {
                        format!("service `{h}`")
                    }
                })
                .collect();
            out.push((
                id.to_string(),
                format!(
                    "step `{id}` waits for itself: it takes resource `{resource}` through {}",
                    named.join(" and ")
                ),
                format!(
                    "a service holds its resources while every step that uses it runs; declare `{resource}` on only one of them"
                ),
            ));
        }
    }
    out
}

/// Every step's ancestors among `taking` (the steps that take a resource): the steps that finish
/// before it starts (through its needs, and the needs of the services it uses). The checks below
/// only ask about steps that take resources, so the sets hold no others.
fn ancestors<'p>(
    pipeline: &'p Pipeline,
    taking: &BTreeSet<&'p str>,
) -> BTreeMap<&'p str, BTreeSet<&'p str>> {
    fn visit<'p>(
        pipeline: &'p Pipeline,
        taking: &BTreeSet<&'p str>,
        id: &'p str,
        memo: &mut BTreeMap<&'p str, BTreeSet<&'p str>>,
    ) -> BTreeSet<&'p str> {
        if let Some(done) = memo.get(id) {
            return done.clone();
        }
        let mut out = BTreeSet::new();
        for need in pipeline.steps.get(id).map_or(&[][..], |s| &s.needs[..]) {
            let Some(dep) = pipeline.steps.get(need) else {
                continue;
            };
            if !dep.is_service() && taking.contains(dep.id.as_str()) {
                out.insert(dep.id.as_str());
            }
            out.extend(visit(pipeline, taking, dep.id.as_str(), memo));
        }
        memo.insert(id, out.clone());
        out
    }
    let mut memo = BTreeMap::new();
    for id in pipeline.steps.keys() {
        visit(pipeline, taking, id, &mut memo);
    }
    memo
}

/// Shape 2: service `service` holds `resource` until its last user finishes; a user `late` needs
/// a step `blocked` that takes `resource` another way; another user `early` does not need
/// `blocked`, so it can start the service first, and `blocked` then waits forever.
fn service_spans(
    pipeline: &Pipeline,
    takes: &BTreeMap<&str, Vec<Take>>,
    ancestors: &BTreeMap<&str, BTreeSet<&str>>,
) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut reported = BTreeSet::new();
    for service in pipeline.steps.values().filter(|s| s.is_service()) {
        let users: Vec<&str> = pipeline
            .steps
            .values()
            .filter(|s| !s.is_service())
            .filter(|s| takes[s.id.as_str()].iter().any(|t| t.holder == service.id))
            .map(|s| s.id.as_str())
            .collect();
        for resource in &service.resources {
            for late in &users {
                for blocked in ancestors[late].iter().filter(|b| !users.contains(b)) {
                    let other_way = takes[blocked]
                        .iter()
                        .any(|t| t.resource == resource.as_str() && t.holder != service.id);
                    if !other_way || !reported.insert((*blocked, resource.as_str())) {
                        continue;
                    }
                    let Some(early) = users
                        .iter()
                        .find(|u| *u != blocked && !ancestors[*u].contains(blocked))
                    else {
                        continue;
                    };
                    out.push((
                        blocked.to_string(),
                        format!(
                            "step `{blocked}` can wait forever for resource `{resource}`: `{early}` can start service `{}`, which holds `{resource}` until `{late}` finishes, and `{late}` needs `{blocked}`",
                            service.id
                        ),
                        format!(
                            "add `{blocked}` to the `needs` of `{early}` (the service then starts after it), or let `{blocked}` take another resource"
                        ),
                    ));
                }
            }
        }
    }
    out
}

/// Shape 3: two steps that may run at once, each holding one resource while asking for a second
/// that the other holds. Taking a service that another step already started is no wait, so both
/// takes of a resource must come from different holders.
fn opposite_orders(
    pipeline: &Pipeline,
    takes: &BTreeMap<&str, Vec<Take>>,
    ancestors: &BTreeMap<&str, BTreeSet<&str>>,
) -> Vec<(String, String, String)> {
    // Only a step that takes two different resources can hold one while it waits for another.
    let steps: Vec<&str> = pipeline
        .steps
        .values()
        .filter(|s| !s.is_service())
        .map(|s| s.id.as_str())
        .filter(|id| {
            let list = &takes[id];
            list.iter().any(|t| t.resource != list[0].resource)
        })
        .collect();
    let mut out = Vec::new();
    for (index, a) in steps.iter().enumerate() {
        for b in &steps[index + 1..] {
            if ancestors[a].contains(b) || ancestors[b].contains(a) {
                continue;
            }
            if let Some((first, second)) = crossing(&takes[a], &takes[b]) {
                out.push((
                    a.to_string(),
                    format!(
                        "steps `{a}` and `{b}` can wait for each other forever: `{a}` holds resource `{first}` while it waits for `{second}`, and `{b}` holds `{second}` while it waits for `{first}`"
                    ),
                    format!(
                        "make one of them need the other, or let them take `{first}` and `{second}` the same way"
                    ),
                ));
            }
        }
    }
    out
}

/// Two resources `a` takes in one order and `b` in the other, each time from different holders.
fn crossing<'p>(a: &[Take<'p>], b: &[Take<'p>]) -> Option<(&'p str, &'p str)> {
    for (i, held_a) in a.iter().enumerate() {
        for wanted_a in &a[i + 1..] {
            for (k, held_b) in b.iter().enumerate() {
                for wanted_b in &b[k + 1..] {
                    if held_a.resource == wanted_b.resource
                        && wanted_a.resource == held_b.resource
                        && held_a.resource != wanted_a.resource
                        && held_a.holder != wanted_b.holder
                        && wanted_a.holder != held_b.holder
                    {
                        return Some((held_a.resource, wanted_a.resource));
                    }
                }
            }
        }
    }
    None
}
