//! The step DAG (petgraph): cycle checks that name the cycle, topological order, selections for
//! `--only` / `--from`, and mermaid / dot output for `forge graph`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::manifest::StepId;
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
        .map_or("", StepId::as_str);
    let mut path = vec![start];
    let mut current = start;
    loop {
        let next = pipeline.steps[current]
            .needs
            .iter()
            .map(StepId::as_str)
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

/// Step ids in dependency order, ties broken by declaration order: the order of repeated passes
/// over the declared steps that each take every step whose needs are already taken. Computed in
/// one topological walk: a step's pass is its latest need's pass, plus one when that need is
/// declared after it. Steps on a cycle are left out (`validate` rejects cycles).
pub fn order(pipeline: &Pipeline) -> Vec<StepId> {
    let index: HashMap<&str, usize> = pipeline
        .steps
        .keys()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let needs: Vec<Vec<usize>> = pipeline
        .steps
        .values()
        .map(|s| {
            s.needs
                .iter()
                .filter_map(|n| index.get(n.as_str()).copied())
                .collect()
        })
        .collect();
    let ids: Vec<&StepId> = pipeline.steps.keys().collect();
    pass_order(&needs)
        .into_iter()
        .map(|i| ids[i].clone())
        .collect()
}

/// [`order`] over step indexes: `needs[i]` lists the indexes step `i` needs.
fn pass_order(needs: &[Vec<usize>]) -> Vec<usize> {
    let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); needs.len()];
    for (i, of) in needs.iter().enumerate() {
        for &n in of {
            consumers[n].push(i);
        }
    }
    let mut waiting: Vec<usize> = needs.iter().map(Vec::len).collect();
    let mut ready: Vec<usize> = (0..needs.len()).filter(|&i| waiting[i] == 0).collect();
    let mut pass = vec![0usize; needs.len()];
    let mut taken = Vec::with_capacity(needs.len());
    while let Some(i) = ready.pop() {
        pass[i] = needs[i]
            .iter()
            .map(|&n| pass[n] + usize::from(n > i))
            .max()
            .unwrap_or(0);
        taken.push(i);
        for &c in &consumers[i] {
            waiting[c] -= 1;
            if waiting[c] == 0 {
                ready.push(c);
            }
        }
    }
    taken.sort_by_key(|&i| (pass[i], i));
    taken
}

/// Every step downstream of `ids` (inclusive).
pub fn downstream(pipeline: &Pipeline, ids: &BTreeSet<StepId>) -> BTreeSet<StepId> {
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
            step.kind(),
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
            step.id,
            step.id,
            step.kind()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition: repeated passes in declaration order.
    fn by_passes(needs: &[Vec<usize>]) -> Vec<usize> {
        let mut done = vec![false; needs.len()];
        let mut out = Vec::new();
        loop {
            let before = out.len();
            for (i, of) in needs.iter().enumerate() {
                if !done[i] && of.iter().all(|&n| done[n]) {
                    done[i] = true;
                    out.push(i);
                }
            }
            if out.len() == before {
                return out;
            }
        }
    }

    #[test]
    fn the_order_is_that_of_repeated_passes() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            usize::try_from(state % n as u64).unwrap()
        };
        for _ in 0..300 {
            let n = 1 + next(12);
            // A random DAG over a random permutation, declared in index order.
            let rank: Vec<usize> = {
                let mut r: Vec<usize> = (0..n).collect();
                for i in (1..n).rev() {
                    r.swap(i, next(i + 1));
                }
                r
            };
            let needs: Vec<Vec<usize>> = (0..n)
                .map(|i| {
                    (0..n)
                        .filter(|&j| rank[j] < rank[i] && next(3) == 0)
                        .collect()
                })
                .collect();
            assert_eq!(pass_order(&needs), by_passes(&needs), "{needs:?}");
        }
        // A cycle leaves its steps (and what needs them) out.
        assert_eq!(pass_order(&[vec![1], vec![0], vec![]]), vec![2]);
    }
}
