#!/usr/bin/env python3
"""Validate SkyPilot task files with SkyPilot's own parser, offline.

    check_sky_tasks.py TASK.yaml...

Runs `sky.Task.from_yaml` on each file (it checks the schema and the resources: infra,
accelerators, disk size, max_hourly_cost, autostop) and prints what SkyPilot understood. Needs the
SkyPilot environment (`forge run pipelines/remote.toml` builds it under .forge/envs/skypilot).
SkyPilot writes state under $HOME/.sky: this script points HOME at a temporary directory, so
nothing of the caller's SkyPilot setup is read or changed, and it starts no API server.
Exit code 0 when every file parses, 1 otherwise.
"""

from __future__ import annotations

import os
import sys
import tempfile


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: check_sky_tasks.py TASK.yaml...", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="forge-sky-home-") as home:
        os.environ["HOME"] = home
        import sky  # after HOME is set: SkyPilot reads ~/.sky at import

        failed = 0
        for path in argv:
            try:
                task = sky.Task.from_yaml(path)
                resources = ", ".join(str(r) for r in task.resources)
                print(f"ok {path}: {task.name} {resources}")
            except Exception as err:  # noqa: BLE001 - report any parser failure and go on
                failed += 1
                print(f"FAILED {path}: {type(err).__name__}: {err}", file=sys.stderr)
        print(f"skypilot {sky.__version__}: {len(argv) - failed} of {len(argv)} task(s) parse")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
