"""`streamfix run`: decode -> batch -> process -> encode, as threads joined by bounded queues.

    reader --(decoded)--> batcher --(batches)--> stages --(processed)--> writer
    decode thread         batch thread           process thread         encode thread

Why threads: FFmpeg (decoding, encoding) and the engine (inference) release the
GIL, so the three overlap and the slowest one sets the pace. Why bounded queues: a fast decoder would otherwise read a two-hour film into
memory while the model works on minute one. Every queue operation uses a timeout
inside a loop that watches the stop events, so no thread can block forever.

Copied streams (audio, subtitles) travel in the frames' queues, inside the batch they
were demuxed next to: the writer keeps the input's demux order and interleaving.

Setup happens in the caller's thread before any other starts: the stages open (the
restore stage loads its model and engine) and the writer opens the output, so a bad
model, engine, encoder or output path is reported at once as its own one-line error.
Stages are closed in the caller's thread too; only `process` runs on the process
thread (engines accept calls from a thread other than the one that opened them).

Ending:
- Normal end: the decode thread sends END; each thread forwards it; the main thread
  finishes the output (flushes the encoder, renames `.partial` to the target).
- An exception in any thread sets `stop`: every thread returns, the output is aborted
  (closed playable but left under its `.partial` name) and the caller gets a
  PipelineError naming the stage, the frame index and the partial file, with the
  original exception as `__cause__`.
- Ctrl-C (KeyboardInterrupt in the caller, `interrupt()` from a signal handler, or a
  stage raising it) sets `drain`: decoding stops, the batch in hand is finished, the
  encoder writes everything processed, and the output gets its real name; the caller
  gets PipelineInterrupted with the result. A second one stops at once.

Live mode (pipes and network inputs, or `live.mode: on`): the batch thread gives
every frame a deadline (live.py), batches leave in time for their oldest frame, and
the restore stage restores what it can finish before then, passing the rest through.
A live input that stalls or breaks, or a file holding less video than its header
declares, ends the run like an end of stream, with a warning and `input_ended`.
Every run keeps live counters (`metrics`, a StreamMetrics) that any thread may read.
"""

from __future__ import annotations

import functools
import queue
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av

from streamfix.pipeline.batching import Batch, Batcher
from streamfix.core.errors import StreamfixError
from streamfix.pipeline.live import LiveTiming
from streamfix.media import endpoints
from streamfix.media.reader import DecodedFrame, MediaReader
from streamfix.media.writer import MediaWriter, check_writable
from streamfix.pipeline.progress import Progress, make_progress
from streamfix.restore.restorer import Restorer
from streamfix.pipeline.run_config import RunConfig, engine_configs
from streamfix.pipeline.run_result import (PipelineError, PipelineInterrupted, RunResult, busy_seconds, end_warnings,
                                          input_counts, pipeline_error)
from streamfix.pipeline.output_plan import settle_output
from streamfix.pipeline.restore_stage import RestoreStage
from streamfix.pipeline.stages import BatchContext, build_stages
from streamfix.pipeline.counters import StreamMetrics, stage_stats
from streamfix.core.threads import END, POLL_S, Control, Failure, Stopped, Worker


