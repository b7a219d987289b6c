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

vLLM's own variables pass through unchanged (VLLM_CPU_KVCACHE_SPACE, HF_HOME, HF_HUB_OFFLINE, ...).
Exit code 2: bad settings or the port is already taken (checked before starting, so a clash is
an immediate, clear error instead of a server that dies after loading the model).
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import sys

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


def main() -> int:
    env = dict(os.environ)
    try:
        cmd = build_command(env, sys.executable)
        if flag(env, "FORGE_DRY_RUN"):
            print(json.dumps(cmd))
            return 0
        check_port_free(env.get("FORGE_HOST", "127.0.0.1"), int(env["FORGE_PORT"]))
    except SettingError as e:
        print(f"vllm_serve: error: {e}", file=sys.stderr)
        return 2
    print("vllm_serve: exec " + shlex.join(cmd), file=sys.stderr, flush=True)
    os.execv(cmd[0], cmd)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main())
