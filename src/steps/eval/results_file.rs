//! Reading lm-evaluation-harness's own `results_<date>.json` (checked against 0.4.13).
//!
//! Metric keys are `"<metric>,<filter>"` and stderr keys `"<metric>_stderr,<filter>"`
//! (lm_eval/result_schema.py, evaluator_utils.py). A stderr that lm-eval could not compute
//! (one document, or bootstrap off) is the string `"N/A"`. Groups (`mmlu`) are read from
//! `groups` when present, else from `results`, which holds groups and tasks alike.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::EvalError;

/// The parts of an lm-eval results file that Forge reads.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ResultsFile {
    /// Per task and group: `"acc,none"`, `"acc_stderr,none"`, `alias`, `sample_len` ...
    pub results: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    /// Aggregated groups, present only when a group aggregates.
    #[serde(default)]
    pub groups: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    /// Group name to its children.
    #[serde(default)]
    pub group_subtasks: BTreeMap<String, Vec<String>>,
    /// Few-shot count per task (groups get one when all children agree).
    #[serde(default, rename = "n-shot")]
    pub n_shot: BTreeMap<String, u32>,
    /// Documents per task, before and after `--limit`.
    #[serde(default, rename = "n-samples")]
    pub n_samples: BTreeMap<String, SampleCount>,
    /// Task versions.
    #[serde(default)]
    pub versions: BTreeMap<String, serde_json::Value>,
    /// lm-eval's package version (`0.4.13`).
    #[serde(default)]
    pub lm_eval_version: Option<String>,
    /// Git commit of lm-eval when run from a checkout.
    #[serde(default)]
    pub git_hash: Option<String>,
    /// `total_evaluation_time_seconds`, a string in lm-eval's output.
    #[serde(default)]
    pub total_evaluation_time_seconds: Option<serde_json::Value>,
}

/// `n-samples` of one task.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
pub struct SampleCount {
    /// Documents in the split.
    pub original: u64,
    /// Documents evaluated (after `--limit`).
    pub effective: u64,
}

/// One metric of one task, as read from a results file.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricReading {
    /// The value (a fraction for acc, acc_norm, exact_match).
    pub value: f64,
    /// Its standard error, `None` where lm-eval wrote `"N/A"`.
    pub stderr: Option<f64>,
    /// Documents evaluated.
    pub n: u64,
    /// Few-shot count lm-eval reports, when it reports one.
    pub shots: Option<u32>,
}

