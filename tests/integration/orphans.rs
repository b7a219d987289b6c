//! `kill -9` of Forge: the process groups it started (a service's grandchild holding the port, a
//! command's background child) are stopped by the next run before it starts anything.

use crate::support::{Workspace, alive, free_port};

fn pid(ws: &Workspace, file: &str) -> i32 {
    ws.read(file).trim().parse().expect("pid")
}

#[test]
fn the_next_run_stops_what_a_killed_forge_left_running() {
    let ws = Workspace::new();
    let port = free_port();
    ws.write(
        "pipeline.toml",
        &format!(
            r#"
[steps.server]
kind = "service"
url = "http://127.0.0.1:{port}"
run = "python3 -m http.server {port} --bind 127.0.0.1 & echo $! > server.grandchild; wait"
ready = {{ http = "{{{{ url }}}}/", timeout = "30s" }}
stop_grace = "2s"

[steps.user]
kind = "command"
needs = ["server"]
outputs = ["user.txt"]
run = "touch user.started; [ -f go ] || sleep 300; curl -sf {{{{ steps.server.url }}}}/ > {{{{ outputs[0] }}}}"

[steps.worker]
kind = "command"
outputs = ["worker.txt"]
run = "sleep 300 & echo $! > worker.grandchild; touch worker.started; [ -f go ] || sleep 300; touch {{{{ outputs[0] }}}}"
"#
        ),
    );
    let mut forge = ws.spawn_forge(&["run", "pipeline.toml", "--jobs", "4"]);
    ws.wait_for("user.started");
    ws.wait_for("worker.started");
    forge.kill().expect("kill -9");
    forge.wait().expect("reap forge");
    let left = [pid(&ws, "server.grandchild"), pid(&ws, "worker.grandchild")];
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        left.iter().all(|&p| alive(p)),
        "the scenario needs grandchildren that outlive a killed Forge"
    );
    assert!(ws.exists(".forge/processes"));

    ws.write("go", "");
    let run = ws.forge(&["run", "pipeline.toml", "--jobs", "4"]);
    run.success();
    assert!(
        run.stderr()
            .contains("that an interrupted run left running"),
        "{}",
        run.stderr()
    );
    for p in left {
        assert!(!alive(p), "process {p} outlived the next run's start");
    }
    assert!(ws.exists("user.txt") && ws.exists("worker.txt"));
    let records = std::fs::read_dir(ws.path().join(".forge/processes"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(
        records, 0,
        "every group of the finished run was removed from the record"
    );
}

#[test]
fn clean_stops_what_a_killed_forge_left_running_before_dropping_the_records() {
    let ws = Workspace::new();
    ws.write(
        "pipeline.toml",
        "[steps.a]\nkind = \"command\"\noutputs = [\"out.txt\"]\nrun = \"sleep 300 & echo $! > child.pid; touch started; wait\"\n",
    );
    let mut forge = ws.spawn_forge(&["run", "pipeline.toml"]);
    ws.wait_for("started");
    forge.kill().expect("kill -9");
    forge.wait().expect("reap forge");
    let child = pid(&ws, "child.pid");
    assert!(alive(child));
    let run = ws.forge(&["clean", "pipeline.toml", "--all"]);
    run.success();
    assert!(!alive(child), "{}", run.stderr());
    assert!(!ws.exists(".forge/processes"));
}

#[test]
fn a_second_interrupt_cuts_the_stop_grace_short() {
    let ws = Workspace::new();
    ws.write(
        "pipeline.toml",
        r#"
[steps.stubborn]
kind = "command"
outputs = ["out.txt"]
run = "trap '' TERM; touch started; sleep 120 & echo $! > child.pid; wait; wait"
stop_grace = "90s"
"#,
    );
    let mut forge = ws.spawn_forge(&["run", "pipeline.toml"]);
    ws.wait_for("started");
    ws.wait_for("child.pid");
    let interrupt = || {
        // SAFETY: signalling the child we spawned.
        unsafe { libc::kill(forge.id() as i32, libc::SIGINT) };
    };
    interrupt();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let second = std::time::Instant::now();
    interrupt();
    let status = forge.wait().unwrap();
    assert!(
        second.elapsed() < std::time::Duration::from_secs(20),
        "Forge waited {:?} after the second interrupt",
        second.elapsed()
    );
    assert_eq!(status.code(), Some(130));
    assert!(!alive(pid(&ws, "child.pid")));
}
