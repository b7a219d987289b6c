//! SkyPilot's own CLI, driven as child processes: `sky launch` (its output streamed line by line
//! with the profile as prefix, secrets' values redacted), `sky down`, and copying files back
//! over the ssh alias SkyPilot writes for every cluster (`ssh <cluster>`, then `tar`: both are on
//! every pod image and every laptop, unlike `rsync`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::steps::process::{self, Group};

/// How a `sky launch` ended.
#[derive(Debug, PartialEq, Eq)]
pub enum LaunchEnd {
    /// It exited with this code (SkyPilot exits with the job's code; 0 when the run succeeded).
    Exited(i32),
    /// Ctrl-C (or SIGTERM): the client was stopped.
    Interrupted,
}

/// The `sky` program and what every call needs.
#[derive(Debug, Clone)]
pub struct Sky {
    /// The `sky` executable.
    pub program: PathBuf,
}

/// Lines printed by a child, with their prefix and the secrets to hide.
#[derive(Debug, Clone)]
pub struct Stream {
    /// Printed before every line (`[a5000] `).
    pub prefix: String,
    /// Values replaced by `***` wherever they appear.
    pub redact: Vec<String>,
    /// Every line is also appended here.
    pub log: PathBuf,
}

impl Stream {
    fn clean(&self, line: &str) -> String {
        let mut line = line.to_string();
        for secret in &self.redact {
            line = line.replace(secret.as_str(), "***");
        }
        line
    }
}

fn command(program: &Path, args: &[String]) -> Command {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // A killed Forge takes the client with it (Linux and macOS alike).
    crate::steps::process::parent_death::arrange(&mut command);
    command
}

/// Runs `program args`, streaming its output through `stream`, until it exits or `cancel` fires
/// (then its process group is stopped).
pub async fn stream(
    program: &Path,
    args: &[String],
    stream: &Stream,
    cancel: &CancellationToken,
) -> std::io::Result<LaunchEnd> {
    if let Some(parent) = stream.log.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut log = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&stream.log)
        .await?;
    let mut child = command(program, args).spawn()?;
    let pgid = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .ok_or_else(|| std::io::Error::other("child has no pid"))?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    if let Some(out) = child.stdout.take() {
        tokio::spawn(forward(BufReader::new(out), tx.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(forward(BufReader::new(err), tx.clone()));
    }
    drop(tx);
    let mut group = Group {
        child,
        pgid,
        record: None,
    };
    loop {
        tokio::select! {
            line = rx.recv() => match line {
                Some(line) => {
                    let line = stream.clean(&line);
                    eprintln!("{}{line}", stream.prefix);
                    let _ = log.write_all(format!("{line}\n").as_bytes()).await;
                }
                None => break,
            },
            () = cancel.cancelled() => {
                process::terminate(&mut group, Duration::from_secs(10)).await;
                return Ok(LaunchEnd::Interrupted);
            }
        }
    }
    tokio::select! {
        status = group.child.wait() => {
            let status = status?;
            process::reap_leftovers(pgid, Duration::from_secs(5)).await;
            Ok(LaunchEnd::Exited(status.code().unwrap_or(1)))
        }
        () = cancel.cancelled() => {
            process::terminate(&mut group, Duration::from_secs(10)).await;
            Ok(LaunchEnd::Interrupted)
        }
    }
}

async fn forward<R: tokio::io::AsyncRead + Unpin>(
    reader: BufReader<R>,
    tx: tokio::sync::mpsc::UnboundedSender<String>,
) {
    let mut lines = reader.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if tx.send(line).is_err() {
            break;
        }
    }
}

impl Sky {
    /// `sky launch -c NAME TASK -y --secret NAME...`: provision, set up, run, stream the output.
    pub async fn launch(
        &self,
        cluster: &str,
        task: &Path,
        secrets: &[String],
        out: &Stream,
        cancel: &CancellationToken,
    ) -> std::io::Result<LaunchEnd> {
        let mut args = vec![
            "launch".to_string(),
            "-c".into(),
            cluster.into(),
            task.display().to_string(),
            "-y".into(),
        ];
        for name in secrets {
            // The name alone: SkyPilot reads the value from this process's environment.
            args.push("--secret".into());
            args.push(name.clone());
        }
        stream(&self.program, &args, out, cancel).await
    }

    /// `sky down CLUSTER -y`; not cancellable (it is what Ctrl-C asks for).
    pub async fn down(&self, cluster: &str, out: &Stream) -> Result<(), String> {
        let args = vec!["down".to_string(), cluster.to_string(), "-y".into()];
        match stream(&self.program, &args, out, &CancellationToken::new()).await {
            Ok(LaunchEnd::Exited(0)) => Ok(()),
            Ok(LaunchEnd::Exited(code)) => {
                Err(format!("`sky down {cluster} -y` exited with {code}"))
            }
            Ok(LaunchEnd::Interrupted) => Err(format!("`sky down {cluster} -y` was interrupted")),
            Err(err) => Err(format!("cannot run `{}`: {err}", self.program.display())),
        }
    }
}

/// Copies the directory `remote` (relative to the pod's home) of `cluster` into `local` (created
/// empty) through `ssh <cluster> tar`.
pub async fn fetch(cluster: &str, remote: &str, local: &Path) -> Result<(), String> {
    crate::fsutil::remove_any(local)
        .map_err(|e| format!("cannot clear `{}`: {e}", local.display()))?;
    std::fs::create_dir_all(local)
        .map_err(|e| format!("cannot create `{}`: {e}", local.display()))?;
    let archive = local.with_extension("tar");
    let file = std::fs::File::create(&archive)
        .map_err(|e| format!("cannot create `{}`: {e}", archive.display()))?;
    let remote_command = format!("tar -C {} -cf - .", super::task::sh_quote(remote));
    let output = Command::new("ssh")
        .args([cluster, remote_command.as_str()])
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Not `output()`: tokio's would pipe stdout instead of writing the archive file.
        .spawn()
        .map_err(|e| format!("cannot run `ssh`: {e}"))?
        .wait_with_output()
        .await
        .map_err(|e| format!("cannot run `ssh`: {e}"))?;
    if !output.status.success() {
        let _ = std::fs::remove_file(&archive);
        return Err(format!(
            "`ssh {cluster} '{remote_command}'` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let untar = Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(local)
        .output()
        .await
        .map_err(|e| format!("cannot run `tar`: {e}"))?;
    let _ = std::fs::remove_file(&archive);
    if !untar.status.success() {
        return Err(format!(
            "cannot unpack what `{cluster}` sent: {}",
            String::from_utf8_lossy(&untar.stderr).trim()
        ));
    }
    Ok(())
}
