"""Several streams at once: what N concurrent streams reach, sharing one engine.

    python benchmarks/multistream.py                       # N = 1, 2, 4 at 854x480
    python benchmarks/multistream.py --streams 1 2 --frames 4 --size 640x360 --separate

Each stream is a whole file pipeline (decode, batch, restore, encode) on its own
threads, restoring every frame (no live mode: this measures throughput); all streams
share one SharedEngine, which merges their frames into common engine calls, one
request per stream per round. `--separate` also times N pipelines that each load
their own engine, the way N independent `streamfix run` processes would work.

Printed per N: aggregate frames per second (all frames / wall time from the start of
the first stream to the end of the last), per-stream fps (each stream's frames / its
own duration, the mean over streams, then the slowest), the mean frames per engine
call, and the speed-up of the aggregate over N = 1. Start-up (model load, engine
creation, ONNX export) happens before the clock starts; the clip is a CRF 40 H.264
encode of a panning picture, so every frame is restored. Results go to stdout as a
markdown table; benchmarks/multistream.md records a run with its command.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _config(engine: str, threads: int, batch: int):
    from streamfix.media.writer import EncodeConfig
    from streamfix.pipeline.run_config import LiveConfig, ProgressConfig, RunConfig

    engines = {engine: {"threads": threads}} if engine in ("onnxruntime", "torch") else {}
    return RunConfig(model="video-x264-qp", engine=engine, batch=batch, engines=engines,
                     encode=EncodeConfig(preset="ultrafast"), live=LiveConfig(mode="off"),
                     progress=ProgressConfig(mode="off"))


def _run_streams(clip: Path, out_dir: Path, n: int, config: Any, shared: Any) -> dict[str, float]:
    """Run n pipelines at once (sharing `shared`, or each with its own engine when it is
    None); returns the timings."""
    from streamfix.pipeline.pipeline import Pipeline

    pipelines = [Pipeline(clip, out_dir / f"out{n}-{i}.mkv", config, engine=shared, quiet=True,
                          log=lambda message: None, name=f"stream{i}") for i in range(n)]
    spans: list[float] = [0.0] * n
    frames: list[int] = [0] * n
    errors: list[BaseException] = []

    def one(i: int) -> None:
        begin = time.perf_counter()
        try:
            frames[i] = pipelines[i].run().frames_out
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        spans[i] = time.perf_counter() - begin

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    if errors:
        raise errors[0]
    per_stream = [f / s for f, s in zip(frames, spans)]
    return {"aggregate": sum(frames) / wall, "mean": sum(per_stream) / n, "slowest": min(per_stream),
            "wall": wall, "frames": sum(frames)}


def _warm(engine: Any, width: int, height: int) -> None:
    """The first engine calls allocate and choose kernels: not part of the timing."""
    import numpy as np

    for _ in range(2):
        engine.infer(np.zeros((1, 2, height, width), np.float32))


def bench(sizes: tuple[int, int], frames: int, counts: list[int], engine: str, threads: int, batch: int,
          separate: bool, log=print) -> list[dict[str, Any]]:
    from benchmarks.bench import make_clip
    from streamfix.engines.shared import SharedEngine
    from streamfix.pipeline.run_config import engine_configs

    width, height = sizes
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(Path(tmp) / "clip.mp4", width, height, frames)
        config = _config(engine, threads, batch)
        for n in counts:
            max_batch = min(16, batch * n)
            with SharedEngine.load(config.model, engine=engine, max_batch=max_batch,
                                   engine_configs=engine_configs(config), log=lambda m: None) as shared:
                _warm(shared, width, height)
                row = _run_streams(clip, Path(tmp), n, config, shared)
                row.update(n=n, mode="shared", engine=shared.name, per_call=shared.stats()["mean_batch"])
            rows.append(row)
            log(f"shared   N={n}: {row['aggregate']:.2f} fps aggregate, {row['mean']:.2f} fps per stream")
            if separate and n > 1:
                row = _run_streams(clip, Path(tmp), n, config, None)
                row.update(n=n, mode="separate", engine=engine, per_call=float(batch))
                rows.append(row)
                log(f"separate N={n}: {row['aggregate']:.2f} fps aggregate, {row['mean']:.2f} fps per stream")
    base = next(r["aggregate"] for r in rows if r["n"] == min(counts))
    for row in rows:
        row["speedup"] = row["aggregate"] / base
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| streams | engine | aggregate fps | per-stream fps (mean / slowest) | frames per engine call "
             "| aggregate vs N=1 |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['n']} | {r['engine']} ({r['mode']}) | {r['aggregate']:.2f} | {r['mean']:.2f} / "
                     f"{r['slowest']:.2f} | {r['per_call']:.1f} | {r['speedup']:.2f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Throughput of N concurrent streams sharing one engine.")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4], help="values of N (default 1 2 4)")
    parser.add_argument("--frames", type=int, default=6, help="frames per stream (default 6)")
    parser.add_argument("--size", default="854x480", help="WIDTHxHEIGHT (default 854x480)")
    parser.add_argument("--engine", default="onnxruntime", help="auto, onnxruntime, torch, tensorrt")
    parser.add_argument("--threads", type=int, default=2, help="engine threads (CPU engines; default 2)")
    parser.add_argument("--batch", type=int, default=1, help="frames per engine call per stream (default 1)")
    parser.add_argument("--separate", action="store_true", help="also time one engine per stream")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    from benchmarks.bench import machine_line

    rows = bench((width, height), args.frames, args.streams, args.engine, args.threads, args.batch,
                 args.separate, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(f"{args.size}, {args.frames} frames per stream; {machine_line()}\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
