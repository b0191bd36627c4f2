"""One file restored in pieces: plan, reuse what a previous run finished, restore the rest, join.

    streamfix run IN OUT --segment-seconds 60 --workers 4

1. One pass over IN's video packets finds the safe cuts (keyframes.py) and the
   pieces (plan.py). A file with one piece is restored in one ordinary pass.
2. The work folder (workdir.py) says which pieces a previous run finished with the
   same packets and options; only the others become tasks.
3. An executor (streamfix/fleet: local processes or Ray) runs the tasks; each
   finished piece is recorded at once, so a crash loses only the pieces in flight.
4. The pieces are joined by stream copy with IN's audio and subtitles (join.py),
   and the work folder is removed (unless kept).

The executor is anything with `run(tasks, done=..., progress=...)`: it calls
`done(task, outcome)` in this thread as each task ends (outcome: a record, or the
exception after its retries) and `progress(frames)` as frames are written; an
exception raised by `done` stops every task and leaves `run`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from streamfix.core.errors import InputError, OptionError
from streamfix.core.weights import resolve
from streamfix.media import endpoints, stills
from streamfix.media.writer import check_writable
from streamfix.pipeline.output_plan import settle_for_pieces
from streamfix.pipeline.run_result import RunResult
from streamfix.restore.restorer import choose_model
from streamfix.segments.join import check_copies, join_pieces
from streamfix.segments.keyframes import KeyframeIndex, index_file
from streamfix.segments.piece_worker import FileRecord, FileTask, PieceTask
from streamfix.segments.plan import Piece, plan_pieces
from streamfix.segments.workdir import PieceRecord, WorkFolder, default_workdir, options_digest


class PiecesInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) during a segmented run: finished pieces are kept for the next run."""

    def __init__(self, finished: int, total: int, workdir: Path | None) -> None:
        super().__init__(f"{finished} of {total} pieces are restored and kept in {workdir}; "
                         f"run the same command again to go on from there")
        self.finished, self.total, self.workdir = finished, total, workdir


@dataclasses.dataclass(slots=True)
class SegmentedResult(RunResult):
    """A RunResult (the `--stats` JSON) with the pieces' side of the run added."""

    pieces: int = 1
    reused: int = 0  # pieces a previous run had finished
    workers: int = 1
    executor: str = "local"

    @classmethod
    def of(cls, source: Any, target: Any, *, frames: int, restored: int, passed_through: int, seconds: float,
           engine: str | None, **pieces: Any) -> "SegmentedResult":
        restore = {"restored": restored, "passed_through": passed_through, "engine": engine}
        return cls(input=str(source), output=str(target), frames_in=frames, frames_out=frames, seconds=seconds,
                   stage_stats={"restore": restore}, **pieces)

    def to_dict(self) -> dict[str, Any]:
        return {**RunResult.to_dict(self), "pieces": self.pieces, "reused": self.reused, "workers": self.workers,
                "executor": self.executor}


def _absolute(path: str | Path) -> str:
    """Tasks carry absolute paths: a worker's current folder is not the caller's (Ray)."""
    return str(Path(path).absolute())


def check_segmentable(source: Any, target: Any) -> None:
    """Pieces need a video file to cut and a file to join into."""
    if not (isinstance(source, (str, Path)) and endpoints.is_path(source)):
        raise OptionError(f"{endpoints.describe(source)}: --segment-seconds needs a video file as input, "
                          f"not a pipe or a stream")
    if not (isinstance(target, (str, Path)) and endpoints.is_path(target)):
        raise OptionError(f"{endpoints.describe(target, output=True)}: --segment-seconds writes a file; "
                          f"give an output file name")
    if stills.is_image_target(target):
        raise OptionError(f"{target}: an image holds one frame; --segment-seconds is for video outputs")
    if not Path(source).is_file():
        raise InputError(f"{source}: no such file; check the path")
    if stills.sniff_still(source):
        raise OptionError(f"{source}: a still image is one frame; restore it without --segment-seconds")


