//! Output and input paths. An output is normalized (no `.`, no `..`, no trailing `/`), lies
//! inside the workspace and outside Forge's own state in `.forge/`, is not the workspace, the results directory or its
//! lock file, and is neither equal to nor nested in another output: Forge replaces an output as a
//! whole when its step reruns. An input that a step writes is a `needs`, and a step never reads
//! its own outputs.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use indexmap::IndexMap;
use serde_json::Value as Json;

use super::declare::{Declared, Loc};
use super::model::Step;
use super::resolve::{Instance, Resolver};

/// Why an output path is refused: the message and the hint.
pub(super) struct PathProblem {
    pub(super) message: String,
    pub(super) help: String,
}

impl PathProblem {
    fn new(message: String, help: &str) -> Self {
        Self {
            message,
            help: help.to_string(),
        }
    }
}

/// `path` made workspace-relative and lexically normal, or `None` when it leaves the workspace.
pub fn lexical(path: &str, workspace: &Path) -> Option<PathBuf> {
    let path = Path::new(path);
    let relative = if path.is_absolute() {
        path.strip_prefix(workspace).ok()?
    } else {
        path
    };
    let mut out = PathBuf::new();
    for component in relative.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(part) => out.push(part),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// What Forge itself keeps under `.forge/`; the rest of `.forge/` is for machine-local outputs
/// (environments, downloaded models).
const STATE_ENTRIES: &[&str] = &["staging", "logs", "processes", "stat-cache.json", "lock"];

const OUTPUT_HELP: &str =
    "an output is a file or directory inside the workspace, for example `{{ results }}/words.txt`";

/// Checks one rendered output and returns its normal form (workspace-relative, `/`-separated).
pub(super) fn normalize_output(
    rendered: &str,
    workspace: &Path,
    results: &str,
) -> Result<String, PathProblem> {
    if rendered.trim().is_empty() {
        return Err(PathProblem::new(
            String::from("output path is empty"),
            OUTPUT_HELP,
        ));
    }
    let Some(normal) = lexical(rendered, workspace) else {
        return Err(PathProblem::new(
            format!("output `{rendered}` is outside the workspace"),
            "Forge deletes and replaces outputs, so they must stay inside the workspace (the folder that holds the manifest); write a workspace-relative path without `..`",
        ));
    };
    if normal.as_os_str().is_empty() {
        return Err(PathProblem::new(
            format!("output `{rendered}` is the workspace itself"),
            OUTPUT_HELP,
        ));
    }
    let state = Path::new(".forge");
    if normal == state
        || STATE_ENTRIES
            .iter()
            .any(|e| normal.starts_with(state.join(e)))
    {
        return Err(PathProblem::new(
            format!("output `{rendered}` is part of Forge's own state in `.forge/`"),
            "Forge keeps `.forge/staging`, `.forge/logs`, `.forge/processes`, `.forge/stat-cache.json` and `.forge/lock` for itself; write outputs under `{{ results }}`, or elsewhere under `.forge/` (for example `.forge/envs/x`) for machine-local files",
        ));
    }
    let results = lexical(results, workspace).unwrap_or_default();
    let lock = results.join("forge.lock");
    if results.starts_with(&normal) || normal == lock {
        let what = if normal == lock {
            format!("is the lock file `{}`", lock.display())
        } else {
            format!(
                "would replace the results directory `{}` and its `forge.lock`",
                results.display()
            )
        };
        return Err(PathProblem::new(
            format!("output `{rendered}` {what}"),
            "write outputs inside the results directory, for example `{{ results }}/words.txt`",
        ));
    }
    Ok(normal.to_string_lossy().into_owned())
}

/// The part of a glob before its first wildcard component (`data/*.json` -> `data`).
fn literal_prefix(pattern: &str) -> PathBuf {
    Path::new(pattern)
        .components()
        .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
        .collect()
}

/// Who writes a path, and where that output was declared.
struct Writer<'a> {
    step: &'a str,
    loc: &'a Loc<String>,
}

