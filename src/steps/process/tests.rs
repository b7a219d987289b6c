//! The process layer against real short-lived processes (`sh`, `sleep`): groups, stops,
//! timeouts, environment policies, records and tails.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::*;

fn shell(script: &str, dir: &Path, grace: Duration) -> Spec {
    Spec::shell(
        script,
        dir,
        Environment::cleared(BTreeMap::new()),
        &dir.join("logs").join("p.log"),
        grace,
    )
}

/// True while `pid` runs (a zombie waiting to be reaped does not count).
fn running(pid: i32) -> bool {
    let state = if cfg!(target_os = "linux") {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| Some(stat[stat.rfind(')')? + 1..].trim_start().to_string()))
    } else {
        std::process::Command::new("ps")
            .args(["-o", "stat=", "-p", &pid.to_string()])
            .output()
            .ok()
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
            .filter(|state| !state.is_empty())
    };
    state.is_some_and(|state| !state.starts_with('Z'))
}

/// Whether `pid` stops running within 30 s (a killed process can take a moment to be reaped on a
/// loaded machine; the bound only ends a test that would otherwise hang).
async fn stops(pid: i32) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if !running(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Waits (up to 60 s) for `path` to hold a line, which the script writes once it is set up.
async fn read_when_written(path: &Path) -> String {
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return text.trim().to_string();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{path:?} never written"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn cancel_stops_the_whole_group_grandchildren_included() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("grandchild.pid");
    let script = format!(
        "sh -c 'sleep 30 & echo $! > {}; wait' & wait",
        marker.display()
    );
    let spec = shell(&script, dir.path(), Duration::from_secs(5));
    let mut group = spawn(&spec).unwrap();
    let grandchild: i32 = read_when_written(&marker).await.parse().unwrap();
    assert!(running(grandchild));
    let cancel = CancellationToken::new();
    cancel.cancel();
    let ended = wait(&mut group, spec.grace, &cancel, None).await.unwrap();
    assert!(matches!(ended, Ended::Cancelled), "{ended:?}");
    assert!(
        stops(grandchild).await,
        "the grandchild survived the group stop"
    );
}

#[tokio::test]
async fn a_leader_that_exits_leaves_no_background_children() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("child.pid");
    let script = format!("sleep 30 & echo $! > {}; exit 0", marker.display());
    let spec = shell(&script, dir.path(), Duration::from_secs(5));
    let ended = run(&spec, &CancellationToken::new(), None).await.unwrap();
    assert!(
        matches!(ended, Ended::Exited(s) if s.success()),
        "{ended:?}"
    );
    let child: i32 = read_when_written(&marker).await.parse().unwrap();
    assert!(
        stops(child).await,
        "the background `sleep` survived its leader"
    );
}

#[tokio::test]
async fn the_deadline_stops_the_group_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let spec = shell("sleep 300", dir.path(), Duration::from_secs(120));
    let started = Instant::now();
    let deadline = deadline_after(Some(Duration::from_millis(200)));
    let ended = run(&spec, &CancellationToken::new(), deadline)
        .await
        .unwrap();
    assert!(matches!(ended, Ended::TimedOut), "{ended:?}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(200),
        "stopped early: {took:?}"
    );
    // `sleep` dies of SIGTERM at once: the 120 s grace (and SIGKILL after it) never comes.
    assert!(
        took < Duration::from_secs(100),
        "waited for the grace: {took:?}"
    );
    assert_eq!(
        deadline_after(Some(Duration::MAX)),
        None,
        "no deadline, no panic"
    );
}

#[tokio::test]
async fn a_group_that_handles_sigterm_exits_within_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let script = format!(
        "trap 'echo cleaned up; exit 7' TERM; echo > {}; sleep 30 & wait",
        ready.display()
    );
    let spec = shell(&script, dir.path(), Duration::from_secs(120));
    let mut group = spawn(&spec).unwrap();
    read_when_written(&ready).await;
    // Exit code 7 is the trap's: a SIGKILL after the grace would leave no code.
    let status = terminate(&mut group, spec.grace).await.unwrap();
    assert_eq!(status.code(), Some(7), "the trap ran: {status:?}");
    assert_eq!(tail(&spec.log, 1), ["cleaned up"]);
}

#[tokio::test]
async fn a_group_that_ignores_sigterm_is_killed_after_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    // An ignored signal stays ignored across `exec`: the `sleep` ignores SIGTERM too.
    let script = format!(
        "trap '' TERM; sleep 30 & echo $! > {}; wait",
        ready.display()
    );
    let grace = Duration::from_millis(500);
    let spec = shell(&script, dir.path(), grace);
    let mut group = spawn(&spec).unwrap();
    let sleep: i32 = read_when_written(&ready).await.parse().unwrap();
    let started = Instant::now();
    let status = terminate(&mut group, grace).await.unwrap();
    assert!(
        started.elapsed() >= grace,
        "SIGKILL came before the grace ended"
    );
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    // Not `group_alive`: a killed member may stay a zombie until init reaps it.
    assert!(stops(sleep).await, "the ignoring `sleep` survived");
}

