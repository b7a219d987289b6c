//! Core speed, measured side by side with baselines in the same run (never timed assertions):
//! 1. a no-op `forge run` of a fully cached 6-step pipeline vs spawning `true` (the floor) and,
//!    when `dvc` is on PATH, `dvc repro` of the equivalent pipeline;
//! 2. load cost: `forge plan` and a no-op `forge run` (time and peak memory) of a 5000-step chain
//!    and a 5000-step fan-out, side by side with the 6-step pipeline: both must grow linearly;
//! 3. first-time hashing of a 1 GiB file vs `sha256sum` and single-threaded blake3, and the
//!    stat-cache re-check.
//!
//! Run: `cargo bench --bench core` (add `-- --quick` for fewer rounds, `-- --load` for the load
//! cost only).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time_command(cmd: &mut Command, rounds: usize) -> Duration {
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        let status = cmd.status().expect("run command");
        samples.push(start.elapsed());
        assert!(status.success(), "{cmd:?} failed");
    }
    median(samples)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn noop_run(rounds: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut manifest = String::from("[params]\nscale = 2\n");
    for i in 0..6 {
        let needs = if i == 0 {
            String::new()
        } else {
            format!("needs = [\"s{}\"]\n", i - 1)
        };
        manifest.push_str(&format!(
            "[steps.s{i}]\nkind = \"command\"\n{needs}inputs = [\"data/in{i}.txt\"]\noutputs = [\"out/s{i}.txt\"]\nrun = \"cat data/in{i}.txt > {{{{ outputs[0] }}}}\"\n"
        ));
        std::fs::create_dir_all(dir.path().join("data")).expect("mkdir");
        std::fs::write(
            dir.path().join(format!("data/in{i}.txt")),
            format!("input {i}\n"),
        )
        .expect("write");
    }
    std::fs::write(dir.path().join("pipeline.toml"), manifest).expect("write manifest");
    let forge = env!("CARGO_BIN_EXE_forge");
    let mut run = Command::new(forge);
    run.args(["run", "pipeline.toml"])
        .current_dir(dir.path())
        .env("CI", "1")
        .stderr(std::process::Stdio::null());
    time_command(&mut run, 1); // populate the cache
    let forge_noop = time_command(&mut run, rounds);
    let floor = time_command(&mut Command::new("true"), rounds);
    println!("no-op run, 6 cached steps ({rounds} rounds, median):");
    println!("  forge run            {:8.2} ms", ms(forge_noop));
    println!(
        "  spawn `true` (floor) {:8.2} ms   forge = {:.1}x the floor",
        ms(floor),
        ms(forge_noop) / ms(floor)
    );
    if let Some(dvc) = dvc_noop(rounds) {
        println!(
            "  dvc repro (5 stages) {:8.2} ms   forge is {:.0}x faster",
            ms(dvc),
            ms(dvc) / ms(forge_noop)
        );
    } else {
        println!("  dvc repro            not on PATH (install with `pip install dvc` to compare)");
    }
}

fn dvc_noop(rounds: usize) -> Option<Duration> {
    Command::new("dvc")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let dir = tempfile::tempdir().ok()?;
    let mut yaml = String::from("stages:\n");
    for i in 0..5 {
        std::fs::create_dir_all(dir.path().join("data")).ok()?;
        std::fs::write(
            dir.path().join(format!("data/in{i}.txt")),
            format!("input {i}\n"),
        )
        .ok()?;
        let dep = if i == 0 {
            String::new()
        } else {
            format!("      - out/s{}.txt\n", i - 1)
        };
        yaml.push_str(&format!("  s{i}:\n    cmd: mkdir -p out && cat data/in{i}.txt > out/s{i}.txt\n    deps:\n      - data/in{i}.txt\n{dep}    outs:\n      - out/s{i}.txt\n"));
    }
    std::fs::write(dir.path().join("dvc.yaml"), yaml).ok()?;
    let quiet = |c: &mut Command| {
        c.current_dir(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
    };
    let mut init = Command::new("dvc");
    init.args(["init", "--no-scm"]);
    quiet(&mut init);
    init.status().ok()?;
    let mut repro = Command::new("dvc");
    repro.arg("repro");
    quiet(&mut repro);
    time_command(&mut repro, 1);
    Some(time_command(&mut repro, rounds.min(7)))
}

/// Runs `cmd` to completion; its wall time, peak resident memory (KiB) and CPU time (user +
/// system, which a busy machine inflates less than wall time), from `wait4`.
#[expect(
    clippy::zombie_processes,
    reason = "wait4 below reaps the child and returns its resource usage"
)]
fn measured(cmd: &mut Command) -> (Duration, i64, Duration) {
    let start = Instant::now();
    let child = cmd.spawn().expect("spawn");
    let pid = i32::try_from(child.id()).expect("pid fits");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for (and reaps) the child we just spawned; both pointers are valid.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let elapsed = start.elapsed();
    assert!(waited == pid && status == 0, "{cmd:?} failed ({status})");
    let time = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    let cpu = time(usage.ru_utime) + time(usage.ru_stime);
    (elapsed, usage.ru_maxrss, cpu)
}

