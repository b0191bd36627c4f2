"""One engine shared by several streams in one process.

A media server restoring many streams should not load the model once per stream: a
GPU holds one engine best, and batching frames from different streams into one
engine call raises throughput (a GPU is far more efficient on 8 frames than on 1).
`SharedEngine` is an engine (the same `infer` protocol) that any number of threads
call at once; each stream's Restorer (one per stream, in that stream's own pipeline
thread) uses it as if it were its own. Running whole pipelines on it is
streamfix.serve.streams.run_streams.

How requests are scheduled, and why:
- Every `infer` call is a request from one caller (its thread). One scheduler thread
  owns the real engine; it serves requests in rounds, taking at most one request per
  caller per round, in a rotating order, so no stream can starve another however
  many frames it sends (round-robin fairness).
- Requests with the same plane size (one N x C x H x W array needs one size) are
  merged into one engine call of up to `max_batch` planes; a request of another size
  waits for a later call, but keeps its place in its caller's turn.
- Streams run in step with the engine, so their requests rarely arrive at the same
  instant (each prepares its next frame while another's call runs): before a call,
  the scheduler waits for the other recently active streams, at most half the last
  call's duration and never more than `gather_ms`. That wait is what lets their
  frames share a call, and it costs each frame a fraction of one call at most.
- A caller blocks until its own request is done, so each stream's frames come back in
  the order it sent them; streams are independent of each other's order. An engine
  error reaches every caller whose request was in that call; a failure of the
  scheduler itself, or closing the engine, reaches every caller still waiting.

Thread-safety: `SharedEngine.infer` from any number of threads; `stats()` from any.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from streamfix.core.threads import POLL_S, Control, Stopped, Worker
from streamfix.engines.base import Engine
from streamfix.engines.wrapper import EngineWrapper


class _Request:
    __slots__ = ("batch", "result", "error", "done")

    def __init__(self, batch: np.ndarray) -> None:
        self.batch = batch
        self.result: np.ndarray | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()


class SharedEngine(EngineWrapper):
    """One model and engine for many streams; see the module docstring.

    `SharedEngine.load(model, engine=..., device=..., max_batch=...)` loads a model
    and picks its engine like the Restorer; `max_batch` is the most planes in one
    engine call, across streams. Use as a context manager; give it to each stream's
    Restorer (`Restorer(engine=shared)`) or Pipeline (`Pipeline(..., engine=shared)`).
    """

    def __init__(self, engine: Engine, info: Any, *, max_batch: int = 8, gather_ms: float = 50.0,
                 fallbacks: Sequence[Any] = ()) -> None:
        """Share a not-yet-entered `engine` running the model described by `info`."""
        super().__init__(engine)
        self.info = info
        self.gather_s = gather_ms / 1000.0
        self._last_seen: dict[int, float] = {}  # caller -> when it last sent a request
        self._last_call_s = 0.0
        self.fallbacks = list(fallbacks)
        self.max_batch = max_batch
        self._queues: OrderedDict[int, deque[_Request]] = OrderedDict()
        self._cond = threading.Condition()
        self._control = Control()  # `stop`: closed, or the scheduler failed
        self._scheduler: Worker | None = None
        self.calls = 0
        self.planes = 0

    @classmethod
    def load(cls, model: str | Path = "video-x264-qp", *, engine: str = "auto", device: str = "auto",
             max_batch: int = 8, tile: int = 0, engine_configs: Mapping[str, Any] | None = None,
             memory_mb: int | None = None, gather_ms: float = 50.0, log: Callable[[str], None] = print) -> "SharedEngine":
        """Load `model` and choose its engine as the Restorer would."""
        from streamfix.core.weights import load_model
        from streamfix.engines.select import choose

        network, info = load_model(model)
        chosen, fallbacks = choose(network, info, engine=engine, device=device, max_batch=max_batch, tile=tile,
                                   log=log, configs=dict(engine_configs or {}), memory_mb=memory_mb)
        return cls(chosen, info, max_batch=max_batch, gather_ms=gather_ms, fallbacks=fallbacks)

    # --- lifetime -----------------------------------------------------------------

    def __enter__(self) -> "SharedEngine":
        super().__enter__()
        self._scheduler = Worker("shared-engine", self._serve, self._control).start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._control.stop.set()
            self._cond.notify_all()
        if self._scheduler is not None:
            self._scheduler.thread.join()
        super().__exit__(*exc)

    # --- callers --------------------------------------------------------------------

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Restore `batch` (N x (C+cond) x H x W), sharing engine calls with other streams."""
        request = _Request(batch)
        caller = threading.get_ident()
        with self._cond:
            if self._scheduler is None or self._control.stop.is_set():
                raise RuntimeError("the shared engine is not running; use it inside `with SharedEngine(...)`")
            self._queues.setdefault(caller, deque()).append(request)
            self._last_seen[caller] = time.monotonic()
            self._cond.notify_all()
        try:
            self._control.wait(request.done.wait)
        except Stopped:
            if self._control.failure is None:
                raise RuntimeError("the shared engine was closed") from None
            raise self._control.failure.caller_error()
        if request.error is not None:
            raise request.error
        return request.result  # type: ignore[return-value]

    def stats(self) -> dict[str, Any]:
        return {"engine": self.name, "device": self.device, "model": self.info.name, "calls": self.calls,
                "planes": self.planes, "mean_batch": self.planes / self.calls if self.calls else 0.0}

    # --- the scheduler ------------------------------------------------------------------

    def _serve(self, worker: Worker) -> None:
        stop = self._control.stop
        while True:
            with self._cond:
                while not stop.is_set() and not any(self._queues.values()):
                    self._cond.wait(POLL_S)
                if stop.is_set():
                    self._fail_waiting(RuntimeError("the shared engine was closed"))
                    return
                self._gather()
                chosen = self._next_requests()
            self._run(chosen)

    def _gather(self) -> None:
        """Wait (lock released while waiting) until every stream active lately has a
        request in, or the gathering time is up."""
        now = time.monotonic()
        recently = max(1.0, 3 * self._last_call_s)
        active = {c for c, seen in self._last_seen.items() if now - seen < recently}
        give_up = now + min(self.gather_s, 0.5 * self._last_call_s)
        while not self._control.stop.is_set() and len(active - {c for c, q in self._queues.items() if q}) > 0:
            left = give_up - time.monotonic()
            if left <= 0:
                return
            self._cond.wait(left)

    def _next_requests(self) -> list[_Request]:
        """Round-robin over callers: one request each per round, same plane size,
        up to max_batch planes. Called with the lock held."""
        chosen: list[_Request] = []
        shape: tuple[int, ...] | None = None
        planes = 0
        while True:
            taken = False
            for caller in list(self._queues):
                waiting = self._queues[caller]
                if not waiting:
                    continue
                request = waiting[0]
                size = len(request.batch)
                if shape is None:
                    shape = request.batch.shape[1:]
                elif request.batch.shape[1:] != shape or planes + size > self.max_batch:
                    continue
                chosen.append(waiting.popleft())
                planes += size
                taken = True
                # This caller had its turn: it goes to the back of the order.
                self._queues.move_to_end(caller)
                if not waiting:
                    del self._queues[caller]
            if not taken or planes >= self.max_batch:
                return chosen

    def _run(self, requests: list[_Request]) -> None:
        try:
            batch = requests[0].batch if len(requests) == 1 else np.concatenate([r.batch for r in requests])
            start = time.perf_counter()
            outputs = self.inner.infer(batch)
            self._last_call_s = time.perf_counter() - start
        except BaseException as exc:  # noqa: BLE001 - every waiting caller gets it
            for request in requests:
                request.error = exc
                request.done.set()
            return
        self.calls += 1
        self.planes += len(batch)
        start = 0
        for request in requests:
            request.result = outputs[start : start + len(request.batch)]
            start += len(request.batch)
            request.done.set()

    def _fail_waiting(self, error: BaseException) -> None:
        for waiting in self._queues.values():
            for request in waiting:
                request.error = error
                request.done.set()
        self._queues.clear()
