//! One profile's remote run: launch, bring the results back, tear the cluster down (always:
//! after success, after failure, on Ctrl-C), verify, land, and say what it cost.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::prepare::Prepared;
use super::sky::{self, LaunchEnd, Sky, Stream};
use super::task::{POD_STATE, POD_WORKDIR};
use super::verify;

/// How one profile's remote run ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "status", content = "detail")]
pub enum Ending {
    /// Results came back, matched their lock file and landed.
    Landed,
    /// SkyPilot could not launch (or lost) the cluster before the pipeline ran.
    LaunchFailed(String),
    /// The pipeline ran on the pod and failed.
    StepFailed(String),
    /// Results came back but may not land.
    Rejected(String),
    /// Ctrl-C.
    Interrupted,
}

/// What one profile's remote run did and spent (`.forge/remote/<profile>/run.json`, and
/// `remote.json` in the results when they land).
#[derive(Debug, Clone, Serialize)]
pub struct Spend {
    /// The profile.
    pub profile: String,
    /// The SkyPilot cluster.
    pub cluster: String,
    /// The commit that ran.
    pub commit: String,
    /// How it ended.
    pub ending: Ending,
    /// From `sky launch` to the end of `sky down`, in hours.
    pub hours: f64,
    /// `hours` x the profile's `gpu_hourly_usd` x the GPU count, when the profile has a price.
    pub usd_at_profile_price: Option<f64>,
    /// `hours` x `max_hourly_cost`: the most SkyPilot could have let it cost.
    pub usd_at_most: f64,
    /// False when `sky down` failed: the cluster may still be running.
    pub torn_down: bool,
}

/// Launches one prepared profile and sees it through.
pub async fn run(prepared: &Prepared, sky: &Sky, cancel: &CancellationToken) -> Spend {
    let p = prepared;
    let cluster = p.spec.name.clone();
    let profile = p.pipeline.profile.clone();
    let out = Stream {
        prefix: format!("[{profile}] "),
        redact: p
            .remote
            .secrets
            .iter()
            .filter_map(|name| std::env::var(name).ok())
            .filter(|value| value.len() >= 4)
            .collect(),
        log: p
            .pipeline
            .state_dir()
            .join("logs")
            .join(&profile)
            .join("remote.log"),
    };
    let _ = crate::fsutil::remove_any(&out.log);
    eprintln!(
        "[{profile}] launching `{cluster}` ({}:{} on {}, at most ${}/h)",
        p.remote.accelerator, p.remote.count, p.remote.infra, p.remote.max_hourly_cost
    );
    let started = Instant::now();
    let launched = sky
        .launch(&cluster, &p.task_file, &p.remote.secrets, &out, cancel)
        .await;
    // `sky` that never started launched nothing: there is nothing to tear down.
    let started_sky = launched.is_ok();
    let pod_workspace = pod_path(&p.spec.workspace, "");
    let mut ending = match launched {
        Err(err) => Ending::LaunchFailed(format!("cannot run `{}`: {err}", sky.program.display())),
        Ok(LaunchEnd::Interrupted) => Ending::Interrupted,
        Ok(LaunchEnd::Exited(code)) => {
            let results = pod_path(
                &p.spec.workspace,
                &p.pipeline.results_dir.display().to_string(),
            );
            let staging = p.state.join("staging");
            if code == 0 {
                match sky::fetch(&cluster, &results, &staging).await {
                    Ok(()) => Ending::Landed,
                    Err(err) => Ending::Rejected(format!("the results did not come back: {err}")),
                }
            } else {
                after_failure(p, &cluster, &pod_workspace, code).await
            }
        }
    };
    let torn_down = if !started_sky {
        true
    } else {
        teardown(sky, &cluster, &out).await
    };
    let hours = started.elapsed().as_secs_f64() / 3600.0;
    if ending == Ending::Landed {
        // Hashing every output is blocking work: off the async threads.
        let owned = p.clone();
        ending = tokio::task::spawn_blocking(move || land(&owned))
            .await
            .unwrap_or_else(|e| Ending::Rejected(format!("the verification stopped: {e}")));
    }
    let spend = spend(p, ending, hours, torn_down);
    report(&spend, p);
    spend
}

/// `sky down`, and a loud warning when it fails (the cluster may still be billing).
async fn teardown(sky: &Sky, cluster: &str, out: &Stream) -> bool {
    let profile = out.prefix.trim();
    eprintln!(
        "{profile} tearing down `{cluster}` (`sky down {cluster} -y`; Ctrl-C does not stop this)"
    );
    match sky.down(cluster, out).await {
        Ok(()) => true,
        Err(err) => {
            eprintln!(
                "error: {profile} {err}\nhint: the cluster may still be billing: check `sky status --refresh` and run `sky down {cluster} -y`"
            );
            false
        }
    }
}

