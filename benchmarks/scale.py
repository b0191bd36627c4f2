"""Scale-out on this machine: one file in pieces, a batch of files, and a resumed run.

    python benchmarks/scale.py                                  # 1, 2 and N workers
    python benchmarks/scale.py --size 160x120 --seconds 10 --workers 1 2 --files 4

- Segments: one clip (`--seconds` long, a keyframe every second) restored by a single
  pass, then with `--segment-seconds` pieces on 1, 2, ... local worker processes.
- Batch: `--files` clips of the same kind through `streamfix batch`'s pool, whole
  (shorter than twice the segment length), on 1, 2, ... workers.
- Resume: `streamfix run --segment-seconds` on 1 worker, SIGKILLed once 60 % of its
  pieces are recorded, then the same command again: the second run's time against an
  unbroken run's.
- Media cost: CPU milliseconds per frame to decode H.264 and to encode x264 at 720p
  and 1080p, one thread: what each GPU worker needs in CPU beside its GPU.
Times are wall clock from the call to the finished output, so they include starting
the worker processes and loading a model in each (seconds on a busy 2-core machine).
Every worker runs its engine on `--threads` threads. Results go to stdout as markdown;
benchmarks/scale.md records a run with the machine it ran on.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _config(engine: str, threads: int, codec: str) -> Any:
    from streamfix.media.writer import EncodeConfig
    from streamfix.pipeline.run_config import ProgressConfig, RunConfig

    return RunConfig(model="video-x264-qp", engine=engine, device="cpu", engines={engine: {"threads": threads}},
                     encode=EncodeConfig(codec=codec, crf=None) if codec == "ffv1" else EncodeConfig(preset="veryfast"),
                     progress=ProgressConfig(mode="off"))


def _timed(call) -> tuple[float, Any]:
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def bench_segments(clip: Path, work: Path, config: Any, workers: list[int], seconds: float) -> list[dict[str, Any]]:
    from streamfix.fleet.jobs import run_in_pieces
    from streamfix.pipeline.pipeline import Pipeline

    took, result = _timed(lambda: Pipeline(clip, work / "single.mkv", config, quiet=True).run())
    rows = [{"what": "single pass", "workers": 1, "pieces": 1, "seconds": took, "frames": result.frames_out}]
    for n in workers:
        scaled = dataclasses.replace(config, scale=dataclasses.replace(config.scale, segment_seconds=seconds,
                                                                       workers=n, cpus_per_worker=1))
        took, result = _timed(lambda: run_in_pieces(clip, work / f"pieces{n}.mkv", scaled, quiet=True,
                                                    log=lambda m: None))
        rows.append({"what": "segments", "workers": n, "pieces": result.pieces, "seconds": took,
                     "frames": result.frames_out})
    return rows


def bench_batch(clips: list[Path], work: Path, config: Any, workers: list[int]) -> list[dict[str, Any]]:
    from streamfix.fleet.jobs import run_batch

    rows = []
    for n in workers:
        scaled = dataclasses.replace(config, scale=dataclasses.replace(config.scale, workers=n, cpus_per_worker=1))
        took, outcomes = _timed(lambda: run_batch(clips, work / f"batch{n}", scaled, quiet=True,
                                                  report=lambda line: None, log=lambda m: None))
        rows.append({"what": f"batch of {len(clips)} files", "workers": n, "pieces": len(clips), "seconds": took,
                     "frames": sum(o.frames for o in outcomes)})
    return rows


def _finished(work: Path) -> int:
    try:
        return len(json.loads((work / "manifest.json").read_text())["finished"])
    except (OSError, ValueError, KeyError):
        return 0


def bench_resume(clip: Path, work: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Unbroken, then killed at 60 % and run again: the CLI, as a user would."""
    config = work / "cpu.yaml"
    config.write_text(f"engines: {{{args.engine}: {{threads: {args.threads}}}}}\nprogress: {{mode: 'off'}}\n")

    def command(out: Path) -> list[str]:
        return [sys.executable, "-m", "streamfix.cli", "run", str(clip), str(out), "--config", str(config),
                "--engine", args.engine, "--device", "cpu", "--codec", args.codec, "--segment-seconds",
                str(args.segment_seconds), "--workers", "1", "--quiet"]

    unbroken, _ = _timed(lambda: subprocess.run(command(work / "unbroken.mkv"), check=True))
    target = work / "resumed.mkv"
    pieces_dir = work / "resumed.mkv.pieces"
    from streamfix.segments.keyframes import index_file
    from streamfix.segments.plan import plan_pieces

    total = len(plan_pieces(index_file(clip), args.segment_seconds))
    first = subprocess.Popen(command(target))
    start = time.perf_counter()
    while _finished(pieces_dir) < 0.6 * total and first.poll() is None:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    before_kill, done = time.perf_counter() - start, _finished(pieces_dir)
    again, _ = _timed(lambda: subprocess.run(command(target), check=True))
    return [{"what": "unbroken run", "workers": 1, "pieces": total, "seconds": unbroken, "frames": 0},
            {"what": f"killed after {done} pieces ({before_kill:.1f} s)", "workers": 1, "pieces": done,
             "seconds": before_kill, "frames": 0},
            {"what": "same command again", "workers": 1, "pieces": total - done, "seconds": again, "frames": 0}]