impl ResultsFile {
    /// Reads and parses a results file.
    pub fn read(path: &Path) -> Result<Self, EvalError> {
        let bytes = std::fs::read(path).map_err(|source| EvalError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|source| EvalError::ResultsParse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads `<metric>,<filter>` of a task or group, with its stderr, `n` and shots.
    pub fn metric(
        &self,
        path: &Path,
        task: &str,
        metric: &str,
        filter: &str,
    ) -> Result<MetricReading, EvalError> {
        let entry = self
            .groups
            .get(task)
            .or_else(|| self.results.get(task))
            .ok_or_else(|| EvalError::MissingTask {
                path: path.to_path_buf(),
                task: task.to_string(),
                available: self.results.keys().cloned().collect::<Vec<_>>().join(", "),
            })?;
        let key = format!("{metric},{filter}");
        let missing = || EvalError::MissingMetric {
            path: path.to_path_buf(),
            task: task.to_string(),
            key: key.clone(),
            available: metric_keys(entry),
        };
        let value = entry.get(&key).ok_or_else(missing)?;
        let value = number(value).ok_or_else(|| bad_value(path, task, &key, value))?;
        let stderr_key = format!("{metric}_stderr,{filter}");
        let stderr = match entry.get(&stderr_key) {
            None => None,
            Some(serde_json::Value::String(text)) if text == "N/A" => None,
            Some(other) => {
                Some(number(other).ok_or_else(|| bad_value(path, task, &stderr_key, other))?)
            }
        };
        let n = self
            .sample_count(task)
            .or_else(|| entry.get("sample_len").and_then(serde_json::Value::as_u64));
        let n = n.ok_or_else(|| EvalError::MissingMetric {
            path: path.to_path_buf(),
            task: task.to_string(),
            key: "n-samples".to_string(),
            available: "no `n-samples` entry and no `sample_len`".to_string(),
        })?;
        Ok(MetricReading {
            value,
            stderr,
            n,
            shots: self.n_shot.get(task).copied(),
        })
    }

    /// Effective documents of a task, or the sum over a group's tasks.
    fn sample_count(&self, task: &str) -> Option<u64> {
        self.sample_count_depth(task, 0)
    }

    fn sample_count_depth(&self, task: &str, depth: usize) -> Option<u64> {
        if let Some(count) = self.n_samples.get(task) {
            return Some(count.effective);
        }
        // Groups nest a few levels (mmlu -> mmlu_stem -> tasks); the bound stops a cycle.
        let children = self.group_subtasks.get(task).filter(|_| depth < 8)?;
        children
            .iter()
            .map(|child| self.sample_count_depth(child, depth + 1))
            .sum()
    }
}

fn number(value: &serde_json::Value) -> Option<f64> {
    value.as_f64().filter(|number| number.is_finite())
}

fn bad_value(path: &Path, task: &str, key: &str, value: &serde_json::Value) -> EvalError {
    EvalError::BadValue {
        path: path.to_path_buf(),
        task: task.to_string(),
        key: key.to_string(),
        value: value.to_string(),
    }
}

fn metric_keys(entry: &BTreeMap<String, serde_json::Value>) -> String {
    let keys: Vec<&str> = entry
        .keys()
        .filter(|key| key.contains(',') && !key.contains("_stderr,"))
        .map(String::as_str)
        .collect();
    if keys.is_empty() {
        "no metrics".to_string()
    } else {
        keys.join(", ")
    }
}

/// The newest `results_*.json` under `dir` (lm-eval writes `<dir>/<model>/results_<date>.json`,
/// the date in ISO order, so the greatest name is the newest).
pub fn find_results_file(dir: &Path) -> Option<PathBuf> {
    let mut found = Vec::new();
    collect_results(dir, 0, &mut found);
    found
        .into_iter()
        .max_by(|a, b| a.file_name().cmp(&b.file_name()))
}

fn collect_results(dir: &Path, depth: usize, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() && depth < 3 {
            collect_results(&path, depth + 1, found);
        } else if path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with("results_") && name.ends_with(".json"))
        {
            found.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/lm-eval-0.4.13")
            .join(name)
    }

    #[test]
    fn reads_multiple_choice_fixture() {
        let path = fixture("results_tiny_mc.json");
        let file = ResultsFile::read(&path).unwrap();
        assert_eq!(file.lm_eval_version.as_deref(), Some("0.4.13"));
        let acc = file.metric(&path, "tiny_mc", "acc", "none").unwrap();
        assert_eq!(
            acc,
            MetricReading {
                value: 0.8,
                stderr: Some(0.20000000000000004),
                n: 5,
                shots: Some(0)
            }
        );
        let norm = file.metric(&path, "tiny_mc", "acc_norm", "none").unwrap();
        assert_eq!((norm.value, norm.stderr), (1.0, Some(0.0)));
    }

    #[test]
    fn reads_generation_fixture_with_named_filter() {
        let path = fixture("results_tiny_gen.json");
        let file = ResultsFile::read(&path).unwrap();
        let em = file
            .metric(&path, "tiny_gen", "exact_match", "strip")
            .unwrap();
        assert_eq!(em.value, 0.4);
        assert_eq!(em.stderr, Some(0.24494897427831783));
        assert_eq!(em.n, 5);
    }

    #[test]
    fn wrong_filter_names_the_keys_that_exist() {
        let path = fixture("results_tiny_gen.json");
        let file = ResultsFile::read(&path).unwrap();
        let error = file
            .metric(&path, "tiny_gen", "exact_match", "strict-match")
            .unwrap_err();
        let text = error.to_string();
        assert!(text.contains("`exact_match,strict-match`"), "{text}");
        assert!(text.contains("exact_match,strip"), "{text}");
        let error = file
            .metric(&path, "gsm8k", "exact_match", "strip")
            .unwrap_err();
        assert!(matches!(error, EvalError::MissingTask { .. }), "{error}");
    }

    #[test]
    fn stderr_not_available_is_none_and_groups_sum_their_tasks() {
        let json = serde_json::json!({
            "results": {
                "mmlu": {"acc,none": 0.5, "acc_stderr,none": 0.01},
                "mmlu_a": {"acc,none": 0.4, "acc_stderr,none": "N/A"},
                "mmlu_b": {"acc,none": 0.6, "acc_stderr,none": "oops"}
            },
            "groups": {"mmlu": {"acc,none": 0.55, "acc_stderr,none": 0.02}},
            "group_subtasks": {"mmlu": ["mmlu_a", "mmlu_b"]},
            "n-shot": {"mmlu": 5, "mmlu_a": 5, "mmlu_b": 5},
            "n-samples": {"mmlu_a": {"original": 10, "effective": 1}, "mmlu_b": {"original": 30, "effective": 30}}
        });
        let file: ResultsFile = serde_json::from_value(json).unwrap();
        let path = Path::new("r.json");
        let group = file.metric(path, "mmlu", "acc", "none").unwrap();
        assert_eq!(
            group,
            MetricReading {
                value: 0.55,
                stderr: Some(0.02),
                n: 31,
                shots: Some(5)
            }
        );
        assert_eq!(
            file.metric(path, "mmlu_a", "acc", "none").unwrap().stderr,
            None
        );
        let error = file.metric(path, "mmlu_b", "acc", "none").unwrap_err();
        assert!(error.to_string().contains("\"oops\""), "{error}");
    }

    #[test]
    fn finds_the_newest_results_file() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("smollm2");
        std::fs::create_dir_all(&model).unwrap();
        for name in [
            "results_2026-11-28T10-00-00.1.json",
            "results_2026-11-28T11-00-00.1.json",
            "samples_x_2026.jsonl",
        ] {
            std::fs::write(model.join(name), "{}").unwrap();
        }
        let found = find_results_file(dir.path()).unwrap();
        assert!(found.ends_with("smollm2/results_2026-11-28T11-00-00.1.json"));
        assert!(find_results_file(&dir.path().join("missing")).is_none());
    }
}
