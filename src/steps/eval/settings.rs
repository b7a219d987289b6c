//! The `[steps.<id>.with]` tables of the `eval` and `retention` kinds, and their checks.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::EvalError;

/// Settings of one `eval` step: which lm-eval to run, against which server, on which tasks.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSettings {
    /// Label of the model under test (`bf16`, `awq`); names the scores and the retention sides.
    pub label: String,
    /// The command that runs lm-eval, program first
    /// (`[".forge/envs/eval/bin/python", "-m", "lm_eval"]`). A relative program path that
    /// contains a `/` is resolved against the workspace.
    pub lm_eval: Vec<String>,
    /// The tasks to run; tasks that share `shots` and `limit` run in one lm-eval invocation.
    pub tasks: Vec<TaskSpec>,
    /// A directory of extra task YAML files (`--include_path`), relative to the workspace.
    #[serde(default)]
    pub include_path: Option<String>,
    /// Tokenizer for lm-eval: a local directory (relative to the workspace) or a hub id.
    #[serde(default)]
    pub tokenizer: Option<String>,
    /// Server base URL (`http://127.0.0.1:8000`); defaults to the one service the step needs.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Served model name sent as `model`; defaults to the service's `served_name` fact.
    #[serde(default)]
    pub model: Option<String>,
    /// Concurrent HTTP requests lm-eval sends (`num_concurrent`).
    #[serde(default = "default_one")]
    pub num_concurrent: u32,
    /// Retries per failed request (`max_retries`).
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// Prompts per completions request (`--batch_size`).
    #[serde(default = "default_one")]
    pub batch_size: u32,
    /// Send token ids instead of text (`tokenized_requests`; lm-eval's default is true).
    #[serde(default = "default_true")]
    pub tokenized_requests: bool,
    /// Prepend the BOS token (`add_bos_token`); unset leaves lm-eval's default.
    #[serde(default)]
    pub add_bos_token: Option<bool>,
    /// Longest prompt plus generation lm-eval allows (`max_length`); unset leaves 2048.
    #[serde(default)]
    pub max_length: Option<u32>,
    /// Set `HF_HUB_OFFLINE=1`, `HF_DATASETS_OFFLINE=1` and `TRANSFORMERS_OFFLINE=1`.
    #[serde(default)]
    pub offline: bool,
    /// Further `--model_args` entries (`timeout = 600`), scalars only.
    #[serde(default)]
    pub extra_model_args: BTreeMap<String, serde_json::Value>,
    /// Further command-line arguments appended to every invocation (`["--apply_chat_template"]`).
    #[serde(default)]
    pub extra_args: Vec<String>,
    /// Extra environment variables for lm-eval.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Wall-clock limit for the whole step, all invocations together.
    #[serde(default)]
    pub timeout_s: Option<u64>,
}

/// One lm-eval task and the number Forge keeps from it.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// lm-eval task or group name (`mmlu`, `gsm8k`, `forge_mc`).
    pub name: String,
    /// Few-shot examples (`--num_fewshot`).
    pub shots: u32,
    /// Metric to keep (`acc`, `acc_norm`, `exact_match`).
    pub metric: String,
    /// lm-eval filter of that metric (`strict-match` for gsm8k); `none` when unset.
    #[serde(default)]
    pub filter: Option<String>,
    /// `--limit`: a count of documents, or a fraction below 1 (lm-eval: "for testing only").
    #[serde(default)]
    pub limit: Option<f64>,
}

/// Settings of one `retention` step: two `scores.json` files to compare.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// Path of the baseline's `scores.json` (BF16), relative to the workspace.
    pub baseline: String,
    /// Path of the candidate's `scores.json` (AWQ), relative to the workspace.
    pub candidate: String,
    /// Label of the baseline; defaults to the `label` in its scores file.
    #[serde(default)]
    pub baseline_label: Option<String>,
    /// Label of the candidate; defaults to the `label` in its scores file.
    #[serde(default)]
    pub candidate_label: Option<String>,
}

fn default_one() -> u32 {
    1
}

fn default_retries() -> u32 {
    3
}

fn default_true() -> bool {
    true
}

impl TaskSpec {
    /// The filter name, `none` when the settings leave it out (lm-eval's own default).
    pub fn filter_name(&self) -> &str {
        self.filter.as_deref().unwrap_or("none")
    }

    /// The `--limit` argument as lm-eval reads it: integers without a decimal point.
    pub fn limit_arg(&self) -> Option<String> {
        self.limit.map(|limit| {
            if limit.fract() == 0.0 {
                format!("{}", limit as u64)
            } else {
                format!("{limit}")
            }
        })
    }
}

fn invalid(field: &str, message: impl Into<String>) -> EvalError {
    EvalError::Settings {
        field: field.to_string(),
        message: message.into(),
    }
}

