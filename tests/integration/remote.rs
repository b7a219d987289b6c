//! `forge run --remote` against a stand-in `sky` (and `ssh`): the "pod" is a directory in the
//! test's workspace where the stand-in runs the task's `run` script with the real `forge`. No
//! cloud is involved; what SkyPilot itself does is checked by `shipped_profiles_render_tasks_*`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{Workspace, forge_bin};

/// The stand-in `sky`: `launch` copies the task's workdir into `$FAKE_POD/<cluster>/sky_workdir`
/// and runs the task's `run` script there; `down` removes the pod. Every call is logged.
const FAKE_SKY: &str = r#"#!/bin/sh
echo "sky $*" >> "$FAKE_SKY_LOG"
cmd=$1; shift
case "$cmd" in
launch)
  name=; task=; secrets=
  while [ $# -gt 0 ]; do
    case "$1" in
      -c) name=$2; shift 2;;
      -y) shift;;
      --secret) secrets="$secrets $2"; shift 2;;
      *) task=$1; shift;;
    esac
  done
  mkdir -p "$FAKE_POD"
  cp "$task" "$FAKE_POD/task-$name.yaml"
  for s in $secrets; do echo "setup: $s is $(printenv "$s")"; done
  if [ -n "${FAKE_SKY_LAUNCH_FAIL:-}" ]; then
    echo "sky.exceptions.ResourcesUnavailableError: no offer under max_hourly_cost" >&2; exit 1
  fi
  if [ -n "${FAKE_SKY_HANG:-}" ]; then
    echo "provisioning"; touch "$FAKE_POD/hanging"; sleep 120 & echo $! > "$FAKE_POD/sleep.pid"; wait; exit 1
  fi
  workdir=$(sed -n 's/^workdir: "\(.*\)"$/\1/p' "$task")
  pod="$FAKE_POD/$name"; rm -rf "$pod"; mkdir -p "$pod"
  cp -R "$workdir" "$pod/sky_workdir"
  mkdir -p "$pod/sky_workdir/target/release"
  ln -s "$FORGE_BIN" "$pod/sky_workdir/target/release/forge"
  sed -n '/^run: |$/,$p' "$task" | tail -n +2 | sed 's/^  //' > "$pod/run.sh"
  (cd "$pod/sky_workdir" && HOME="$pod" sh "$pod/run.sh"); code=$?
  if [ -n "${FAKE_SKY_TAMPER:-}" ]; then echo tampered >> "$pod/sky_workdir/$FAKE_SKY_TAMPER"; fi
  exit $code;;
down)
  rm -rf "$FAKE_POD/$1"; exit 0;;
*)
  echo "stand-in sky: unknown command $cmd" >&2; exit 2;;
esac
"#;

/// The stand-in `ssh <cluster> <command>`: runs the command in the pod's home directory.
const FAKE_SSH: &str = r#"#!/bin/sh
host=$1; shift
[ -d "$FAKE_POD/$host" ] || { echo "ssh: Could not resolve hostname $host" >&2; exit 255; }
cd "$FAKE_POD/$host" && exec sh -c "$*"
"#;

const PIPELINE: &str = r#"[params]
size = 1
fail = 0
[steps.a]
kind = "command"
inputs = ["step.sh"]
outputs = ["{{ results }}/a.txt"]
run = "sh step.sh {{ params.size }} {{ params.fail }} > {{ outputs[0] }}"
"#;

const STEP: &str = r#"echo "size $1"
if [ "$2" = 1 ]; then echo "boom: CUDA out of memory" >&2; exit 3; fi
"#;

const PAID: &str = r#"requires = "rehearsal"
[params]
size = 100
[remote]
accelerators = "RTXA5000:1"
max_hourly_cost = 1.0
secrets = ["FORGE_TEST_TOKEN"]
"#;

const SECRET: &str = "s3cr3t-token-value";

fn executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn git(ws: &Workspace, args: &[&str]) {
    let status = Command::new("git")
        .args(args)
        .current_dir(ws.path())
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@t")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@t")
        .status()
        .expect("git");
    assert!(status.success(), "git {args:?}");
}

