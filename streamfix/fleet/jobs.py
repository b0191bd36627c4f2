"""Running jobs on the chosen executor: the entry points the CLI and embedders call.

    from streamfix.fleet.jobs import run_batch, run_in_pieces
    result = run_in_pieces("film.mkv", "film-restored.mkv", config)   # config.scale says how
    outcomes = run_batch(["archive/"], Path("restored"), config)      # many files, one pool

`ray_session` starts (or joins) Ray for the length of a job when the config asks
for it, and shuts down only a Ray it started itself.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from streamfix.core.errors import InputError
from streamfix.fleet.batch import SUMMARY_NAME, Batch, FileOutcome
from streamfix.fleet.batch_inputs import collect
from streamfix.fleet.executors import make_executor
from streamfix.fleet.ray_executor import connect, import_ray
from streamfix.pipeline.progress import make_progress
from streamfix.segments.job import SegmentedResult, restore_in_pieces


@contextlib.contextmanager
def ray_session(config: Any) -> Iterator[None]:
    """Ray for the job, if the config's executor is Ray; nothing otherwise."""
    if config.scale.executor != "ray":
        yield
        return
    started = connect(config.scale.ray_address)
    try:
        yield
    finally:
        if started:
            import_ray().shutdown()


def run_in_pieces(source: str | Path, target: str | Path, config: Any, *, quiet: bool = False,
                  log: Callable[[str], None] | None = None) -> SegmentedResult:
    """`streamfix run SOURCE TARGET --segment-seconds S`: see streamfix/segments/job.py."""
    bars: list[Any] = []

    def progress_for(total: int) -> Any:
        bars.append(make_progress(config.progress, total, quiet=quiet))
        return bars[-1]

    def emit(message: str) -> None:
        if log is not None:
            log(message)
        elif bars:
            bars[-1].log(message)
        elif not quiet:
            print(message, file=sys.stderr)

    try:
        with ray_session(config):
            executor = make_executor(config, log=emit)
            return restore_in_pieces(source, target, config, executor, progress_for=progress_for, log=emit)
    finally:
        for bar in bars:
            bar.close()


def run_batch(inputs: list[str | Path], out_dir: Path, config: Any, *, suffix: str | None = None,
              summary: Path | None = None, quiet: bool = False, report: Callable[[str], None] = print,
              log: Callable[[str], None] | None = None) -> list[FileOutcome]:
    """`streamfix batch`: see streamfix/fleet/batch.py. Returns every file's outcome."""
    items = collect(inputs, out_dir, suffix=suffix)
    if not items:
        raise InputError(f"no video or image files in {', '.join(map(str, inputs))}")
    emit = log or (lambda message: None if quiet else print(message, file=sys.stderr))
    batch = Batch(items, config, summary=summary or out_dir / SUMMARY_NAME, report=report, log=emit)
    with ray_session(config):
        executor = make_executor(config, log=emit)
        progress = make_progress(config.progress, batch.plan(), quiet=quiet)
        try:
            return batch.run(executor, progress)
        finally:
            progress.close()
