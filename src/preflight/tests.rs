//! The checks on hand-made facts: every verdict a paid run can meet, without a GPU or a network.

use indexmap::IndexMap;
use serde_json::{Value as Json, json};

use super::gpu::{Cuda, Gpu, GpuReport, LockNeeds};
use super::hub::{Answer, HubFacts, TokenSource};
use super::*;
use crate::host::Host;

fn a5000_spec() -> Preflight {
    Preflight {
        gpu: Some("RTX A5000".into()),
        gpu_min_memory_gb: Some(24.0),
        locks: vec!["constraints/serve.txt".into()],
        gpu_locks: vec!["constraints/serve.txt".into()],
        python: "python3".into(),
        min_free_disk_gb: Some(150.0),
        min_cpus: None,
        min_memory_gb: None,
        registry: Some("https://pypi.org/simple/".into()),
        gated_repos: vec!["meta-llama/Llama-3.1-8B-Instruct".into()],
        programs: vec![],
    }
}

fn a5000_facts(driver_cuda: &str) -> Facts {
    Facts {
        host: Host::from_parts(
            "linux",
            "x86_64",
            16,
            Some(64_000_000_000),
            Some("EPYC".into()),
            vec!["avx2".into()],
            None,
        ),
        gpu: Ok(GpuReport {
            gpus: vec![Gpu {
                name: "NVIDIA RTX A5000".into(),
                memory_mib: 24564,
                driver: "550.54.15".into(),
            }],
            driver_cuda: Cuda::parse(driver_cuda),
        }),
        disk_free: Ok(200_000_000_000),
        workspace: "/workspace/forge".into(),
        python: Ok("3.11.9".into()),
        locks: vec![(
            "constraints/serve.txt".into(),
            Ok(LockNeeds {
                python: Some("3.11".into()),
                cuda: Cuda::parse("13.0"),
            }),
        )],
        cuda_locks: vec![
            (
                "constraints/quantize.txt".into(),
                Cuda::parse("13.0").unwrap(),
            ),
            (
                "constraints/serve-cu12.txt".into(),
                Cuda::parse("12.8").unwrap(),
            ),
            ("constraints/serve.txt".into(), Cuda::parse("13.0").unwrap()),
        ],
        registry: Some(("https://pypi.org/simple/".into(), Answer::Status(200))),
        hub: Some(HubFacts {
            endpoint: "https://huggingface.co".into(),
            token: Some(TokenSource {
                from: "`HF_TOKEN`".into(),
            }),
            whoami: Some((Answer::Status(200), Some("someone".into()))),
            repos: vec![(
                "meta-llama/Llama-3.1-8B-Instruct".into(),
                Answer::Status(200),
            )],
        }),
        programs: vec![],
    }
}

fn params() -> IndexMap<String, Json> {
    [
        ("serve_lock".to_string(), json!("constraints/serve.txt")),
        (
            "quantize_lock".to_string(),
            json!({"linux-x86_64": "constraints/quantize.txt"}),
        ),
        ("python".to_string(), json!("python3")),
    ]
    .into_iter()
    .collect()
}

fn rows(spec: &Preflight, facts: &Facts) -> Vec<Row> {
    evaluate(&Context {
        spec,
        facts,
        params: &params(),
    })
}

fn find<'a>(rows: &'a [Row], check: &str) -> &'a Row {
    rows.iter()
        .find(|r| r.check == check)
        .unwrap_or_else(|| panic!("no `{check}` row in {rows:#?}"))
}

#[test]
fn a_matching_pod_passes_every_check() {
    let rows = rows(&a5000_spec(), &a5000_facts("13.0"));
    let failed: Vec<&Row> = rows
        .iter()
        .filter(|r| r.verdict != Verdict::Pass && r.verdict != Verdict::Info)
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert_eq!(find(&rows, "GPU memory").found, "24564 MiB (25.8 GB)");
    assert_eq!(
        find(&rows, "hub token").found,
        "from `HF_TOKEN`, account `someone`"
    );
}

#[test]
fn a_cpu_box_fails_the_gpu_rows_and_says_what_to_rent() {
    let mut facts = a5000_facts("13.0");
    facts.gpu = Err("`nvidia-smi` not found on PATH".into());
    let rows = rows(&a5000_spec(), &facts);
    let gpu = find(&rows, "GPU");
    assert_eq!(gpu.verdict, Verdict::Fail);
    assert!(gpu.todo.contains("NVIDIA `RTX A5000`"), "{}", gpu.todo);
    assert_eq!(find(&rows, "GPU memory").verdict, Verdict::Fail);
    assert_eq!(
        find(&rows, "CUDA for `constraints/serve.txt`").verdict,
        Verdict::Fail
    );
}

