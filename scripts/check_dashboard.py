#!/usr/bin/env python3
"""Prove a Grafana dashboard's PromQL against a real Prometheus scraping a real vLLM (stdlib only).

    python3 scripts/check_dashboard.py --base-url http://127.0.0.1:8100 \
        [--dashboard monitoring/grafana/dashboards/forge-vllm.json] [--report out.json]
    python3 scripts/check_dashboard.py --tsdb results/m1-rehearsal/monitoring/prometheus

With --tsdb, steps 1-2 are replaced: the data is what the pipeline's `monitor` service (Prometheus
scraping the serve step while the bench ran, `monitoring = true`) recorded. A copy of it is opened
by a Prometheus that scrapes nothing, the queries run at the last recorded scrape, and
$__rate_interval is the whole recorded span (so every rate covers the bench's traffic); the
target must have been up at least once.

1. Starts `prometheus` (Debian's package: `apt-get install -y prometheus`; the binary is run
   directly, not as a service) on a free loopback port with a temporary config scraping
   <base-url>/metrics every --scrape-interval, and a temporary data directory.
2. Waits until the target is up, sends --requests streaming completions to vLLM (bounded in count,
   max_tokens and time) so the histograms and counters move, then waits two more scrapes.
3. Executes every PromQL expression in the dashboard (each panel target's `expr`, and the metric of
   each `label_values(...)` variable) through Prometheus's HTTP API at one instant, with Grafana's
   variables substituted: $__rate_interval/$__interval/$__range -> --rate-window, every dashboard
   variable -> `.*` (what "All" means).
4. Fails (exit 1) listing every expression that returns an error, no series, or only NaN.
Exit 2: setup problems (no prometheus binary, vLLM not reachable, Prometheus not ready).
Prometheus is stopped and its data removed on every exit path.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT_DASHBOARD = Path(__file__).resolve().parent.parent / "monitoring/grafana/dashboards/forge-vllm.json"
GRAFANA_INTERVALS = ("__rate_interval", "__interval", "__range")


class SetupError(Exception):
    pass


def log(msg: str) -> None:
    print(f"check_dashboard: {msg}", file=sys.stderr, flush=True)


def http_json(url: str, data: dict[str, Any] | None = None, timeout: float = 30) -> dict[str, Any]:
    body = None if data is None else json.dumps(data).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        answer: dict[str, Any] = json.load(r)
        return answer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# ---------------------------------------------------------------- dashboard


def walk_panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for p in panels or []:
        out.append(p)
        out.extend(walk_panels(p.get("panels", [])))  # rows nest panels
    return out


def collect_queries(dash: dict[str, Any]) -> list[dict[str, Any]]:
    """Every (panel, refId, expr) in the dashboard, plus label_values(...) variables."""
    queries = []
    for p in walk_panels(dash.get("panels", [])):
        for t in p.get("targets", []) or []:
            if t.get("expr"):
                queries.append({"panel": p.get("title", f"panel {p.get('id')}"), "ref": t.get("refId", "?"),
                                "expr": t["expr"]})
    for v in dash.get("templating", {}).get("list", []):
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        if v.get("type") == "query" and isinstance(q, str):
            m = re.fullmatch(r"\s*label_values\((.+),\s*(\w+)\)\s*", q)
            expr = f"count by ({m.group(2)}) ({m.group(1)})" if m else q
            queries.append({"panel": f"variable ${v.get('name')}", "ref": "query", "expr": expr})
    return queries


def substitute(expr: str, variables: list[str], window: str) -> str:
    for name in GRAFANA_INTERVALS:
        expr = re.sub(r"\$\{" + name + r"(:\w+)?\}|\$" + name + r"\b", window, expr)
    for name in variables:
        expr = re.sub(r"\$\{" + re.escape(name) + r"(:\w+)?\}|\$" + re.escape(name) + r"\b", ".*", expr)
    return expr


# ---------------------------------------------------------------- vLLM traffic


def served_model(base: str) -> str:
    try:
        models = http_json(f"{base}/v1/models", timeout=10)["data"]
    except (urllib.error.URLError, OSError, KeyError, ValueError) as e:
        raise SetupError(f"cannot list models at {base}/v1/models: {e}") from None
    if not models:
        raise SetupError(f"{base}/v1/models lists no model")
    model: str = models[0]["id"]
    return model


def send_requests(base: str, model: str, n: int, max_tokens: int, deadline_s: float) -> int:
    """Sequential streaming completions; some stop early, some run to max_tokens. Returns how many completed."""
    prompts = ["Write one sentence about the sea.", "List three colours:", "2 + 2 =",
               "Translate 'good morning' to French:", "The capital of Italy is"]
    done, start = 0, time.monotonic()
    for i in range(n):
        if time.monotonic() - start > deadline_s:
            break
        body = {"model": model, "prompt": prompts[i % len(prompts)], "max_tokens": max_tokens,
                "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
        req = urllib.request.Request(f"{base}/v1/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                for _ in r:
                    pass
            done += 1
        except (urllib.error.URLError, OSError) as e:
            log(f"request {i} failed: {e}")
    return done


# ---------------------------------------------------------------- Prometheus


def start_prometheus(binary: str, target: str | None, interval: str,
                     workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Prometheus on a free loopback port over <workdir>/data, scraping `target` (None: nothing)."""
    port = free_port()
    config = workdir / "prometheus.yml"
    scrape = ("scrape_configs:\n  - job_name: vllm\n"
              f"    static_configs:\n      - targets: ['{target}']\n") if target else ""
    config.write_text(f"global:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\n" + scrape)
    cmd = [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
           f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
           "--storage.tsdb.retention.time=100y"]  # recorded data of any age stays readable
    logf = open(workdir / "prometheus.log", "wb")
    proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, f"http://127.0.0.1:{port}"


