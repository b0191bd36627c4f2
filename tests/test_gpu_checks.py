"""benchmarks/run_gpu_checks.sh and gpu_checks.py on a machine without a GPU: what
they decide to run, how they report, and the environment the script builds."""

import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from streamfix.benchmarks import gpu_checks
from streamfix.benchmarks.gpu_checks import Check, Environment, outcome, plan, read_junit, report, run, summarize

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "run_gpu_checks.sh"
GPU_MODULES = (*gpu_checks.TORCH_TESTS, *gpu_checks.PIPELINE_TESTS, *gpu_checks.PYCUDA_TESTS,
               *gpu_checks.TENSORRT_TESTS)


def test_every_module_with_gpu_tests_is_checked():
    marker = re.compile(r"^(@pytest\.mark\.gpu|pytestmark = pytest\.mark\.gpu)$", re.MULTILINE)
    marked = {f"tests/{p.name}" for p in (ROOT / "tests").glob("test_*.py") if marker.search(p.read_text())}
    assert marked == set(GPU_MODULES)


def test_gpu_test_modules_are_collected_without_pyav(tmp_path):
    """Bug: the script ran `pytest -m gpu tests`, and every module that imports PyAV
    at the top failed to collect on the GPU machines, which have no PyAV."""
    code = (f"import sys, importlib, pytest; sys.modules['av'] = None; sys.path.insert(0, {str(ROOT / 'tests')!r})\n"
            f"for name in {[Path(m).stem for m in GPU_MODULES]!r}:\n"
            "    try:\n        importlib.import_module(name)\n"
            "    except pytest.skip.Exception:\n        pass\n")
    # Not from the checkout's root, whose streamfix/ (without engines/) would shadow the installed one.
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, timeout=300)


NO_GPU = Environment(gpu=None, cuda_missing="PyTorch 2.13.0 (a CPU-only build) sees no CUDA GPU",
                     av_missing=None, pycuda_missing=None, tensorrt_missing="PyTorch sees no CUDA GPU")
BARE_GPU = Environment(gpu="NVIDIA H100 80GB HBM3", cuda_missing=None, av_missing="av does not import",
                       pycuda_missing="pycuda.driver does not import",
                       tensorrt_missing="the tensorrt package is not installed: pip install x")


def test_without_a_gpu_nothing_runs_and_each_check_says_why(tmp_path):
    checks = plan(NO_GPU, tmp_path, ROOT)
    run(checks, tmp_path, time.time() + 3600, log=lambda line: None)
    assert {c.status for c in checks} == {"not verifiable"}
    text = report(NO_GPU, checks, tmp_path, "test machine")
    assert text.startswith("# GPU checks: no usable GPU") and "sees no CUDA GPU" in text


def test_a_bare_gpu_machine_runs_torch_and_the_benchmark_and_says_why_not_the_rest(tmp_path):
    checks = {c.name: c for c in plan(BARE_GPU, tmp_path, ROOT)}
    assert [n for n, c in checks.items() if c.missing is None] == ["torch", "bench"]
    assert checks["tensorrt"].missing.startswith("the tensorrt package is not installed")
    assert checks["pipeline"].missing == "av does not import"
    assert checks["pycuda"].missing == "pycuda.driver does not import"
    assert "gpu-bench-nvidia-h100-80gb-hbm3.md" in " ".join(checks["bench"].command)
    pytest_args = checks["torch"].command
    assert pytest_args[1:3] == ["-m", "pytest"] and "-m" in pytest_args[3:] and "gpu" in pytest_args
    assert all(str(ROOT / m) in pytest_args for m in gpu_checks.TORCH_TESTS)


JUNIT = """<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="4">
<testcase classname="a" name="t1"/><testcase classname="a" name="t2"/>
<testcase classname="a" name="t3"><skipped message="onnxruntime-gpu is not installed"/></testcase>
<testcase classname="a" name="t4"><failure message="assert 30.1 &gt;= 45.0&#10;more">x</failure></testcase>
</testsuite></testsuites>"""


def test_junit_results_are_counted_with_their_reasons(tmp_path):
    path = tmp_path / "torch.xml"
    path.write_text(JUNIT)
    counts, reasons = read_junit(path)
    assert counts == {"passed": 2, "failed": 1, "error": 0, "skipped": 1}
    assert summarize(counts, reasons) == ("2 passed, 1 failed, 1 skipped (onnxruntime-gpu is not installed; "
                                          "assert 30.1 >= 45.0)")
    assert read_junit(tmp_path / "missing.xml") == ({"passed": 0, "failed": 0, "error": 0, "skipped": 0},
                                                    ["no test results (see the log)"])


