//! `run_step`: one lm-eval invocation per distinct (shots, limit), then `scores.json`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::EvalError;
use super::process::{self, Command, Failure, TAIL_LINES};
use super::results_file::{ResultsFile, find_results_file};
use super::scores::{EvalMetadata, EvalScores, Invocation, LmEvalInfo, score_rows, write_json};
use super::settings::{EvalSettings, TaskSpec, scalar_arg};
use crate::steps::io::{ServiceInfo, StepIo};
use crate::steps::metadata::{self, HostFacts, Metadata, ModelInfo};

/// The server lm-eval talks to.
#[derive(Debug, Clone)]
pub(crate) struct Target<'a> {
    /// Base URL without a trailing `/` or `/v1`.
    pub base_url: String,
    /// Served model name.
    pub model: String,
    /// The service behind it, for its facts.
    pub service: Option<&'a ServiceInfo>,
}

/// Runs lm-eval for every task in `settings` against the step's server and writes
/// `io.outputs[0]/scores.json` (lm-eval's own files go to `io.outputs[0]/lm-eval/`).
pub async fn run_step(settings: &EvalSettings, io: &StepIo) -> Result<EvalScores, EvalError> {
    settings.validate()?;
    let output = io.outputs.first().ok_or(EvalError::NoOutput)?;
    let scores_path = output.join("scores.json");
    // A scores file left from an earlier attempt must not pass for this run's.
    remove_if_present(&scores_path)?;
    let target = target(settings, io)?;
    let started = Instant::now();
    let deadline = settings
        .timeout_s
        .map(|secs| started + Duration::from_secs(secs));
    let groups = group_tasks(&settings.tasks);
    io.progress.set_length(groups.len() as u64);
    let mut files = Vec::with_capacity(groups.len());
    let mut invocations = Vec::with_capacity(groups.len());
    for group in &groups {
        let names = task_names(group);
        io.progress
            .set_message(format!("lm-eval {names} ({}-shot)", group[0].shots));
        let dir = output.join("lm-eval").join(group_dir(&group[0]));
        let command = command(settings, &io.workspace, &target, group, &dir)?;
        let begun = Instant::now();
        let (offset, result) = process::run(&command, &io.log, &io.cancel, deadline).await;
        if let Err(failure) = result {
            return Err(
                failure_error(failure, settings, io, &target, &names, offset, &command).await,
            );
        }
        let results = find_results_file(&dir).ok_or_else(|| EvalError::NoResultsFile {
            dir: dir.clone(),
            tasks: names.clone(),
            log: io.log.clone(),
            tail: process::tail(&io.log, offset, TAIL_LINES),
        })?;
        let file = ResultsFile::read(&results)?;
        invocations.push(Invocation {
            tasks: group.iter().map(|task| task.name.clone()).collect(),
            shots: group[0].shots,
            limit: group[0].limit,
            command: command.argv.clone(),
            results_file: results
                .strip_prefix(output)
                .unwrap_or(&results)
                .display()
                .to_string(),
            task_versions: file.versions.clone(),
            duration_s: (begun.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        });
        files.push((group.as_slice(), results, file));
        io.progress.inc(1);
    }
    let rows = score_rows(&settings.tasks, &files)?;
    let lm_eval = files.first().map(|(_, _, file)| LmEvalInfo {
        version: file.lm_eval_version.clone(),
        git_hash: file.git_hash.clone(),
    });
    let lm_eval = lm_eval.unwrap_or(LmEvalInfo {
        version: None,
        git_hash: None,
    });
    let mut common = Metadata::new(&io.provenance, &HostFacts::gather().await);
    common.engine = metadata::engine(target.service, &target.base_url).await;
    common.model = Some(model_info(settings, &target));
    let scores = EvalScores {
        schema_version: crate::results::SCHEMA_VERSION,
        metadata: EvalMetadata {
            common,
            lm_eval: lm_eval.clone(),
            invocations,
        },
        label: settings.label.clone(),
        lm_eval_version: lm_eval.version,
        results: rows,
    };
    write_json(&scores_path, &scores)?;
    Ok(scores)
}

fn remove_if_present(path: &Path) -> Result<(), EvalError> {
    match std::fs::remove_file(path) {
        Err(source) if source.kind() != std::io::ErrorKind::NotFound => Err(EvalError::Io {
            path: path.to_path_buf(),
            source,
        }),
        _ => Ok(()),
    }
}

/// The base URL and served name, from the settings or the one service the step needs.
pub(crate) fn target<'a>(settings: &EvalSettings, io: &'a StepIo) -> Result<Target<'a>, EvalError> {
    let with_url: Vec<&ServiceInfo> = io
        .services
        .values()
        .filter(|service| service.url.is_some())
        .collect();
    let service = match with_url.as_slice() {
        [one] => Some(*one),
        _ => None,
    };
    let base_url = match (&settings.base_url, service) {
        (Some(url), _) => url.clone(),
        (None, Some(service)) => service.url.clone().unwrap_or_default(),
        (None, None) if with_url.is_empty() => {
            return Err(EvalError::NoServer(
                "no `base_url` and no needed service publishes a `url`".into(),
            ));
        }
        (None, None) => {
            let ids: Vec<&str> = io
                .services
                .iter()
                .filter(|(_, s)| s.url.is_some())
                .map(|(id, _)| id.as_str())
                .collect();
            return Err(EvalError::NoServer(format!(
                "several services publish a `url` ({})",
                ids.join(", ")
            )));
        }
    };
    crate::steps::url::check_scheme(&base_url).map_err(|message| EvalError::Settings {
        field: "base_url".into(),
        message,
    })?;
    let model = settings
        .model
        .clone()
        .or_else(|| metadata::fact(service, "served_name"))
        .ok_or(EvalError::NoModel)?;
    Ok(Target {
        base_url: normalize_base_url(&base_url),
        model,
        service,
    })
}

