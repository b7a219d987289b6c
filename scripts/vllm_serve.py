#!/usr/bin/env python3
"""Start `vllm serve` from FORGE_* environment variables (stdlib only).

Run it with the serving environment's python; it replaces itself (exec) with
`<that python> -m vllm.entrypoints.cli.main serve ...`, so the PID the caller holds is the vLLM
API server's and a SIGTERM to its process group stops the API server and its EngineCore/Worker
children. Every setting is optional except FORGE_MODEL and FORGE_PORT; unset means vLLM's default.

  FORGE_MODEL                     local model dir or hub id (positional argument of `vllm serve`)
  FORGE_SERVED_NAME               --served-model-name (also the Prometheus `model_name` label)
  FORGE_HOST                      --host (default 127.0.0.1)
  FORGE_PORT                      --port
  FORGE_MAX_MODEL_LEN             --max-model-len
  FORGE_GPU_MEMORY_UTILIZATION    --gpu-memory-utilization (ignored by the CPU backend)
  FORGE_MAX_NUM_SEQS              --max-num-seqs
  FORGE_MAX_NUM_BATCHED_TOKENS    --max-num-batched-tokens
  FORGE_PREFIX_CACHING            true -> --enable-prefix-caching, false -> --no-enable-prefix-caching
  FORGE_KV_CACHE_DTYPE            --kv-cache-dtype
  FORGE_QUANTIZATION              --quantization (leave unset for compressed-tensors checkpoints:
                                  vLLM reads the method from config.json)
  FORGE_ENFORCE_EAGER             true -> --enforce-eager (CPU: 30 s startup instead of 70-100 s)
  FORGE_EXTRA_ARGS                more flags, split like a shell would
  FORGE_DRY_RUN                   1 -> print the command as JSON and exit 0
  FORGE_FACTS_FILE                set by Forge for every service: the launcher writes the engine's
                                  torch build and CUDA runtime there (JSON), for results' metadata
  FORGE_EMULATE_CPU               tests and CI only: `avx2` makes vLLM's CPU build load its AVX2
                                  kernel library as on a CPU without AVX-512 (scripts/cpu_emulation/)

vLLM's own variables pass through unchanged (VLLM_CPU_KVCACHE_SPACE, HF_HOME, HF_HUB_OFFLINE, ...).
Exit code 2: bad settings, the port is already taken, or an INT4 (W4A16) checkpoint that vLLM's
CPU build cannot run on this CPU (checked before starting, so each is an immediate, clear error
instead of a server that dies after loading the model or answers HTTP 500 to every request).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shlex
import socket
import sys
from pathlib import Path

VALUED = [
    ("FORGE_SERVED_NAME", "--served-model-name"),
    ("FORGE_MAX_MODEL_LEN", "--max-model-len"),
    ("FORGE_GPU_MEMORY_UTILIZATION", "--gpu-memory-utilization"),
    ("FORGE_MAX_NUM_SEQS", "--max-num-seqs"),
    ("FORGE_MAX_NUM_BATCHED_TOKENS", "--max-num-batched-tokens"),
    ("FORGE_KV_CACHE_DTYPE", "--kv-cache-dtype"),
    ("FORGE_QUANTIZATION", "--quantization"),
]
TRUE, FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


class SettingError(Exception):
    pass


def flag(env: dict[str, str], name: str) -> bool | None:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return None
    if raw in TRUE:
        return True
    if raw in FALSE:
        return False
    raise SettingError(f"{name}={env[name]!r}: expected true or false")


def build_command(env: dict[str, str], python: str) -> list[str]:
    model = env.get("FORGE_MODEL", "").strip()
    port = env.get("FORGE_PORT", "").strip()
    if not model:
        raise SettingError("FORGE_MODEL is not set (a model directory or a hub id)")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingError(f"FORGE_PORT={port!r}: expected a TCP port number")
    cmd = [python, "-m", "vllm.entrypoints.cli.main", "serve", model,
           "--host", env.get("FORGE_HOST", "127.0.0.1"), "--port", port]
    for var, opt in VALUED:
        value = env.get(var, "").strip()
        if value:
            cmd += [opt, value]
    prefix = flag(env, "FORGE_PREFIX_CACHING")
    if prefix is not None:
        cmd.append("--enable-prefix-caching" if prefix else "--no-enable-prefix-caching")
    if flag(env, "FORGE_ENFORCE_EAGER"):
        cmd.append("--enforce-eager")
    cmd += shlex.split(env.get("FORGE_EXTRA_ARGS", ""))
    return cmd


def check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise SettingError(f"port {port} on {host} is not free ({e.strerror}); stop whatever "
                               f"listens there (e.g. `ss -ltnp 'sport = :{port}'`) or choose another port") from None


# vLLM's CPU build: the kernel library vllm/platforms/cpu.py imports on x86-64 (PyTorch's
# `_is_avx512_supported` tests these four; `_is_avx512_bf16_supported` adds avx512_bf16).
AVX512_SET = {"avx512f", "avx512bw", "avx512dq", "avx512vl"}
INT4_OP = b"cpu_gemm_wna16"


def cpu_flags(cpuinfo: str, emulate: str) -> set[str]:
    """The CPU's extensions from /proc/cpuinfo, without AVX-512 and AMX when emulating AVX2."""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags = set(value.split())
            break
    if emulate == "avx2":
        flags = {f for f in flags if not f.startswith(("avx512", "amx"))}
    return flags


