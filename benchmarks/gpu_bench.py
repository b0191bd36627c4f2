"""GPU benchmark: TensorRT FP16 vs PyTorch CUDA FP16 vs ONNX Runtime CUDA.

    python benchmarks/gpu_bench.py                 # writes benchmarks/gpu-<gpu>.md
    python benchmarks/gpu_bench.py --quick         # 720p and 1080p, batches 1 and 8 only

(benchmarks/run_gpu_checks.sh runs it after the GPU tests, writing into its OUTDIR.)
What cannot run here is left out with the reason in the report: TensorRT when
check_available() says no, the copy/compute overlap without pycuda, the end-to-end
runs without PyAV.

Model only, for each engine, size (720p, 1080p) and batch (1, 4, 8, 16):
- "host to host": `engine.infer(batch)` from a float32 numpy batch to one, as the
  pipeline calls it (upload, compute, download, synchronous);
- "pipelined" (TensorRT): `infer_stream`, two batches in flight, so one batch's
  copies overlap the other's compute;
- "compute only": the batch already on the GPU, nothing copied back: what the
  model itself costs, compared with the arithmetic ceiling.
The ceiling is the GPU's dense FP16 tensor-core peak (data-sheet figure, looked up by
name) over 2 x the model's multiply-adds per frame: no real kernel reaches it, but
the fraction says how much is left. GPU memory is the device-wide memory in use with
the engine open (after its largest batch), minus what was in use before it opened.

Copies and compute (benchmarks/cuda_overlap.py): how much of the PCIe copies the
pycuda buffers hide behind compute, with PyTorch FP16 computing on their stream.

End to end: `streamfix.pipeline.pipeline` on a generated H.264 clip of each size, through
benchmarks/bench.py's measurement (steady frames/s between the first and the last
batch written), so decoding, batching, plane conversion and encoding are included.
Every TensorRT engine is built (or loaded from the cache) before timing starts, one
per size: the end-to-end TensorRT runs use the largest batch, so that they load the
engine the model-only runs built (the batch range is part of an engine's key).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

# Dense (no sparsity) FP16 tensor-core peak in TFLOP/s, from NVIDIA's data sheets.
# Matched in order against the device name: more specific names first.
PEAK_FP16_TFLOPS = (
    ("H200", 989.4), ("H100 PCIe", 756.0), ("H100", 989.4), ("A100", 312.0), ("L40S", 362.1),
    ("L4", 121.0), ("A10", 125.0), ("T4", 65.0), ("V100", 125.0),
)
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
QP = 40  # conditioning value of a low-bitrate stream (as benchmarks/bench.py)


@dataclass(frozen=True, slots=True)
class Row:
    engine: str
    mode: str
    size: str
    batch: int
    seconds: float  # per batch (median)
    memory_mib: float | None = None

    @property
    def fps(self) -> float:
        return self.batch / self.seconds


def peak_tflops(gpu: str) -> float | None:
    return next((tflops for name, tflops in PEAK_FP16_TFLOPS if name.lower() in gpu.lower()), None)


def macs_per_pixel(model) -> int:
    """Multiply-adds per output pixel: every conv's in x out x kernel area."""
    from torch import nn

    return sum(m.in_channels * m.out_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups
               for m in model.modules() if isinstance(m, nn.Conv2d))


def ceiling_fps(gpu: str, macs_per_frame: float) -> float | None:
    peak = peak_tflops(gpu)
    return None if peak is None else peak * 1e12 / (2 * macs_per_frame)


def model_batch(width: int, height: int, batch: int) -> np.ndarray:
    from streamfix.benchmarks.bench import sample_picture

    frame = np.stack([sample_picture(width, height), np.full((height, width), QP / 51.0, np.float32)])
    return np.ascontiguousarray(np.repeat(frame[None], batch, axis=0))