/// `http://h:p/`, `http://h:p/v1` and `http://h:p/v1/completions` all become `http://h:p`.
pub(crate) fn normalize_base_url(url: &str) -> String {
    let url = url.trim_end_matches('/');
    let url = url.strip_suffix("/v1/completions").unwrap_or(url);
    let url = url.strip_suffix("/v1").unwrap_or(url);
    url.to_string()
}

/// Tasks that share (shots, limit), in first-seen order: one lm-eval run per group.
pub(crate) fn group_tasks(tasks: &[TaskSpec]) -> Vec<Vec<TaskSpec>> {
    let mut groups: Vec<Vec<TaskSpec>> = Vec::new();
    for task in tasks {
        match groups
            .iter_mut()
            .find(|group| group[0].shots == task.shots && group[0].limit == task.limit)
        {
            Some(group) if !group.iter().any(|t| t.name == task.name) => group.push(task.clone()),
            Some(_) => {}
            None => groups.push(vec![task.clone()]),
        }
    }
    groups
}

fn task_names(group: &[TaskSpec]) -> String {
    group
        .iter()
        .map(|task| task.name.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn group_dir(task: &TaskSpec) -> String {
    match task.limit_arg() {
        Some(limit) => format!("{}shot-limit{limit}", task.shots),
        None => format!("{}shot", task.shots),
    }
}

/// A path setting relative to the workspace, when that path exists there.
fn workspace_path(workspace: &Path, value: &str) -> Option<PathBuf> {
    let path = workspace.join(value);
    path.exists().then_some(path)
}

/// The lm-eval command line for one group of tasks.
pub(crate) fn command(
    settings: &EvalSettings,
    workspace: &Path,
    target: &Target<'_>,
    group: &[TaskSpec],
    output_dir: &Path,
) -> Result<Command, EvalError> {
    let mut argv = settings.lm_eval.clone();
    if argv[0].contains('/') && Path::new(&argv[0]).is_relative() {
        argv[0] = workspace.join(&argv[0]).display().to_string();
    }
    let task = &group[0];
    argv.extend(["--model".into(), "local-completions".into()]);
    argv.extend([
        "--model_args".into(),
        model_args(settings, workspace, target)?,
    ]);
    argv.extend([
        "--tasks".into(),
        task_names(group),
        "--num_fewshot".into(),
        task.shots.to_string(),
    ]);
    if let Some(limit) = task.limit_arg() {
        argv.extend(["--limit".into(), limit]);
    }
    argv.extend(["--batch_size".into(), settings.batch_size.to_string()]);
    argv.extend([
        "--output_path".into(),
        output_dir.display().to_string(),
        "--log_samples".into(),
    ]);
    if let Some(include) = &settings.include_path {
        let path = workspace_path(workspace, include).ok_or_else(|| EvalError::Settings {
            field: "include_path".into(),
            message: format!(
                "`{}` does not exist under the workspace `{}`",
                include,
                workspace.display()
            ),
        })?;
        argv.extend(["--include_path".into(), path.display().to_string()]);
    }
    argv.extend(settings.extra_args.iter().cloned());
    let mut env: Vec<(String, String)> = Vec::new();
    if settings.offline {
        for key in [
            "HF_HUB_OFFLINE",
            "HF_DATASETS_OFFLINE",
            "TRANSFORMERS_OFFLINE",
        ] {
            env.push((key.into(), "1".into()));
        }
    }
    env.extend(
        settings
            .env
            .iter()
            .map(|(key, value)| (key.clone(), value.clone())),
    );
    Ok(Command {
        argv,
        env,
        cwd: workspace.to_path_buf(),
    })
}

/// `--model_args` for lm-eval's `local-completions` (TemplateAPI keys, lm_eval/models/api_models.py).
fn model_args(
    settings: &EvalSettings,
    workspace: &Path,
    target: &Target<'_>,
) -> Result<String, EvalError> {
    let bool_arg = |flag: bool| if flag { "True" } else { "False" };
    let mut args = vec![
        format!("base_url={}/v1/completions", target.base_url),
        format!("model={}", target.model),
    ];
    if let Some(tokenizer) = &settings.tokenizer {
        // A local directory becomes absolute; anything else is passed on as a hub id.
        let tokenizer = workspace_path(workspace, tokenizer)
            .map_or_else(|| tokenizer.clone(), |p| p.display().to_string());
        args.push(format!("tokenizer={tokenizer}"));
    }
    args.push(format!(
        "tokenized_requests={}",
        bool_arg(settings.tokenized_requests)
    ));
    args.push(format!("num_concurrent={}", settings.num_concurrent));
    args.push(format!("max_retries={}", settings.max_retries));
    if let Some(add_bos) = settings.add_bos_token {
        args.push(format!("add_bos_token={}", bool_arg(add_bos)));
    }
    if let Some(max_length) = settings.max_length {
        args.push(format!("max_length={max_length}"));
    }
    for (key, value) in &settings.extra_model_args {
        args.push(format!(
            "{key}={}",
            scalar_arg(&format!("extra_model_args.{key}"), value)?
        ));
    }
    if let Some(arg) = args.iter().find(|arg| arg.contains(',')) {
        return Err(EvalError::Settings {
            field: "model_args".into(),
            message: format!("`{arg}` contains a comma, which `--model_args` cannot carry"),
        });
    }
    Ok(args.join(","))
}

fn model_info(settings: &EvalSettings, target: &Target<'_>) -> ModelInfo {
    metadata::model(&target.model, Some(&settings.label), target.service)
}

async fn failure_error(
    failure: Failure,
    settings: &EvalSettings,
    io: &StepIo,
    target: &Target<'_>,
    tasks: &str,
    offset: u64,
    command: &Command,
) -> EvalError {
    let tail = || process::tail(&io.log, offset, TAIL_LINES);
    match failure {
        Failure::Spawn(source) => EvalError::Spawn {
            program: command.argv[0].clone(),
            source,
        },
        Failure::Log(source) => EvalError::Io {
            path: io.log.clone(),
            source,
        },
        Failure::Cancelled => EvalError::Cancelled,
        Failure::TimedOut => EvalError::Timeout {
            after_s: settings.timeout_s.unwrap_or_default(),
            log: io.log.clone(),
            tail: tail(),
        },
        Failure::Exited(code) => EvalError::LmEvalFailed {
            status: code.map_or_else(
                || "killed by a signal".to_string(),
                |code| format!("exit status {code}"),
            ),
            tasks: tasks.to_string(),
            server: server_note(&target.base_url).await,
            log: io.log.clone(),
            tail: tail(),
        },
    }
}

/// After a failure: does the server still answer `/health`? A dead server explains most.
async fn server_note(base_url: &str) -> String {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
    {
        Ok(client) => client,
        Err(_) => return String::new(),
    };
    match client.get(format!("{base_url}/health")).send().await {
        Ok(response) if response.status().is_success() => String::new(),
        Ok(response) => format!(
            "; the server at `{base_url}` answers `/health` with {}",
            response.status()
        ),
        Err(_) => {
            format!("; the server at `{base_url}` no longer answers (did it die during the eval?)")
        }
    }
}