/// Median wall time, largest peak memory and median CPU time of `rounds` runs.
fn measured_median(cmd: &mut Command, rounds: usize) -> (Duration, i64, Duration) {
    let runs: Vec<(Duration, i64, Duration)> = (0..rounds).map(|_| measured(cmd)).collect();
    let peak = runs.iter().map(|r| r.1).max().unwrap_or(0);
    let cpu = median(runs.iter().map(|r| r.2).collect());
    (median(runs.into_iter().map(|r| r.0).collect()), peak, cpu)
}

/// A manifest of `n` command steps: a chain (each needs the previous one) or a fan-out (one
/// root, `n - 2` matrix instances that need it, one step that needs them all).
fn shaped_manifest(shape: &str, n: usize) -> String {
    let mut out = String::new();
    if shape == "chain" {
        for i in 0..n {
            let (needs, from) = if i == 0 {
                (String::new(), "echo 0".to_string())
            } else {
                (
                    format!("needs = [\"s{}\"]\n", i - 1),
                    format!("cat {{{{ steps.s{}.outputs[0] }}}}", i - 1),
                )
            };
            out.push_str(&format!(
                "[steps.s{i}]\nkind = \"command\"\n{needs}outputs = [\"out/s{i}.txt\"]\nrun = \"{from} > {{{{ outputs[0] }}}}\"\n"
            ));
        }
        return out;
    }
    let leaves: Vec<String> = (0..n - 2).map(|i| i.to_string()).collect();
    out.push_str("[steps.root]\nkind = \"command\"\noutputs = [\"out/root.txt\"]\nrun = \"echo 0 > {{ outputs[0] }}\"\n");
    out.push_str(&format!(
        "[steps.leaf]\nkind = \"command\"\nneeds = [\"root\"]\nmatrix = {{ i = [{}] }}\noutputs = [\"out/leaf-{{{{ matrix.i }}}}.txt\"]\nrun = \"cat {{{{ steps.root.outputs[0] }}}} > {{{{ outputs[0] }}}}\"\n",
        leaves.join(", ")
    ));
    out.push_str("[steps.join]\nkind = \"command\"\nneeds = [\"leaf\"]\noutputs = [\"out/join.txt\"]\nrun = \"echo done > {{ outputs[0] }}\"\n");
    out
}