/// A committed repository with a rehearsal that passed, and the stand-ins under `fake/`.
fn repository() -> Workspace {
    let ws = Workspace::new();
    ws.write("pipeline.toml", PIPELINE)
        .write("step.sh", STEP)
        .write("Cargo.lock", "# the pod builds Forge from this\n")
        .write(".gitignore", "/.forge\n/results\n/fake\n/pods\n")
        .write("profiles/rehearsal.toml", "[params]\nsize = 1\n")
        .write("profiles/paid.toml", PAID)
        .write(
            "profiles/broken.toml",
            "extends = \"paid\"\n[params]\nfail = 1\n",
        )
        .write(
            "profiles/cheap.toml",
            "extends = \"paid\"\n[params]\nsize = 7\n",
        )
        .write("profiles/local.toml", "[params]\nsize = 2\n");
    std::fs::create_dir_all(ws.path().join("fake")).expect("mkdir");
    executable(&ws.path().join("fake/sky"), FAKE_SKY);
    executable(&ws.path().join("fake/ssh"), FAKE_SSH);
    git(&ws, &["init", "-q"]);
    git(&ws, &["add", "."]);
    git(&ws, &["commit", "-q", "-m", "pipeline"]);
    ws.forge(&["run", "pipeline.toml", "--profile", "rehearsal"])
        .success();
    ws
}

fn command(ws: &Workspace, args: &[&str]) -> Command {
    let fake = ws.path().join("fake");
    let path = format!(
        "{}:{}",
        fake.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new(forge_bin());
    command
        .args(args)
        .current_dir(ws.path())
        .env("NO_COLOR", "1")
        .env("CI", "1")
        .env("PATH", path)
        .env("FORGE_SKY", fake.join("sky"))
        .env("FAKE_POD", ws.path().join("pods"))
        .env("FAKE_SKY_LOG", ws.path().join("fake/calls.log"))
        .env("FORGE_BIN", forge_bin())
        .env("FORGE_TEST_TOKEN", SECRET);
    command
}

fn remote(ws: &Workspace, profile: &str, env: &[(&str, &str)]) -> (Output, String) {
    let mut command = command(
        ws,
        &["run", "pipeline.toml", "--profile", profile, "--remote"],
    );
    command.envs(env.iter().copied());
    let output = command.output().expect("run forge");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output, stderr)
}

fn calls(ws: &Workspace) -> String {
    std::fs::read_to_string(ws.path().join("fake/calls.log")).unwrap_or_default()
}

fn pod_task(ws: &Workspace, profile: &str) -> PathBuf {
    let dir = ws.path().join("pods");
    std::fs::read_dir(&dir)
        .expect("pods")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name().is_some_and(|n| {
                n.to_string_lossy()
                    .starts_with(&format!("task-forge-{profile}-"))
            })
        })
        .expect("the task that was launched")
}

#[test]
fn a_remote_run_lands_verified_results_tears_down_and_says_what_it_cost() {
    let ws = repository();
    let (output, stderr) = remote(&ws, "paid", &[]);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(ws.read("results/paid/a.txt"), "size 100\n");
    // What SkyPilot would upload: the commit, the rehearsal's record, and a `.skyignore` so
    // that `.gitignore` (which ignores `results/`) does not filter the upload.
    let workdir = ws.path().join(".forge/remote/paid/workdir");
    assert!(workdir.join("results/rehearsal/forge.lock").is_file());
    assert!(workdir.join(".skyignore").is_file());
    assert!(!workdir.join("fake").exists(), "only committed files");
    let log = calls(&ws);
    assert!(log.contains("sky launch -c forge-paid-"), "{log}");
    assert!(log.contains("--secret FORGE_TEST_TOKEN"), "{log}");
    assert!(log.contains("sky down forge-paid-"), "{log}");
    assert!(
        stderr.contains("1 output(s) match the pod's lock file"),
        "{stderr}"
    );
    assert!(
        stderr.contains("[paid] spent 0.00 h: at most $0.00 at `max_hourly_cost`"),
        "{stderr}"
    );
    let spend: serde_json::Value =
        serde_json::from_str(&ws.read("results/paid/remote.json")).expect("remote.json");
    assert_eq!(spend["ending"]["status"], "landed");
    assert_eq!(spend["torn_down"], true);
    // The secret's value never reaches the task file, the output or the results.
    let task = std::fs::read_to_string(pod_task(&ws, "paid")).expect("task");
    assert!(
        task.contains("secrets:\n  FORGE_TEST_TOKEN: null\n"),
        "{task}"
    );
    assert!(!task.contains(SECRET));
    assert!(
        stderr.contains("[paid] setup: FORGE_TEST_TOKEN is ***"),
        "{stderr}"
    );
    assert!(!stderr.contains(SECRET), "{stderr}");
    let remote_log = ws.read(".forge/logs/paid/remote.log");
    assert!(!remote_log.contains(SECRET));
    assert!(!ws.read("results/paid/forge.lock").contains(SECRET));
}

