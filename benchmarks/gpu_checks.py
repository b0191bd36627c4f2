"""The GPU checks behind benchmarks/run_gpu_checks.sh: find out what this machine can
verify, run each check within the time left, and write one report.

    python -m streamfix.benchmarks.gpu_checks OUTDIR --source SRC --deadline EPOCH_SECONDS

SRC is the checkout whose tests run (the script's private copy); everything written
goes under OUTDIR: OUTDIR/report.md, one log and one JUnit file per check, and the
benchmark's own report.

The machines we test on are offline and lack PyAV, TensorRT and pycuda unless their
wheels were carried, so every check says what it needs. One whose needs are
missing is "not verifiable" with the reason (that is not a failure: TensorRT's
libraries, over 1 GB, cannot travel at all); one that would start after the deadline
is "not run". Each runs in its own process, so a crash in one (a driver fault, a
broken binding) cannot take the others' results with it.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

# The test modules that hold GPU tests (marked `gpu`). None imports PyAV at the top,
# so they are collected on a machine without it; tests/test_gpu_checks.py keeps
# this list complete.
TORCH_TESTS = ("tests/test_gpu_torch.py", "tests/test_engines.py", "tests/test_engines_select.py")
PIPELINE_TESTS = ("tests/test_gpu_pipeline.py",)
PYCUDA_TESTS = ("tests/test_gpu_cuda_buffers.py",)
TENSORRT_TESTS = ("tests/test_tensorrt_gpu.py",)
MIN_STEP_S = 20.0  # a check needs at least this much of the budget to be worth starting


@dataclass(frozen=True, slots=True)
class Environment:
    """What this machine has; each `*_missing` is None or why it is not usable."""

    gpu: str | None  # the name PyTorch reports, None without a usable CUDA GPU
    cuda_missing: str | None
    av_missing: str | None
    pycuda_missing: str | None
    tensorrt_missing: str | None


@dataclass(slots=True)
class Check:
    name: str  # file-name safe: its log is <name>.log
    title: str
    command: list[str]
    missing: str | None = None  # not verifiable, and why
    status: str = "pending"  # passed, failed, skipped, not verifiable, not run, timed out
    details: str = ""
    env: dict[str, str] = field(default_factory=dict)

    @property
    def is_pytest(self) -> bool:
        return self.command[1:3] == ["-m", "pytest"]


def probe_environment() -> Environment:
    import torch

    from streamfix.benchmarks.gpu_bench import missing, tensorrt_missing

    gpu, cuda_missing = None, None
    if torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(0)
    else:
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        cuda_missing = f"PyTorch {torch.__version__} ({build}) sees no CUDA GPU"
    return Environment(gpu, cuda_missing, missing("av"), missing("pycuda.driver"),
                       cuda_missing or tensorrt_missing())


def _pytest(out: Path, name: str, modules: tuple[str, ...], source: Path) -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-rs", "-m", "gpu", "-p", "no:cacheprovider",
            "--rootdir", str(source), "-c", str(source / "pyproject.toml"), f"--basetemp={out / f'tmp-{name}'}",
            f"--junitxml={out / f'{name}.xml'}", *(str(source / m) for m in modules)]


def plan(env: Environment, out: Path, source: Path) -> list[Check]:
    """The checks, in order, each with what it lacks (if anything)."""
    no_cuda = env.cuda_missing
    # The engine cache stays the default (XDG_CACHE_HOME, which run_gpu_checks.sh points
    # into OUTDIR), which the end-to-end runs use too: one TensorRT build per size.
    bench = [sys.executable, "-m", "streamfix.benchmarks.gpu_bench", "--quick", "--out",
             str(out / f"gpu-bench-{_slug(env.gpu or 'none')}.md")]
    checks = [
        Check("torch", "PyTorch CUDA FP16 parity with the FP32 model (720p, 1080p)",
              _pytest(out, "torch", TORCH_TESTS, source), no_cuda),
        Check("pycuda", "pycuda buffers: round trip through the three streams, PyTorch computing between",
              _pytest(out, "pycuda", PYCUDA_TESTS, source), no_cuda or env.pycuda_missing),
        Check("pipeline", "the pipeline end to end on the GPU with the torch engine",
              _pytest(out, "pipeline", PIPELINE_TESTS, source), no_cuda or env.av_missing),
        Check("tensorrt", "TensorRT: build, FP16 gate, parity, cache, standby",
              _pytest(out, "tensorrt", TENSORRT_TESTS, source), env.tensorrt_missing,
              env={"STREAMFIX_REQUIRE_TENSORRT": "1"}),
        Check("bench", "speed: torch FP16 at 720p/1080p, copy/compute overlap, TensorRT and end to end "
              "where they can run", bench, no_cuda),
    ]
    return checks


def _slug(text: str) -> str:
    from streamfix.engines.engine_cache import slug

    return slug(text)


def read_junit(path: Path) -> tuple[dict[str, int], list[str]]:
    """Counts of passed/failed/error/skipped tests in a JUnit file, and the distinct
    first lines of why tests did not pass."""
    counts = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
    reasons: list[str] = []
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return counts, ["no test results (see the log)"]
    for case in root.iter("testcase"):
        outcome = next((child for child in case if child.tag in ("failure", "error", "skipped")), None)
        kind = {"failure": "failed", "error": "error", "skipped": "skipped"}.get(getattr(outcome, "tag", ""), "passed")
        counts[kind] += 1
        message = (outcome.get("message") or "").strip() if outcome is not None else ""
        line = message.splitlines()[0][:200] if message else ""
        if line and line not in reasons:
            reasons.append(line)
    return counts, reasons


def summarize(counts: dict[str, int], reasons: list[str]) -> str:
    """'5 passed, 1 skipped (onnxruntime-gpu is not installed)'."""
    text = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n) or "no tests collected"
    return text + (f" ({'; '.join(reasons)})" if reasons else "")


def outcome(code: int | None, counts: dict[str, int] | None) -> str:
    """A check's status from its exit code (None: killed at the deadline) and, for
    tests, their counts: tests that all skipped verified nothing."""
    if code is None:
        return "timed out"
    if code != 0:
        return "failed"
    if counts is not None and counts["skipped"] and not counts["passed"]:
        return "skipped"
    return "passed"


def run(checks: list[Check], out: Path, deadline: float, *, log=print) -> None:
    for check in checks:
        if check.missing:
            check.status, check.details = "not verifiable", check.missing
            continue
        left = deadline - time.time()
        if left < MIN_STEP_S:
            check.status, check.details = "not run", f"the time budget was spent ({max(left, 0):.0f} s left)"
            continue
        log(f"gpu_checks: {check.title} (up to {left:.0f} s)")
        with open(out / f"{check.name}.log", "w") as logfile:
            try:
                done = subprocess.run(check.command, stdout=logfile, stderr=subprocess.STDOUT, timeout=left,
                                      env={**os.environ, **check.env})
                code = done.returncode
            except subprocess.TimeoutExpired:
                code = None
        counts, reasons = read_junit(out / f"{check.name}.xml") if check.is_pytest else (None, [])
        check.status = outcome(code, counts)
        summary = summarize(counts, reasons) if counts is not None else ""
        check.details = "; ".join(part for part in (summary, f"log: {check.name}.log") if part)


def report(env: Environment, checks: list[Check], out: Path, machine: str) -> str:
    lines = [f"# GPU checks: {env.gpu or 'no usable GPU'}", "", f"Machine: {machine}", "",
             f"Python {platform.python_version()} ({sys.executable}); "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
             "| check | result | details |", "|---|---|---|"]
    for c in checks:
        details = c.details.replace("|", "\\|")
        lines.append(f"| {c.title} | {c.status} | {details} |")
    for bench in sorted(out.glob("gpu-bench-*.md")):
        lines += ["", bench.read_text().replace("# GPU benchmark", "## Benchmark", 1)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the report, logs and results")
    parser.add_argument("--source", type=Path, required=True, help="the checkout whose tests run")
    parser.add_argument("--deadline", type=float, required=True, help="Unix time by which to be done")
    parser.add_argument("--machine", default="", help="one line on the machine (nvidia-smi)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    env = probe_environment()
    checks = plan(env, args.out, args.source.resolve())
    run(checks, args.out, args.deadline, log=lambda line: print(line, file=sys.stderr, flush=True))
    text = report(env, checks, args.out, args.machine or platform.node())
    (args.out / "report.md").write_text(text)
    print(text)
    return 1 if any(c.status in ("failed", "timed out") for c in checks) else 0


if __name__ == "__main__":
    raise SystemExit(main())