/// Leaves what a first `forge run` would (every output, every record in `forge.lock`), through
/// Forge's own key and digest functions, in one pass. A real first run of 5000 steps rewrites the
/// whole lock file after each step, which grows with the square of the steps; that first run is
/// not what this benchmark measures.
fn record_all(dir: &Path) {
    use forge::cache::{LockFile, Record, StatCache};
    let options = forge::manifest::LoadOptions {
        manifest: dir.join("pipeline.toml"),
        ..Default::default()
    };
    let pipeline = forge::manifest::load(&options).expect("the bench manifest loads");
    let stat = StatCache::default();
    let mut lock = LockFile::load(&pipeline.lock_path()).expect("no lock yet");
    for id in forge::graph::order(&pipeline) {
        let step = &pipeline.steps[&id];
        let parts = forge::plan::key_parts(&pipeline, step, &lock, &stat);
        let mut outputs = std::collections::BTreeMap::new();
        for output in &step.outputs {
            let path = pipeline.workspace.join(output);
            std::fs::create_dir_all(path.parent().expect("inside the workspace")).expect("mkdir");
            std::fs::write(&path, format!("{id}\n")).expect("write output");
            let digest = stat.digest(&path).expect("hash").expect("just written");
            outputs.insert(output.clone(), digest);
        }
        let record = Record {
            key: parts.digest(),
            parts,
            outputs,
            started_at: String::from("2026-12-01T00:00:00Z"),
            duration_s: 0.0,
            exit_code: Some(0),
            forge_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        lock.steps.insert(id.into(), record);
    }
    lock.save(&pipeline.lock_path()).expect("write forge.lock");
}

fn load_cost(rounds: usize) {
    let forge = env!("CARGO_BIN_EXE_forge");
    println!("load cost: plan and no-op run, median of {rounds} (peak RSS of any round):");
    println!(
        "  {:<20} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "pipeline", "plan ms", "cpu ms", "MiB", "no-op ms", "cpu ms", "MiB"
    );
    let mut base = None;
    for (shape, n) in [("chain", 6), ("chain", 5000), ("fan-out", 5000)] {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("pipeline.toml"), shaped_manifest(shape, n))
            .expect("write manifest");
        let quiet = |args: &[&str]| {
            let mut cmd = Command::new(forge);
            cmd.args(args)
                .current_dir(dir.path())
                .env("CI", "1")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            cmd
        };
        if n <= 6 {
            measured(&mut quiet(&["run", "pipeline.toml"])); // every step runs once
        } else {
            record_all(dir.path());
        }
        let (plan, plan_kib, plan_cpu) =
            measured_median(&mut quiet(&["plan", "pipeline.toml"]), rounds);
        let (noop, noop_kib, noop_cpu) =
            measured_median(&mut quiet(&["run", "pipeline.toml"]), rounds);
        let per_step = ms(plan_cpu) / n as f64;
        let ratio = base.map_or(String::new(), |b: f64| {
            format!("  plan cpu per step = {:.2}x the 6-step's", per_step / b)
        });
        base.get_or_insert(per_step);
        let mib = |kib: i64| kib as f64 / 1024.0;
        println!(
            "  {:<20} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}{ratio}",
            format!("{shape}, {n} steps"),
            ms(plan),
            ms(plan_cpu),
            mib(plan_kib),
            ms(noop),
            ms(noop_cpu),
            mib(noop_kib),
        );
    }
}

fn hashing(size_mib: u64) {
    let dir = tempfile::tempdir_in(std::env::var("FORGE_BENCH_DIR").unwrap_or_else(|_| ".".into()))
        .expect("tempdir");
    let path = dir.path().join("big.bin");
    write_random(&path, size_mib);
    let bytes = (size_mib * 1024 * 1024) as f64;
    // Warm the page cache so every contender reads from memory.
    let _ = std::fs::read(&path);
    let cache = forge::cache::StatCache::default();
    let start = Instant::now();
    let digest = cache.digest(&path).expect("hash").expect("exists");
    let first = start.elapsed();
    let start = Instant::now();
    let again = cache.digest(&path).expect("hash").expect("exists");
    let recheck = start.elapsed();
    assert_eq!(digest, again);
    let start = Instant::now();
    let mut single = blake3::Hasher::new();
    single
        .update_reader(std::fs::File::open(&path).expect("open"))
        .expect("read");
    let single_time = start.elapsed();
    let sha = time_command(
        Command::new("sha256sum")
            .arg(&path)
            .stdout(std::process::Stdio::null()),
        1,
    );
    let gbs = |d: Duration| bytes / d.as_secs_f64() / 1e9;
    println!("hashing a {size_mib} MiB file:");
    println!(
        "  forge first hash (mmap, all cores) {:8.1} ms  {:5.2} GB/s",
        ms(first),
        gbs(first)
    );
    println!(
        "  blake3 single-threaded reader      {:8.1} ms  {:5.2} GB/s  forge = {:.2}x",
        ms(single_time),
        gbs(single_time),
        single_time.as_secs_f64() / first.as_secs_f64()
    );
    println!(
        "  sha256sum                          {:8.1} ms  {:5.2} GB/s  forge = {:.2}x",
        ms(sha),
        gbs(sha),
        sha.as_secs_f64() / first.as_secs_f64()
    );
    println!(
        "  forge re-check (stat cache hit)    {:8.3} ms",
        ms(recheck)
    );
}

fn write_random(path: &Path, size_mib: u64) {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut block = vec![0u8; 1024 * 1024];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..size_mib {
        for chunk in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        file.write_all(&block).expect("write");
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    if std::env::args().any(|a| a == "--load") {
        load_cost(if quick { 3 } else { 7 });
        return;
    }
    noop_run(if quick { 11 } else { 31 });
    load_cost(if quick { 3 } else { 7 });
    hashing(if quick { 256 } else { 1024 });
}
