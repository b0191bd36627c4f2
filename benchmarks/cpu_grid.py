"""Every CPU engine x precision x model, next to what the CPU could do at most.

Part of `streamfix bench` (the first table). Each (model, engine, precision, size)
runs in a child process of its own, so its peak resident memory (VmHWM) is its own
and no engine's threads or caches slow the next one. A child:
1. builds the engine exactly as `streamfix run --engine E --precision P` does
   (`choose()`, the same tiling wrapper, the cached int8 graph);
2. restores the built-in check split (engines/calibration_set.py) and reports the
   gain against its pristine crops: what this precision keeps of the restoration;
3. times `warmup` + `repeats` calls on one frame of the given size, made of those
   crops (real picture content), and reports the median.

With `--run-memory SIZES`, whole runs of a CRF 40 clip at those sizes follow (the
Pipeline that `streamfix run` drives), one child process per engine x precision,
each reporting its own peak resident memory: decoding, batching, tiling and encoding
included, which is what a server running several channels has to budget for.

The physical limit: a frame costs `macs_per_pixel(model)` x pixels multiply-adds (counted
from the network's convolutions); the CPU can do at most cores x clock x MACs per
cycle per core (`peak_macs_per_cycle`). The fraction reached is the first over the
time per frame divided by the second. It is also given per CPU-second of the
process (against one core's peak), which a busy machine disturbs much less.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from streamfix.benchmarks.memory import peak_rss_mib

CHILD_TIMEOUT_S = 900


@dataclass(slots=True)
class GridRow:
    model: str
    engine: str
    precision: str
    size: tuple[int, int]  # width, height
    seconds: list[float] = field(default_factory=list)  # wall time per frame, each timed call
    cpu_seconds: list[float] = field(default_factory=list)  # process CPU time per frame
    peak_rss_mib: float | None = None
    gain_db: float | None = None  # on the check split, against the pristine crops
    macs_per_frame: float = 0.0
    error: str | None = None

    @property
    def label(self) -> str:
        return f"{self.engine} {self.precision}"

    @property
    def seconds_per_frame(self) -> float:
        return statistics.median(self.seconds)

    @property
    def cpu_per_frame(self) -> float:
        return statistics.median(self.cpu_seconds)


def macs_per_pixel(model) -> int:
    """Multiply-adds per output pixel: sum over convolutions of in x out x kernel area."""
    from torch import nn

    return sum(m.in_channels * m.out_channels * m.kernel_size[0] * m.kernel_size[1]
               for m in model.modules() if isinstance(m, nn.Conv2d))


def cpu_clock_ghz() -> float | None:
    """The clock /proc/cpuinfo reports (the nominal one in most VMs; turbo may exceed it)."""
    try:
        with open("/proc/cpuinfo") as f:
            mhz = [float(line.split(":")[1]) for line in f if line.startswith("cpu MHz")]
    except (OSError, ValueError):
        return None
    return max(mhz) / 1000 if mhz else None


def peak_macs_per_cycle(precision: str, flags: frozenset[str], vendor_amd: bool) -> int:
    """Most multiply-adds one core can issue per cycle in `precision`, from its units:

    - fp32: 2 FMA pipes x the vector width in floats: 2 x 8 with AVX2 (and on AMD,
      whose Zen 4 runs AVX-512 as two 256-bit halves), 2 x 16 with AVX-512 on Intel.
    - bf16: AMX tiles 1,024 per cycle; AVX-512 BF16 (vdpbf16ps) twice fp32.
    - int8: AMX 2,048; VNNI (vpdpbusd, 4 per 32-bit lane) four times fp32; plain AVX2
      needs vpmaddubsw + vpmaddwd per 32 products on the same pipes: twice fp32.
    """
    wide = "avx512f" in flags and not vendor_amd
    fp32 = 32 if wide else 16 if ("avx2" in flags and "fma" in flags) else 8
    if precision == "bf16":
        return 1024 if "amx_bf16" in flags else 2 * fp32 if "avx512_bf16" in flags else fp32
    if precision == "int8":
        return 2048 if "amx_int8" in flags else 4 * fp32 if flags & {"avx512_vnni", "avx_vnni"} else 2 * fp32
    return fp32


def peak_gmacs(precision: str, cores: int) -> float | None:
    """The CPU's peak in GMAC/s for `precision` on `cores` cores, or None if unknown."""
    from streamfix.engines.precision import cpu_description

    name, flags = cpu_description()
    ghz = cpu_clock_ghz()
    if ghz is None or not flags:
        return None
    return cores * ghz * peak_macs_per_cycle(precision, flags, "AMD" in name.upper())


