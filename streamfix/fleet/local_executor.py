"""Tasks on worker processes of this machine: `--executor local`, no Ray needed.

Why processes and not threads: inference releases the GIL, but the rest of a
piece's pipeline (batching, frame conversion) does not; and a worker that dies
(out of memory, a crashed driver) must not take the run with it. Why our own small
pool and not concurrent.futures: a ProcessPoolExecutor whose worker dies breaks
as a whole, and it cannot stop a task that runs; here each worker has its own inbox,
so the driver knows which task a dead worker held, retries just that one on a fresh
worker, and can kill every worker at once on an error or Ctrl-C.

Workers are started with "spawn" (a fresh interpreter: forking a process that holds
torch threads or a CUDA context is unsafe) and ignore SIGINT: the driver stops them.
Each keeps its engine across tasks (segments/piece_worker.py).
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from streamfix.segments.piece_worker import PieceWorker, TaskCrash, TaskError

POLL_S = 0.2
CHECK_S = 1.0  # how often the driver looks for workers that died
PROGRESS_EVERY_S = 0.5


def _die_with_parent() -> None:
    """A driver killed by SIGKILL cannot stop its workers: on Linux the kernel does
    (PR_SET_PDEATHSIG), elsewhere the worker notices at its next frame or poll. A
    worker left running would go on writing into a work folder a new run now owns."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _orphaned(parent: int) -> bool:
    return os.getppid() != parent


def _worker_main(inbox: Any, outbox: Any, device: str | None, cpu_cores: int | None, parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    worker = PieceWorker(device=device, cpu_cores=cpu_cores, log=lambda line: outbox.put(("log", None, line)))
    try:
        while True:
            try:
                item = inbox.get(timeout=1.0)
            except queue.Empty:
                if _orphaned(parent):
                    return
                continue
            if item is None:
                return
            number, task = item
            pending, last = [0], [time.monotonic()]

            def report(frames: int) -> None:
                if _orphaned(parent):
                    os._exit(1)
                pending[0] += frames
                if time.monotonic() - last[0] >= PROGRESS_EVERY_S:
                    outbox.put(("progress", number, pending[0]))
                    pending[0], last[0] = 0, time.monotonic()

            try:
                record = worker.run(task, report)
            except (TaskError, TaskCrash) as exc:
                outbox.put(("progress", number, pending[0]))
                outbox.put(("failed", number, exc))
            else:
                outbox.put(("progress", number, pending[0]))
                outbox.put(("done", number, record))
    finally:
        worker.close()


class _Slot:
    """One worker process and the task it holds."""

    def __init__(self, context: Any, outbox: Any, device: str | None, cpu_cores: int | None) -> None:
        self.inbox = context.Queue()
        self.process = context.Process(target=_worker_main,
                                       args=(self.inbox, outbox, device, cpu_cores, os.getpid()),
                                       name="streamfix-worker", daemon=True)
        self.process.start()
        self.task: int | None = None
        self.device, self.cpu_cores = device, cpu_cores


class LocalExecutor:
    """`workers` processes; `devices[i]` is worker i's device (None: the config's).
    A task whose worker crashed or died is tried again up to `retries` times."""

    def __init__(self, workers: int, *, retries: int = 2, devices: Sequence[str | None] = (),
                 cpu_cores: int | None = None, log: Callable[[str], None] = print) -> None:
        self.workers, self.retries, self.cpu_cores, self._log = workers, retries, cpu_cores, log
        self.devices = [devices[i % len(devices)] if devices else None for i in range(workers)]
        self._seen_logs: set[str] = set()

    def run(self, tasks: Sequence[Any], *, done: Callable[[Any, Any], None],
            progress: Callable[[int], None] = lambda frames: None) -> None:
        context = multiprocessing.get_context("spawn")
        self._tasks, self._done, self._progress = tasks, done, progress
        self._outbox = outbox = context.Queue()
        self._waiting = deque(range(len(tasks)))
        self._attempts = [0] * len(tasks)
        self._reported = [0] * len(tasks)  # frames counted for each task's current attempt
        self._ended = [False] * len(tasks)
        slots = [_Slot(context, outbox, device, self.cpu_cores) for device in self.devices[:len(tasks)]]
        checked = time.monotonic()
        try:
            while not all(self._ended):
                for slot in slots:
                    if slot.task is None and self._waiting:
                        slot.task = self._waiting.popleft()
                        slot.inbox.put((slot.task, tasks[slot.task]))
                # Busy workers keep the outbox full of progress: look for dead ones
                # on the clock, not only when it runs dry.
                if time.monotonic() - checked >= CHECK_S:
                    self._replace_dead(slots, context)
                    checked = time.monotonic()
                try:
                    kind, number, payload = outbox.get(timeout=POLL_S)
                except queue.Empty:
                    continue
                if kind == "log":
                    self._log_once(payload)
                elif kind == "progress":
                    self._reported[number] += payload
                    progress(payload)
                else:
                    for slot in slots:
                        if slot.task == number:
                            slot.task = None
                    self._ended_with(number, payload)
        finally:
            self._stop(slots)

    def _ended_with(self, number: int, outcome: Any) -> None:
        """A task's attempt ended: retry it if it crashed and has attempts left (a user
        error never), else hand its outcome over."""
        if self._ended[number]:
            return
        if isinstance(outcome, TaskCrash) and self._attempts[number] < self.retries:
            self._attempts[number] += 1
            self._progress(-self._reported[number])
            self._reported[number] = 0
            first_line = str(outcome).splitlines()[0]
            self._log(f"streamfix: {first_line}; trying again ({self._attempts[number]} of {self.retries})")
            self._waiting.append(number)
            return
        if number in self._waiting:
            self._waiting.remove(number)
        self._ended[number] = True
        self._done(self._tasks[number], outcome)

    def _replace_dead(self, slots: list[_Slot], context: Any) -> None:
        """Start a fresh worker for each one that died; the task it held failed."""
        for i, slot in enumerate(slots):
            if slot.process.is_alive():
                continue
            slots[i] = _Slot(context, self._outbox, slot.device, slot.cpu_cores)
            if slot.task is not None:
                self._ended_with(slot.task, TaskCrash(
                    f"{self._tasks[slot.task].describe()}: the worker process died (exit code "
                    f"{slot.process.exitcode}; out of memory?)"))

    def _log_once(self, line: str) -> None:
        if line not in self._seen_logs:
            self._seen_logs.add(line)
            self._log(line)

    @staticmethod
    def _stop(slots: list[_Slot]) -> None:
        """Idle workers leave on their own; busy ones (an error or Ctrl-C elsewhere) are killed."""
        for slot in slots:
            if slot.task is None and slot.process.is_alive():
                slot.inbox.put(None)
            else:
                slot.process.kill()
        for slot in slots:
            slot.process.join(timeout=10)
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join()
