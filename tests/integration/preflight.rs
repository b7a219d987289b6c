//! Preflight: stand-in `nvidia-smi` programs on PATH and an in-process stand-in hub and package
//! index on loopback; `forge preflight` and `forge run` against them.

use std::path::{Path, PathBuf};

use axum::Router;
use axum::extract::Path as UrlPath;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;

use crate::support::{Run, Workspace, forge_bin};

const GOOD_TOKEN: &str = "hf_stand_in_good_token_1234";
const NO_ACCESS_TOKEN: &str = "hf_stand_in_no_access_5678";

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("authorization")?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(String::from)
}

/// A stand-in hub (whoami, auth-check: `GOOD_TOKEN` reads every repo but `acme/private`,
/// `NO_ACCESS_TOKEN` none) and a package index at `/simple/`, on its own thread.
fn stand_in_hub() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let router =
                Router::new()
                    .route(
                        "/api/whoami-v2",
                        get(|headers: HeaderMap| async move {
                            match bearer(&headers).as_deref() {
                                Some(GOOD_TOKEN | NO_ACCESS_TOKEN) => {
                                    (StatusCode::OK, r#"{"name": "tester"}"#)
                                }
                                _ => (StatusCode::UNAUTHORIZED, r#"{"error": "Invalid token"}"#),
                            }
                        }),
                    )
                    .route(
                        "/api/models/{owner}/{name}/auth-check",
                        get(
                            |UrlPath((owner, name)): UrlPath<(String, String)>,
                             headers: HeaderMap| async move {
                                match bearer(&headers).as_deref() {
                                    None => StatusCode::UNAUTHORIZED,
                                    Some(GOOD_TOKEN) if owner == "acme" && name == "missing" => {
                                        StatusCode::NOT_FOUND
                                    }
                                    Some(GOOD_TOKEN) => StatusCode::OK,
                                    Some(_) => StatusCode::FORBIDDEN,
                                }
                            },
                        ),
                    )
                    .route("/simple/", get(|| async { "<html>index</html>" }));
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            axum::serve(listener, router).await.expect("serve");
        });
    });
    format!("http://{addr}")
}

/// A directory holding a stand-in `nvidia-smi` that prints what an RTX A5000 on a CUDA
/// `cuda` driver prints.
fn stand_in_nvidia_smi(dir: &Path, name: &str, memory_mib: u64, cuda: &str) -> PathBuf {
    let bin = dir.join("stand-in-bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let script = format!(
        "#!/bin/sh\nif [ -n \"$1\" ]; then echo '{name}, {memory_mib}, 550.54.15'; exit 0; fi\n\
         echo '| NVIDIA-SMI 550.54.15    Driver Version: 550.54.15    CUDA Version: {cuda}     |'\n"
    );
    write_executable(&bin.join("nvidia-smi"), &script);
    bin
}