#[test]
fn a_launch_failure_tears_down_and_leaves_the_local_results_alone() {
    let ws = repository();
    ws.write("results/paid/a.txt", "from before\n");
    let (output, stderr) = remote(&ws, "paid", &[("FAKE_SKY_LAUNCH_FAIL", "1")]);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("ResourcesUnavailableError"), "{stderr}");
    assert!(stderr.contains("before the pipeline ran"), "{stderr}");
    assert!(calls(&ws).contains("sky down forge-paid-"));
    assert_eq!(ws.read("results/paid/a.txt"), "from before\n");
}

#[test]
fn a_step_that_fails_on_the_pod_shows_its_log_tail_and_lands_nothing() {
    let ws = repository();
    let (output, stderr) = remote(&ws, "broken", &[]);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("[broken] step `a` failed on the pod; the last lines of its log:"),
        "{stderr}"
    );
    assert!(stderr.contains("  | boom: CUDA out of memory"), "{stderr}");
    assert!(calls(&ws).contains("sky down forge-broken-"));
    assert!(!ws.exists("results/broken"));
}

#[test]
fn outputs_that_do_not_match_their_lock_file_never_land() {
    let ws = repository();
    ws.write("results/paid/a.txt", "from before\n");
    let (output, stderr) = remote(&ws, "paid", &[("FAKE_SKY_TAMPER", "results/paid/a.txt")]);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("1 output(s) do not match the lock file that came with them: `results/paid/a.txt` has other content"),
        "{stderr}"
    );
    assert!(calls(&ws).contains("sky down forge-paid-"));
    assert_eq!(ws.read("results/paid/a.txt"), "from before\n");
}

#[test]
fn ctrl_c_stops_the_launch_and_tears_the_cluster_down() {
    let ws = repository();
    let mut child = command(
        &ws,
        &["run", "pipeline.toml", "--profile", "paid", "--remote"],
    )
    .env("FAKE_SKY_HANG", "1")
    .stderr(std::process::Stdio::null())
    .spawn()
    .expect("spawn forge");
    ws.wait_for("pods/hanging");
    ws.wait_for("pods/sleep.pid");
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: signalling the child this test started.
    unsafe {
        libc::kill(pid, libc::SIGINT);
    }
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(130));
    assert!(
        calls(&ws).contains("sky down forge-paid-"),
        "{}",
        calls(&ws)
    );
    let sleeper: i32 = ws.read("pods/sleep.pid").trim().parse().expect("pid");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while crate::support::alive(sleeper) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        !crate::support::alive(sleeper),
        "the launch's process group was stopped"
    );
}

#[test]
fn nothing_is_rented_when_a_check_fails_first() {
    let ws = repository();
    let (output, stderr) = remote(&ws, "local", &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr.contains("profile `local` has no `[remote]` table"),
        "{stderr}"
    );

    ws.write("step.sh", "echo edited\n");
    let (output, stderr) = remote(&ws, "paid", &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr.contains(
            "requires a successful `rehearsal` run of this pipeline before anything is rented"
        ),
        "{stderr}"
    );

    ws.forge(&["run", "pipeline.toml", "--profile", "rehearsal"])
        .success();
    let (output, stderr) = remote(&ws, "paid", &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr.contains("the repository has uncommitted changes"),
        "{stderr}"
    );
    assert!(stderr.contains("M step.sh"), "{stderr}");
    assert!(
        calls(&ws).is_empty(),
        "nothing was launched: {}",
        calls(&ws)
    );
}

#[test]
fn several_profiles_launch_one_cluster_each_with_its_own_results() {
    let ws = repository();
    let output = command(
        &ws,
        &[
            "run",
            "pipeline.toml",
            "--profile",
            "paid,cheap",
            "--remote",
        ],
    )
    .output()
    .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(ws.read("results/paid/a.txt"), "size 100\n");
    assert_eq!(ws.read("results/cheap/a.txt"), "size 7\n");
    let log = calls(&ws);
    assert!(
        log.contains("sky launch -c forge-paid-") && log.contains("sky launch -c forge-cheap-"),
        "{log}"
    );
    assert!(
        log.contains("sky down forge-paid-") && log.contains("sky down forge-cheap-"),
        "{log}"
    );
    // No cost step in this pipeline: the comparison says so instead of inventing figures.
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("paid: no cost results"), "{stdout}");
}

