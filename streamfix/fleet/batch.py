"""`streamfix batch`: many files through one pool of workers, long ones in pieces.

    streamfix batch archive/ more.txt --out-dir restored/ --executor ray --workers 8

- Every file becomes tasks for the same executor: a file at least twice the segment
  length is cut into pieces (streamfix/segments) so a long film spreads over many
  workers; a shorter file, a still image, or a file without safe cuts is one task.
  A file's pieces are joined as soon as its last one is in.
- One line per file as it ends (done / skipped / failed, with the reason), one
  progress bar for the whole batch, and a JSON summary (`streamfix-batch.json` in
  the output folder) written after every file, so a killed batch keeps its record.
- A rerun skips a file whose output exists and whose summary record says it was
  made from the same input (size, modification time) with the same options; a
  segmented file cut short goes on from its finished pieces (their work folder).
- One file failing does not stop the others; the exit code says whether any failed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import av

from streamfix.core.errors import OutputError, StreamfixError
from streamfix.core.weights import resolve
from streamfix.fleet.batch_inputs import BatchItem
from streamfix.media import stills
from streamfix.restore.restorer import choose_model
from streamfix.segments.job import SegmentedFile
from streamfix.segments.keyframes import open_video
from streamfix.segments.piece_worker import FileRecord, FileTask, TaskCrash
from streamfix.segments.workdir import options_digest

SUMMARY_NAME = "streamfix-batch.json"
DEFAULT_SEGMENT_S = 60.0  # files of at least twice this are cut into pieces


@dataclasses.dataclass(slots=True)
class FileOutcome:
    """One line of the summary."""

    input: str
    output: str
    status: str = "pending"      # done, skipped, failed
    frames: int = 0
    restored: int = 0
    passed_through: int = 0
    pieces: int = 1
    reused: int = 0
    seconds: float = 0.0         # worker time spent on it
    error: str | None = None
    input_bytes: int = 0
    input_mtime_ns: int = 0
    options: str = ""

    def line(self) -> str:
        if self.status == "failed":
            return f"failed   {self.input}: {self.error}"
        if self.status == "skipped":
            return f"skipped  {self.input} -> {self.output}: restored by an earlier run"
        pieces = f", {self.pieces} pieces" + (f" ({self.reused} reused)" if self.reused else "") \
            if self.pieces > 1 else ""
        frames = f"{self.frames} frame{'s' if self.frames != 1 else ''}"
        return (f"done     {self.input} -> {self.output}: {frames}, {self.restored} restored"
                f"{pieces}, {self.seconds:.1f} s")


def _probe(path: Path) -> tuple[Any, float | None, int]:
    """(what choose_model needs, duration in seconds, frame-count estimate)."""
    if stills.sniff_still(path):
        return SimpleNamespace(codec_name="jpeg", is_still=True), None, 1
    with open_video(path) as container:
        stream = container.streams.video[0]
        duration = container.duration / av.time_base if container.duration else None
        rate = stream.average_rate or stream.guessed_rate
        frames = stream.frames or (round(duration * float(rate)) if duration and rate else 0)
        return SimpleNamespace(codec_name=stream.codec_context.name, is_still=False), duration, frames


class Batch:
    """See the module docstring. `report(line)` prints each file's line."""

    def __init__(self, items: list[BatchItem], config: Any, *, summary: Path,
                 report: Callable[[str], None] = print, log: Callable[[str], None] = print) -> None:
        self.items, self.config, self.summary = items, config, summary
        self._report, self._log = report, log
        # Keyed by the absolute path the tasks carry.
        self.outcomes: dict[str, FileOutcome] = {str(i.source.absolute()): FileOutcome(str(i.source), str(i.target))
                                                 for i in items}
        self._jobs: dict[str, SegmentedFile] = {}
        self._tasks: list[Any] = []
        self._workers = 1
        self._earlier = self._read_summary()

    # --- planning ---------------------------------------------------------------

    def plan(self) -> int:
        """Find the tasks of every file still to restore; returns their frames (for the bar)."""
        tasks: list[Any] = []
        frames = 0
        for item in self.items:
            outcome = self.outcomes[str(item.source.absolute())]
            try:
                planned, count = self._plan_file(item, outcome)
            except StreamfixError as exc:
                self._ended(outcome, "failed", error=str(exc))
                continue
            tasks += planned
            frames += count
        self._tasks = tasks
        return frames

    def _plan_file(self, item: BatchItem, outcome: FileOutcome) -> tuple[list[Any], int]:
        info, duration, frames = _probe(item.source)
        model = str(self.config.model) if self.config.model is not None else choose_model(info)
        stat = item.source.stat()
        outcome.input_bytes, outcome.input_mtime_ns = stat.st_size, stat.st_mtime_ns
        outcome.options = options_digest(self.config, resolve(model))
        earlier = self._earlier.get(outcome.output)
        if item.target.exists() and earlier is not None and earlier.get("status") in ("done", "skipped") and \
                (earlier.get("input_bytes"), earlier.get("input_mtime_ns"), earlier.get("options")) == \
                (outcome.input_bytes, outcome.input_mtime_ns, outcome.options):
            for key in ("frames", "restored", "passed_through", "pieces"):
                setattr(outcome, key, earlier.get(key, 0))
            self._ended(outcome, "skipped")
            return [], 0
        try:
            item.target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{item.target.parent}: cannot be created ({exc.strerror})") from None
        seconds = self.config.scale.segment_seconds or DEFAULT_SEGMENT_S
        if duration is not None and duration >= 2 * seconds:
            config = dataclasses.replace(self.config, scale=dataclasses.replace(self.config.scale,
                                                                                segment_seconds=seconds))
            job = SegmentedFile(item.source, item.target, config, log=self._log)
            if len(job.plan()) > 1:
                self._jobs[str(item.source.absolute())] = job
                pieces = job.tasks()
                outcome.pieces = len(job.pieces)
                return pieces, sum(t.frames for t in pieces)
            return [job.whole_task()], job.index.frames
        return [FileTask(str(item.source.absolute()), str(item.target.absolute()), model, self.config,
                         frames=frames)], frames

    # --- running ----------------------------------------------------------------

    def run(self, executor: Any, progress: Any = None) -> list[FileOutcome]:
        """Run the planned tasks (after `plan`); returns every file's outcome."""
        update = progress.update if progress is not None else (lambda frames: None)
        try:
            if self._tasks:
                executor.run(self._tasks, done=self._done, progress=update)
                self._workers = executor.workers
        finally:
            for job in self._jobs.values():
                job.close()
        return list(self.outcomes.values())

    def _done(self, task: Any, outcome: Any) -> None:
        file = self.outcomes[task.source]
        if file.status == "failed":
            return  # another piece of it failed already
        if isinstance(outcome, BaseException):
            message = str(outcome).splitlines()[0] if isinstance(outcome, TaskCrash) else str(outcome)
            self._ended(file, "failed", error=message)
            return
        file.seconds += outcome.seconds
        if isinstance(outcome, FileRecord):
            file.frames, file.restored, file.passed_through = outcome.frames, outcome.restored, outcome.passed_through
            self._ended(file, "done")
            return
        job = self._jobs[task.source]
        job.finished(outcome)
        if len(job.records) == len(job.pieces):
            try:
                job.join()
            except StreamfixError as exc:
                self._ended(file, "failed", error=str(exc))
                return
            result = job.summary(file.seconds, self._workers)
            file.frames, file.restored, file.passed_through = result.frames_out, result.restored, result.passed_through
            file.reused = result.reused
            self._ended(file, "done")

    def _ended(self, outcome: FileOutcome, status: str, *, error: str | None = None) -> None:
        """Record and report how a file ended (an error's own copy of the path goes: the
        line names the file first)."""
        for named in (outcome.input, str(Path(outcome.input).absolute())):
            if error is not None and error.startswith(f"{named}: "):
                error = error[len(named) + 2:]
        outcome.status, outcome.error = status, error
        self._report(outcome.line())
        self._write_summary()

    # --- the summary -------------------------------------------------------------

    def _read_summary(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.summary.read_text())
            return {f["output"]: f for f in data.get("files", []) if isinstance(f, dict) and "output" in f}
        except (OSError, ValueError, AttributeError):
            return {}

    def _write_summary(self) -> None:
        mine = {o.output for o in self.outcomes.values()}
        kept = [f for output, f in self._earlier.items() if output not in mine]  # files of other batches
        files = kept + [dataclasses.asdict(o) for o in self.outcomes.values() if o.status != "pending"]
        counts = {s: sum(f["status"] == s for f in files) for s in ("done", "skipped", "failed")}
        data = {"written": time.strftime("%Y-%m-%dT%H:%M:%S"), **counts, "files": files}
        temporary = self.summary.with_name(self.summary.name + ".tmp")
        try:
            self.summary.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(data, indent=1) + "\n")
            os.replace(temporary, self.summary)
        except OSError as exc:
            raise OutputError(f"{self.summary}: cannot write the batch summary ({exc.strerror})") from None