class SegmentedFile:
    """One input, its pieces and its work folder; see the module docstring."""

    def __init__(self, source: str | Path, target: str | Path, config: Any, *,
                 log: Callable[[str], None] = print) -> None:
        check_segmentable(source, target)
        self.source, self.target, self.config, self._log = str(source), Path(target), config, log
        check_writable(self.target, self.source)
        self.index: KeyframeIndex | None = None
        self.pieces: list[Piece] = []
        self.work: WorkFolder | None = None
        self.records: dict[int, PieceRecord] = {}
        self._done_now = 0  # pieces restored by this run (the other records were reused)
        self.copied = False  # set by plan(): nothing to restore, the video is copied whole

    def plan(self) -> list[Piece]:
        """Index the input and cut it into pieces (one piece: nothing to segment)."""
        self.index = index_file(self.source)
        seconds = self.config.scale.segment_seconds
        if self.index.unsafe is not None:
            self._log(f"streamfix: {self.source}: cannot be cut safely ({self.index.unsafe}); one piece")
        self.config, output_plan = settle_for_pieces(self.source, self.target, self.config)
        self.copied = output_plan is not None and output_plan.mode == "copy"
        if self.copied:
            seconds = math.inf  # nothing to restore: one task, whose pipeline copies the video
        self.pieces = plan_pieces(self.index, seconds)
        return self.pieces

    @property
    def model(self) -> str:
        info = SimpleNamespace(codec_name=self.index.codec_name, is_still=False)
        return str(self.config.model) if self.config.model is not None else choose_model(info)

    def whole_task(self) -> FileTask:
        return FileTask(_absolute(self.source), _absolute(self.target), self.model, self.config,
                        frames=self.index.frames)

    def tasks(self) -> list[PieceTask]:
        """Open the work folder and list the pieces still to restore (after `plan`)."""
        check_copies(self.source, self.target, self.config)
        workdir = Path(self.config.scale.workdir) if self.config.scale.workdir else default_workdir(self.target)
        self.work = WorkFolder(workdir.absolute(), output_suffix=self.target.suffix, input_suffix=Path(self.source).suffix)
        self.work.open()
        options = options_digest(self.config, resolve(self.model))
        source_stat = Path(self.source).stat()
        plan = {"input": str(Path(self.source).resolve()), "input_bytes": source_stat.st_size,
                "output": str(self.target.resolve()), "options": options,
                "segment_seconds": self.config.scale.segment_seconds,
                "pieces": [dataclasses.asdict(p) for p in self.pieces]}
        todo = self.work.start(plan, self.pieces, options)
        self.records = dict(self.work.records)
        pts = self.index.frame_pts
        return [PieceTask(source=_absolute(self.source), format_name=self.index.format_name, piece=p,
                          packet_pts=pts[p.first_packet:p.first_packet + p.packets],
                          input_path=str(self.work.input_of(p)), output_path=str(self.work.output_of(p)),
                          options=options, model=self.model, config=self.config) for p in todo]

    def finished(self, record: PieceRecord) -> None:
        self.work.finished(record)
        self.records[record.index] = record
        self._done_now += 1

    def join(self) -> Path:
        files = [self.work.path / self.records[p.index].file for p in self.pieces]
        join_pieces(self.source, self.index, self.pieces, files, self.target, self.config, log=self._log)
        if not self.config.scale.keep_pieces:
            self.work.remove()
        return self.target

    def close(self) -> None:
        if self.work is not None:
            self.work.close()

    def summary(self, seconds: float, workers: int) -> SegmentedResult:
        records = [self.records[p.index] for p in self.pieces]
        return SegmentedResult.of(self.source, self.target, frames=self.index.frames,
                                  restored=sum(r.restored for r in records),
                                  passed_through=sum(r.passed_through for r in records), seconds=seconds,
                                  engine=next((r.engine for r in records if r.engine), None), pieces=len(self.pieces),
                                  reused=len(records) - self._done_now, workers=workers,
                                  executor=self.config.scale.executor)


def restore_in_pieces(source: str | Path, target: str | Path, config: Any, executor: Any, *,
                      progress_for: Callable[[int], Any] | None = None,
                      log: Callable[[str], None] = print) -> SegmentedResult:
    """Restore `source` into `target` in pieces run by `executor`; see the module docstring.

    `progress_for(total_frames)` makes the job's one progress reporter (a pipeline
    Progress): it gets the frames of reused pieces at once, the others as workers
    write them."""
    start = time.perf_counter()
    job = SegmentedFile(source, target, config, log=log)
    pieces = job.plan()
    progress = progress_for(job.index.frames) if progress_for is not None else None
    if len(pieces) == 1:
        if not job.copied:
            log(f"streamfix: {source}: one piece ({job.index.frames} frames: no safe cut leaves pieces of at least "
                f"{config.scale.segment_seconds:g} s); restoring it in one pass")
        tasks: list[Any] = [job.whole_task()]
    else:
        tasks = job.tasks()
    report = progress.update if progress is not None else (lambda frames: None)
    try:
        if len(pieces) > 1:
            report(sum(p.packets for p in pieces) - sum(t.frames for t in tasks))
        results: dict[int, FileRecord] = {}

        def done(task: Any, outcome: Any) -> None:
            if isinstance(outcome, BaseException):
                raise outcome
            if isinstance(task, FileTask):
                results[0] = outcome
            else:
                job.finished(outcome)

        if tasks:
            try:
                executor.run(tasks, done=done, progress=report)
            except KeyboardInterrupt:
                if len(pieces) == 1:
                    raise
                raise PiecesInterrupted(len(job.records), len(pieces), job.work.path) from None
        if len(pieces) == 1:
            record = results[0]
            return SegmentedResult.of(source, target, frames=record.frames, restored=record.restored,
                                      passed_through=record.passed_through, seconds=time.perf_counter() - start,
                                      engine=record.engine, workers=getattr(executor, "workers", 1),
                                      executor=config.scale.executor)
        job.join()
        return job.summary(time.perf_counter() - start, getattr(executor, "workers", 1))
    finally:
        job.close()