/// `CARGO_PKG_NAME` is in this test's environment (cargo sets it) and not in [`BASE_ENV`].
#[tokio::test]
async fn cleared_keeps_only_the_base_set_and_inherited_keeps_everything() {
    assert!(
        std::env::var_os("CARGO_PKG_NAME").is_some(),
        "run under cargo"
    );
    let dir = tempfile::tempdir().unwrap();
    let set = BTreeMap::from([
        ("FORGE_SET".to_string(), "yes".to_string()),
        ("HOME".to_string(), "/overridden".to_string()),
    ]);
    let env_of = |environment: Environment, name: &str| {
        let log = dir.path().join(format!("{name}.log"));
        let spec = Spec {
            argv: vec!["env".into()],
            dir: dir.path().to_path_buf(),
            env: environment,
            log: log.clone(),
            record: None,
            grace: Duration::from_secs(1),
        };
        async move {
            let ended = run(&spec, &CancellationToken::new(), None).await.unwrap();
            assert!(
                matches!(ended, Ended::Exited(s) if s.success()),
                "{ended:?}"
            );
            std::fs::read_to_string(&log).unwrap()
        }
    };
    let cleared = env_of(Environment::cleared(set.clone()), "cleared").await;
    let names: Vec<&str> = cleared
        .lines()
        .filter_map(|line| line.split_once('=').map(|(name, _)| name))
        .collect();
    for name in &names {
        assert!(
            BASE_ENV.contains(name) || set.contains_key(*name),
            "`{name}` leaked through the cleared environment:\n{cleared}"
        );
    }
    assert!(cleared.lines().any(|l| l == "FORGE_SET=yes"), "{cleared}");
    assert!(
        cleared.lines().any(|l| l == "HOME=/overridden"),
        "set wins: {cleared}"
    );
    if let Ok(path) = std::env::var("PATH") {
        assert!(
            cleared.lines().any(|l| l == format!("PATH={path}")),
            "{cleared}"
        );
    }
    let inherited = env_of(Environment::inherited(set), "inherited").await;
    let package = std::env::var("CARGO_PKG_NAME").unwrap();
    assert!(
        inherited
            .lines()
            .any(|l| l == format!("CARGO_PKG_NAME={package}")),
        "{inherited}"
    );
    assert!(
        inherited.lines().any(|l| l == "HOME=/overridden"),
        "set wins: {inherited}"
    );
}

#[tokio::test]
async fn a_recorded_group_is_written_down_while_it_lives() {
    let dir = tempfile::tempdir().unwrap();
    let spec =
        shell("sleep 30", dir.path(), Duration::from_secs(5)).recorded(dir.path(), "step `s`");
    let mut group = spawn(&spec).unwrap();
    let record =
        crate::steps::leftovers::records_dir(dir.path()).join(format!("{}.json", group.pgid));
    assert!(record.is_file(), "no record at {record:?}");
    let text = std::fs::read_to_string(&record).unwrap();
    assert!(text.contains("step `s`"), "{text}");
    terminate(&mut group, spec.grace).await;
    drop(group);
    assert!(!record.exists(), "the record outlived its group");
}

#[tokio::test]
async fn a_missing_program_or_an_empty_command_fails_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = shell("true", dir.path(), Duration::from_secs(1));
    spec.argv = vec!["/nonexistent/program".into()];
    let error = run(&spec, &CancellationToken::new(), None)
        .await
        .unwrap_err();
    assert!(matches!(error, RunError::Spawn(_)), "{error:?}");
    spec.argv.clear();
    let error = run(&spec, &CancellationToken::new(), None)
        .await
        .unwrap_err();
    assert!(matches!(error, RunError::Spawn(_)), "{error:?}");
}

#[test]
fn tail_keeps_the_last_lines_as_a_person_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("step.log");
    let mut text = String::from("before the offset\n");
    let offset = text.len() as u64;
    for i in 1..=30 {
        text.push_str(&format!("line {i}\n"));
    }
    text.push_str("\n  \n10%\r50%\r100%\n");
    text.push_str(&"x".repeat(500));
    std::fs::write(&log, &text).unwrap();
    let last = tail(&log, 3);
    assert_eq!(
        last[..2],
        ["line 30", "100%"],
        "blank lines out, last redraw kept"
    );
    assert_eq!(
        last[2].chars().count(),
        402,
        "cut at 400 characters and marked"
    );
    assert!(last[2].ends_with(" …"));
    assert_eq!(tail(&log, 100).len(), 33);
    assert_eq!(tail_from(&log, offset, 100).unwrap().len(), 32);
    assert_eq!(tail_from(&log, offset, 100).unwrap()[0], "line 1");
    assert_eq!(tail_from(&log, u64::MAX, 5).unwrap(), Vec::<String>::new());
    assert!(tail(&dir.path().join("missing.log"), 5).is_empty());
    assert!(tail_from(&dir.path().join("missing.log"), 0, 5).is_err());
}

#[tokio::test]
async fn dropping_a_running_group_kills_every_member() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("child.pid");
    let script = format!("sleep 30 & echo $! > {}; wait", marker.display());
    let group = spawn(&shell(&script, dir.path(), Duration::from_secs(5))).unwrap();
    let child: i32 = read_when_written(&marker).await.parse().unwrap();
    let pgid = group.pgid;
    drop(group);
    assert!(
        stops(child).await,
        "the background `sleep` survived the drop"
    );
    assert!(stops(pgid).await, "the leader survived the drop");
}