class Pipeline:
    """One run from `source` to `target`. `run()` once; `interrupt()` from any thread
    ends it early the way Ctrl-C does; `metrics.snapshot()` from any thread shows
    how it is going.

    `source`: a file, `-` (stdin), `pipe:N`, a URL, a binary file-like object or an
    open PyAV input container. `target`: a file, `-` (stdout), `pipe:N`, a URL or a
    binary file-like object (pipes and file-like objects need `config.output.format`).
    `stages` replaces the config's stage list with ready-made stage objects (an
    embedder's own); `engine` is a shared engine object (streamfix.engines.shared) for
    the restore stage instead of one of its own; `progress` replaces the bar/lines
    reporter; `log` receives the one-line messages (engine choice, fallbacks, why a
    live input ended) instead of the reporter; `name` labels the metrics.
    """

    def __init__(self, source: Any, target: Any, config: RunConfig | None = None, *,
                 stages: list[Any] | None = None, engine: Any = None, quiet: bool = False,
                 progress: Progress | None = None, log: Callable[[str], None] | None = None,
                 name: str | None = None) -> None:
        self.source = source
        self.target = Path(target) if endpoints.is_path(target) else target
        self.config = config or RunConfig()
        self._stages, self._engine = stages, engine
        self._quiet, self._progress, self._log = quiet, progress, log
        self._emit: Callable[[str], None] = log or functools.partial(print, file=sys.stderr)  # stdout: maybe the output
        self._control, self._running_threads = Control(), False
        self.output_plan = None  # output_plan.settle_output sets it when a run starts
        self._writer: MediaWriter | None = None
        self._expected_frames: int | None = None
        mode = self.config.live.mode
        self.live = mode == "on" or (mode == "auto" and endpoints.is_live(source))
        self._timing = LiveTiming(self.config.live.max_latency_ms / 1000.0) if self.live else None
        self.metrics = StreamMetrics(name or endpoints.describe(source), endpoints.describe(source),
                                     endpoints.describe(target, output=True))
        self.metrics.live = self.live

    def interrupt(self, *, now: bool = False) -> None:
        """Ctrl-C from any thread: finish with what is processed (`now`: stop at once)."""
        self._control.drain.set()
        if now:
            self._control.stop.set()

    @property
    def running_threads(self) -> bool:
        """True from the start of the threads until `run` returns: a signal handler
        should then call `interrupt` rather than raise (see the CLI's _Interrupts)."""
        return self._running_threads

    def _make_restorer(self) -> Restorer:
        c = self.config
        return Restorer(c.model, engine=self._engine or c.engine, device=c.device, batch=c.batch, tile=c.tile,
                        memory_mb=c.memory_budget_mb, chroma=c.chroma, ensemble=c.ensemble, tier=c.tier, gate=c.gate,
                        jpeg_quality=c.jpeg_quality, precision=c.precision, engine_configs=engine_configs(c),
                        log=lambda line: self._emit(line), measure_engines=not self.live)

    def _open_reader(self) -> MediaReader:
        c = self.config.input
        return MediaReader(self.source, input_format=c.format, options=endpoints.option_strings(c.options),
                           timeout_s=c.timeout_s, reconnect=c.reconnect, log=lambda message: self._emit(message))

    def run(self) -> RunResult:
        """Restore the whole input. Setup problems (input, output, model, engine,
        encoder) raise their own one-line errors before any thread starts; a stage
        failing later raises PipelineError; Ctrl-C raises PipelineInterrupted."""
        if isinstance(self.target, Path):
            check_writable(self.target, self.source if isinstance(self.source, (str, Path)) else None,
                           container_format=self.config.output.format)
        quiet_log = (lambda message: None) if self._quiet and not self._log else self._emit
        if (copied := settle_output(self, custom_stages=self._stages is not None, log=quiet_log)) is not None:
            return copied  # nothing to restore: the input's video was copied unchanged
        stages = self._stages if self._stages is not None else build_stages(self.config.stages, lambda: RestoreStage(self._make_restorer()))
        start = time.perf_counter()
        self.metrics.running = True
        try:
            with self._open_reader() as reader:
                opened: list[Any] = []
                try:
                    try:
                        progress = self._set_up(reader, stages, opened)
                        workers = self._start(reader, stages, progress)
                        self._running_threads = True
                    except BaseException:
                        self._abort()
                        raise
                    try:
                        interrupted = self._wait(workers, progress)
                    finally:
                        progress.close()
                finally:
                    self._close_stages(opened)
                return self._conclude(reader, workers, stages, interrupted, time.perf_counter() - start)
        finally:
            self.metrics.running = False
            self._running_threads = False

    def _set_up(self, reader: MediaReader, stages: list[Any], opened: list[Any]) -> Progress:
        """Open the stages (model, engine) and the writer, in the caller's thread.

        Their messages (engine choice, fallbacks) are held back until both opened: when
        setup fails, the error is the one line the user sees."""
        held: list[str] = list(getattr(reader, "notes", ()))  # what the input brings that is not restored
        self._emit = held.append
        video = reader.video
        self._expected_frames = None if video.is_still or reader.live else video.frame_count
        for stage in stages:
            try:
                video = stage.open(video)
            except StreamfixError:
                raise
            except Exception as exc:  # noqa: BLE001 - a plugin's bug, named as such
                raise PipelineError(f"stage {stage.name!r} failed to open: {type(exc).__name__}: {exc}",
                                    stage=stage.name, index=None, partial=None) from exc
            opened.append(stage)
        out = self.config.output
        self._writer = MediaWriter(self.target, video, reader.copy_streams, self.config.encode,
                                   container_format=out.format, options=endpoints.option_strings(out.options),
                                   source=self.source if isinstance(self.source, (str, Path)) else None,
                                   log=lambda message: self._emit(message))
        if self._timing is not None:
            for stage in opened:
                if callable(getattr(stage, "go_live", None)):
                    stage.go_live(self._timing)
        progress = self._progress or make_progress(self.config.progress, self._expected_frames, quiet=self._quiet,
                                                   status=self._progress_status if self.live else None)
        self._emit = self._log or progress.log
        for message in held:
            self._emit(message)
        return progress

    def _progress_status(self) -> str:
        snapshot = self.metrics.snapshot()
        light = f" ({snapshot['restored_light']} light)" if snapshot["restored_light"] else ""
        return (f"{snapshot['restored']} restored{light}, {snapshot['passed_through']} passed through, "
                f"latency {snapshot['latency_s']['last'] * 1000:.0f} ms")

    def _close_stages(self, opened: list[Any]) -> None:
        for stage in reversed(opened):
            try:
                stage.close()
            except Exception as exc:  # noqa: BLE001 - reported like any stage failure
                self._control.fail(Failure(stage.name, None, exc))

    # --- threads ----------------------------------------------------------------

    def _start(self, reader: MediaReader, stages: list[Any], progress: Progress) -> list[Worker]:
        sizes = self.config.queues
        decoded, batches, processed = (queue.Queue(n) for n in (sizes.decoded, sizes.batches, sizes.processed))
        workers = [
            Worker("decode", lambda w: self._decode(w, reader.items(), decoded), self._control),
            Worker("batch", lambda w: self._batch(w, decoded, batches), self._control),
            Worker("process", lambda w: self._process(w, stages, batches, processed), self._control),
            Worker("encode", lambda w: self._encode(w, processed, progress), self._control),
        ]
        self.metrics.attach({"decoded": decoded, "batches": batches, "processed": processed},
                            lambda: busy_seconds(workers), lambda: stage_stats(stages))
        for worker in workers:
            worker.thread.start()
        return workers

    def _decode(self, worker: Worker, items: Iterator[Any], out: queue.Queue) -> None:
        while True:
            start = time.perf_counter()
            item = next(items, END)
            worker.timed("decode", start)
            if item is END:
                break
            if isinstance(item, DecodedFrame):
                worker.index = item.index
                self.metrics.frames_in += 1
            self._control.put(out, item, drain_stops=True)
        self._control.put(out, END, drain_stops=True)

    def _batch(self, worker: Worker, inp: queue.Queue, out: queue.Queue) -> None:
        timing = self._timing
        reserve = timing.estimate.seconds_for if timing is not None else (lambda frames: 0.0)
        batcher = Batcher(self.config.batch, self.config.batch_timeout_ms / 1000.0, reserve=reserve)
        while True:
            try:
                item = self._control.get(inp, drain_stops=True, timeout=batcher.wait_s())
            except queue.Empty:
                ready = batcher.due()
            else:
                if item is END:
                    for batch in batcher.flush():
                        self._control.put(out, batch, drain_stops=True)
                    self._control.put(out, END, drain_stops=True)
                    return
                if isinstance(item, DecodedFrame):
                    worker.index = item.index
                    frame = item.frame
                    deadline = timing.deadline_of(item) if timing is not None else None
                    ready = batcher.add_frame(item, (frame.width, frame.height, frame.format.name), deadline)
                    ready += batcher.due()  # a frame already late must not wait for company
                else:
                    ready = batcher.add_other(item)
            for batch in ready:
                self._control.put(out, batch, drain_stops=True)

    def _process(self, worker: Worker, stages: list[Any], inp: queue.Queue, out: queue.Queue) -> None:
        try:
            while True:
                try:
                    batch = self._control.get(inp, drain_stops=True)
                except Stopped:
                    if self._control.stop.is_set():
                        raise
                    break  # Ctrl-C: what was processed so far ends the output
                if batch is END:
                    break
                arrivals = [decoded.arrival for decoded in batch.frames]
                self._control.put(out, (self._run_stages(worker, stages, batch), arrivals))
        except KeyboardInterrupt:
            self._control.drain.set()  # raised by a stage: same as Ctrl-C
        # The encoder writes until END, so it must come even after an interruption.
        self._control.put(out, END)

    def _run_stages(self, worker: Worker, stages: list[Any], batch: Batch) -> list[Any]:
        if not batch.frames:
            return batch.entries
        worker.index = batch.frames[0].index
        context = BatchContext(batch.frames, batch.deadline)
        frames = [decoded.frame for decoded in batch.frames]
        for stage in stages:
            worker.name = stage.name
            start = time.perf_counter()
            frames = stage.process(frames, context)
            worker.timed(stage.name, start)
            if len(frames) != len(batch.frames):
                raise RuntimeError(f"stage {stage.name!r} returned {len(frames)} frames for "
                                   f"{len(batch.frames)}; a stage must return one frame per input frame")
        worker.name = "process"
        return batch.with_frames(frames)

    def _encode(self, worker: Worker, inp: queue.Queue, progress: Progress) -> None:
        writer = self._writer
        while True:
            item = self._control.get(inp)
            if item is END:
                return
            entries, arrivals = item
            begin = time.perf_counter()
            k = 0
            for entry in entries:
                if isinstance(entry, av.VideoFrame):
                    worker.index = writer.frames_written
                    writer.write_frame(entry)
                    arrival = arrivals[k] if k < len(arrivals) else None
                    self.metrics.frame_written(time.monotonic() - arrival if arrival is not None else None)
                    k += 1
                    progress.update(1)
                else:
                    writer.write_packet(entry)
            worker.timed("encode", begin)

    def _wait(self, workers: list[Worker], progress: Progress) -> bool:
        """Join every thread; Ctrl-C here drains, a second one stops. True if interrupted.
        The waiting thread also keeps the progress lines on time: frames alone would
        report only when one is written, which at 720p on a CPU is ~20 s apart."""
        tick = getattr(progress, "tick", lambda: None)  # an embedder's reporter may not have one
        while True:
            try:
                for worker in workers:
                    while worker.thread.is_alive():
                        worker.thread.join(POLL_S)
                        tick()
                return self._control.drain.is_set()
            except KeyboardInterrupt:
                if self._control.drain.is_set():
                    self._control.stop.set()
                self._control.drain.set()

    # --- the end ----------------------------------------------------------------

    def _conclude(self, reader: MediaReader, workers: list[Worker], stages: list[Any], interrupted: bool,
                  seconds: float) -> RunResult:
        failure, writer = self._control.failure, self._writer
        if failure is None and interrupted and writer is not None and writer.frames_written == 0:
            self._abort()  # nothing to keep: no file under the target's name
            writer = None
        if failure is None and writer is not None:
            try:
                start = time.perf_counter()
                writer.finish()
                workers[-1].timed("encode", start)
            except Exception as exc:  # noqa: BLE001 - becomes a PipelineError below
                failure = Failure("encode", writer.frames_written, exc)
        if failure is not None:
            raise pipeline_error(failure, self._abort()) from failure.error
        for line in end_warnings(reader, writer, live=self.live):
            self._emit(line)
        result = RunResult(input=self.metrics.source, output=self.metrics.target, frames_in=self.metrics.frames_in,
                           frames_out=writer.frames_written if writer else 0, seconds=seconds,
                           interrupted=interrupted, live=self.live, input_ended=reader.end_reason,
                           reconnects=reader.reconnects, latency_s=self.metrics.latency(),
                           output_video=self.output_plan.to_dict() if self.output_plan else None,
                           **input_counts(reader, writer))
        result.stage_seconds = busy_seconds(workers)
        result.stage_stats = stage_stats(stages)
        if interrupted:
            raise PipelineInterrupted(result)
        return result

    def _abort(self) -> Path | None:
        """Close the output under its partial name; returns that name, or None when
        no frame had been written (an empty file helps nobody, so it is removed)."""
        if self._writer is None:
            return None
        try:
            partial = self._writer.abort()
        except Exception:  # noqa: BLE001 - the original failure matters more
            return None
        if partial is None:  # a stream: nothing to keep or remove
            return None
        if self._writer.frames_written == 0:
            partial.unlink(missing_ok=True)
            return None
        return partial


def run(source: Any, target: Any, config: RunConfig | None = None, *,
        quiet: bool = False, **overrides: Any) -> RunResult:
    """Restore `source` into `target`, as `streamfix run` does; returns the RunResult.

    `source`/`target`: files, `-`, `pipe:N`, URLs, binary file-like objects, or (as
    source) an open PyAV input container (see Pipeline). `overrides` are RunConfig
    fields applied over `config`: model=..., batch=..., and sections as dicts, e.g.
    output={"format": "mpegts"}, live={"max_latency_ms": 500}, input={"timeout_s": 5}."""
    from streamfix.pipeline.run_config import with_overrides

    config = with_overrides(config or RunConfig(), **overrides)
    return Pipeline(source, target, config, quiet=quiet).run()
