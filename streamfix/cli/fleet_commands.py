"""The scale-out parts of the `streamfix` command: `run --segment-seconds`, `batch`, `serve`.

Kept apart from main.py so the single-machine command stays readable; main.py
registers `batch` and `serve` in its COMMANDS table, adds `add_scale_flags` to
`run`, and hands `run` over to `cmd_run_in_pieces` when a segment length is set.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from streamfix.cli.args import positive_float, positive_int
from streamfix.core.errors import OutputError

BATCH_DESCRIPTION = """Restore every video and image in INPUT (files, folders, or *.txt lists of paths)
into --out-dir, long files in pieces, on local worker processes or a Ray cluster. One line
per file, a JSON summary in the output folder; a rerun skips the files already restored."""
SERVE_DESCRIPTION = """Restore every channel (input URL -> output URL) listed in CHANNELS.yaml as a
long-lived live pipeline, restarted with backoff when it ends or fails; edits to the file
add, remove or change channels without stopping the others. Metrics for all channels on
one Prometheus endpoint (metrics_port). Runs until Ctrl-C or SIGTERM."""


def add_scale_flags(p: argparse.ArgumentParser, *, workdir: bool = True) -> None:
    """The `scale:` flags; `workdir`: also --workdir (one file's work folder: not for batches)."""
    g = p.add_argument_group("scale", "restore a file in pieces on several workers (README: Scale)")
    g.add_argument("--segment-seconds", type=positive_float, metavar="S",
                   help="cut the input at keyframes into pieces of at least S seconds, restore them in "
                        "parallel and join them by stream copy; a rerun reuses the finished pieces")
    g.add_argument("--workers", type=positive_int, metavar="N",
                   help="workers restoring pieces (default: one per GPU, else one per 2 cores)")
    g.add_argument("--executor", choices=("local", "ray"),
                   help="local: processes on this machine (default); ray: a Ray cluster")
    g.add_argument("--ray-address", metavar="ADDR",
                   help="an existing Ray cluster, e.g. ray://head:10001 (default: Ray on this machine)")
    if workdir:
        g.add_argument("--workdir", type=Path, metavar="DIR",
                       help="where pieces and their manifest live (default: OUTPUT.pieces beside the output)")
    g.add_argument("--keep-pieces", action="store_true", default=None,
                   help="keep the work folder after the output is joined")


def scale_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The `scale:` config fields the flags set (None: not given)."""
    workdir = getattr(args, "workdir", None)
    return {"segment_seconds": getattr(args, "segment_seconds", None), "workers": getattr(args, "workers", None),
            "executor": getattr(args, "executor", None), "ray_address": getattr(args, "ray_address", None),
            "workdir": str(workdir) if workdir is not None else None,
            "keep_pieces": getattr(args, "keep_pieces", None)}


def write_json(path: Path | None, data: dict[str, Any], what: str = "stats") -> None:
    if path is None:
        return
    try:
        path.write_text(json.dumps(data, indent=2) + "\n")
    except OSError as exc:
        raise OutputError(f"{path}: cannot write the {what} file ({exc.strerror}); choose another path") from None


def cmd_run_in_pieces(args: argparse.Namespace, config: Any) -> int:
    """`streamfix run IN OUT --segment-seconds S`."""
    from streamfix.fleet.jobs import run_in_pieces
    from streamfix.segments.job import PiecesInterrupted

    try:
        result = run_in_pieces(args.input, args.output, config, quiet=args.quiet)
    except PiecesInterrupted as stop:
        print(f"streamfix: interrupted: {stop}", file=sys.stderr)
        return 130
    write_json(args.stats, result.to_dict())
    if not args.quiet:
        reused = f", {result.reused} reused" if result.reused else ""
        print(f"streamfix: wrote {args.output}: {result.frames_out} frames ({result.restored} restored, "
              f"{result.passed_through} passed through) in {result.pieces} piece{'s' if result.pieces != 1 else ''}"
              f"{reused} on {result.workers} "
              f"{result.executor} workers in {result.seconds:.1f} s, {result.fps:.1f} fps, engine {result.engine}",
              file=sys.stderr)
    return 0


def add_batch(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("batch", help="restore many files on a pool of workers (this machine or Ray)",
                       description=BATCH_DESCRIPTION)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="a file, a folder, or a text file of paths (*.txt)")
    p.add_argument("--out-dir", required=True, type=Path, help="where the restored files go (created if missing)")
    p.add_argument("--suffix", help="write every output with this suffix, e.g. .mkv (default: the input's)")
    p.add_argument("--summary", type=Path, help="the JSON summary (default: OUT_DIR/streamfix-batch.json)")
    p.add_argument("--config", type=Path,
                   help="run config (YAML) for every file: model, engine, encoder, scale (see configs/)")
    p.add_argument("--quiet", action="store_true", help="print only the per-file lines and errors")
    add_scale_flags(p, workdir=False)


def _batch_config(args: argparse.Namespace) -> Any:
    from streamfix.pipeline.run_config import load_run_config, with_overrides

    return with_overrides(load_run_config(args.config), scale=scale_overrides(args))


def cmd_batch(args: argparse.Namespace) -> int:
    """`streamfix batch INPUT... --out-dir DIR`: exit 0 when every file is restored (or
    was already), 2 when some failed (each named on its line and in the summary)."""
    from streamfix.fleet.jobs import run_batch

    config = _batch_config(args)
    outcomes = run_batch(args.inputs, args.out_dir, config, suffix=args.suffix, summary=args.summary,
                         quiet=args.quiet, report=lambda line: print(line, flush=True))
    failed = sum(o.status == "failed" for o in outcomes)
    if not args.quiet:
        done = sum(o.status == "done" for o in outcomes)
        skipped = sum(o.status == "skipped" for o in outcomes)
        print(f"streamfix: batch: {done} restored, {skipped} skipped, {failed} failed; summary in "
              f"{args.summary or args.out_dir / 'streamfix-batch.json'}", file=sys.stderr)
    return 2 if failed else 0


def add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="keep the live channels of CHANNELS.yaml restored (this machine or Ray)",
                       description=SERVE_DESCRIPTION)
    p.add_argument("channels", type=Path, metavar="CHANNELS.yaml", help="the channels (see README: Scale)")
    p.add_argument("--config", type=Path, help="run config every channel starts from (the file's `config:` wins)")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: threads of this process (default); ray: Ray actors placed where there is room")
    p.add_argument("--ray-address", metavar="ADDR", help="an existing Ray cluster (default: Ray on this machine)")


def cmd_serve(args: argparse.Namespace) -> int:
    import signal

    from streamfix.fleet.jobs import ray_session
    from streamfix.fleet.serve import Server
    from streamfix.pipeline.run_config import load_run_config, with_overrides

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    base = with_overrides(load_run_config(args.config),
                          scale={"executor": args.executor, "ray_address": args.ray_address})
    with ray_session(base):
        server = Server(args.channels, base_config=base, executor=args.executor, log=log)
        # A service manager's SIGTERM is the normal way to stop: every channel's
        # output is finished, and the exit code says all is well.
        signal.signal(signal.SIGTERM, lambda signum, frame: server.stop.set())
        try:
            server.run()
        except KeyboardInterrupt:
            log("streamfix: serve: interrupted; channels stopped")
            return 130
    log("streamfix: serve: stopped")
    return 0