#[test]
fn another_gpu_fails_by_name_and_a_small_one_by_memory() {
    let mut facts = a5000_facts("13.0");
    if let Ok(report) = &mut facts.gpu {
        report.gpus[0].name = "NVIDIA GeForce RTX 3060".into();
        report.gpus[0].memory_mib = 12288;
    }
    let rows = rows(&a5000_spec(), &facts);
    assert_eq!(find(&rows, "GPU").verdict, Verdict::Fail);
    assert_eq!(find(&rows, "GPU memory").verdict, Verdict::Fail);
    assert_eq!(find(&rows, "GPU memory").expected, ">= 24 GB");
}

#[test]
fn a_cuda_12_driver_is_pointed_at_the_cuda_12_lock() {
    let rows = rows(&a5000_spec(), &a5000_facts("12.4"));
    let cuda = find(&rows, "CUDA for `constraints/serve.txt`");
    assert_eq!(cuda.verdict, Verdict::Fail);
    assert_eq!(cuda.found, "driver supports CUDA 12.4");
    assert_eq!(cuda.expected, "CUDA 13.0 (driver >= 580)");
    assert!(
        cuda.todo
            .contains("set `serve_lock = \"constraints/serve-cu12.txt\"`"),
        "{}",
        cuda.todo
    );
}

#[test]
fn a_cuda_12_driver_is_pointed_at_the_cuda_12_quantize_lock_too() {
    let mut spec = a5000_spec();
    spec.gpu_locks.push("constraints/quantize.txt".into());
    let mut facts = a5000_facts("12.4");
    facts.locks.push((
        "constraints/quantize.txt".into(),
        Ok(LockNeeds {
            python: Some("3.11".into()),
            cuda: Cuda::parse("13.0"),
        }),
    ));
    facts.cuda_locks.push((
        "constraints/quantize-cu12.txt".into(),
        Cuda::parse("12.8").unwrap(),
    ));
    facts.cuda_locks.sort();
    let rows = rows(&spec, &facts);
    let cuda = find(&rows, "CUDA for `constraints/quantize.txt`");
    assert_eq!(cuda.verdict, Verdict::Fail);
    assert!(
        cuda.todo.contains(
            "set `quantize_lock = \"constraints/quantize-cu12.txt\"` in the profile (or pass `--set quantize_lock=constraints/quantize-cu12.txt`)"
        ),
        "{}",
        cuda.todo
    );
}

#[test]
fn an_older_minor_version_warns_and_a_newer_driver_passes() {
    let mut spec = a5000_spec();
    spec.locks = vec!["constraints/serve-cu12.txt".into()];
    spec.gpu_locks = spec.locks.clone();
    let mut facts = a5000_facts("12.4");
    facts.locks = vec![(
        "constraints/serve-cu12.txt".into(),
        Ok(LockNeeds {
            python: Some("3.11".into()),
            cuda: Cuda::parse("12.8"),
        }),
    )];
    let warn = rows(&spec, &facts);
    assert_eq!(
        find(&warn, "CUDA for `constraints/serve-cu12.txt`").verdict,
        Verdict::Warn
    );
    facts.gpu.as_mut().unwrap().driver_cuda = Cuda::parse("13.0");
    let pass = rows(&spec, &facts);
    assert_eq!(
        find(&pass, "CUDA for `constraints/serve-cu12.txt`").verdict,
        Verdict::Pass
    );
}

#[test]
fn python_must_match_the_locks() {
    let mut facts = a5000_facts("13.0");
    facts.python = Ok("3.12.3".into());
    let rows = rows(&a5000_spec(), &facts);
    let python = find(&rows, "Python (`python3`)");
    assert_eq!(python.verdict, Verdict::Fail);
    assert_eq!(python.expected, "3.11 (the locks)");
    assert!(
        python.todo.contains("--set python=python3.11"),
        "{}",
        python.todo
    );
}

#[test]
fn a_token_without_access_names_the_repository_and_its_license_page() {
    let mut facts = a5000_facts("13.0");
    facts.hub.as_mut().unwrap().repos[0].1 = Answer::Status(403);
    let rows = rows(&a5000_spec(), &facts);
    let repo = find(&rows, "gated `meta-llama/Llama-3.1-8B-Instruct`");
    assert_eq!(repo.verdict, Verdict::Fail);
    assert!(
        repo.todo
            .contains("https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct"),
        "{}",
        repo.todo
    );
    facts.hub.as_mut().unwrap().token = None;
    let rows = super::tests::rows(&a5000_spec(), &facts);
    assert_eq!(find(&rows, "hub token").verdict, Verdict::Fail);
}

