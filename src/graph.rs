//! The step DAG (petgraph): cycle checks that name the cycle, topological order, selections for
//! `--only` / `--from`, and mermaid / dot output for `forge graph`.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::manifest::diagnostics::{ManifestDiagnostic, ManifestErrors, SourceFile};
use crate::manifest::model::Pipeline;

/// Builds the graph: an edge `need -> step` for every entry in `needs`.
fn build(pipeline: &Pipeline) -> (DiGraph<&str, ()>, BTreeMap<&str, NodeIndex>) {
    let mut graph = DiGraph::new();
    let nodes: BTreeMap<&str, NodeIndex> = pipeline
        .steps
        .keys()
        .map(|id| (id.as_str(), graph.add_node(id.as_str())))
        .collect();
    for step in pipeline.steps.values() {
        for need in &step.needs {
            if let (Some(&from), Some(&to)) =
                (nodes.get(need.as_str()), nodes.get(step.id.as_str()))
            {
                graph.add_edge(from, to, ());
            }
        }
    }
    (graph, nodes)
}

/// Reports every cycle, naming its steps in order.
pub fn validate(
    pipeline: &Pipeline,
    manifest: &SourceFile,
    spans: &BTreeMap<String, Range<usize>>,
) -> Result<(), ManifestErrors> {
    let (graph, _) = build(pipeline);
    let mut errors = ManifestErrors::default();
    for component in tarjan_scc(&graph) {
        let self_loop = component.len() == 1 && graph.contains_edge(component[0], component[0]);
        if component.len() < 2 && !self_loop {
            continue;
        }
        let members: BTreeSet<&str> = component.iter().map(|&n| graph[n]).collect();
        let cycle = walk_cycle(pipeline, &members);
        let first = pipeline
            .steps
            .get(cycle[0])
            .map_or(cycle[0], |s| s.base.as_str());
        let span = spans.get(first).cloned().unwrap_or(0..0);
        errors.push(
            ManifestDiagnostic::at(
                manifest,
                span,
                format!(
                    "steps depend on each other in a cycle: {}",
                    cycle.join(" -> ")
                ),
            )
            .label("this step is part of the cycle")
            .help("remove one of these `needs` entries"),
        );
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Orders a cycle's members along their `needs` edges, closing the loop.
fn walk_cycle<'p>(pipeline: &'p Pipeline, members: &BTreeSet<&str>) -> Vec<&'p str> {
    let start = pipeline
        .steps
        .keys()
        .find(|id| members.contains(id.as_str()))
        .map_or("", String::as_str);
    let mut path = vec![start];
    let mut current = start;
    loop {
        let next = pipeline.steps[current]
            .needs
            .iter()
            .map(String::as_str)
            .find(|n| members.contains(n));
        match next {
            Some(n) if path.contains(&n) => {
                path.push(n);
                return path;
            }
            Some(n) => {
                path.push(n);
                current = n;
            }
            None => return path,
        }
    }
}

/// Step ids in dependency order, ties broken by declaration order.
pub fn order(pipeline: &Pipeline) -> Vec<String> {
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut out = Vec::new();
    while out.len() < pipeline.steps.len() {
        let before = out.len();
        for step in pipeline.steps.values() {
            if !done.contains(step.id.as_str())
                && step.needs.iter().all(|n| done.contains(n.as_str()))
            {
                done.insert(&step.id);
                out.push(step.id.clone());
            }
        }
        if out.len() == before {
            break; // unreachable after validate(): cycles were rejected
        }
    }
    out
}

/// Every step downstream of `ids` (inclusive).
pub fn downstream(pipeline: &Pipeline, ids: &BTreeSet<String>) -> BTreeSet<String> {
    let mut selected = ids.clone();
    for id in order(pipeline) {
        if pipeline.steps[&id]
            .needs
            .iter()
            .any(|n| selected.contains(n))
        {
            selected.insert(id);
        }
    }
    selected
}

/// Ids of the steps that need `id`.
pub fn consumers<'p>(pipeline: &'p Pipeline, id: &str) -> Vec<&'p str> {
    pipeline
        .steps
        .values()
        .filter(|s| s.needs.iter().any(|n| n == id))
        .map(|s| s.id.as_str())
        .collect()
}

/// The graph as a mermaid flowchart.
pub fn mermaid(pipeline: &Pipeline) -> String {
    let mut out = String::from("flowchart LR\n");
    for step in pipeline.steps.values() {
        let shape = if step.is_service() {
            ("([", "])")
        } else {
            ("[", "]")
        };
        out.push_str(&format!(
            "    {}{}\"{}<br/><i>{}</i>\"{}\n",
            node(&step.id),
            shape.0,
            step.id,
            step.kind,
            shape.1
        ));
    }
    for step in pipeline.steps.values() {
        for need in &step.needs {
            out.push_str(&format!("    {} --> {}\n", node(need), node(&step.id)));
        }
    }
    out
}

/// The graph in Graphviz dot.
pub fn dot(pipeline: &Pipeline) -> String {
    let mut out = format!("digraph \"{}\" {{\n    rankdir=LR;\n", pipeline.name);
    for step in pipeline.steps.values() {
        let shape = if step.is_service() { "ellipse" } else { "box" };
        out.push_str(&format!(
            "    \"{}\" [shape={shape}, label=\"{}\\n({})\"];\n",
            step.id, step.id, step.kind
        ));
    }
    for step in pipeline.steps.values() {
        for need in &step.needs {
            out.push_str(&format!("    \"{need}\" -> \"{}\";\n", step.id));
        }
    }
    out.push_str("}\n");
    out
}

fn node(id: &str) -> String {
    id.replace('-', "_")
}
