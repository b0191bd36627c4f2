"""How fast the engines run CAR-DRN here, and how much of that the pipeline keeps.

    python benchmarks/bench.py                     # same as: streamfix bench
    streamfix bench --engines onnxruntime --sizes 854x480 --batches 1 --repeats 2

Three measurements, printed as markdown tables (benchmarks/cpu.md records them):

0. On a CPU, every engine x precision x model with the gain each keeps, its peak
   memory and the fraction of the CPU's peak it reaches (benchmarks/cpu_grid.py).
1. Engine only: `engine.infer` on a batch already in memory, through the same
   `choose()` wrapper the pipeline uses; the median of `repeats` calls after
   `warmup` calls (the first call allocates buffers and picks kernels), with the
   process's peak resident memory over the row (benchmarks/memory.py). A quality
   column compares each variant's output with eager float32 PyTorch, so a faster
   but less exact variant (bf16) shows what it costs.
2. End to end: `streamfix.pipeline.pipeline` on a generated H.264 clip (CRF 40, so every
   frame is restored), timed between the first and the last frame written, which
   leaves out start-up (model load, ONNX export, session creation) and the final
   flush; the peak resident memory is the process's during the whole run. The ratio to the engine-only figure says what decoding, batching, plane
   conversion and encoding cost on top of the model (target: >= 0.9).

Wall-clock figures need an otherwise idle machine. Each row therefore also gives the
process CPU time per frame, which other programs on the machine barely change: with
`--threads 1` it is close to what one idle core would take, and its ratios between
engines (or between pipeline and engine) hold on a busy machine too. With more threads
it also counts the time thread pools spend spinning, so compare it at one thread.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from streamfix.benchmarks.memory import peak_rss_mib, reset_peak

VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    # label -> (engine, options of that engine's config)
    "onnxruntime": ("onnxruntime", {}),
    "torch": ("torch", {}),
    "torch-nchw": ("torch", {"channels_last": False}),  # the layout before NHWC became the default
    # oneDNN runs bf16 convolutions on AMX / AVX-512 BF16 units where present.
    "torch-bf16": ("torch", {"cpu_bf16": True}),
    # Idle ONNX Runtime threads sleep at once instead of spinning: leaves CPU to the
    # pipeline's decode and encode threads.
    "onnxruntime-nospin": ("onnxruntime", {"spinning": False}),
    "onnxruntime-fp16": ("onnxruntime", {"fp16": True}),
    "onnxruntime-int8": ("onnxruntime", {"int8": True}),
    "openvino": ("openvino", {}),
    "openvino-int8": ("openvino", {"precision": "int8"}),
    # Timed only once its engine is built: while building, TensorRT would serve
    # frames with its PyTorch standby and the numbers would be PyTorch's.
    "tensorrt": ("tensorrt", {"while_building": "wait"}),
    # What `streamfix run` uses with nothing set: engine and precision auto (engines/auto_choice.py).
    "default": ("auto", {}),
}
QP = 40  # the conditioning value fed to the QP model: a low-bitrate stream


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchConfig:
    model: str = "video-x264-qp"
    variants: tuple[str, ...] = ("onnxruntime", "torch", "torch-bf16")
    sizes: tuple[tuple[int, int], ...] = ((854, 480), (1280, 720))  # width, height
    batches: tuple[int, ...] = (1, 4)
    repeats: int = 3
    warmup: int = 1
    device: str = "auto"
    threads: int = 0  # intra-op threads of the CPU engines; 0: their defaults (all cores)
    pipeline_frames: int = 20  # 0 skips the end-to-end measurement
    pipeline_size: tuple[int, int] = (854, 480)
    pipeline_batch: int = 4
    # The engine x precision x model table (CPU only); empty grid_engines: every engine.
    grid: bool = True
    models: tuple[str, ...] = ("video-x264-qp", "jpeg-y-blind")
    precision: str = "auto"  # auto: every precision this CPU offers
    grid_engines: tuple[str, ...] = ()
    run_memory: tuple[tuple[int, int], ...] = ()  # sizes of whole `streamfix run`s timed for peak memory


@dataclass(slots=True)
class EngineRow:
    variant: str
    size: tuple[int, int]
    batch: int
    seconds: list[float] = field(default_factory=list)  # wall time per call
    cpu_seconds: list[float] = field(default_factory=list)  # process CPU time per call
    psnr_vs_fp32: float | None = None
    peak_rss_mib: float | None = None

    @property
    def fps(self) -> float:
        return self.batch / statistics.median(self.seconds)

    @property
    def cpu_per_frame(self) -> float:
        return statistics.median(self.cpu_seconds) / self.batch


@dataclass(slots=True)
class PipelineRow:
    variant: str
    size: tuple[int, int]
    batch: int
    frames: int
    restored: int
    steady_fps: float
    wall_fps: float
    cpu_per_frame: float
    engine: EngineRow | None
    peak_rss_mib: float | None = None

    @property
    def ratio(self) -> float | None:
        return self.steady_fps / self.engine.fps if self.engine else None

    @property
    def cpu_ratio(self) -> float | None:
        """Engine CPU time over pipeline CPU time per frame: the share of the pipeline's
        work that is the model, i.e. the fps ratio to expect when the CPU is the limit."""
        return self.engine.cpu_per_frame / self.cpu_per_frame if self.engine and self.cpu_per_frame else None


def sample_picture(width: int, height: int, shift: int = 0) -> np.ndarray:
    """A gray picture with texture, edges and 8x8 blocking, in [0, 1]."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    x = x + shift
    picture = 0.5 + 0.25 * np.sin(x / 23.0) * np.cos(y / 17.0) + 0.15 * np.sign(np.sin((x + y) / 40.0))
    blocks = picture[: height // 8 * 8, : width // 8 * 8]
    means = blocks.reshape(height // 8, 8, width // 8, 8).mean(axis=(1, 3))
    picture[: height // 8 * 8, : width // 8 * 8] = np.kron(means, np.ones((8, 8), np.float32)) * 0.5 + blocks * 0.5
    return np.clip(picture, 0.0, 1.0)


def model_batch(width: int, height: int, batch: int) -> np.ndarray:
    frame = np.stack([sample_picture(width, height), np.full((height, width), QP / 51.0, np.float32)])
    return np.repeat(frame[None], batch, axis=0)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    err = float(np.mean((np.clip(a, 0, 1).astype(np.float64) - np.clip(b, 0, 1)) ** 2))
    return float("inf") if err == 0 else 10 * np.log10(1.0 / err)


def _options(variant: str, threads: int) -> tuple[str, dict[str, Any]]:
    name, options = VARIANTS[variant]
    if threads and name in ("torch", "onnxruntime", "openvino"):
        options = {**options, "threads": threads}
    return name, options


def _engine(variant: str, model, info, config: BenchConfig, batch: int, log=lambda line: None):
    """The variant's engine, not entered yet; `default` (engine auto) logs what it chose."""
    from streamfix.engines.select import choose, engine_config

    name, options = _options(variant, config.threads)
    configs = {} if name == "auto" else {name: engine_config(name, options, f"variant {variant}")}
    engine, _ = choose(model, info, engine=name, device=config.device, max_batch=batch, configs=configs,
                       log=(lambda line: log(f"  {variant}: {line}")) if name == "auto" else (lambda line: None))
    return engine


def bench_engines(config: BenchConfig, log=print) -> list[EngineRow]:
    import torch

    from streamfix.core.weights import load_model

    model, info = load_model(config.model)
    rows = []
    for width, height in config.sizes:
        reference: dict[int, np.ndarray] = {}
        for batch in config.batches:
            x = model_batch(width, height, batch)
            for variant in config.variants:
                row = EngineRow(variant, (width, height), batch)
                reset_peak()
                with _engine(variant, model, info, config, batch, log) as engine:
                    for _ in range(config.warmup):
                        out = engine.infer(x)
                    for _ in range(config.repeats):
                        start, cpu = time.perf_counter(), time.process_time()
                        out = engine.infer(x)
                        row.seconds.append(time.perf_counter() - start)
                        row.cpu_seconds.append(time.process_time() - cpu)
                    row.peak_rss_mib = peak_rss_mib()
                if batch == config.batches[0]:
                    if batch not in reference:
                        with torch.inference_mode():
                            reference[batch] = model(torch.from_numpy(x[:1])).numpy()
                    row.psnr_vs_fp32 = _psnr(out[:1], reference[batch])
                log(f"  {variant:<17} {width}x{height} batch {batch}: {row.fps:6.2f} frames/s, "
                    f"{row.cpu_per_frame:.3f} CPU-s/frame")
                rows.append(row)
    return rows


def make_clip(path: Path, width: int, height: int, frames: int, gop: int | None = None) -> Path:
    """An H.264 clip of a slowly panning test picture at CRF 40 (every frame's mean QP
    is well above the level the QP model leaves alone); `gop`: a keyframe every `gop`
    frames exactly (segmented runs cut there), else x264's own choice."""
    import av

    from streamfix.media.crf_encode import encode_at_crf

    fixed_gop = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"} if gop is not None else None
    pictures = [av.VideoFrame.from_ndarray((sample_picture(width, height, shift=3 * i) * 255).astype(np.uint8),
                                           format="gray") for i in range(frames)]
    encode_at_crf(pictures, path, codec="libx264", crf=40, preset="veryfast", options=fixed_gop)
    return path


class _FrameClock:
    """A pipeline progress reporter that only notes when each frame was written
    (wall clock and process CPU time)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.cpu: list[float] = []

    def update(self, frames: int = 1) -> None:
        self.times.extend([time.perf_counter()] * frames)
        self.cpu.extend([time.process_time()] * frames)

    def log(self, message: str) -> None:
        pass

    def close(self) -> None:
        pass


def bench_pipeline(config: BenchConfig, engine_rows: list[EngineRow], log=print) -> list[PipelineRow]:
    try:
        from streamfix.pipeline.pipeline import Pipeline
        from streamfix.pipeline.run_config import RunConfig
    except ImportError as exc:
        log(f"  end-to-end skipped: the pipeline cannot be imported ({exc})")
        return []
    width, height = config.pipeline_size
    batch = config.pipeline_batch
    rows = []
    with tempfile.TemporaryDirectory(prefix="streamfix-bench-") as tmp:
        clip = make_clip(Path(tmp) / "clip.mp4", width, height, config.pipeline_frames)
        for variant in config.variants:
            name, options = _options(variant, config.threads)
            run_config = RunConfig(model=config.model, engine=name, device=config.device, batch=batch,
                                   engines={name: options} if options else {})
            clock = _FrameClock()
            reset_peak()
            start = time.perf_counter()
            result = Pipeline(clip, Path(tmp) / f"out-{variant}.mp4", run_config, progress=clock,
                              log=lambda line: None).run()
            wall = time.perf_counter() - start
            # From the first batch written to the last: (frames - batch) frames.
            steady_frames = len(clock.times) - batch
            span = clock.times[-1] - clock.times[batch - 1] if steady_frames > 0 else 0.0
            steady = steady_frames / span if span > 0 else 0.0
            cpu = (clock.cpu[-1] - clock.cpu[batch - 1]) / steady_frames if steady_frames > 0 else 0.0
            engine = next((r for r in engine_rows
                           if (r.variant, r.size, r.batch) == (variant, (width, height), batch)), None)
            row = PipelineRow(variant, (width, height), batch, result.frames_out, result.restored,
                              steady, result.frames_out / wall, cpu, engine, peak_rss_mib())
            log(f"  pipeline {variant:<17} {width}x{height} batch {batch}: {row.steady_fps:6.2f} frames/s, "
                f"{row.cpu_per_frame:.3f} CPU-s/frame")
            rows.append(row)
    return rows


def _num(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def engine_table(rows: list[EngineRow]) -> str:
    lines = ["| engine | size | batch | s/call (median) | frames/s | CPU-s/frame | PSNR vs FP32 torch (dB) "
             "| peak RSS (MiB) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.variant} | {r.size[0]}x{r.size[1]} | {r.batch} | {statistics.median(r.seconds):.3f} | "
                     f"{r.fps:.2f} | {r.cpu_per_frame:.3f} | {_num(r.psnr_vs_fp32, 1)} | {_num(r.peak_rss_mib, 0)} |")
    return "\n".join(lines)


def pipeline_table(rows: list[PipelineRow]) -> str:
    lines = ["| engine | size | batch | frames (restored) | pipeline frames/s (steady) | incl. start-up "
             "| engine-only frames/s | fps ratio | pipeline CPU-s/frame | engine CPU-s/frame | CPU ratio "
             "| peak RSS (MiB) |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        engine_fps = r.engine.fps if r.engine else None
        engine_cpu = r.engine.cpu_per_frame if r.engine else None
        lines.append(f"| {r.variant} | {r.size[0]}x{r.size[1]} | {r.batch} | {r.frames} ({r.restored}) | "
                     f"{r.steady_fps:.2f} | {r.wall_fps:.2f} | {_num(engine_fps, 2)} | {_num(r.ratio, 2)} | "
                     f"{r.cpu_per_frame:.3f} | {_num(engine_cpu, 3)} | {_num(r.cpu_ratio, 2)} | "
                     f"{_num(r.peak_rss_mib, 0)} |")
    return "\n".join(lines)


def machine_line() -> str:
    import os
    import platform

    import onnxruntime
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores, {gpu}; torch {torch.__version__}, "
            f"onnxruntime {onnxruntime.__version__}; load average {load}")


def run(config: BenchConfig, log=print) -> str:
    """Run both measurements; log progress lines and return the markdown report."""
    log(f"machine: {machine_line()}")
    threads = config.threads or "default"
    report = f"Machine: {machine_line()}\n\n"
    if config.grid:
        from streamfix.benchmarks.cpu_grid import grid_report

        report += grid_report(config, log, make_clip)
    engine_rows = bench_engines(config, log)
    report += f"Engine only, model {config.model}, threads {threads}:\n\n{engine_table(engine_rows)}\n"
    if config.pipeline_frames:
        pipeline_rows = bench_pipeline(config, engine_rows, log)
        if pipeline_rows:
            report += f"\nEnd to end ({config.pipeline_frames}-frame H.264 clip):\n\n{pipeline_table(pipeline_rows)}\n"
    return report


def _size(text: str) -> tuple[int, int]:
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or int(width) < 1 or int(height) < 1:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 854x480, got {text!r}")
    return int(width), int(height)


def _list(kind):
    def parse(text: str) -> tuple:
        return tuple(kind(item) for item in text.split(",") if item)
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from streamfix.benchmarks.cpu_grid import add_grid_arguments

    d = BenchConfig()
    parser.add_argument("--model", default=d.model, help=f"model name or weights file (default {d.model})")
    parser.add_argument("--engines", type=_list(str), default=d.variants,
                        help=f"comma-separated, from: {', '.join(VARIANTS)} (default {','.join(d.variants)})")
    parser.add_argument("--sizes", type=_list(_size), default=d.sizes, help="e.g. 854x480,1280x720")
    parser.add_argument("--batches", type=_list(int), default=d.batches, help="e.g. 1,4")
    parser.add_argument("--repeats", type=int, default=d.repeats, help="timed calls per case")
    parser.add_argument("--warmup", type=int, default=d.warmup, help="untimed calls first")
    parser.add_argument("--device", default=d.device, help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, default=d.threads,
                        help="intra-op threads of the CPU engines; 0: all cores (default 0)")
    parser.add_argument("--pipeline-frames", type=int, default=d.pipeline_frames,
                        help="frames of the end-to-end clip; 0 skips it")
    parser.add_argument("--pipeline-batch", type=int, default=d.pipeline_batch)
    parser.add_argument("--pipeline-size", type=_size, default=d.pipeline_size)
    add_grid_arguments(parser, d, _list, _size)


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    from streamfix.benchmarks.cpu_grid import grid_options
    from streamfix.core.errors import OptionError

    unknown = [v for v in args.engines if v not in VARIANTS]
    if unknown:
        raise OptionError(f"unknown engine {unknown[0]!r} for bench: use {', '.join(VARIANTS)}")
    if args.repeats < 1 or args.pipeline_batch < 1 or min(args.warmup, args.pipeline_frames, args.threads) < 0:
        raise OptionError("--repeats and --pipeline-batch must be >= 1; --warmup, --threads and "
                          "--pipeline-frames >= 0")
    if not args.batches or min(args.batches) < 1 or not args.sizes or not args.engines:
        raise OptionError("--engines, --sizes and --batches need at least one value; batches >= 1")
    if args.pipeline_frames and args.pipeline_frames <= args.pipeline_batch:
        raise OptionError("--pipeline-frames must exceed --pipeline-batch to time a steady state")
    return BenchConfig(model=args.model, variants=args.engines, sizes=args.sizes, batches=args.batches,
                       repeats=args.repeats, warmup=args.warmup, device=args.device, threads=args.threads,
                       pipeline_frames=args.pipeline_frames, pipeline_size=args.pipeline_size,
                       pipeline_batch=args.pipeline_batch, **grid_options(args))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    print(run(config_from_args(parser.parse_args(argv))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
