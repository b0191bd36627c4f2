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


def add_scale_flags(p: argparse.ArgumentParser) -> None:
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
              f"{result.passed_through} passed through) in {result.pieces} pieces{reused} on {result.workers} "
              f"{result.executor} workers in {result.seconds:.1f} s, {result.fps:.1f} fps, engine {result.engine}",
              file=sys.stderr)
    return 0