/// A stand-in `nvidia-smi` as it fails on a machine without an NVIDIA driver.
fn failing_nvidia_smi(dir: &Path) -> PathBuf {
    let bin = dir.join("stand-in-bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let script = "#!/bin/sh\necho \"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\"\nexit 9\n";
    write_executable(&bin.join("nvidia-smi"), script);
    bin
}

fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn path_with(bin: &Path) -> String {
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Runs forge in `ws` with PATH, hub, index and token chosen by the test.
fn forge(ws: &Workspace, bin: &Path, hub: &str, token: Option<&str>, args: &[&str]) -> Run {
    forge_with(ws, bin, hub, token, &[], args)
}

fn forge_with(
    ws: &Workspace,
    bin: &Path,
    hub: &str,
    token: Option<&str>,
    envs: &[(&str, &str)],
    args: &[&str],
) -> Run {
    let mut command = std::process::Command::new(forge_bin());
    command
        .args(args)
        .current_dir(ws.path())
        .env("NO_COLOR", "1")
        .env("CI", "1")
        .env("PATH", path_with(bin))
        .env("HF_ENDPOINT", hub)
        .env("HOME", ws.path())
        .env_remove("HF_TOKEN")
        .env_remove("HF_HOME")
        .env_remove("HF_TOKEN_PATH")
        .env_remove("CUDA_VISIBLE_DEVICES")
        .env_remove("UV_DEFAULT_INDEX")
        .env_remove("UV_INDEX_URL")
        .env_remove("PIP_INDEX_URL");
    if let Some(token) = token {
        command.env("HF_TOKEN", token);
    }
    command.envs(envs.iter().copied());
    Run {
        output: command.output().expect("run forge"),
    }
}

fn paid_workspace(hub: &str) -> Workspace {
    let ws = Workspace::new();
    ws.write("pipeline.toml", "[params]\npython = \"python3\"\nlock = \"locks/serve.txt\"\n[steps.work]\nkind = \"command\"\noutputs = [\"{{ results }}/work.txt\"]\nrun = \"echo worked > {{ outputs[0] }}\"\n")
        .write("locks/serve.txt", &format!("#forge: python {}\nnvidia-cuda-runtime==13.0.96\n", local_python()))
        .write("locks/serve-cu12.txt", &format!("#forge: python {}\nnvidia-cuda-runtime-cu12==12.8.90\n", local_python()))
        .write("profiles/paid.toml", &format!(
            "[preflight]\ngpu = \"RTX A5000\"\ngpu_min_memory_gb = 24\npython = \"{{{{ params.python }}}}\"\n\
             locks = [\"{{{{ params.lock }}}}\"]\ngpu_locks = [\"{{{{ params.lock }}}}\"]\nmin_free_disk_gb = 0.001\n\
             registry = \"{hub}/simple/\"\ngated_repos = [\"meta-llama/Llama-3.1-8B-Instruct\"]\n"
        ));
    ws
}

/// `X.Y` of the `python3` the tests run with (the locks must name it to pass).
fn local_python() -> String {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        .output()
        .expect("python3");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_matching_machine_passes_and_the_table_names_every_check() {
    let hub = stand_in_hub();
    let ws = paid_workspace(&hub);
    let bin = stand_in_nvidia_smi(ws.path(), "NVIDIA RTX A5000", 24564, "13.0");
    let run = forge(
        &ws,
        &bin,
        &hub,
        Some(GOOD_TOKEN),
        &["preflight", "pipeline.toml", "--profile", "paid", "--json"],
    );
    run.success();
    let report: serde_json::Value = serde_json::from_str(&run.stdout()).expect("json");
    assert_eq!(report["passed"], true, "{report:#}");
    let checks: Vec<&str> = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| c["check"].as_str().unwrap_or_default())
        .collect();
    for check in [
        "CPU instruction set",
        "GPU",
        "GPU memory",
        "CUDA for `locks/serve.txt`",
        "free disk",
        "Python (`python3`)",
        "package registry",
        "hub token",
        "gated `meta-llama/Llama-3.1-8B-Instruct`",
    ] {
        assert!(checks.contains(&check), "{check} missing from {checks:?}");
    }
    assert!(!run.stdout().contains(GOOD_TOKEN) && !run.stderr().contains(GOOD_TOKEN));
}

#[test]
fn a_cuda_12_driver_and_a_token_without_access_fail_with_what_to_do() {
    let hub = stand_in_hub();
    let ws = paid_workspace(&hub);
    let bin = stand_in_nvidia_smi(ws.path(), "NVIDIA RTX A5000", 24564, "12.4");
    let run = forge(
        &ws,
        &bin,
        &hub,
        Some(NO_ACCESS_TOKEN),
        &["preflight", "pipeline.toml", "--profile", "paid"],
    );
    assert_eq!(run.code(), 2, "{}", run.stdout());
    let table = run.stdout();
    assert!(
        table.contains("set `lock = \"locks/serve-cu12.txt\"` in the profile"),
        "{table}"
    );
    assert!(
        table.contains("HTTP 403: the token's account has no access"),
        "{table}"
    );
    assert!(
        table.contains(&format!(
            "accept the license at {hub}/meta-llama/Llama-3.1-8B-Instruct"
        )),
        "{table}"
    );
    assert!(!table.contains(NO_ACCESS_TOKEN) && !run.stderr().contains(NO_ACCESS_TOKEN));
    let switched = forge(
        &ws,
        &bin,
        &hub,
        Some(GOOD_TOKEN),
        &[
            "preflight",
            "pipeline.toml",
            "--profile",
            "paid",
            "--set",
            "lock=locks/serve-cu12.txt",
        ],
    );
    assert_eq!(switched.code(), 0, "{}", switched.stdout());
    assert!(
        switched.stdout().contains("WARN"),
        "12.4 < 12.8: minor-version compatibility\n{}",
        switched.stdout()
    );
}

#[test]
fn a_run_stops_at_preflight_and_a_run_with_nothing_to_do_needs_none() {
    let hub = stand_in_hub();
    let ws = paid_workspace(&hub);
    let good = stand_in_nvidia_smi(ws.path(), "NVIDIA RTX A5000", 24564, "13.0");
    forge(
        &ws,
        &good,
        &hub,
        Some(GOOD_TOKEN),
        &["run", "pipeline.toml", "--profile", "paid"],
    )
    .success();
    assert_eq!(ws.read("results/paid/work.txt"), "worked\n");
    let cpu_box = failing_nvidia_smi(ws.path());
    let noop = forge(
        &ws,
        &cpu_box,
        &hub,
        None,
        &["run", "pipeline.toml", "--profile", "paid"],
    );
    noop.success();
    assert!(!noop.stderr().contains("preflight"), "{}", noop.stderr());
    let refused = forge(
        &ws,
        &cpu_box,
        &hub,
        None,
        &[
            "run",
            "pipeline.toml",
            "--profile",
            "paid",
            "--force",
            "work",
        ],
    );
    assert_eq!(refused.code(), 2, "{}", refused.stderr());
    let stderr = refused.stderr();
    assert!(
        stderr.contains("preflight failed for profile `paid`: nothing was run"),
        "{stderr}"
    );
    assert!(
        stderr.contains("couldn't communicate with the NVIDIA driver"),
        "{stderr}"
    );
    assert!(stderr.contains("hub token"), "{stderr}");
}

#[test]
fn unknown_and_invalid_preflight_keys_point_at_the_profile() {
    let ws = Workspace::new();
    ws.write("pipeline.toml", "[steps.a]\nkind = \"command\"\nrun = \"true\"\n")
        .write("profiles/typo.toml", "[preflight]\ngpu_name = \"RTX A5000\"\n")
        .write("profiles/bad.toml", "[preflight]\ngpu_min_memory_gb = -4\ngated_repos = [\"not a repo\"]\nregistry = \"pypi.org\"\n");
    let typo = ws.forge(&["preflight", "pipeline.toml", "--profile", "typo"]);
    assert_eq!(typo.code(), 2);
    insta::assert_snapshot!("preflight_unknown_key", typo.stderr());
    let bad = ws.forge(&["preflight", "pipeline.toml", "--profile", "bad"]);
    assert_eq!(bad.code(), 2);
    insta::assert_snapshot!("preflight_invalid_values", bad.stderr());
}

/// The paid profile as shipped: on a machine without a usable GPU, `forge run --skip-gate` in a
/// fresh copy of the repository stops at preflight having built nothing.
#[test]
fn the_a5000_run_in_a_fresh_clone_fails_at_preflight_having_built_nothing() {
    let ws = Workspace::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in [
        "pipelines",
        "profiles",
        "constraints",
        "scripts",
        "recipes",
        "templates",
        "pricing",
        "data",
    ] {
        copy_tree(&root.join(dir), &ws.path().join(dir));
    }
    let cpu_box = failing_nvidia_smi(ws.path());
    let started = std::time::Instant::now();
    let unreachable = "http://127.0.0.1:1";
    let index = [("UV_DEFAULT_INDEX", "http://127.0.0.1:1/simple/")];
    let args = [
        "run",
        "pipelines/forge.toml",
        "--profile",
        "a5000",
        "--skip-gate",
    ];
    let run = forge_with(&ws, &cpu_box, unreachable, None, &index, &args);
    eprintln!(
        "forge run --profile a5000 stopped after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(run.code(), 2, "{}", run.stderr());
    let stderr = run.stderr();
    assert!(
        stderr.contains("preflight failed for profile `a5000`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("run this profile on a machine with an NVIDIA `RTX A5000`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("gated `meta-llama/Llama-3.1-8B-Instruct`"),
        "{stderr}"
    );
    assert!(!ws.exists(".forge/envs"), "no environment was built");
    assert!(
        !ws.exists("results/a5000"),
        "no result, lock or gate record was written"
    );
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from)
        .expect("read_dir")
        .map(|e| e.expect("entry"))
    {
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}
