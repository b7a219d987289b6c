//! A small builder: a workspace in a tempdir, files written into it, `forge` run against it.

use std::path::{Path, PathBuf};
use std::process::Output;

pub struct Workspace {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Workspace {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        Self { _dir: dir, root }
    }

    /// A workspace in a directory called `name` inside a fresh tempdir (for awkward names).
    pub fn named(name: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join(name);
        std::fs::create_dir(&root).expect("mkdir");
        Self { _dir: dir, root }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    pub fn write(&self, relative: &str, content: &str) -> &Self {
        let path = self.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(path, content).expect("write");
        self
    }

    pub fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.path().join(relative))
            .unwrap_or_else(|e| panic!("read {relative}: {e}"))
    }

    pub fn exists(&self, relative: &str) -> bool {
        self.path().join(relative).exists()
    }

    /// Starts `forge <args>` in the workspace in the background (stderr discarded).
    pub fn spawn_forge(&self, args: &[&str]) -> std::process::Child {
        std::process::Command::new(forge_bin())
            .args(args)
            .current_dir(self.path())
            .env("CI", "1")
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn forge")
    }

    /// Waits up to 30 s for `relative` to exist; fails the test if it never does.
    #[track_caller]
    pub fn wait_for(&self, relative: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !self.exists(relative) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(self.exists(relative), "{relative} never appeared");
    }

    /// Runs `forge <args>` in the workspace.
    pub fn forge(&self, args: &[&str]) -> Run {
        let output = std::process::Command::new(forge_bin())
            .args(args)
            .current_dir(self.path())
            .env("NO_COLOR", "1")
            .env("CI", "1")
            .output()
            .expect("run forge");
        Run { output }
    }
}

pub fn forge_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_forge"))
}

pub struct Run {
    pub output: Output,
}

impl Run {
    pub fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    #[track_caller]
    pub fn success(&self) -> &Self {
        assert_eq!(
            self.code(),
            0,
            "forge failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
}

/// Parses `forge plan --json` into (id -> (action, reasons)).
pub fn plan(
    ws: &Workspace,
    args: &[&str],
) -> std::collections::BTreeMap<String, (String, Vec<String>)> {
    let mut all = vec!["plan"];
    all.extend_from_slice(args);
    all.push("--json");
    plan_steps(&ws.forge(&all))
}

/// (id -> (action, reasons)) from a finished `forge plan --json`.
pub fn plan_steps(run: &Run) -> std::collections::BTreeMap<String, (String, Vec<String>)> {
    run.success();
    let value: serde_json::Value = serde_json::from_str(&run.stdout()).expect("plan json");
    value["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            let reasons = s["reasons"]
                .as_array()
                .expect("reasons")
                .iter()
                .map(|r| r.as_str().unwrap_or_default().to_string())
                .collect();
            (
                s["id"].as_str().unwrap_or_default().to_string(),
                (
                    s["action"].as_str().unwrap_or_default().to_string(),
                    reasons,
                ),
            )
        })
        .collect()
}

/// Parses `forge run --json` into (id -> status).
pub fn run_json(
    ws: &Workspace,
    args: &[&str],
) -> (i32, std::collections::BTreeMap<String, String>, String) {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    all.push("--json");
    let run = ws.forge(&all);
    let value: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap_or_else(|e| {
        panic!(
            "run json: {e}\nstdout:{}\nstderr:{}",
            run.stdout(),
            run.stderr()
        )
    });
    let statuses = value["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap_or_default().to_string(),
                s["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    (run.code(), statuses, run.stderr())
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// True while a process with this pid exists (and is not a zombie we could not reap).
#[cfg(target_os = "linux")]
pub fn alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !stat.is_empty() && !stat.contains(") Z ")
}

/// True while a process with this pid exists (and is not a zombie we could not reap); macOS has
/// no `/proc`, `ps` prints the state.
#[cfg(not(target_os = "linux"))]
pub fn alive(pid: i32) -> bool {
    let state = std::process::Command::new("ps")
        .args(["-o", "stat=", "-p", &pid.to_string()])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_default();
    !state.is_empty() && !state.starts_with('Z')
}
