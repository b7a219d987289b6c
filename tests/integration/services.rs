//! Services: started lazily, stopped after their last user, killed with their children on
//! failure and on SIGINT; exclusive resources.

use std::time::{Duration, Instant};

use crate::support::{Workspace, alive, free_port, run_json};

/// A service that spawns a grandchild (like vLLM's engine process) and records both pids.
fn service(name: &str, port: u16, resources: &str) -> String {
    format!(
        r#"
[steps.{name}]
kind = "service"
url = "http://127.0.0.1:{port}"
resources = [{resources}]
run = "sleep 300 & echo $! > {name}.grandchild; echo $$ > {name}.pid; echo start >> {name}.starts; exec python3 -m http.server {port} --bind 127.0.0.1"
ready = {{ http = "{{{{ url }}}}/", timeout = "30s" }}
stop_grace = "5s"
"#
    )
}

fn pid(ws: &Workspace, file: &str) -> i32 {
    ws.read(file).trim().parse().expect("pid")
}

#[test]
fn service_starts_lazily_and_stops_with_its_children_after_the_last_user() {
    let ws = Workspace::new();
    let port = free_port();
    let manifest = format!(
        r#"{}
[steps.use1]
kind = "command"
needs = ["server"]
outputs = ["out/1.txt"]
run = "curl -sf {{{{ steps.server.url }}}}/ > /dev/null && echo ok > {{{{ outputs[0] }}}}"

[steps.use2]
kind = "command"
needs = ["server", "use1"]
outputs = ["out/2.txt"]
run = "curl -sf {{{{ steps.server.url }}}}/ > /dev/null && echo ok > {{{{ outputs[0] }}}}"

[steps.after]
kind = "command"
needs = ["use2"]
outputs = ["out/after.txt"]
run = "if curl -s {{{{ steps.server.url }}}}/ > /dev/null 2>&1; then echo up; else echo down; fi > {{{{ outputs[0] }}}}"
"#,
        service("server", port, "")
    );
    ws.write(
        "pipeline.toml",
        &manifest.replace(
            "{{ steps.server.url }}",
            &format!("http://127.0.0.1:{port}"),
        ),
    );
    let (code, statuses, stderr) = run_json(&ws, &["pipeline.toml"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(statuses["server"], "started");
    assert_eq!(
        ws.read("out/after.txt"),
        "down\n",
        "the service stopped after its last user"
    );
    assert!(
        !alive(pid(&ws, "server.pid")) && !alive(pid(&ws, "server.grandchild")),
        "no orphan survives"
    );

    let (code, statuses, _) = run_json(&ws, &["pipeline.toml"]);
    assert_eq!(code, 0);
    assert_eq!(
        statuses["server"], "idle",
        "nothing to run: the service does not start"
    );
    assert_eq!(ws.read("server.starts").lines().count(), 1);
}

#[test]
fn a_failing_user_stops_the_service_and_its_children() {
    let ws = Workspace::new();
    let port = free_port();
    ws.write(
        "pipeline.toml",
        &format!(
            r#"{}
[steps.user]
kind = "command"
needs = ["server"]
outputs = ["out.txt"]
run = "exit 1"
"#,
            service("server", port, "")
        ),
    );
    let (code, statuses, _) = run_json(&ws, &["pipeline.toml"]);
    assert_eq!(code, 1);
    assert_eq!(statuses["user"], "failed");
    assert!(!alive(pid(&ws, "server.pid")) && !alive(pid(&ws, "server.grandchild")));
}

#[test]
fn sigint_stops_steps_and_services_with_their_children() {
    let ws = Workspace::new();
    let port = free_port();
    ws.write(
        "pipeline.toml",
        &format!(
            r#"{}
[steps.user]
kind = "command"
needs = ["server"]
outputs = ["out.txt"]
run = "sleep 200 & echo $! > user.grandchild; touch user.started; wait"
"#,
            service("server", port, "")
        ),
    );
    let mut child = ws.spawn_forge(&["run", "pipeline.toml"]);
    ws.wait_for("user.started");
    // SAFETY: signalling the child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    for file in ["server.pid", "server.grandchild", "user.grandchild"] {
        assert!(!alive(pid(&ws, file)), "{file} survived Ctrl-C");
    }
    assert!(!ws.exists("out.txt"));
}

#[test]
fn a_service_that_dies_fails_its_running_users_fast() {
    let ws = Workspace::new();
    ws.write(
        "pipeline.toml",
        r#"
[steps.server]
kind = "service"
run = "echo ready; sleep 3; echo 'engine crashed' >&2; exit 7"
ready = { log = "ready", timeout = "30s" }

[steps.user]
kind = "command"
needs = ["server"]
outputs = ["out.txt"]
run = "sleep 60"
"#,
    );
    let started = Instant::now();
    let (code, statuses, stderr) = run_json(&ws, &["pipeline.toml"]);
    assert_eq!(code, 1);
    assert_eq!(statuses["user"], "failed");
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "the user did not wait for its own end"
    );
    assert!(
        stderr.contains("service `server` exited (code 7)") && stderr.contains("engine crashed"),
        "{stderr}"
    );
}