def bench_media_cost(sizes: list[tuple[int, int]], frames: int) -> str:
    """CPU seconds per frame to decode H.264 and to encode with x264 (one thread each):
    the CPU a worker needs beside its GPU, per frame restored (docs/scale.md)."""
    import av

    from benchmarks.bench import make_clip

    lines = ["| size | decode H.264 | encode x264 veryfast | encode x264 medium |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="streamfix-media-") as folder:
        for width, height in sizes:
            clip = make_clip(Path(folder) / f"{width}.mp4", width, height, frames)
            start = time.process_time()
            with av.open(str(clip)) as container:
                stream = container.streams.video[0]
                stream.codec_context.thread_type = "SLICE"  # as the reader decodes H.264
                decoded = [f.reformat(format="yuv420p") for p in container.demux(stream) for f in p.decode()]
            decode_ms = (time.process_time() - start) * 1000 / len(decoded)
            cells = []
            for preset in ("veryfast", "medium"):
                out = Path(folder) / f"{width}-{preset}.mp4"
                start = time.process_time()
                with av.open(str(out), "w") as container:
                    stream = container.add_stream("libx264", rate=25, options={"crf": "16", "preset": preset,
                                                                               "threads": "1"})
                    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                    for i, frame in enumerate(decoded):
                        frame.pts, frame.pict_type = i, av.video.frame.PictureType.NONE
                        container.mux(stream.encode(frame))
                    container.mux(stream.encode(None))
                cells.append((time.process_time() - start) * 1000 / len(decoded))
            lines.append(f"| {width}x{height} | {decode_ms:.1f} | {cells[0]:.1f} | {cells[1]:.1f} |")
    return "\n".join(lines)


def table(rows: list[dict[str, Any]], reference: float) -> str:
    lines = ["| run | workers | pieces | seconds | fps | vs single pass |", "|---|---|---|---|---|---|"]
    for row in rows:
        fps = f"{row['frames'] / row['seconds']:.2f}" if row["frames"] else ""
        lines.append(f"| {row['what']} | {row['workers']} | {row['pieces']} | {row['seconds']:.1f} | {fps} | "
                     f"{reference / row['seconds']:.2f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from benchmarks.bench import machine_line, make_clip

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="160x120", help="WIDTHxHEIGHT (default 160x120)")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length at 25 fps (default 10)")
    parser.add_argument("--segment-seconds", type=float, default=2.0, help="piece length (default 2)")
    parser.add_argument("--workers", type=int, nargs="+", default=sorted({1, 2, os.cpu_count() or 1}))
    parser.add_argument("--files", type=int, default=4, help="files in the batch (default 4)")
    parser.add_argument("--engine", default="torch", choices=("torch", "onnxruntime"))
    parser.add_argument("--threads", type=int, default=1, help="engine threads per worker (default 1)")
    parser.add_argument("--codec", default="libx264", help="output encoder (default libx264 veryfast)")
    parser.add_argument("--skip", nargs="*", default=[], choices=("segments", "batch", "resume", "media"))
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    frames = round(args.seconds * 25)
    config = _config(args.engine, args.threads, args.codec)
    print(f"Machine: {machine_line()}\n", flush=True)
    with tempfile.TemporaryDirectory(prefix="streamfix-scale-") as folder:
        work = Path(folder)
        clip = make_clip(work / "clip.mp4", width, height, frames, gop=25)
        if {"segments", "batch"} - set(args.skip):
            rows = bench_segments(clip, work, config, [] if "segments" in args.skip else args.workers,
                                  args.segment_seconds)
            reference = rows[0]["seconds"]  # the single pass
        if "segments" not in args.skip:
            print(f"One {args.seconds:g} s clip, {args.size}, pieces of {args.segment_seconds:g} s:\n")
            print(table(rows, reference) + "\n", flush=True)
        if "batch" not in args.skip:
            short = [make_clip(work / f"file{i}.mp4", width, height, frames // args.files, gop=25)
                     for i in range(args.files)]
            print(f"{args.files} files of {args.seconds / args.files:g} s (same total frames), whole:\n")
            print(table(bench_batch(short, work, config, args.workers), reference) + "\n", flush=True)
        if "resume" not in args.skip:
            print("Resume after SIGKILL at 60 % (`streamfix run --segment-seconds`, 1 worker):\n")
            resume = bench_resume(clip, work, args)
            print(table(resume, resume[0]["seconds"]).replace("vs single pass", "vs unbroken run") + "\n",
                  flush=True)
    if "media" not in args.skip:
        print("Decoding and encoding cost, CPU milliseconds per frame (one thread, CRF 16, 50 frames of the "
              "test picture; real footage costs more to encode):\n")
        print(bench_media_cost([(1280, 720), (1920, 1080)], 50), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