#[test]
fn small_disk_and_a_dead_registry_fail() {
    let mut facts = a5000_facts("13.0");
    facts.disk_free = Ok(40_000_000_000);
    facts.registry = Some((
        "https://pypi.org/simple/".into(),
        Answer::Unreachable("connection refused".into()),
    ));
    let rows = rows(&a5000_spec(), &facts);
    assert_eq!(find(&rows, "free disk").verdict, Verdict::Fail);
    assert_eq!(find(&rows, "package registry").verdict, Verdict::Fail);
}

#[test]
fn without_expectations_the_table_shows_facts_only() {
    let spec = Preflight {
        python: "python3".into(),
        ..Preflight::default()
    };
    let mut facts = a5000_facts("13.0");
    facts.gpu = Err("`nvidia-smi` not found on PATH".into());
    facts.locks.clear();
    facts.registry = None;
    facts.hub = None;
    let rows = rows(&spec, &facts);
    assert!(rows.iter().all(|r| r.verdict == Verdict::Info), "{rows:#?}");
    let cpu = find(&rows, "CPU instruction set");
    assert_eq!(cpu.found, "EPYC: avx2 (avx2)");
    assert!(cpu.todo.contains("AVX2 kernel library"), "{}", cpu.todo);
}

#[test]
fn the_awq_serving_row_says_up_front_which_weights_a_cpu_will_serve() {
    let cpu_spec = Preflight {
        python: "python3".into(),
        ..Preflight::default()
    };
    let facts_for = |flags: &str| {
        let mut facts = a5000_facts("13.0");
        facts.host = Host::from_parts(
            "linux",
            "x86_64",
            2,
            None,
            Some("EPYC".into()),
            flags.split_whitespace().map(str::to_string).collect(),
            None,
        );
        facts
    };
    let avx2 = facts_for("avx avx2");
    let avx512 = facts_for("avx2 avx512f avx512bw avx512dq avx512vl");
    let row_for = |mode: &str, spec: &Preflight, facts: &Facts| {
        let mut params = params();
        params.insert("awq_serving".into(), json!(mode));
        params.insert("cpu_int4_isas".into(), json!(["avx512"]));
        let rows = evaluate(&Context {
            spec,
            facts,
            params: &params,
        });
        find(&rows, "AWQ serving").clone()
    };
    let auto = row_for("auto", &cpu_spec, &avx2);
    assert_eq!(auto.verdict, Verdict::Warn);
    assert!(auto.todo.contains("dequantized to BF16"), "{}", auto.todo);
    assert_eq!(row_for("auto", &cpu_spec, &avx512).verdict, Verdict::Info);
    let forced = row_for("int4", &cpu_spec, &avx2);
    assert_eq!(forced.verdict, Verdict::Fail);
    assert!(
        forced.todo.contains("awq_serving = \"auto\""),
        "{}",
        forced.todo
    );
    assert_eq!(row_for("int4", &a5000_spec(), &avx2).verdict, Verdict::Info);
    assert_eq!(row_for("int8", &cpu_spec, &avx512).verdict, Verdict::Fail);
    assert!(params().get("awq_serving").is_none());
    assert!(
        !rows(&cpu_spec, &avx2)
            .iter()
            .any(|r| r.check == "AWQ serving")
    );
}

#[test]
fn a_missing_program_fails_with_how_to_install_it() {
    let spec = Preflight {
        programs: vec!["prometheus".into(), "grafana".into()],
        ..a5000_spec()
    };
    let mut facts = a5000_facts("13.0");
    facts.programs = vec![
        (
            "prometheus".into(),
            Err("`prometheus` not found on PATH".into()),
        ),
        ("grafana".into(), Ok("Version 11.2.0".into())),
    ];
    let rows = rows(&spec, &facts);
    let prometheus = find(&rows, "program `prometheus`");
    assert_eq!(prometheus.verdict, Verdict::Fail);
    assert!(
        prometheus.todo.contains("apt-get install -y prometheus")
            && prometheus.todo.contains("monitoring = false"),
        "{}",
        prometheus.todo
    );
    let grafana = find(&rows, "program `grafana`");
    assert_eq!(
        (grafana.verdict, grafana.found.as_str()),
        (Verdict::Pass, "Version 11.2.0")
    );
}