def cpu_kernel_library(machine: str, flags: set[str]) -> tuple[str, str]:
    """The extension vLLM's CPU build loads here, and why (mirrors `CpuPlatform.import_kernels`)."""
    if machine not in ("x86_64", "AMD64"):
        return "_C.abi3.so", f"the one library of vLLM's {machine} build"
    if AVX512_SET <= flags:
        if "avx512_bf16" in flags:
            return "_C.abi3.so", "the CPU has AVX-512 with BF16"
        return "_C_AVX512.abi3.so", "the CPU has AVX-512 without BF16"
    return "_C_AVX2.abi3.so", "the CPU has no AVX-512"


def int4_checkpoint(model: str) -> bool:
    """True for a local compressed-tensors checkpoint with 4-bit weights (AWQ/GPTQ W4A16)."""
    try:
        config = json.loads((Path(model) / "config.json").read_text())
    except (OSError, ValueError):
        return False
    quant = config.get("quantization_config") or {}
    if quant.get("quant_method") != "compressed-tensors":
        return False
    return any((g.get("weights") or {}).get("num_bits") == 4
               for g in (quant.get("config_groups") or {}).values())


def int4_kernel_problem(model: str, package_dir: Path | None, machine: str, flags: set[str],
                        emulated: bool) -> str | None:
    """Why vLLM's CPU build in `package_dir` cannot serve `model` here, or None when it can.

    `package_dir` is the installed `vllm` package of a CPU build (None for a GPU build, whose
    Marlin/Machete kernels serve W4A16)."""
    if package_dir is None or not int4_checkpoint(model):
        return None
    library, why = cpu_kernel_library(machine, flags)
    path = package_dir / library
    if not path.is_file() or INT4_OP in path.read_bytes():
        return None
    return (f"{model} is an INT4 (W4A16) checkpoint, but vLLM's CPU kernels for this CPU ({library}, "
            f"chosen because {why}{' (emulated)' if emulated else ''}) have no INT4 GEMM "
            f"({INT4_OP.decode()}): every request would fail with HTTP 500. Serve the AWQ weights "
            'dequantized to BF16 instead: set `awq_serving = "auto"` (or "dequantized") in the profile')


def check_int4_kernel(model: str, emulate: str) -> None:
    """Refuses an INT4 checkpoint on a CPU build whose kernel library has no INT4 GEMM."""
    try:
        package_dir = Path(str(importlib.metadata.distribution("vllm-cpu").locate_file("vllm")))
    except importlib.metadata.PackageNotFoundError:
        package_dir = None
    cpuinfo = Path("/proc/cpuinfo")
    flags = cpu_flags(cpuinfo.read_text() if cpuinfo.exists() else "", emulate)
    problem = int4_kernel_problem(model, package_dir, os.uname().machine, flags, bool(emulate))
    if problem:
        raise SettingError(problem)


def torch_build(version_py: str) -> dict[str, str]:
    """The torch build a `torch/version.py` describes: `engine_torch` (`2.10.0+cu128`) and, for a
    CUDA build, `engine_cuda` (its runtime, `12.8`). Read as text: importing torch takes seconds."""
    facts = {}
    version = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", version_py, re.M)
    if version:
        facts["engine_torch"] = version.group(1)
    cuda = re.search(r"^cuda\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", version_py, re.M)
    if cuda:
        facts["engine_cuda"] = cuda.group(1)
    return facts


def publish_facts(path: str) -> None:
    """Writes the engine's torch build to `path` (FORGE_FACTS_FILE) atomically; best effort."""
    spec = importlib.util.find_spec("torch")
    origin = Path(spec.origin) if spec and spec.origin else None
    if not path or origin is None or not (origin.parent / "version.py").is_file():
        return
    facts = torch_build((origin.parent / "version.py").read_text(errors="replace"))
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(facts, f)
        os.replace(tmp, path)
    except OSError as e:
        print(f"vllm_serve: cannot write {path}: {e}", file=sys.stderr)


def emulation_env(env: dict[str, str]) -> str:
    """Applies FORGE_EMULATE_CPU (tests and CI only) to `env`; returns the level or ''."""
    level = env.get("FORGE_EMULATE_CPU", "").strip().lower()
    if level == "":
        return ""
    if level != "avx2":
        raise SettingError(f"FORGE_EMULATE_CPU={level!r}: only `avx2` can be emulated")
    hook = str(Path(__file__).resolve().parent / "cpu_emulation")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (hook, env.get("PYTHONPATH", "")) if p)
    env["ATEN_CPU_CAPABILITY"] = "avx2"
    env["ONEDNN_MAX_CPU_ISA"] = "AVX2"
    return level


def main() -> int:
    env = dict(os.environ)
    try:
        cmd = build_command(env, sys.executable)
        emulate = emulation_env(env)
        if flag(env, "FORGE_DRY_RUN"):
            print(json.dumps(cmd))
            return 0
        check_port_free(env.get("FORGE_HOST", "127.0.0.1"), int(env["FORGE_PORT"]))
        check_int4_kernel(env["FORGE_MODEL"].strip(), emulate)
    except SettingError as e:
        print(f"vllm_serve: error: {e}", file=sys.stderr)
        return 2
    if emulate:
        print(f"vllm_serve: emulating an {emulate.upper()} CPU (FORGE_EMULATE_CPU; tests and CI only)",
              file=sys.stderr, flush=True)
    publish_facts(env.get("FORGE_FACTS_FILE", ""))
    print("vllm_serve: exec " + shlex.join(cmd), file=sys.stderr, flush=True)
    os.execve(cmd[0], cmd, env)  # does not return: vLLM replaces this process


if __name__ == "__main__":
    sys.exit(main())