#[test]
fn dry_run_writes_the_task_and_launches_nothing() {
    let ws = repository();
    let output = command(
        &ws,
        &[
            "run",
            "pipeline.toml",
            "--profile",
            "paid",
            "--remote",
            "--dry-run",
        ],
    )
    .output()
    .expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0));
    assert!(
        stdout.contains("  accelerators: \"RTXA5000:1\"\n"),
        "{stdout}"
    );
    assert!(stdout.contains("--profile paid --json"), "{stdout}");
    assert!(calls(&ws).is_empty());
}

/// Every shipped profile with a `[remote]` table renders a task; where SkyPilot's environment
/// is available (`FORGE_SKY_PYTHON`, set by CI), SkyPilot's own parser must accept each one.
#[test]
fn shipped_profiles_render_tasks_that_skypilot_parses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("tempdir");
    let request = forge::remote::prepare::Request {
        manifest: root.join("pipelines/forge.toml"),
        sets: Vec::new(),
        skip_gate: false,
    };
    let mut files = Vec::new();
    for profile in ["a5000", "l4", "a100", "h100"] {
        let (pipeline, remote) = forge::remote::prepare::load(&request, profile, false)
            .unwrap_or_else(|e| panic!("{profile}: {e}"));
        assert_eq!(
            pipeline.requires.as_deref(),
            Some("m1-rehearsal"),
            "{profile}"
        );
        assert!(
            remote.max_hourly_cost >= pipeline.params["gpu_hourly_usd"].as_f64().expect("price"),
            "{profile}: the cap is below the price"
        );
        let date = pipeline.params["gpu_price_date"].as_str().expect("date");
        assert!(
            jiff::civil::Date::strptime("%Y-%m-%d", date).is_ok(),
            "{profile}: {date}"
        );
        let spec = forge::remote::task::TaskSpec {
            name: forge::remote::prepare::cluster_name(profile, "0123456789"),
            workdir: root.to_path_buf(),
            workspace: ".".into(),
            manifest: "pipelines/forge.toml".into(),
            profile: pipeline.profile.clone(),
            sets: Vec::new(),
            skip_gate: false,
            commit: "0123456789".into(),
            remote,
        };
        let path = dir.path().join(format!("{profile}.yaml"));
        std::fs::write(&path, forge::remote::task::render(&spec)).expect("write");
        files.push(path);
    }
    let Some(python) = std::env::var_os("FORGE_SKY_PYTHON") else {
        eprintln!(
            "FORGE_SKY_PYTHON is not set: rendered {} tasks, SkyPilot's parser not run",
            files.len()
        );
        return;
    };
    let output = Command::new(python)
        .arg(root.join("scripts/check_sky_tasks.py"))
        .args(&files)
        .output()
        .expect("run check_sky_tasks.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("4 of 4 task(s) parse"), "{stdout}");
    println!("{stdout}");
}

#[test]
fn compare_reads_each_profiles_cost_results_and_names_the_cheapest_gpu_in_the_slo() {
    let ws = Workspace::new();
    ws.write("pipeline.toml", PIPELINE)
        .write("profiles/x.toml", "[params]\nsize = 2\n")
        .write("profiles/y.toml", "[params]\nsize = 3\n");
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/results/m1-rehearsal/cost");
    for (profile, gpu, slo_usd) in [("x", "GPU X", 0.40), ("y", "GPU Y", 0.20)] {
        let cost = std::fs::read_to_string(fixture.join("cost.json")).expect("fixture");
        ws.write(&format!("results/{profile}/cost/cost.json"), &cost);
        let mut comparison: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(fixture.join("comparison.json")).expect("fixture"),
        )
        .expect("json");
        comparison["gpu_name"] = gpu.into();
        comparison["self_hosted"]["slo"]["usd_per_1m_total"] = slo_usd.into();
        ws.write(
            &format!("results/{profile}/cost/comparison.json"),
            &comparison.to_string(),
        );
    }
    let run = ws.forge(&["compare", "pipeline.toml", "--profile", "x,y"]);
    run.success();
    assert!(run.stdout().contains("): GPU Y (`y`)"), "{}", run.stdout());
    let json = ws.forge(&["compare", "pipeline.toml", "--profile", "x,y", "--json"]);
    let value: serde_json::Value = serde_json::from_str(&json.stdout()).expect("json");
    assert_eq!(value["cheapest_meeting_slo"], "y");
    let none = ws.forge(&["compare", "pipeline.toml", "--profile", "nope"]);
    assert_eq!(none.code(), 2, "an unknown profile is a usage error");
}
