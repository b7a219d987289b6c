#!/usr/bin/env python3
"""Compare two bench result directories (Forge's native driver vs `vllm bench serve`) level by level.

Completed and failed counts and input/output token totals must be equal; median TPOT must agree
within --tolerance (default 15 %). Median TTFT is compared and printed with the same tolerance but
only fails the check with --strict-ttft: on a loaded 2-core machine TTFT medians of ~30 requests
differ between runs of the *same* client by more than 15 % (measured in docs/bench.md).
Exit 0 when the check holds, 1 otherwise. Stdlib only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def levels(directory: Path) -> dict[int, dict[str, Any]]:
    summary = json.loads((directory / "summary.json").read_text())
    return {int(level["max_concurrency"]): level for level in summary["levels"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("native", type=Path)
    ap.add_argument("vllm", type=Path)
    ap.add_argument("--tolerance", type=float, default=0.15)
    ap.add_argument("--strict-ttft", action="store_true")
    args = ap.parse_args()
    native, vllm = levels(args.native), levels(args.vllm)
    if native.keys() != vllm.keys():
        print(f"different levels: native {sorted(native)} vs vllm {sorted(vllm)}")
        return 1
    ok = True
    print(f"{'c':>3} {'field':<20} {'native':>10} {'vllm':>10}  verdict")
    for c in sorted(native):
        n, v = native[c], vllm[c]
        for field in ("completed", "failed", "total_input_tokens", "total_output_tokens"):
            same = n[field] == v[field]
            ok &= same
            print(f"{c:>3} {field:<20} {n[field]:>10} {v[field]:>10}  {'equal' if same else 'DIFFERENT'}")
        for field, strict in (("median_tpot_ms", True), ("median_ttft_ms", args.strict_ttft)):
            a, b = float(n[field]), float(v[field])
            rel = (a - b) / max(abs(b), 1e-9)
            within = abs(rel) <= args.tolerance
            if strict:
                ok &= within
            verdict = f"{rel:+.1%} " + ("within" if within else ("OUTSIDE" if strict else "outside (not enforced)"))
            print(f"{c:>3} {field:<20} {a:>10.2f} {b:>10.2f}  {verdict} {args.tolerance:.0%}")
    print("cross-check", "passed" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