def wait_until(what: str, fn: Callable[[], bool], timeout: float, proc: subprocess.Popen[bytes],
               workdir: Path) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            tail = (workdir / "prometheus.log").read_text(errors="replace")[-2000:]
            raise SetupError(f"prometheus exited ({proc.returncode}) while waiting for {what}:\n{tail}")
        try:
            if fn():
                return
        except (urllib.error.URLError, OSError, ValueError, KeyError):
            pass
        time.sleep(0.5)
    raise SetupError(f"timed out after {timeout:.0f} s waiting for {what}")


def open_recording(tsdb: Path, binary: str, workdir: Path,
                   timeout: float) -> tuple[subprocess.Popen[bytes], str, float, int]:
    """A Prometheus over a copy of `tsdb`: (process, URL, last scrape time, recorded span in s)."""
    if not (tsdb / "wal").is_dir():
        raise SetupError(f"{tsdb} holds no Prometheus data (no wal/): run the pipeline with "
                         "`--set monitoring=true` first")
    shutil.copytree(tsdb, workdir / "data", ignore=shutil.ignore_patterns("lock"))
    proc, prom = start_prometheus(binary, None, "15s", workdir)
    wait_until("prometheus ready", lambda: urllib.request.urlopen(f"{prom}/-/ready", timeout=5).status == 200,
               timeout, proc, workdir)
    head = http_json(f"{prom}/api/v1/status/tsdb")["data"]["headStats"]
    if not head.get("numSeries"):
        raise SetupError(f"{tsdb} holds no series: did the bench run while monitoring was on?")
    at, span = head["maxTime"] / 1000, math.ceil((head["maxTime"] - head["minTime"]) / 1000)
    seen = prom_query(prom, f'max_over_time(up{{job="vllm"}}[{max(span, 1)}s])', at)
    if not any(r["value"][1] == "1" for r in seen.get("data", {}).get("result", [])):
        raise SetupError(f"the recording in {tsdb} never saw job `vllm` up: was the serve step on "
                         "the port the monitor scraped?")
    return proc, prom, at, max(span, 60)


def prom_query(prom: str, expr: str, at: float) -> dict[str, Any]:
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"})
    try:
        return http_json(url)
    except urllib.error.HTTPError as e:  # 400 carries the PromQL error as JSON
        try:
            answer: dict[str, Any] = json.load(e)
            return answer
        except ValueError:
            return {"status": "error", "error": f"HTTP {e.code}"}


def judge(resp: dict[str, Any]) -> tuple[bool, str, int]:
    if resp.get("status") != "success":
        return False, f"error: {resp.get('errorType', '')} {resp.get('error', '')}".strip(), 0
    data = resp["data"]
    result = data["result"]
    if data["resultType"] == "scalar":
        result = [{"value": result}]
    values = [r["value"][1] for r in result if "value" in r]
    finite = [v for v in values if not math.isnan(float(v))]
    if not values:
        return False, "no data (empty result)", 0
    if not finite:
        return False, f"only NaN ({len(values)} series)", len(values)
    return True, f"{len(finite)} series, e.g. {finite[0]}", len(finite)


