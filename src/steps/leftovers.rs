//! Process groups a run started, written down under `.forge/processes/` while they live, so the
//! next `forge run` can stop what a Forge killed with `kill -9` left behind (a service's
//! grandchildren holding its port, a command's background children) before it starts anything.
//!
//! A record is `<pgid>.json`, written when the group starts and removed when Forge has stopped it.
//! A group is only signalled when it is still the one Forge started: its leader has the recorded
//! start time, or one of its members carries this workspace's `FORGE_WORKSPACE` in its
//! environment (Linux `/proc`; elsewhere records are only cleared, never acted on).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The directory of records, under a workspace's `.forge/`.
pub fn records_dir(workspace: &Path) -> PathBuf {
    workspace.join(".forge").join("processes")
}

/// One recorded process group.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    /// The process group id (the leader's pid).
    pgid: i32,
    /// The leader's start time in clock ticks since boot (`/proc/<pid>/stat` field 22).
    started: Option<u64>,
    /// The workspace (also in every member's `FORGE_WORKSPACE`).
    workspace: PathBuf,
    /// What it is, for the message (`step `serve``, `lm-eval of step `eval-awq``).
    what: String,
    /// SIGTERM-to-SIGKILL grace.
    grace_ms: u64,
}

/// A record that lives as long as the group it names; dropping it removes the file.
#[derive(Debug)]
pub struct Record {
    path: PathBuf,
}

impl Drop for Record {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Writes down a group Forge just started. A record that cannot be written costs only the
/// clean-up after a `kill -9`, so the failure is returned for the caller to ignore or report.
pub fn record(workspace: &Path, pgid: i32, what: &str, grace: Duration) -> std::io::Result<Record> {
    let entry = Entry {
        pgid,
        started: start_time(pgid),
        workspace: workspace.to_path_buf(),
        what: what.to_string(),
        grace_ms: u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
    };
    let path = records_dir(workspace).join(format!("{pgid}.json"));
    let bytes = serde_json::to_vec(&entry).map_err(std::io::Error::other)?;
    crate::fsutil::write_atomic(&path, &bytes)?;
    Ok(Record { path })
}

/// Stops every recorded group that is still alive and still Forge's, then clears the records.
/// Returns one line per group stopped, for the user.
pub async fn stop_recorded(workspace: &Path) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(records_dir(workspace)) else {
        return Vec::new();
    };
    let mut stopped = Vec::new();
    for path in dir.filter_map(Result::ok).map(|e| e.path()) {
        let entry = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Entry>(&b).ok());
        if let Some(entry) = entry
            && owned(&entry)
        {
            super::process::reap_leftovers(entry.pgid, Duration::from_millis(entry.grace_ms)).await;
            stopped.push(format!(
                "stopped process group {} ({}) that an interrupted run left running",
                entry.pgid, entry.what
            ));
        }
        let _ = std::fs::remove_file(&path);
    }
    stopped
}

/// Kills (SIGKILL, no grace) every recorded group of this workspace that is still Forge's: what
/// a second Ctrl-C asks for while the first one's stop grace is running.
pub fn kill_now(workspace: &Path) {
    let Ok(dir) = std::fs::read_dir(records_dir(workspace)) else {
        return;
    };
    for path in dir.filter_map(Result::ok).map(|e| e.path()) {
        let entry = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Entry>(&b).ok());
        if let Some(entry) = entry
            && owned(&entry)
        {
            signal(entry.pgid, libc::SIGKILL);
        }
    }
}

/// Sends `sig` to the group; true when the group exists.
fn signal(pgid: i32, sig: i32) -> bool {
    // SAFETY: killpg only sends a signal (0: checks existence) to a group this workspace's
    // previous run started, checked by `owned`.
    unsafe { libc::killpg(pgid, sig) == 0 }
}

/// True when the recorded group still exists and is the one Forge started.
#[cfg(target_os = "linux")]
fn owned(entry: &Entry) -> bool {
    let marker = format!("FORGE_WORKSPACE={}", entry.workspace.display());
    members(entry.pgid).into_iter().any(|pid| {
        (pid == entry.pgid && entry.started.is_some() && start_time(pid) == entry.started)
            || environ_has(pid, marker.as_bytes())
    })
}

#[cfg(not(target_os = "linux"))]
fn owned(_entry: &Entry) -> bool {
    false
}

/// The pids whose process group is `pgid`.
#[cfg(target_os = "linux")]
fn members(pgid: i32) -> Vec<i32> {
    let Ok(proc) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    proc.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| stat_fields(pid).and_then(|f| f.get(2)?.parse().ok()) == Some(pgid))
        .collect()
}

#[cfg(target_os = "linux")]
fn environ_has(pid: i32, marker: &[u8]) -> bool {
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|env| env.split(|&b| b == 0).any(|var| var == marker))
        .unwrap_or(false)
}

/// The fields of `/proc/<pid>/stat` after the command name (state is index 0, pgrp index 2,
/// starttime index 19).
#[cfg(target_os = "linux")]
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces; the fields follow the last `)`.
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(String::from).collect())
}

#[cfg(target_os = "linux")]
fn start_time(pid: i32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

#[cfg(not(target_os = "linux"))]
fn start_time(_pid: i32) -> Option<u64> {
    None
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    #[test]
    fn a_live_group_is_recognized_by_its_leader_and_its_members() {
        let ws = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = i32::try_from(child.id()).unwrap();
        let record = record(ws.path(), pgid, "step `s`", Duration::from_secs(1)).unwrap();
        let entry: Entry = serde_json::from_slice(&std::fs::read(&record.path).unwrap()).unwrap();
        assert!(entry.started.is_some());
        assert!(owned(&entry));
        // A reused pgid (another start time) without the workspace marker is not ours.
        let stranger = Entry {
            started: entry.started.map(|s| s + 1),
            ..entry
        };
        assert!(!owned(&stranger));
        std::mem::forget(record); // as a killed Forge would leave it
        let lines = tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(stop_recorded(ws.path()));
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(child.wait().unwrap().code().is_none(), "killed by a signal");
        assert_eq!(
            std::fs::read_dir(records_dir(ws.path())).unwrap().count(),
            0
        );
    }
}