/// `sky_workdir/<workspace>/<path>` on the pod.
fn pod_path(workspace: &str, path: &str) -> String {
    let mut out = std::path::PathBuf::from(POD_WORKDIR);
    if workspace != "." {
        out.push(workspace);
    }
    if !path.is_empty() {
        out.push(path);
    }
    out.display().to_string()
}

/// After a non-zero `sky launch`: did the pipeline run (its exit code came back) or not?
async fn after_failure(p: &Prepared, cluster: &str, pod_workspace: &str, code: i32) -> Ending {
    let fetched = p.state.join("pod");
    let remote = format!("{pod_workspace}/{POD_STATE}");
    if sky::fetch(cluster, &remote, &fetched).await.is_err() || !fetched.join("exit-code").is_file()
    {
        return Ending::LaunchFailed(format!(
            "`sky launch` exited with {code} before the pipeline ran (see the lines above)"
        ));
    }
    let logs = p.state.join("pod-logs");
    let remote_logs = format!("{pod_workspace}/.forge/logs/{}", p.pipeline.profile);
    let _ = sky::fetch(cluster, &remote_logs, &logs).await;
    let failed = failed_steps(&fetched.join("report.json"));
    for (step, _) in &failed {
        let log = logs.join(format!("{step}.log"));
        eprintln!(
            "[{}] step `{step}` failed on the pod; the last lines of its log:",
            p.pipeline.profile
        );
        for line in crate::steps::process::tail(&log, 20) {
            eprintln!("  | {line}");
        }
    }
    let names: Vec<String> = failed
        .iter()
        .map(|(s, why)| format!("`{s}`: {why}"))
        .collect();
    Ending::StepFailed(if names.is_empty() {
        format!("the pipeline exited with {code} on the pod")
    } else {
        names.join("; ")
    })
}

/// Failed steps in the pod's `forge run --json` report: (id, first line of why).
fn failed_steps(report: &Path) -> Vec<(String, String)> {
    let Ok(text) = std::fs::read_to_string(report) else {
        return Vec::new();
    };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Vec::new();
    };
    value["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["status"] == "failed")
        .map(|s| {
            let why = s["detail"].as_str().unwrap_or_default();
            (
                s["id"].as_str().unwrap_or_default().to_string(),
                why.lines().next().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Verifies the staged results and moves them over the local results directory.
fn land(p: &Prepared) -> Ending {
    let staging = p.state.join("staging");
    let profile = &p.pipeline.profile;
    match verify::verify(&staging, &p.pipeline.results_dir) {
        Ok(verified) => {
            eprintln!(
                "[{profile}] {} output(s) match the pod's lock file",
                verified.checked
            );
            if !verified.elsewhere.is_empty() {
                eprintln!(
                    "[{profile}] not brought back (outside `{}`): {}",
                    p.pipeline.results_dir.display(),
                    verified.elsewhere.join(", ")
                );
            }
            let target = p.pipeline.workspace.join(&p.pipeline.results_dir);
            match crate::fsutil::replace(&staging, &target) {
                Ok(()) => Ending::Landed,
                Err(err) => Ending::Rejected(format!(
                    "cannot move the results into `{}`: {err}",
                    target.display()
                )),
            }
        }
        Err(err) => Ending::Rejected(format!(
            "{err}; nothing was written to `{}`",
            p.pipeline.results_dir.display()
        )),
    }
}

fn spend(p: &Prepared, ending: Ending, hours: f64, torn_down: bool) -> Spend {
    let price = p
        .pipeline
        .params
        .get("gpu_hourly_usd")
        .and_then(serde_json::Value::as_f64);
    Spend {
        profile: p.pipeline.profile.clone(),
        cluster: p.spec.name.clone(),
        commit: p.spec.commit.clone(),
        ending,
        hours,
        usd_at_profile_price: price.map(|usd| hours * usd * f64::from(p.remote.count)),
        usd_at_most: hours * p.remote.max_hourly_cost,
        torn_down,
    }
}

fn report(spend: &Spend, p: &Prepared) {
    let profile = &spend.profile;
    let at_price = spend.usd_at_profile_price.map_or(String::new(), |usd| {
        format!("about ${usd:.2} at the profile's `gpu_hourly_usd`, ")
    });
    eprintln!(
        "[{profile}] spent {:.2} h: {at_price}at most ${:.2} at `max_hourly_cost`",
        spend.hours, spend.usd_at_most
    );
    let mut bytes = serde_json::to_vec_pretty(spend).unwrap_or_default();
    bytes.push(b'\n');
    let _ = crate::fsutil::write_atomic(&p.state.join("run.json"), &bytes);
    if spend.ending == Ending::Landed {
        let path = p
            .pipeline
            .workspace
            .join(&p.pipeline.results_dir)
            .join("remote.json");
        if let Err(err) = crate::fsutil::write_atomic(&path, &bytes) {
            eprintln!(
                "warning: [{profile}] cannot write `{}`: {err}",
                path.display()
            );
        }
    }
}