def run_queries(prom: str, queries: list[dict[str, Any]], variables: list[str], window: str, at: float,
                args: argparse.Namespace, about: dict[str, Any]) -> int:
    """Every query at `at`; exit code 1 listing the failures, 0 when all returned data."""
    results, failed = [], []
    for q in queries:
        expr = substitute(q["expr"], variables, window)
        ok, detail, n = judge(prom_query(prom, expr, at))
        results.append({**q, "query": expr, "ok": ok, "detail": detail, "series": n})
        (log if ok else lambda m: None)(f"ok   {q['panel']} [{q['ref']}]: {detail}")
        if not ok:
            failed.append(results[-1])
    if args.report:
        Path(args.report).write_text(json.dumps({"dashboard": str(args.dashboard), **about,
                                                 "queries": results}, indent=2) + "\n")
    for f in failed:
        log(f"FAIL {f['panel']} [{f['ref']}]: {f['detail']}\n       {f['query']}")
    log(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = ap.add_mutually_exclusive_group(required=True)
    source.add_argument("--base-url", help="vLLM base URL, e.g. http://127.0.0.1:8100")
    source.add_argument("--tsdb", type=Path, help="Prometheus data recorded by the pipeline's monitor service")
    ap.add_argument("--dashboard", default=str(DEFAULT_DASHBOARD))
    ap.add_argument("--prometheus", default="prometheus", help="prometheus binary (default: on PATH)")
    ap.add_argument("--scrape-interval", default="2s")
    ap.add_argument("--rate-window", help="value for $__rate_interval (default 1m; --tsdb: the recorded span)")
    ap.add_argument("--requests", type=int, default=12)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--timeout", type=float, default=120, help="per wait, seconds")
    ap.add_argument("--report", help="write a JSON report of every query here")
    args = ap.parse_args(argv)

    base = (args.base_url or "").rstrip("/")
    try:
        dash = json.loads(Path(args.dashboard).read_text())
    except (OSError, ValueError) as e:
        log(f"error: cannot read dashboard {args.dashboard}: {e}")
        return 2
    queries = collect_queries(dash)
    if not queries:
        log(f"error: {args.dashboard} holds no PromQL expression")
        return 2
    variables = [v["name"] for v in dash.get("templating", {}).get("list", []) if v.get("name")]
    binary = shutil.which(args.prometheus)
    if not binary:
        log(f"error: no '{args.prometheus}' binary on PATH (Debian/Ubuntu: apt-get install -y prometheus)")
        return 2

    workdir = Path(tempfile.mkdtemp(prefix="forge-prom-"))
    proc = None
    try:
        if args.tsdb:
            proc, prom, at, span = open_recording(args.tsdb, binary, workdir, args.timeout)
            window = args.rate_window or f"{span}s"
            log(f"prometheus {prom} over a copy of {args.tsdb} ({span} s recorded); rate window {window}")
            return run_queries(prom, queries, variables, window, at, args,
                               {"tsdb": str(args.tsdb), "at": at})
        model = served_model(base)
        target = urllib.parse.urlsplit(base).netloc
        proc, prom = start_prometheus(binary, target, args.scrape_interval, workdir)
        log(f"prometheus {prom} scraping {target} every {args.scrape_interval}")
        wait_until("prometheus ready", lambda: urllib.request.urlopen(f"{prom}/-/ready", timeout=5).status == 200,
                   args.timeout, proc, workdir)
        def up() -> bool:
            return any(r["value"][1] == "1" for r in
                       http_json(f"{prom}/api/v1/query?query=up%7Bjob%3D%22vllm%22%7D")["data"]["result"])

        wait_until(f"target {target} up", up, args.timeout, proc, workdir)
        t0 = time.monotonic()
        done = send_requests(base, model, args.requests, args.max_tokens, deadline_s=args.timeout)
        log(f"{done}/{args.requests} requests to {model} completed in {time.monotonic() - t0:.1f} s")
        if done == 0:
            raise SetupError(f"no request to {base}/v1/completions succeeded")
        # Two more scrapes after the last request, so every counter has moved inside the window.
        scrape_s = float(re.sub(r"[^0-9.]", "", args.scrape_interval) or 2)
        time.sleep(2.5 * scrape_s)
        return run_queries(prom, queries, variables, args.rate_window or "1m", time.time(), args,
                           {"vllm": base, "model": model, "requests": done})
    except SetupError as e:
        log(f"error: {e}")
        return 2
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
