//! Core speed, measured side by side with baselines in the same run (never timed assertions):
//! 1. a no-op `forge run` of a fully cached 6-step pipeline vs spawning `true` (the floor) and,
//!    when `dvc` is on PATH, `dvc repro` of the equivalent pipeline;
//! 2. first-time hashing of a 1 GiB file vs `sha256sum` and single-threaded blake3, and the
//!    stat-cache re-check.
//!
//! Run: `cargo bench --bench core` (add `-- --quick` for fewer rounds).

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
    noop_run(if quick { 11 } else { 31 });
    hashing(if quick { 256 } else { 1024 });
}