def timed(call: Callable[[], object], *, warmup: int = 2, min_seconds: float = 1.0, max_calls: int = 50) -> float:
    """Median seconds per call, after `warmup` untimed calls."""
    for _ in range(warmup):
        call()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < min_seconds and len(times) < max_calls):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def device_used_mib() -> float:
    import torch

    torch.cuda.synchronize()
    free, total = torch.cuda.mem_get_info()
    return (total - free) / 2**20


def with_memory(rows: list[Row], mib: float) -> list[Row]:
    return [Row(r.engine, r.mode, r.size, r.batch, r.seconds, mib) for r in rows]


def bench_tensorrt(model, info, sizes, batches, cache_dir, log) -> list[Row]:
    from streamfix.engines.tensorrt_engine import TensorRTConfig, TensorRTEngine

    rows = []
    config = TensorRTConfig(device="cuda", max_batch=max(batches), while_building="wait",
                            **({"cache_dir": cache_dir} if cache_dir else {}))
    for label in sizes:
        width, height = SIZES[label]
        sized: list[Row] = []
        before = device_used_mib()
        with TensorRTEngine(model, info, config, log=log) as engine:
            engine.prepare(height, width)  # build or load before any timing
            for batch in batches:
                x = model_batch(width, height, batch)
                stream = [x] * 8
                sized.append(Row("tensorrt-fp16", "host to host", label, batch, timed(lambda: engine.infer(x))))
                per_8 = timed(lambda: list(engine.infer_stream(stream)), warmup=1, min_seconds=0.5, max_calls=10)
                sized.append(Row("tensorrt-fp16", "pipelined", label, batch, per_8 / len(stream)))
                sized.append(Row("tensorrt-fp16", "compute only", label, batch,
                                 engine.measure_compute(x, repeats=max(3, 64 // batch))))
                log(f"  tensorrt {label} batch {batch}: {sized[-3].fps:.0f} / {sized[-2].fps:.0f} / "
                    f"{sized[-1].fps:.0f} frames/s (host to host / pipelined / compute only)")
            rows += with_memory(sized, device_used_mib() - before)
    return rows


def bench_torch(model, info, sizes, batches, log) -> list[Row]:
    import torch

    from streamfix.engines.torch_engine import TorchConfig, TorchEngine
    from streamfix.core.network import fold_batchnorm

    rows = []
    net = fold_batchnorm(model).cuda().half().to(memory_format=torch.channels_last).eval()
    for label in sizes:
        width, height = SIZES[label]
        sized: list[Row] = []
        torch.cuda.empty_cache()
        before = device_used_mib()
        with TorchEngine(model, info, TorchConfig(device="cuda", fp16=True, max_batch=max(batches))) as engine:
            for batch in batches:
                x = model_batch(width, height, batch)
                sized.append(Row("torch-fp16", "host to host", label, batch, timed(lambda: engine.infer(x))))
                resident = torch.from_numpy(x).cuda().half().contiguous(memory_format=torch.channels_last)

                def compute(resident=resident):
                    with torch.inference_mode():
                        net(resident)
                    torch.cuda.synchronize()

                sized.append(Row("torch-fp16", "compute only", label, batch, timed(compute)))
                log(f"  torch {label} batch {batch}: {sized[-2].fps:.0f} / {sized[-1].fps:.0f} frames/s "
                    "(host to host / compute only)")
                del resident
            rows += with_memory(sized, device_used_mib() - before)
    return rows


def bench_onnxruntime(model, info, sizes, batches, log) -> tuple[list[Row], str | None]:
    from streamfix.engines.base import EngineUnavailable
    from streamfix.engines.onnxruntime_engine import OnnxRuntimeConfig, OnnxRuntimeEngine

    rows = []
    config = OnnxRuntimeConfig(device="cuda", fp16=True, max_batch=max(batches))
    try:
        for label in sizes:
            width, height = SIZES[label]
            sized: list[Row] = []
            before = device_used_mib()
            with OnnxRuntimeEngine(model, info, config) as engine:
                for batch in batches:
                    x = model_batch(width, height, batch)
                    sized.append(Row("onnxruntime-cuda-fp16", "host to host", label, batch,
                                     timed(lambda: engine.infer(x))))
                    log(f"  onnxruntime {label} batch {batch}: {sized[-1].fps:.0f} frames/s")
                rows += with_memory(sized, device_used_mib() - before)
    except EngineUnavailable as exc:
        log(f"  onnxruntime CUDA not measured: {exc}")
        return rows, str(exc)
    return rows, None


def bench_end_to_end(model_name: str, sizes, batches, frames: int, log, *, tensorrt: bool) -> list:
    from streamfix.benchmarks.bench import BenchConfig, bench_pipeline

    rows = []
    for label in sizes:
        for batch in batches:
            variants = ("torch", "onnxruntime") + (("tensorrt",) if tensorrt and batch == max(batches) else ())
            config = BenchConfig(model=model_name, variants=variants, device="cuda",
                                 pipeline_frames=max(frames, 2 * batch + 1), pipeline_size=SIZES[label],
                                 pipeline_batch=batch)
            for variant in config.variants:
                try:
                    rows += bench_pipeline(BenchConfig(**{**_fields(config), "variants": (variant,)}), [], log)
                except Exception as exc:  # one engine failing must not hide the others' numbers
                    log(f"  end to end {variant} {label} batch {batch} failed: {exc}")
    return rows


def _fields(config) -> dict:
    return {name: getattr(config, name) for name in config.__dataclass_fields__}


def machine(gpu: str) -> str:
    import torch

    try:
        import tensorrt

        trt = tensorrt.__version__
    except ImportError:
        trt = "not installed"
    try:
        driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=20).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        driver = "?"
    return (f"{gpu}, driver {driver}, CUDA {torch.version.cuda}; TensorRT {trt}, torch {torch.__version__}, "
            f"Python {platform.python_version()}, {platform.processor() or platform.machine()}")


def report(gpu: str, model_name: str, macs: float, rows: list[Row], e2e: list, notes: list[str],
           tests: str | None, command: str, overlap: list | None = None) -> str:
    """The markdown report; `notes` say what was not measured and why."""
    ceiling = ceiling_fps(gpu, macs)
    lines = [f"# GPU benchmark: {gpu}", "", f"Machine: {machine(gpu)}", "", f"Command: `{command}`", "",
             f"Model {model_name}: {macs / 1e9:.0f} GMAC per 1080p frame "
             f"({macs / SIZES['1080p'][0] / SIZES['1080p'][1]:.0f} MAC per pixel). "
             + (f"Ceiling at 1080p: {ceiling:.0f} frames/s ({peak_tflops(gpu)} TFLOP/s dense FP16)."
                if ceiling else "Ceiling: this GPU's FP16 peak is not in the table; no fraction given."), ""]
    if tests:
        lines += ["GPU tests: " + tests, ""]
    lines += ["## Model only", "", "| engine | mode | size | batch | ms/batch | frames/s | % of ceiling | GPU MiB |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        pixels = SIZES[r.size][0] * SIZES[r.size][1]
        ceil = ceiling_fps(gpu, macs * pixels / (SIZES["1080p"][0] * SIZES["1080p"][1]))
        share = f"{100 * r.fps / ceil:.1f}" if ceil else ""
        memory = "" if r.memory_mib is None else f"{r.memory_mib:.0f}"
        lines.append(f"| {r.engine} | {r.mode} | {r.size} | {r.batch} | {1000 * r.seconds:.2f} | {r.fps:.1f} | "
                     f"{share} | {memory} |")
    if notes:
        lines += [""] + [f"- {note}" for note in notes]
    if overlap:
        from streamfix.benchmarks.cuda_overlap import overlap_table

        lines += ["", "## Copies and compute (pycuda buffers, PyTorch FP16 on their compute stream)", "",
                  overlap_table(overlap)]
    if e2e:
        from streamfix.benchmarks.bench import pipeline_table

        lines += ["", "## End to end (decode, restore, encode)", "", pipeline_table(e2e)]
    return "\n".join(lines) + "\n"


def missing(module: str) -> str | None:
    """Why `module` cannot be imported here, or None."""
    try:
        __import__(module)
    except Exception as exc:  # noqa: BLE001 - a broken install is as missing as an absent one
        return f"{module} does not import ({type(exc).__name__}: {exc})"
    return None


def tensorrt_missing() -> str | None:
    from streamfix.engines.base import EngineUnavailable
    from streamfix.engines.tensorrt_engine import TensorRTConfig, check_available

    try:
        check_available(TensorRTConfig(device="cuda"))
    except EngineUnavailable as exc:
        return str(exc)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="video-x264-qp")
    parser.add_argument("--sizes", default="720p,1080p", help="from: " + ", ".join(SIZES))
    parser.add_argument("--batches", default="1,4,8,16")
    parser.add_argument("--e2e-frames", type=int, default=64, help="frames of each end-to-end clip; 0 skips")
    parser.add_argument("--quick", action="store_true", help="batches 1 and 8, 32-frame clips")
    parser.add_argument("--cache-dir", type=Path, help="TensorRT engine cache of the model-only runs (default: the "
                        "user cache, which the end-to-end runs use too: leave it for one build per size)")
    parser.add_argument("--tests-summary", help="one line on the GPU tests, put in the report")
    parser.add_argument("--out", type=Path, help="markdown file (default benchmarks/gpu-<gpu>.md)")
    args = parser.parse_args(argv)
    import torch

    from streamfix.engines.engine_cache import slug
    from streamfix.core.weights import load_model

    if not torch.cuda.is_available():
        print("gpu_bench: PyTorch sees no CUDA GPU; run this on a GPU machine", file=sys.stderr)
        return 2
    sizes = [s for s in args.sizes.split(",") if s]
    batches = [1, 8] if args.quick else [int(b) for b in args.batches.split(",") if b]
    frames = 32 if args.quick and args.e2e_frames else args.e2e_frames
    gpu = torch.cuda.get_device_name(0)
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    model, info = load_model(args.model)
    macs = macs_per_pixel(model) * SIZES["1080p"][0] * SIZES["1080p"][1]
    log(f"benchmarking {args.model} on {gpu}")
    notes, rows, overlap, e2e = [], [], [], []
    no_trt = tensorrt_missing()
    if no_trt:
        notes.append(f"TensorRT was not measured: {no_trt}")
    else:
        rows += bench_tensorrt(model, info, sizes, batches, args.cache_dir, log)
    rows += bench_torch(model, info, sizes, batches, log)
    ort_rows, ort_reason = bench_onnxruntime(model, info, sizes, batches, log)
    rows += ort_rows
    if ort_reason:
        notes.append(f"ONNX Runtime CUDA was not measured: {ort_reason}")
    no_pycuda = missing("pycuda.driver")
    if no_pycuda:
        notes.append(f"Copy/compute overlap was not measured: {no_pycuda}")
    else:
        from streamfix.benchmarks.cuda_overlap import measure_overlap

        overlap = [measure_overlap(model, *SIZES[label], max(batches), size=label) for label in sizes]
    no_av = missing("av")
    if frames and no_av:
        notes.append(f"End to end was not measured: {no_av}")
    elif frames:
        e2e = bench_end_to_end(args.model, sizes, batches, frames, log, tensorrt=no_trt is None)
    command = "python benchmarks/gpu_bench.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = report(gpu, args.model, macs, rows, e2e, notes, args.tests_summary, command.strip(), overlap)
    out = args.out or Path(__file__).resolve().parent / f"gpu-{slug(gpu)}.md"
    out.write_text(text)
    print(text)
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