def _frame(check: np.ndarray, width: int, height: int) -> np.ndarray:
    """A 1 x planes x height x width input tiled from the check crops."""
    n, planes, h, w = check.shape
    rows, cols = -(-height // h), -(-width // w)
    mosaic = np.concatenate([np.concatenate([check[(r * cols + c) % n] for c in range(cols)], axis=2)
                             for r in range(rows)], axis=1)
    return np.ascontiguousarray(mosaic[None, :, :height, :width])


def measure_here(model_name: str, engine: str, precision: str, width: int, height: int, *,
                 repeats: int, warmup: int, threads: int) -> dict:
    """One grid cell, measured in this process (the child's side)."""
    from streamfix.core.weights import load_model
    from streamfix.engines.calibration_set import calibration_set
    from streamfix.engines.select import choose, engine_config

    model, info = load_model(model_name)
    options = {"threads": threads} if threads else {}
    configs = {engine: engine_config(engine, options, f"bench {engine}")}
    wrapped, _ = choose(model, info, engine=engine, precision=precision, device="cpu", max_batch=1,
                        configs=configs, log=lambda line: None)
    check = calibration_set(info)
    frame = _frame(check.check, width, height)
    seconds, cpu_seconds = [], []
    with wrapped:
        restored = np.concatenate([wrapped.infer(check.check[i : i + 6]) for i in range(0, len(check.check), 6)])
        for i in range(warmup + repeats):
            start, cpu = time.perf_counter(), time.process_time()
            wrapped.infer(frame)
            if i >= warmup:
                seconds.append(time.perf_counter() - start)
                cpu_seconds.append(time.process_time() - cpu)
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_rss_mib": peak_rss_mib(),
            "gain_db": check.gain_db(restored), "macs_per_frame": float(macs_per_pixel(model) * width * height)}


def measure_in_child(row: GridRow, *, repeats: int, warmup: int, threads: int) -> GridRow:
    """Fill `row` from a child process (its error, in one line, if it failed)."""
    job = {"model": row.model, "engine": row.engine, "precision": row.precision, "width": row.size[0],
           "height": row.size[1], "repeats": repeats, "warmup": warmup, "threads": threads}
    try:
        done = subprocess.run([sys.executable, "-m", "streamfix.benchmarks.cpu_grid", json.dumps(job)],
                              capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, env=os.environ.copy())
    except subprocess.TimeoutExpired:
        row.error = f"took more than {CHILD_TIMEOUT_S} s"
        return row
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        row.error = last[:200]
        return row
    for key, value in json.loads(lines[-1]).items():
        setattr(row, key, value)
    return row


def _prepare_graphs(model_name: str, precisions: set[str]) -> None:
    """Export (and quantize) the model's graphs before the children run, so that no
    child's time or peak memory includes making them."""
    from streamfix.core.weights import load_model
    from streamfix.engines.calibration_set import calibration_set
    from streamfix.engines.devices import cache_root
    from streamfix.engines.int8_quantize import cached_int8_onnx
    from streamfix.engines.onnx_export import cached_onnx

    model, info = load_model(model_name)
    cached_onnx(model, info.name, cache_root() / "onnx")
    if "int8" in precisions:
        cached_int8_onnx(model, info.name, cache_root() / "onnx", calibration_set(info))


def bench_grid(models: tuple[str, ...], engines: tuple[str, ...], precision: str, sizes: tuple[tuple[int, int], ...],
               *, repeats: int, warmup: int, threads: int, log: Callable[[str], object] = print) -> list[GridRow]:
    """Every (model, engine, precision, size) that this CPU offers, each measured in a child."""
    from streamfix.engines.select import cpu_candidates

    candidates, skipped = cpu_candidates(precision, {})
    for fallback in skipped:
        log(f"  {fallback}")
    rows = []
    for model in models:
        _prepare_graphs(model, {c.precision for c in candidates})
        for candidate in (c for c in candidates if not engines or c.engine in engines):
            for width, height in sizes:
                row = measure_in_child(GridRow(model, candidate.engine, candidate.precision, (width, height)),
                                       repeats=repeats, warmup=warmup, threads=threads)
                rows.append(row)
                log(f"  {model} {row.label:<17} {width}x{height}: " + (f"failed: {row.error}" if row.error else
                    f"{row.seconds_per_frame:.3f} s/frame, gain {row.gain_db:+.3f} dB, peak {row.peak_rss_mib:.0f} MiB"))
    return rows


