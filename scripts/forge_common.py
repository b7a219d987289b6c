"""Helpers shared by the scripts in scripts/ (stdlib only, Python >= 3.11).

Every script here runs as `python scripts/NAME.py` (the pipeline's steps, .ci/*), so this
directory is sys.path[0] and `from forge_common import ...` works whichever interpreter runs it
(the system python3 or a pipeline environment's). recipes/awq_int4.py runs from recipes/ in the
quantize environment and keeps its own copy of `sha256_file`. A pipeline step whose script imports
this module lists it in its `inputs`, so a change here reruns that step.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: Path) -> str:
    """The file's sha256 as hex, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