impl Resolver<'_> {
    /// Renders and normalizes the outputs; a refused one is an error at its entry.
    pub(super) fn outputs(&mut self, d: &Declared, context: &Json) -> (Vec<String>, Vec<usize>) {
        let workspace = PathBuf::from(self.base["workspace"].as_str().unwrap_or_default());
        let results = self.base["results"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut outputs = Vec::new();
        let mut at = Vec::new();
        for (index, loc) in d.outputs.iter().enumerate() {
            let Some(rendered) = self.render(loc, context) else {
                continue;
            };
            match normalize_output(&rendered, &workspace, &results) {
                Ok(normal) => {
                    outputs.push(normal);
                    at.push(index);
                }
                Err(problem) => {
                    let d = self.diag(loc, problem.message).help(problem.help);
                    self.errors.push(d);
                    // Kept as written so `{{ outputs[N] }}` still renders: one error, not two.
                    outputs.push(rendered);
                    at.push(index);
                }
            }
        }
        (outputs, at)
    }

    /// One writer per output; no output inside another; an input that a step writes is a
    /// `needs` (or, for the step's own outputs, a mistake). Lookups go through a sorted map so
    /// the cost grows with the number of paths times their depth, not with its square.
    pub(super) fn check_paths(
        &mut self,
        steps: &IndexMap<super::id::StepId, Step>,
        instances: &[Instance],
    ) {
        let mut writers: BTreeMap<PathBuf, Writer> = BTreeMap::new();
        for inst in instances {
            for (out, &at) in inst.outputs.iter().zip(&inst.output_at) {
                let loc = &inst.declared.outputs[at];
                let writer = Writer {
                    step: &inst.id,
                    loc,
                };
                if let Some(other) = writers.insert(PathBuf::from(out), writer) {
                    let d = if other.step == inst.id {
                        self.diag(
                            loc,
                            format!("step `{}` lists output `{out}` twice", inst.id),
                        )
                        .help("list each output once")
                    } else {
                        self.diag(loc, format!("steps `{}` and `{}` both write `{out}`", other.step, inst.id))
                            .help("give each step its own outputs (use `{{ step.id }}` or a matrix value in the path)")
                    };
                    self.errors.push(d);
                }
            }
        }
        self.check_nesting(&writers);
        for inst in instances {
            let Some(step) = steps.get(&inst.id) else {
                continue;
            };
            for (input, loc) in step.inputs.iter().zip(&inst.declared.inputs) {
                self.check_input(&inst.id, input, loc, &writers);
            }
        }
    }

    fn check_nesting(&mut self, writers: &BTreeMap<PathBuf, Writer>) {
        for (path, inner) in writers {
            let Some((outer_path, outer)) = path
                .ancestors()
                .skip(1)
                .find_map(|a| writers.get_key_value(a))
            else {
                continue;
            };
            let message = if outer.step == inner.step {
                format!(
                    "output `{}` of step `{}` is inside its other output `{}`",
                    path.display(),
                    inner.step,
                    outer_path.display()
                )
            } else {
                format!(
                    "output `{}` of step `{}` is inside output `{}` of step `{}`",
                    path.display(),
                    inner.step,
                    outer_path.display(),
                    outer.step
                )
            };
            let d = self.diag(inner.loc, message)
                .label("nested output")
                .help("a step's outputs are replaced as a whole when it reruns, which would delete the nested one; give each output its own directory");
            self.errors.push(d);
        }
    }

    fn check_input(
        &mut self,
        step: &str,
        input: &str,
        loc: &Loc<String>,
        writers: &BTreeMap<PathBuf, Writer>,
    ) {
        let workspace = PathBuf::from(self.base["workspace"].as_str().unwrap_or_default());
        let is_glob = input.contains(['*', '?', '[']);
        let Some(normal) = lexical(input, &workspace) else {
            return; // inputs outside the workspace are hashed but never written by a step
        };
        let literal = if is_glob {
            literal_prefix(&normal.to_string_lossy())
        } else {
            normal.clone()
        };
        let pattern = glob::Pattern::new(&normal.to_string_lossy()).ok();
        // An output that holds the input (or is it), then outputs inside the input.
        let around = literal
            .ancestors()
            .filter(|a| !a.as_os_str().is_empty())
            .find_map(|a| writers.get_key_value(a));
        let inside = writers
            .range(literal.clone()..)
            .take_while(|(p, _)| p.starts_with(&literal))
            .find(|(p, _)| !is_glob || pattern.as_ref().is_some_and(|g| g.matches_path(p)));
        let Some((out, writer)) = around.or(inside) else {
            return;
        };
        let d = if writer.step == step {
            self.diag(loc, format!("step `{step}` reads its own output `{}` (input `{input}`)", out.display()))
                .help("a step that reads what it writes is never fresh; split it into two steps joined by `needs`")
        } else {
            let producer = writer.step;
            self.diag(loc, format!("step `{step}` declares input `{input}`, which step `{producer}` writes (`{}`)", out.display()))
                .help(format!("depend on it with `needs = [\"{producer}\"]` and refer to `{{{{ steps.{producer}.outputs[0] }}}}`; inputs are source files"))
        };
        self.errors.push(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_are_normalized_and_kept_inside_the_workspace() {
        let ws = Path::new("/w s");
        let ok = |p: &str| normalize_output(p, ws, "results/x").ok();
        assert_eq!(ok("./out/a.txt").as_deref(), Some("out/a.txt"));
        assert_eq!(ok("out//b/../a.txt/").as_deref(), Some("out/a.txt"));
        assert_eq!(ok("/w s/out/a").as_deref(), Some("out/a"));
        assert_eq!(ok("results/x/a").as_deref(), Some("results/x/a"));
        assert_eq!(ok(".forge/envs/a").as_deref(), Some(".forge/envs/a"));
        for bad in [
            "",
            " ",
            ".",
            "./",
            "a/..",
            "../a",
            "a/../../b",
            "/tmp/a",
            "/w",
            ".forge/staging/x",
            ".forge/logs",
            "./.forge",
            "results",
            "results/x",
            "results/x/forge.lock",
        ] {
            assert!(ok(bad).is_none(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn glob_prefixes_stop_at_the_first_wildcard() {
        assert_eq!(literal_prefix("data/*.json"), PathBuf::from("data"));
        assert_eq!(literal_prefix("a/b/c"), PathBuf::from("a/b/c"));
        assert_eq!(literal_prefix("**/x"), PathBuf::new());
    }
}
