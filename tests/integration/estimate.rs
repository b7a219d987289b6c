//! `forge plan`'s estimate (declared `estimate` or the last recorded duration, priced at the
//! profile's `hourly_usd`) and `budget_usd`, which refuses a run before anything starts.

use crate::support::Workspace;

fn priced() -> Workspace {
    let ws = Workspace::new();
    ws.write("pipeline.toml", "[params]\nrate = 2.0\n[steps.slow]\nkind = \"command\"\noutputs = [\"{{ results }}/slow.txt\"]\nrun = \"echo slow > {{ outputs[0] }}\"\nestimate = \"90m\"\n[steps.quick]\nkind = \"command\"\nneeds = [\"slow\"]\noutputs = [\"{{ results }}/quick.txt\"]\nrun = \"cat {{ steps.slow.outputs[0] }} > {{ outputs[0] }}\"\n")
        .write("profiles/paid.toml", "hourly_usd = \"{{ params.rate }}\"\nbudget_usd = 5.0\n[steps.quick]\nestimate = \"30m\"\n")
        .write("profiles/tight.toml", "extends = \"paid\"\nbudget_usd = 1.0\n")
        .write("profiles/unpriced.toml", "hourly_usd = 1.0\nbudget_usd = 10.0\n");
    ws
}

#[test]
fn plan_prices_each_step_and_the_total() {
    let ws = priced();
    let run = ws.forge(&["plan", "pipeline.toml", "--profile", "paid", "--json"]);
    run.success();
    let plan: serde_json::Value = serde_json::from_str(&run.stdout()).expect("json");
    let estimate = &plan["estimate"];
    assert_eq!(estimate["hourly_usd"], 2.0);
    assert_eq!(estimate["total_seconds"], 7200.0);
    assert_eq!(estimate["total_usd"], 4.0);
    assert_eq!(estimate["steps"][0]["basis"], "declared");
    assert_eq!(estimate["steps"][0]["usd"], 3.0);
    let text = ws.forge(&["plan", "pipeline.toml", "--profile", "paid"]);
    assert!(
        text.stdout()
            .contains("total     2h 00m     $4.00  budget $5.00"),
        "{}",
        text.stdout()
    );
}

#[test]
fn a_run_over_budget_is_refused_before_anything_starts() {
    let ws = priced();
    let refused = ws.forge(&["run", "pipeline.toml", "--profile", "tight"]);
    assert_eq!(refused.code(), 2);
    assert!(
        refused.stderr().contains(
            "this run is estimated at $4.00 (2h 00m), over the profile's `budget_usd` ($1.00)"
        ),
        "{}",
        refused.stderr()
    );
    assert!(!ws.exists("results/tight/slow.txt"), "nothing ran");
    let unknown = ws.forge(&["run", "pipeline.toml", "--profile", "unpriced"]);
    assert_eq!(unknown.code(), 2);
    assert!(
        unknown
            .stderr()
            .contains("`quick` has no recorded duration and no `estimate`"),
        "{}",
        unknown.stderr()
    );
}

#[test]
fn a_recorded_duration_replaces_the_declared_estimate() {
    let ws = priced();
    ws.forge(&["run", "pipeline.toml", "--profile", "paid"])
        .success();
    let run = ws.forge(&[
        "plan",
        "pipeline.toml",
        "--profile",
        "paid",
        "--force",
        "slow",
        "--json",
    ]);
    let plan: serde_json::Value = serde_json::from_str(&run.stdout()).expect("json");
    let steps = plan["estimate"]["steps"].as_array().expect("steps");
    assert_eq!(steps[0]["id"], "slow");
    assert_eq!(steps[0]["basis"], "recorded");
    assert!(
        steps[0]["seconds"].as_f64().expect("seconds") < 60.0,
        "{plan:#}"
    );
    let budgetless = ws.forge(&["run", "pipeline.toml", "--profile", "paid"]);
    budgetless.success();
}

#[test]
fn an_invalid_estimate_or_budget_points_at_the_file() {
    let ws = Workspace::new();
    ws.write(
        "pipeline.toml",
        "[steps.a]\nkind = \"command\"\nrun = \"true\"\nestimate = \"soon\"\n",
    )
    .write("profiles/p.toml", "budget_usd = 3.0\n");
    let run = ws.forge(&["plan", "pipeline.toml", "--profile", "p"]);
    assert_eq!(run.code(), 2);
    insta::assert_snapshot!("estimate_errors", run.stderr());
}
