"""What a run produced (RunResult, the `--stats` JSON) and how it can fail."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamfix.core.errors import StreamfixError
from streamfix.core.threads import Failure, Worker


class PipelineError(StreamfixError):
    """A stage failed. For user errors (bad input, ...) the message is the original one-line
    message; for anything else it names the stage, frame and exception. Either way it
    names the incomplete output, if one was started. The original is `__cause__`."""

    def __init__(self, message: str, *, stage: str, index: int | None, partial: Path | None) -> None:
        super().__init__(message)
        self.stage, self.index, self.partial = stage, index, partial

    @property
    def user_error(self) -> bool:
        return isinstance(self.__cause__, StreamfixError)


@dataclass(slots=True)
class RunResult:
    """What a run did; `to_dict()` is the `--stats` JSON."""

    input: str
    output: str
    frames_in: int = 0
    frames_out: int = 0
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    stage_stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    interrupted: bool = False
    live: bool = False
    # Why a live input ended before its sender closed it cleanly (stalled, broke),
    # or None.
    input_ended: str | None = None
    reconnects: int = 0
    latency_s: dict[str, float] = field(default_factory=dict)  # last / mean / max, decode to encode
    # How the video was written when the encoder's quality was left to us
    # (pipeline/output_plan.py): {mode: copy|encode, crf, mean_qp, reason}, else None.
    output_video: dict[str, Any] | None = None
    # What was done about a damaged or discontinuous input (media/input_report.py).
    damaged_packets: int = 0   # video packets that could not be decoded: their frames are missing
    concealed: int = 0         # damaged packets or frames the decoder concealed
    read_errors: int = 0       # demuxer errors read past
    timestamp_jumps: int = 0   # jumps of the input's clock, closed in the output
    timestamps_fixed: int = 0  # frames and packets moved later because their time did not advance
    dropped_packets: int = 0   # damaged audio/subtitle/data packets the output could not store

    @property
    def fps(self) -> float:
        return self.frames_out / self.seconds if self.seconds > 0 else 0.0

    def _restore(self, key: str, default: Any) -> Any:
        return self.stage_stats.get("restore", {}).get(key, default)

    @property
    def restored(self) -> int:
        return self._restore("restored", 0)

    @property
    def passed_through(self) -> int:
        return self._restore("passed_through", 0)

    @property
    def engine(self) -> str | None:
        return self._restore("engine", None)

    @property
    def fallbacks(self) -> list[str]:
        return self._restore("fallbacks", [])

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": self.input, "output": self.output, "frames_in": self.frames_in,
            "frames_out": self.frames_out, "restored": self.restored,
            "passed_through": self.passed_through, "seconds": round(self.seconds, 3),
            "fps": round(self.fps, 3), "engine": self.engine, "fallbacks": self.fallbacks,
            "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
            "stages": self.stage_stats, "interrupted": self.interrupted, "live": self.live,
            "late": self._restore("late", 0), "restored_light": self._restore("restored_light", 0),
            "input_ended": self.input_ended, "reconnects": self.reconnects, "output_video": self.output_video,
            "latency_s": {k: round(v, 4) for k, v in self.latency_s.items()},
            "damaged_packets": self.damaged_packets, "concealed": self.concealed, "read_errors": self.read_errors,
            "timestamp_jumps": self.timestamp_jumps, "timestamps_fixed": self.timestamps_fixed,
            "dropped_packets": self.dropped_packets,
        }


class PipelineInterrupted(KeyboardInterrupt):
    """Ctrl-C: the output was finished with the frames processed so far (`result`)."""

    def __init__(self, result: RunResult) -> None:
        super().__init__(f"interrupted: {result.output} holds {result.frames_out} frames")
        self.result = result


def pipeline_error(failure: Failure, partial: Path | None) -> PipelineError:
    """The caller's one error for a failed run: the original message for our own
    errors, else the stage, the frame index and the exception."""
    exc = failure.error
    note = f" (the incomplete output is kept as {partial})" if partial else ""
    if isinstance(exc, StreamfixError):
        message = f"{exc}{note}"
    else:
        where = f" at frame {failure.index}" if failure.index is not None else ""
        message = f"stage {failure.stage!r} failed{where}: {type(exc).__name__}: {exc}{note}"
    return PipelineError(message, stage=failure.stage, index=failure.index, partial=partial)


def busy_seconds(workers: list[Worker]) -> dict[str, float]:
    """Seconds each stage (decode, restore, encode, ...) was busy, over all threads."""
    total: dict[str, float] = {}
    for worker in workers:
        for label, busy in list(worker.busy_s.items()):
            total[label] = total.get(label, 0.0) + busy
    return total


def _input_report(reader: Any, writer: Any) -> Any:
    """The reader's InputReport with the writer's own timestamp fixes added, or None
    (still images have none)."""
    report = getattr(reader, "report", None)
    if report is None:
        return None
    fixed_by_writer = getattr(getattr(writer, "timestamps", None), "fixed", 0)
    return dataclasses.replace(report, timestamps_fixed=report.timestamps_fixed + fixed_by_writer,
                               dropped_packets=getattr(writer, "dropped_packets", 0))


def end_warnings(reader: Any, writer: Any, *, live: bool) -> list[str]:
    """The warning lines a run ends with: why the input ended early, and one line per
    kind of damage or timestamp trouble that was dealt with."""
    lines = []
    if reader.end_reason is not None:
        hint = " (use --reconnect N to wait for the sender again)" if live else ""
        lines.append(f"streamfix: warning: {reader.end_reason}; the output was closed cleanly with every "
                     f"frame received{hint}")
    report = _input_report(reader, writer)
    if report is not None:
        lines.extend(report.warnings(reader.source))
    return lines


def input_counts(reader: Any, writer: Any) -> dict[str, int]:
    """RunResult's damage and timestamp fields."""
    report = _input_report(reader, writer)
    return report.stats() if report is not None else {}