def grid_report(config, log: Callable[[str], object], make_clip: Callable) -> str:
    """The tables and the peaks as markdown for `streamfix bench` (`config`: its
    BenchConfig; `make_clip(path, width, height, frames)` writes its test clip);
    empty off the CPU."""
    from streamfix.engines.devices import resolve_device

    if resolve_device(config.device) != "cpu":
        return ""
    cores = config.threads or os.cpu_count() or 1
    rows = bench_grid(config.models, config.grid_engines, config.precision, config.sizes,
                      repeats=config.repeats, warmup=config.warmup, threads=config.threads, log=log)
    report = (f"Engine x precision x model, batch 1, threads {config.threads or 'default'}; gain on the built-in "
              f"check split; peak RSS of a child process per row:\n\n{grid_table(rows, cores)}\n\n"
              f"{peak_lines(cores)}\n\n")
    if config.run_memory:
        report += run_memory_report(config, sorted({(r.engine, r.precision) for r in rows if not r.error}),
                                    make_clip, log)
    return report


def run_peak(clip: Path, model: str, engine: str, precision: str,
             threads: int) -> tuple[float, float, float, str | None]:
    """(peak RSS in MiB, CPU seconds per frame, seconds, error) of one whole run of `clip` (the Pipeline that
    `streamfix run` drives) in a child process, which reports its own VmHWM when the
    run is over. (The rusage of a child is no good here: Linux carries the high-water
    mark of the forked copy of this process, torch and all, across the exec.)"""
    job = {"clip": str(clip), "model": model, "engine": engine, "precision": precision, "threads": threads}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "streamfix.benchmarks.cpu_grid", "--run", json.dumps(job)],
                          capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    seconds = time.perf_counter() - start
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return 0.0, 0.0, seconds, ((done.stderr.strip().splitlines() or ["failed"])[-1])[:200]
    report = json.loads(lines[-1])
    return report["peak_rss_mib"], report["cpu_per_frame"], seconds, None


def _run_here(job: dict) -> dict:
    """The child's side of `run_peak`: the run's defaults but engine and precision."""
    import resource

    from streamfix.pipeline.pipeline import Pipeline
    from streamfix.pipeline.run_config import LiveConfig, ProgressConfig, RunConfig

    engine = job["engine"]
    config = RunConfig(model=job["model"], engine=engine, precision=job["precision"], device="cpu",
                       engines={engine: {"threads": job["threads"]}} if job["threads"] else {},
                       live=LiveConfig(mode="off"), progress=ProgressConfig(mode="off"))
    clip = Path(job["clip"])
    result = Pipeline(clip, clip.with_suffix(f".{engine}-{job['precision']}.mp4"), config, log=lambda line: None).run()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"peak_rss_mib": peak_rss_mib(),
            "cpu_per_frame": (usage.ru_utime + usage.ru_stime) / max(1, result.frames_out)}


