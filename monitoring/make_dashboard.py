#!/usr/bin/env python3
"""Generate monitoring/grafana/dashboards/forge-vllm.json (stdlib only; output is deterministic).

    python3 monitoring/make_dashboard.py            # rewrite the JSON
    python3 monitoring/make_dashboard.py --check    # exit 1 if the JSON is out of date

Metric names: vLLM V1 `vllm/v1/metrics/loggers.py` and docs/usage/metrics.md (see
shared/reference/serving-eval-quant-pricing.md §1.3). Where vLLM renamed a metric, the query is
`(new) or (old)`, so one dashboard reads both old and current servers:
  vllm:kv_cache_usage_perc            <- vllm:gpu_cache_usage_perc            (renamed 0.9.2, gone in 0.12)
  vllm:inter_token_latency_seconds    <- vllm:time_per_output_token_seconds   (renamed 0.11, gone in 0.13)
  vllm:prefix_cache_{hits,queries}    <- vllm:gpu_prefix_cache_{hits,queries} (renamed with the KV gauge)
vLLM 0.32.0 (measured on the CPU rehearsal) exports only the new names. Every expression here is
executed against a real Prometheus scraping a real vLLM by scripts/check_dashboard.py.
Quantiles follow vLLM's own Grafana example: histogram_quantile over sum by (le) of bucket rates.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "grafana" / "dashboards" / "forge-vllm.json"
SEL = 'model_name=~"$model_name"'
RI = "$__rate_interval"
DS = {"type": "prometheus", "uid": "${datasource}"}


def rate(metric: str) -> str:
    return f"rate({metric}{{{SEL}}}[{RI}])"


def quantile(q: float, hist: str, old: str | None = None) -> str:
    def one(h: str) -> str:
        return f"histogram_quantile({q}, sum by (le) ({rate(h + '_bucket')}))"
    return one(hist) if old is None else f"({one(hist)}) or ({one(old)})"


def mean(hist: str, old: str | None = None) -> str:
    def one(h: str) -> str:
        return f"sum({rate(h + '_sum')}) / sum({rate(h + '_count')})"
    return one(hist) if old is None else f"({one(hist)}) or ({one(old)})"


def latency_targets(hist: str, old: str | None = None) -> list[tuple[str, str]]:
    return [(f"p{int(q * 100)}", quantile(q, hist, old)) for q in (0.5, 0.9, 0.99)] + [("mean", mean(hist, old))]


# (title, description, unit, [(legend, expr)], width)
PANELS = [
    ("Time to first token", "Quantiles and mean of TTFT over the rate window.", "s",
     latency_targets("vllm:time_to_first_token_seconds"), 8),
    ("Inter-token latency", "Token-weighted ITL (older vLLM: time_per_output_token).", "s",
     latency_targets("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"), 8),
    ("End-to-end request latency", "Quantiles and mean of request latency.", "s",
     latency_targets("vllm:e2e_request_latency_seconds"), 8),
    ("Token throughput", "Prompt and generated tokens per second.", "tps",
     [("prompt tok/s", f"sum({rate('vllm:prompt_tokens_total')})"),
      ("generation tok/s", f"sum({rate('vllm:generation_tokens_total')})")], 8),
    ("Requests running / waiting", "Scheduler state: in the running batch vs queued.", "short",
     [("running", f"sum(vllm:num_requests_running{{{SEL}}})"),
      ("waiting", f"sum(vllm:num_requests_waiting{{{SEL}}})")], 8),
    ("KV-cache usage", "Fraction of KV-cache blocks in use (1 = full).", "percentunit",
     [("kv cache", f"max(vllm:kv_cache_usage_perc{{{SEL}}}) or max(vllm:gpu_cache_usage_perc{{{SEL}}})")], 8),
    ("Request outcomes", "Finished requests per second by finish reason (stop, length, abort, ...).", "reqps",
     [("{{finished_reason}}", f"sum by (finished_reason) ({rate('vllm:request_success_total')})")], 8),
    ("Preemptions", "Requests preempted per second (KV cache pressure).", "short",
     [("preemptions/s", f"sum({rate('vllm:num_preemptions_total')})")], 8),
    ("Prefix-cache hit rate", "Cached prompt tokens / queried prompt tokens.", "percentunit",
     [("hit rate", f"(sum({rate('vllm:prefix_cache_hits_total')}) / sum({rate('vllm:prefix_cache_queries_total')}))"
       f" or (sum({rate('vllm:gpu_prefix_cache_hits_total')})"
       f" / sum({rate('vllm:gpu_prefix_cache_queries_total')}))")], 8),
    ("Queue time", "Time requests wait before scheduling.", "s",
     [("p50", quantile(0.5, "vllm:request_queue_time_seconds")),
      ("p99", quantile(0.99, "vllm:request_queue_time_seconds"))], 12),
    ("Tokens per request", "Median prompt and generation lengths of finished requests.", "short",
     [("prompt p50", quantile(0.5, "vllm:request_prompt_tokens")),
      ("generation p50", quantile(0.5, "vllm:request_generation_tokens"))], 12),
]


def panel(pid: int, x: int, y: int, title: str, desc: str, unit: str, targets: list[tuple[str, str]],
          width: int) -> dict[str, Any]:
    return {
        "id": pid,
        "type": "timeseries",
        "title": title,
        "description": desc,
        "datasource": DS,
        "gridPos": {"h": 8, "w": width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit, "custom": {"lineWidth": 1, "fillOpacity": 10}},
                        "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "none"}},
        "targets": [{"datasource": DS, "refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend,
                     "range": True}
                    for i, (legend, expr) in enumerate(targets)],
    }


def dashboard() -> dict[str, Any]:
    panels, x, y, pid = [], 0, 0, 1
    for title, desc, unit, targets, width in PANELS:
        if x + width > 24:
            x, y = 0, y + 8
        panels.append(panel(pid, x, y, title, desc, unit, targets, width))
        x, pid = x + width, pid + 1
    return {
        "uid": "forge-vllm",
        "title": "Forge / vLLM",
        "description": "Forge's vLLM serving dashboard (generated by monitoring/make_dashboard.py).",
        "tags": ["forge", "vllm"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "5s",
        "time": {"from": "now-15m", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
             "current": {"text": "Prometheus", "value": "prometheus"}, "hide": 0},
            {"name": "model_name", "label": "Model", "type": "query", "datasource": DS,
             "definition": "label_values(vllm:num_requests_running, model_name)",
             "query": {"query": "label_values(vllm:num_requests_running, model_name)", "refId": "vars"},
             "refresh": 2, "multi": True, "includeAll": True, "allValue": ".*",
             "current": {"text": "All", "value": "$__all"}, "sort": 1, "hide": 0},
        ]},
        "annotations": {"list": []},
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv[1:]:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is out of date: run python3 monitoring/make_dashboard.py", file=sys.stderr)
            sys.exit(1)
        sys.exit(0)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT}")
