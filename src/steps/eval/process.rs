//! Running one lm-eval command through the process layer (`crate::steps::process`): its own
//! process group, recorded while it runs, Forge's whole environment plus the step's variables,
//! output appended to the step log after a `$ command` header, stopped (SIGTERM, grace, SIGKILL
//! to the whole group) on cancellation or timeout.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::steps::process::{self, Ended, Environment, RunError, Spec};

/// How long lm-eval gets to exit after SIGTERM before the group is killed.
const TERM_GRACE: Duration = Duration::from_secs(10);

/// Lines of lm-eval's output quoted in an error.
pub const TAIL_LINES: usize = process::TAIL_LINES;

/// A command ready to run.
#[derive(Debug, Clone)]
pub struct Command {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Variables set on top of Forge's whole environment, which lm-eval inherits (it reads
    /// `HF_TOKEN`, `HF_HOME`, `HF_DATASETS_CACHE` and the like from there); a later entry wins.
    pub env: Vec<(String, String)>,
    /// Working directory (the workspace: the group is recorded under its `.forge/processes/`).
    pub cwd: PathBuf,
}

/// Why a command did not succeed.
#[derive(Debug)]
pub enum Failure {
    /// It could not start.
    Spawn(std::io::Error),
    /// It exited unsuccessfully (`None`: killed by a signal).
    Exited(Option<i32>),
    /// The deadline passed; the group was stopped.
    TimedOut,
    /// The run was cancelled; the group was stopped.
    Cancelled,
    /// The log could not be opened or written.
    Log(std::io::Error),
}

/// Runs `command`, appending its stdout and stderr to `log`. Returns the log offset where its
/// output starts, on success and failure alike, for [`tail`].
pub async fn run(
    command: &Command,
    log: &Path,
    cancel: &CancellationToken,
    deadline: Option<Instant>,
) -> (u64, Result<(), Failure>) {
    let offset = match write_header(command, log) {
        Ok(offset) => offset,
        Err(error) => return (0, Err(Failure::Log(error))),
    };
    (offset, run_logged(command, log, cancel, deadline).await)
}

/// Appends `$ <command>` to `log`; returns the log's length after it.
fn write_header(command: &Command, log: &Path) -> std::io::Result<u64> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    file.write_all(format!("$ {}\n", shell_words(&command.argv)).as_bytes())?;
    Ok(file.metadata().map(|meta| meta.len()).unwrap_or(0))
}

async fn run_logged(
    command: &Command,
    log: &Path,
    cancel: &CancellationToken,
    deadline: Option<Instant>,
) -> Result<(), Failure> {
    let spec = Spec {
        argv: command.argv.clone(),
        dir: command.cwd.clone(),
        env: Environment::inherited(command.env.iter().cloned().collect::<BTreeMap<_, _>>()),
        log: log.to_path_buf(),
        record: None,
        grace: TERM_GRACE,
    }
    .recorded(&command.cwd, "lm-eval");
    match process::run(&spec, cancel, deadline).await {
        Ok(Ended::Exited(status)) if status.success() => Ok(()),
        Ok(Ended::Exited(status)) => Err(Failure::Exited(status.code())),
        Ok(Ended::TimedOut) => Err(Failure::TimedOut),
        Ok(Ended::Cancelled) => Err(Failure::Cancelled),
        Err(RunError::Spawn(error) | RunError::Wait(error)) => Err(Failure::Spawn(error)),
    }
}

/// The last `lines` lines of `log` after `offset` (see [`process::tail_from`]).
pub fn tail(log: &Path, offset: u64, lines: usize) -> String {
    match process::tail_from(log, offset, lines) {
        Ok(kept) => kept.join("\n"),
        Err(_) => String::from("(log unreadable)"),
    }
}

/// Quotes arguments for display so a person can paste the command.
pub fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|arg| {
            if !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                arg.clone()
            } else {
                format!("'{}'", arg.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, dir: &Path) -> Command {
        Command {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            env: vec![("FORGE_TEST_VAR".into(), "set".into())],
            cwd: dir.to_path_buf(),
        }
    }

    #[tokio::test]
    async fn output_goes_to_the_log_and_the_tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("step.log");
        std::fs::write(&log, "earlier line\n").unwrap();
        let script = "for i in $(seq 1 30); do echo line $i; done; echo \"$FORGE_TEST_VAR\" >&2; printf '10%%\\r50%%\\r100%%\\n'; exit 3";
        let (offset, result) = run(
            &sh(script, dir.path()),
            &log,
            &CancellationToken::new(),
            None,
        )
        .await;
        assert!(
            matches!(result, Err(Failure::Exited(Some(3)))),
            "{result:?}"
        );
        let tail = tail(&log, offset, 20);
        let lines: Vec<&str> = tail.lines().collect();
        assert_eq!(lines.len(), 20);
        assert_eq!(lines[0], "line 13");
        assert_eq!(&lines[17..], ["line 30", "set", "100%"]);
        assert!(
            std::fs::read_to_string(&log)
                .unwrap()
                .starts_with("earlier line\n$ sh -c ")
        );
    }

    #[tokio::test]
    async fn cancel_stops_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("step.log");
        let marker = dir.path().join("grandchild.pid");
        let script = format!("sleep 30 & echo $! > {}; wait", marker.display());
        let cancel = CancellationToken::new();
        let trigger = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            trigger.cancel();
        });
        let started = Instant::now();
        let (_, result) = run(&sh(&script, dir.path()), &log, &cancel, None).await;
        assert!(matches!(result, Err(Failure::Cancelled)), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let pid: i32 = std::fs::read_to_string(&marker)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Gone, or a zombie waiting for init to reap it: either way no longer running.
        let state = process_state(pid);
        let running = !state.is_empty()
            && state
                .rsplit(')')
                .next()
                .is_some_and(|rest| !rest.trim_start().starts_with('Z'));
        assert!(
            !running,
            "the grandchild `sleep` survived the group kill: {state}"
        );
    }

    /// `/proc/PID/stat` on Linux; `ps`'s state column in the same `(name) STATE` shape on macOS.
    fn process_state(pid: i32) -> String {
        if cfg!(target_os = "linux") {
            return std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        }
        let out = std::process::Command::new("ps")
            .args(["-o", "stat=", "-p", &pid.to_string()])
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
            .unwrap_or_default();
        if out.is_empty() {
            out
        } else {
            format!("{pid} (ps) {out}")
        }
    }

    #[tokio::test]
    async fn deadline_times_out_and_missing_program_fails_to_spawn() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("step.log");
        let deadline = Instant::now() + Duration::from_millis(200);
        let (_, result) = run(
            &sh("sleep 30", dir.path()),
            &log,
            &CancellationToken::new(),
            Some(deadline),
        )
        .await;
        assert!(matches!(result, Err(Failure::TimedOut)), "{result:?}");
        let missing = Command {
            argv: vec!["/nonexistent/python".into()],
            env: vec![],
            cwd: dir.path().into(),
        };
        let (_, result) = run(&missing, &log, &CancellationToken::new(), None).await;
        assert!(matches!(result, Err(Failure::Spawn(_))), "{result:?}");
    }

    #[test]
    fn shell_words_quotes_what_needs_it() {
        let argv = vec![
            "python".to_string(),
            "a b".to_string(),
            "it's".to_string(),
            "k=v,x".to_string(),
        ];
        assert_eq!(shell_words(&argv), "python 'a b' 'it'\\''s' k=v,x");
    }
}