def run_memory_report(config, candidates: list[tuple[str, str]], make_clip: Callable, log) -> str:
    """Peak memory of whole runs (decode, batches of `pipeline_batch`, encode) at each
    size of `config.run_memory`, for each engine x precision, on a CRF 40 clip."""
    import tempfile

    from streamfix.engines.tiling import DEFAULT_CPU_MEMORY_MB

    lines = ["| engine | precision | size | frames | batch | budget (MiB) | peak RSS (MiB) | CPU-s/frame (incl. start-up) "
             "| run s (incl. start-up) |", "|---|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="streamfix-bench-") as tmp:
        for width, height in config.run_memory:
            clip = make_clip(Path(tmp) / f"clip-{width}x{height}.mp4", width, height, config.pipeline_batch * 2)
            for engine, precision in candidates:
                peak, cpu, seconds, error = run_peak(clip, config.model, engine, precision, config.threads)
                size = f"{width}x{height}"
                log(f"  run {engine} {precision} {size}: " + (f"failed: {error}" if error else f"peak {peak:.0f} MiB"))
                lines.append(f"| {engine} | {precision} | {size} | {config.pipeline_batch * 2} | "
                             f"{config.pipeline_batch} | {DEFAULT_CPU_MEMORY_MB} | "
                             f"{'failed: ' + error if error else f'{peak:.0f}'} | {cpu:.2f} | {seconds:.1f} |")
    return (f"Whole `streamfix run` (model {config.model}, default options but engine and precision), peak RSS of "
            f"each run's process:\n\n" + "\n".join(lines) + "\n\n")


def add_grid_arguments(parser, defaults, as_list: Callable, as_size: Callable) -> None:
    """The `streamfix bench` flags of these tables."""
    from streamfix.core.options import PRECISION_NAMES

    parser.add_argument("--models", type=as_list(str), default=defaults.models,
                        help="models of the engine x precision table")
    parser.add_argument("--precision", default=defaults.precision, choices=PRECISION_NAMES,
                        help="precision of that table; auto: every one this CPU offers")
    parser.add_argument("--grid-engines", type=as_list(str), default=defaults.grid_engines, help="engines of that table")
    parser.add_argument("--no-grid", dest="grid", action="store_false", help="skip that table")
    parser.add_argument("--run-memory", type=as_list(as_size), default=defaults.run_memory, metavar="SIZES",
                        help="also the peak memory of whole runs at these sizes, e.g. 1920x1080,1280x720")


def grid_options(args) -> dict:
    """BenchConfig fields from those flags; an OptionError for an unknown engine."""
    from streamfix.core.errors import OptionError
    from streamfix.core.options import BACKEND_NAMES

    unknown = [e for e in args.grid_engines if e not in BACKEND_NAMES]
    if unknown:
        raise OptionError(f"unknown engine {unknown[0]!r} for --grid-engines: use {', '.join(BACKEND_NAMES)}")
    return {"grid": args.grid, "models": args.models, "precision": args.precision,
            "grid_engines": args.grid_engines, "run_memory": args.run_memory}


def _num(value: float | None, text: str) -> str:
    return "" if value is None else text.format(value)


def grid_table(rows: list[GridRow], cores: int) -> str:
    """The markdown table: speed, gain kept, peak memory, and the fraction of the CPU's
    peak reached (wall time on `cores` cores; CPU time against one core)."""
    lines = ["| model | engine | precision | size | s/frame | frames/s | vs onnxruntime fp32 | CPU-s/frame "
             "| GMAC/frame | % of peak (wall) | % of peak (CPU-s) | gain (dB) | vs fp32 | peak RSS (MiB) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        size = f"{r.size[0]}x{r.size[1]}"
        if r.error:
            lines.append(f"| {r.model} | {r.engine} | {r.precision} | {size} | failed: {r.error} |||||||||")
            continue
        base = next((b for b in rows if (b.model, b.size, b.label) == (r.model, r.size, "onnxruntime fp32")
                     and not b.error), None)
        fp32 = next((b for b in rows if (b.model, b.size, b.engine, b.precision) == (r.model, r.size, r.engine, "fp32")
                     and not b.error), base)
        peak_all, peak_one = peak_gmacs(r.precision, cores), peak_gmacs(r.precision, 1)
        gmac = r.macs_per_frame / 1e9
        wall = 100 * gmac / r.seconds_per_frame / peak_all if peak_all else None
        cpu = 100 * gmac / r.cpu_per_frame / peak_one if peak_one and r.cpu_per_frame else None
        speedup = base.seconds_per_frame / r.seconds_per_frame if base else None
        loss = r.gain_db - fp32.gain_db if fp32 and r.gain_db is not None else None
        lines.append(
            f"| {r.model} | {r.engine} | {r.precision} | {size} | {r.seconds_per_frame:.3f} | "
            f"{1 / r.seconds_per_frame:.2f} | {_num(speedup, '{:.2f}x')} | {r.cpu_per_frame:.3f} | {gmac:.1f} | "
            f"{_num(wall, '{:.0f}%')} | {_num(cpu, '{:.0f}%')} | {_num(r.gain_db, '{:+.3f}')} | "
            f"{_num(loss, '{:+.3f}')} | {_num(r.peak_rss_mib, '{:.0f}')} |")
    return "\n".join(lines)


def peak_lines(cores: int) -> str:
    """How the peaks in the table were derived, for the report."""
    from streamfix.engines.precision import cpu_description, has_bf16_units

    name, flags = cpu_description()
    ghz = cpu_clock_ghz()
    amd = "AMD" in name.upper()
    per_cycle = {p: peak_macs_per_cycle(p, flags, amd) for p in ("fp32", "bf16", "int8")}
    units = sorted(flags & {"avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8"})
    peaks = ", ".join(f"{p} {n} MAC/cycle/core = {_num(peak_gmacs(p, cores), '{:.0f}')} GMAC/s"
                      for p, n in per_cycle.items() if p != "bf16" or has_bf16_units())
    if not has_bf16_units():
        peaks += ", bf16 none (no bf16 units: emulated, not offered)"
    return (f"Peak of {name} ({', '.join(units)}), {cores} cores at {_num(ghz, '{:.2f}')} GHz (/proc/cpuinfo): "
            f"{peaks} (benchmarks/cpu_grid.py, peak_macs_per_cycle).")


def main() -> int:
    if sys.argv[1] == "--run":  # a whole run, then its peak memory
        print(json.dumps(_run_here(json.loads(sys.argv[2]))))
        return 0
    job = json.loads(sys.argv[1])
    result = measure_here(job["model"], job["engine"], job["precision"], job["width"], job["height"],
                          repeats=job["repeats"], warmup=job["warmup"], threads=job["threads"])
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