@pytest.mark.parametrize("code,counts,status", [
    (0, {"passed": 3, "skipped": 1}, "passed"), (0, {"passed": 0, "skipped": 2}, "skipped"),
    (1, {"passed": 3, "skipped": 0}, "failed"), (None, None, "timed out"), (0, None, "passed"),
])
def test_outcome(code, counts, status):
    assert outcome(code, counts) == status


def test_checks_stop_at_the_deadline(tmp_path, monkeypatch):
    """A check still running at the deadline is killed; the ones after it do not start."""
    monkeypatch.setattr(gpu_checks, "MIN_STEP_S", 1.0)
    checks = [Check("slow", "slow", [sys.executable, "-c", "import time; time.sleep(120)"]),
              Check("later", "later", [sys.executable, "-c", "pass"])]
    run(checks, tmp_path, time.time() + 3, log=lambda line: None)
    assert [c.status for c in checks] == ["timed out", "not run"]
    assert (tmp_path / "slow.log").exists() and not (tmp_path / "later.log").exists()


# -- the shell script -----------------------------------------------------------------------
def _bash(*args, env=None, timeout=60):
    return subprocess.run([shutil.which("bash"), str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_script_is_valid_bash_and_wants_an_output_folder():
    subprocess.run([shutil.which("bash"), "-n", str(SCRIPT)], check=True)
    result = _bash()
    assert result.returncode == 2 and "usage: bash benchmarks/run_gpu_checks.sh OUTDIR [WHEELS_DIR]" in result.stderr


def test_without_a_gpu_the_script_says_so_in_one_line(tmp_path):
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("dirname", "date", "mkdir", "tee"):
        (tools / tool).symlink_to(shutil.which(tool))
    result = _bash(tmp_path / "out", env={"PATH": str(tools), "HOME": str(tmp_path)})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "no NVIDIA GPU here (nvidia-smi is missing or lists none): nothing to check"]
    assert (tmp_path / "out" / "report.md").read_text().startswith("no NVIDIA GPU here")


def _tiny_wheel(folder: Path) -> Path:
    """A pure-Python wheel with one module, `gpucheckprobe`."""
    files = {"gpucheckprobe.py": b"VALUE = 42\n",
             "gpucheckprobe-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: gpucheckprobe\nVersion: 1.0\n",
             "gpucheckprobe-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                                 b"Tag: py3-none-any\n"}
    record = "".join(f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
                     f"{len(data)}\n" for name, data in files.items())
    path = folder / "gpucheckprobe-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
        wheel.writestr("gpucheckprobe-1.0.dist-info/RECORD", record + "gpucheckprobe-1.0.dist-info/RECORD,,\n")
    return path


@pytest.mark.slow
def test_on_a_gpu_machine_the_script_builds_its_environment_inside_the_output_folder(tmp_path):
    """With a (stand-in) nvidia-smi and this test's Python, which lives in a venv as
    the GPU machines' does: the script's venv sees that Python's torch, installs the
    carried wheels offline (reporting the one that fails) and streamfix from a copy,
    writes its report into OUTDIR, and leaves the checkout as it was. PyTorch sees no
    GPU here, so every check is "not verifiable"."""
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "nvidia-smi").write_text("#!/bin/sh\necho 'Stand-in GPU, 580.00, 81559 MiB'\n")
    (tools / "nvidia-smi").chmod(0o755)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _tiny_wheel(wheels)
    (wheels / "broken-0.1.tar.gz").write_bytes(b"not an archive")
    before = sorted(p.name for p in ROOT.iterdir())
    out = tmp_path / "out"
    env = {**os.environ, "PATH": f"{tools}:{os.environ['PATH']}", "PYTHON": sys.executable}
    result = _bash(out, wheels, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "could not install broken-0.1.tar.gz" in result.stderr
    venv_python = out / "venv" / "bin" / "python"
    probe = ("import torch, gpucheckprobe, streamfix.engines.fallback as f; "
             "print(gpucheckprobe.VALUE, f.__file__)")
    shown = subprocess.run([str(venv_python), "-c", probe], capture_output=True, text=True, check=True,
                           cwd=tmp_path).stdout
    assert shown.startswith("42 ") and str(out / "venv") in shown  # installed, not the checkout's files
    text = (out / "report.md").read_text()
    assert "| not verifiable | PyTorch" in text and "Stand-in GPU, 580.00, 81559 MiB" in text
    assert sorted(p.name for p in ROOT.iterdir()) == before
