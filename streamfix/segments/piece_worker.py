"""What a worker does: restore a piece (cut, run the pipeline, check) or a whole short file.

A worker (a local process or a Ray actor, streamfix/fleet) keeps one PieceWorker:
the model and engine are loaded on the first task and kept, and every later task's
pipeline uses that engine (streamfix.SharedEngine), so a worker pays the engine's
start-up (TensorRT: seconds) once, not once per piece.

A piece goes through the same Pipeline as a single pass, with the same config, so
its frames are restored and encoded exactly as a single pass would; it counts only
after a check against the index: as many frames as it has packets (a decoder that
could not start at the cut would show here).

Failures carry the piece's number and time range (or the file). They are plain
exceptions with one string argument, so they cross process and Ray boundaries
intact: TaskError is the user's to fix (bad option, changed file: retrying cannot
help), TaskCrash is anything else (retried, then reported with its traceback).
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streamfix.core.digests import file_sha256
from streamfix.core.errors import StreamfixError
from streamfix.segments.cutting import CutError, cut_piece
from streamfix.segments.plan import Piece
from streamfix.segments.workdir import PieceRecord

# Engines kept per worker: a batch of mixed files may alternate between two models.
KEPT_ENGINES = 2


class TaskError(StreamfixError):
    """A task failed for a reason the user can act on; the message names the piece or file."""


class TaskCrash(Exception):
    """A task failed unexpectedly (a bug, a dead GPU, ...); the message has the traceback."""


@dataclasses.dataclass(frozen=True, slots=True)
class PieceTask:
    """Everything a worker needs for one piece (small: it travels to other machines)."""

    source: str
    format_name: str         # the input's demuxer, for the piece's container
    piece: Piece
    packet_pts: tuple[int, ...]  # the piece's packets' pts, in decode order
    input_path: str          # where the cut piece goes (deleted when done)
    output_path: str         # the restored piece
    options: str             # options digest, recorded with the piece
    model: str               # every piece of a file uses the same model
    config: Any              # the RunConfig

    @property
    def frames(self) -> int:
        return self.piece.packets

    def describe(self) -> str:
        return f"{self.source}: {self.piece.describe()}"


@dataclasses.dataclass(frozen=True, slots=True)
class FileTask:
    """A whole file, restored in one pass (a short file in a batch, or one that has a
    single piece)."""

    source: str
    output_path: str
    model: str | None        # None: chosen per input, as a single run does
    config: Any
    frames: int = 0          # for the job's progress bar; 0 if unknown

    def describe(self) -> str:
        return self.source


@dataclasses.dataclass(frozen=True, slots=True)
class FileRecord:
    """What restoring a whole file did."""

    frames: int
    restored: int
    passed_through: int
    seconds: float
    engine: str | None


class _Forward:
    """The pipeline's Progress, forwarding frame counts to the job's one bar."""

    def __init__(self, report: Callable[[int], None]) -> None:
        self._report = report

    def update(self, frames: int = 1) -> None:
        self._report(frames)

    def tick(self) -> None:
        pass

    def log(self, message: str) -> None:
        pass  # per-task chatter: the job prints its own summary

    def close(self) -> None:
        pass


class PieceWorker:
    """Runs tasks one after another with the engines it keeps; see the module docstring.

    `device` overrides the config's (a local worker's own GPU). `cpu_cores` is how many
    cores a CPU worker holds: where the config leaves the engines' thread count to the
    engine (all cores), it gets all but one of them, the one that decodes and encodes,
    so several workers on one machine do not each take every core."""

    def __init__(self, *, device: str | None = None, cpu_cores: int | None = None,
                 log: Callable[[str], None] = print) -> None:
        self.device, self._log = device, log
        self.cpu_threads = max(1, cpu_cores - 1) if cpu_cores else None
        self._engines: dict[tuple, Any] = {}

    def run(self, task: PieceTask | FileTask, report: Callable[[int], None] = lambda frames: None
            ) -> PieceRecord | FileRecord:
        start = time.perf_counter()
        try:
            config = self._config(task.config)
            engine = self._shared_engine(task.model, config) if task.model is not None else None
            if isinstance(task, PieceTask):
                cut_piece(task.source, task.piece, task.packet_pts, task.format_name, Path(task.input_path))
                input_path = task.input_path
            else:
                input_path = task.source
            result = self._pipeline(input_path, task, config, engine, report)
        except (CutError, StreamfixError) as exc:
            if getattr(exc, "user_error", True):
                raise TaskError(f"{task.describe()}: {exc}") from None
            # A PipelineError around a bug in a stage: its cause's traceback says where.
            cause = "".join(traceback.format_exception(exc.__cause__)) if exc.__cause__ else ""
            raise TaskCrash(f"{task.describe()}: {exc}\n{cause}") from None
        except Exception as exc:  # noqa: BLE001 - crosses processes as text
            raise TaskCrash(f"{task.describe()}: {type(exc).__name__}: {exc}\n{traceback.format_exc()}") from None
        finally:
            if isinstance(task, PieceTask):
                Path(task.input_path).unlink(missing_ok=True)
        seconds = time.perf_counter() - start
        if isinstance(task, FileTask):
            return FileRecord(result.frames_out, result.restored, result.passed_through, seconds, result.engine)
        return self._checked(task, result, seconds)

    def _checked(self, task: PieceTask, result: Any, seconds: float) -> PieceRecord:
        piece = task.piece
        if result.frames_out != piece.packets:
            raise TaskError(f"{task.describe()}: restored {result.frames_out} frames where the input has "
                            f"{piece.packets} packets; this input cannot be cut safely, run it without "
                            f"--segment-seconds")
        output = Path(task.output_path)
        return PieceRecord(index=piece.index, first_packet=piece.first_packet, packets=piece.packets,
                           digest=piece.digest, options=task.options, file=output.name,
                           bytes=output.stat().st_size, sha256=file_sha256(output), restored=result.restored,
                           passed_through=result.passed_through, seconds=seconds, engine=result.engine)

    def _pipeline(self, source: str, task: PieceTask | FileTask, config: Any, engine: Any,
                  report: Callable[[int], None]) -> Any:
        from streamfix.pipeline.pipeline import Pipeline

        return Pipeline(source, task.output_path, config, engine=engine, quiet=True, progress=_Forward(report),
                        log=lambda message: None, name=Path(task.output_path).name).run()

    def _config(self, config: Any) -> Any:
        from streamfix.pipeline.run_config import with_overrides

        engines = {name: dict(options) for name, options in config.engines.items()}
        if self.cpu_threads:
            for name in ("torch", "onnxruntime"):
                engines.setdefault(name, {}).setdefault("threads", self.cpu_threads)
        return with_overrides(config, device=self.device, engines=engines)

    def _shared_engine(self, model: str, config: Any) -> Any:
        """The engine for `model` with the task's engine settings: loaded once, then kept."""
        import streamfix
        from streamfix.pipeline.run_config import engine_configs

        key = (model, config.engine, config.device, config.batch, config.tile, config.memory_budget_mb, repr(sorted(config.engines.items())))
        if key not in self._engines:
            while len(self._engines) >= KEPT_ENGINES:
                self._engines.pop(next(iter(self._engines))).__exit__(None, None, None)
            shared = streamfix.SharedEngine.load(model, engine=config.engine, device=config.device,
                                                 max_batch=config.batch, tile=config.tile,
                                                 memory_mb=config.memory_budget_mb,
                                                 engine_configs=engine_configs(config), gather_ms=0.0,
                                                 log=self._log)
            self._engines[key] = shared.__enter__()
        return self._engines[key]

    def close(self) -> None:
        engines, self._engines = self._engines, {}
        for engine in engines.values():
            engine.__exit__(None, None, None)