#[test]
fn readiness_timeout_and_busy_port_are_clear_errors() {
    let ws = Workspace::new();
    let port = free_port();
    ws.write(
        "pipeline.toml",
        &format!(
            r#"
[steps.server]
kind = "service"
run = "echo 'loading weights'; sleep 60"
ready = {{ tcp = "127.0.0.1:{port}", timeout = "1s" }}

[steps.user]
kind = "command"
needs = ["server"]
outputs = ["out.txt"]
run = "true"
"#
        ),
    );
    let (code, statuses, stderr) = run_json(&ws, &["pipeline.toml"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("was not ready after 1s") && stderr.contains("loading weights"),
        "{stderr}"
    );
    assert_eq!(
        statuses["server"], "failed",
        "a service that failed to start is not idle"
    );

    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let (code, _, stderr) = run_json(&ws, &["pipeline.toml"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!("something already listens on `127.0.0.1:{port}`")),
        "{stderr}"
    );
    drop(listener);
}

#[test]
fn services_sharing_an_exclusive_resource_never_overlap() {
    let ws = Workspace::new();
    let (p1, p2) = (free_port(), free_port());
    let user = |name: &str, server: &str| {
        format!(
            r#"
[steps.{name}]
kind = "command"
needs = ["{server}"]
outputs = ["out/{name}.txt"]
run = "echo start {server} $(date +%s%N) >> timeline; sleep 1; echo end {server} $(date +%s%N) >> timeline; touch {{{{ outputs[0] }}}}"
"#
        )
    };
    ws.write(
        "pipeline.toml",
        &format!(
            "{}{}{}{}{}{}",
            service("gpu_a", p1, "\"gpu\""),
            service("gpu_b", p2, "\"gpu\""),
            user("a1", "gpu_a"),
            user("a2", "gpu_a"),
            user("b1", "gpu_b"),
            user("b2", "gpu_b")
        ),
    );
    let (code, _, stderr) = run_json(&ws, &["pipeline.toml", "--jobs", "4"]);
    assert_eq!(code, 0, "{stderr}");
    // Users of one server may overlap each other, never users of the other server.
    let mut running: Vec<String> = Vec::new();
    for line in ws.read("timeline").lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        if parts[0] == "start" {
            assert!(
                running.iter().all(|s| s == parts[1]),
                "two GPU services at once: {}",
                ws.read("timeline")
            );
            running.push(parts[1].to_string());
        } else {
            let at = running.iter().position(|s| s == parts[1]).unwrap();
            running.remove(at);
        }
    }
}

/// A server that is up but fails every request, logging the exception first (as vLLM's engine
/// does when a kernel is missing), then dies on the second request.
const FAILING_SERVER: &str = r#"
import http.server, os, sys, traceback
class Handler(http.server.BaseHTTPRequestHandler):
    calls = 0
    def do_GET(self):
        if self.path == "/ready":
            self.send_response(200); self.end_headers(); return
        Handler.calls += 1
        try:
            raise AttributeError("'_OpNamespace' '_C' object has no attribute 'cpu_gemm_wna16'")
        except AttributeError:
            traceback.print_exc()
        print("RuntimeError: EngineCore encountered an issue. See stack trace above.", file=sys.stderr, flush=True)
        self.send_response(500); self.end_headers()
        if Handler.calls == 2:
            os._exit(3)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"#;

#[test]
fn a_failing_step_names_the_root_cause_from_its_server_log() {
    let ws = Workspace::new();
    let port = free_port();
    ws.write("server.py", FAILING_SERVER);
    ws.write(
        "pipeline.toml",
        &format!(
            r#"
[steps.server]
kind = "service"
url = "http://127.0.0.1:{port}"
run = "exec python3 server.py {port}"
ready = {{ http = "http://127.0.0.1:{port}/ready", timeout = "30s" }}

[steps.first]
kind = "command"
needs = ["server"]
outputs = ["out/first.txt"]
run = "curl -sf http://127.0.0.1:{port}/generate > {{{{ outputs[0] }}}}"
"#
        ),
    );
    let run = ws.forge(&["run", "pipeline.toml"]);
    assert_eq!(run.code(), 1);
    let stderr = run.stderr();
    let cause = "service `server` failed: AttributeError: '_OpNamespace' '_C' object has no attribute 'cpu_gemm_wna16'";
    let failed = stderr
        .lines()
        .find(|l| l.contains("first: failed:"))
        .unwrap_or_else(|| panic!("no failure line:\n{stderr}"));
    assert!(
        failed.contains(cause),
        "the step's failure leads with the server's first error:\n{stderr}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    let row = lines
        .iter()
        .position(|l| l.trim_start().starts_with("first") && l.contains("FAILED"))
        .unwrap_or_else(|| panic!("no summary row:\n{stderr}"));
    assert!(
        lines[row + 1].contains("service `server` failed: AttributeError"),
        "the summary names the service and its cause:\n{stderr}"
    );
}

#[test]
fn a_failure_ends_a_wait_for_a_resource() {
    let ws = Workspace::new();
    // `holder` takes `gpu` at once and keeps it for 4 s; `waiter` asks for it after `pre`, and
    // `broken` fails while `waiter` waits: the wait ends there, `holder` runs to its end.
    ws.write(
        "pipeline.toml",
        r#"
[steps.holder]
kind = "command"
resources = ["gpu"]
outputs = ["holder.txt"]
run = "sleep 4; touch {{ outputs[0] }}"

[steps.pre]
kind = "command"
outputs = ["pre.txt"]
run = "sleep 0.3; touch {{ outputs[0] }}"

[steps.waiter]
kind = "command"
needs = ["pre"]
resources = ["gpu"]
outputs = ["waiter.txt"]
run = "touch {{ outputs[0] }}"

[steps.broken]
kind = "command"
outputs = ["broken.txt"]
run = "sleep 1.5; exit 1"
"#,
    );
    let (code, statuses, stderr) = run_json(&ws, &["pipeline.toml", "--jobs", "4"]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(statuses["broken"], "failed");
    assert_eq!(statuses["holder"], "ran", "a running step finishes");
    assert_eq!(statuses["waiter"], "not-run", "{stderr}");
    assert!(!ws.exists("waiter.txt"));
}