impl EvalSettings {
    /// What these settings make the step read: the task directory (`include_path`) and the
    /// tokenizer when it is a path rather than a hub id.
    pub fn reads(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self.include_path.iter().map(PathBuf::from).collect();
        out.extend(self.tokenizer.iter().map(PathBuf::from));
        out
    }
}

impl RetentionSettings {
    /// What these settings make the step read: both scores files.
    pub fn reads(&self) -> Vec<PathBuf> {
        vec![
            PathBuf::from(&self.baseline),
            PathBuf::from(&self.candidate),
        ]
    }
}

impl EvalSettings {
    /// Checks what serde cannot: non-empty lists, unique tasks, values lm-eval can parse.
    pub fn validate(&self) -> Result<(), EvalError> {
        if self.label.is_empty()
            || !self
                .label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(invalid(
                "label",
                format!(
                    "`{}` must be non-empty and use only letters, digits, `-`, `_`, `.`",
                    self.label
                ),
            ));
        }
        if self.lm_eval.is_empty() || self.lm_eval[0].is_empty() {
            return Err(invalid(
                "lm_eval",
                "needs the program that runs lm-eval, e.g. `[\"python\", \"-m\", \"lm_eval\"]`",
            ));
        }
        if self.tasks.is_empty() {
            return Err(invalid("tasks", "lists no task"));
        }
        self.validate_tasks()?;
        if self.num_concurrent == 0 {
            return Err(invalid("num_concurrent", "must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(invalid("batch_size", "must be at least 1"));
        }
        if self.timeout_s == Some(0) {
            return Err(invalid("timeout_s", "must be at least 1"));
        }
        self.validate_model_args()
    }

    fn validate_tasks(&self) -> Result<(), EvalError> {
        let mut seen: BTreeMap<&str, &TaskSpec> = BTreeMap::new();
        let mut keys = std::collections::BTreeSet::new();
        for (index, task) in self.tasks.iter().enumerate() {
            let field = format!("tasks[{index}]");
            if task.name.is_empty() || task.name.contains([',', ' ']) {
                return Err(invalid(
                    &field,
                    format!(
                        "task name `{}` must be non-empty, without commas or spaces",
                        task.name
                    ),
                ));
            }
            if task.metric.is_empty() || task.metric.contains(',') {
                return Err(invalid(
                    &field,
                    format!("metric `{}` must be non-empty, without commas", task.metric),
                ));
            }
            if let Some(limit) = task.limit
                && !(limit.is_finite() && limit > 0.0)
            {
                return Err(invalid(
                    &field,
                    format!("limit {limit} must be a positive count or a fraction below 1"),
                ));
            }
            if !keys.insert((task.name.as_str(), task.metric.as_str(), task.filter_name())) {
                return Err(invalid(
                    &field,
                    format!(
                        "`{}` `{},{}` is listed twice",
                        task.name,
                        task.metric,
                        task.filter_name()
                    ),
                ));
            }
            if let Some(earlier) = seen.insert(task.name.as_str(), task)
                && (earlier.shots != task.shots || earlier.limit != task.limit)
            {
                return Err(invalid(
                    &field,
                    format!(
                        "task `{}` is listed with different `shots` or `limit`; one run per task",
                        task.name
                    ),
                ));
            }
        }
        Ok(())
    }

    fn validate_model_args(&self) -> Result<(), EvalError> {
        // lm-eval splits `--model_args` on commas and `=`, with no quoting.
        let check = |field: &str, value: &str| {
            if value.contains(',') {
                Err(invalid(
                    field,
                    format!("`{value}` contains a comma, which `--model_args` cannot carry"),
                ))
            } else {
                Ok(())
            }
        };
        for (field, value) in [
            ("tokenizer", &self.tokenizer),
            ("base_url", &self.base_url),
            ("model", &self.model),
        ] {
            if let Some(value) = value {
                check(field, value)?;
            }
        }
        for (key, value) in &self.extra_model_args {
            let field = format!("extra_model_args.{key}");
            if key.contains([',', '=']) {
                return Err(invalid(&field, "key must not contain `,` or `=`"));
            }
            check(&field, &scalar_arg(&field, value)?)?;
        }
        Ok(())
    }
}

/// Renders a scalar settings value the way `--model_args` expects it.
pub(crate) fn scalar_arg(field: &str, value: &serde_json::Value) -> Result<String, EvalError> {
    match value {
        serde_json::Value::String(text) => Ok(text.clone()),
        serde_json::Value::Bool(flag) => Ok(if *flag { "True" } else { "False" }.to_string()),
        serde_json::Value::Number(number) => Ok(number.to_string()),
        _ => Err(invalid(field, "must be a string, number or boolean")),
    }
}
