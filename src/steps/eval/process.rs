//! Running one lm-eval command in its own process group, its output appended to the step log,
//! stopped (SIGTERM, then SIGKILL to the whole group) on cancellation or timeout.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// How long lm-eval gets to exit after SIGTERM before the group is killed.
const TERM_GRACE: Duration = Duration::from_secs(10);

/// Lines of lm-eval's output quoted in an error.
pub const TAIL_LINES: usize = 20;

/// A command ready to run.
#[derive(Debug, Clone)]
pub struct Command {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Variables added to the inherited environment.
    pub env: Vec<(String, String)>,
    /// Working directory.
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
    let mut file = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    {
        Ok(file) => file,
        Err(error) => return (0, Err(Failure::Log(error))),
    };
    let header = format!("$ {}\n", shell_words(&command.argv));
    if let Err(error) = file.write_all(header.as_bytes()) {
        return (0, Err(Failure::Log(error)));
    }
    let offset = file.metadata().map(|meta| meta.len()).unwrap_or(0);
    (offset, run_logged(command, file, cancel, deadline).await)
}

async fn run_logged(
    command: &Command,
    file: std::fs::File,
    cancel: &CancellationToken,
    deadline: Option<Instant>,
) -> Result<(), Failure> {
    let stderr = file.try_clone().map_err(Failure::Log)?;
    let (program, args) = command.argv.split_first().ok_or_else(|| {
        Failure::Spawn(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "empty command",
        ))
    })?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .envs(command.env.iter().map(|(key, value)| (key, value)))
        .current_dir(&command.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::from(file))
        .stderr(Stdio::from(stderr))
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(Failure::Spawn)?;
    // Recorded under the workspace (`cwd`) so a run after a `kill -9` of Forge stops it.
    let _record = child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .and_then(|pgid| {
            crate::steps::leftovers::record(&command.cwd, pgid, "lm-eval", TERM_GRACE).ok()
        });
    let sleep = async {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
            None => std::future::pending().await,
        }
    };
    let stopped = tokio::select! {
        status = child.wait() => {
            let status = status.map_err(Failure::Spawn)?;
            return if status.success() { Ok(()) } else { Err(Failure::Exited(status.code())) };
        }
        () = cancel.cancelled() => Failure::Cancelled,
        () = sleep => Failure::TimedOut,
    };
    stop_group(&mut child).await;
    Err(stopped)
}

/// SIGTERM to the child's process group, SIGKILL after [`TERM_GRACE`].
async fn stop_group(child: &mut tokio::process::Child) {
    let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) else {
        return;
    };
    // SAFETY: kill(2) with a negative pid signals the process group the child leads
    // (`process_group(0)` made its pgid its own pid); it touches no memory.
    unsafe { libc::kill(-pid, libc::SIGTERM) };
    if tokio::time::timeout(TERM_GRACE, child.wait())
        .await
        .is_err()
    {
        // SAFETY: as above.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = child.wait().await;
    } else {
        // The leader is gone; remove any child it left in the group.
        // SAFETY: as above.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
}

/// The last `lines` lines of `log` after `offset`; tqdm's `\r` redraws keep their last state.
pub fn tail(log: &Path, offset: u64, lines: usize) -> String {
    let Ok(bytes) = std::fs::read(log) else {
        return String::from("(log unreadable)");
    };
    let start = usize::try_from(offset).unwrap_or(0).min(bytes.len());
    let text = String::from_utf8_lossy(&bytes[start..]);
    let kept: Vec<String> = text
        .lines()
        .map(|line| {
            line.rsplit('\r')
                .find(|part| !part.trim().is_empty())
                .unwrap_or("")
        })
        .filter(|line| !line.trim().is_empty())
        .map(|line| truncate(line, 400))
        .collect();
    kept[kept.len().saturating_sub(lines)..].join("\n")
}

fn truncate(line: &str, max: usize) -> String {
    if line.chars().count() <= max {
        return line.to_string();
    }
    let mut cut: String = line.chars().take(max).collect();
    cut.push_str(" …");
    cut
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
