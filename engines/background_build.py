"""Build engines in the background so that a live stream never stalls on a build.

A first TensorRT build takes minutes. `BackgroundBuilds` runs each requested build
(one per key, e.g. one per stream resolution) in a thread of its own and tells the
caller, without blocking, whether it is still running, done or failed; meanwhile the
caller serves frames with its standby engine (tensorrt_engine.py uses PyTorch on the
same GPU). A failed build is reported once and never retried in this process: the
stream stays on the standby engine.
"""

from __future__ import annotations

import threading
from typing import Callable, Generic, Hashable, Literal, TypeVar

K = TypeVar("K", bound=Hashable)
State = Literal["building", "ready", "failed"]


class BackgroundBuilds(Generic[K]):
    """`prepare(key)` run once per key in a worker thread."""

    def __init__(self, prepare: Callable[[K], object], *, log: Callable[[str], None] = print,
                 describe: Callable[[K], str] = str) -> None:
        self._prepare = prepare
        self._log = log
        self._describe = describe
        self._lock = threading.Lock()
        self._threads: dict[K, threading.Thread] = {}
        self._state: dict[K, State] = {}
        self._errors: dict[K, BaseException] = {}

    def request(self, key: K) -> State:
        """Start building `key` unless it was already requested; its state now."""
        with self._lock:
            if key in self._state:
                return self._state[key]
            self._state[key] = "building"
            thread = threading.Thread(target=self._run, args=(key,), daemon=True,
                                      name=f"trt-build-{self._describe(key)}")
            self._threads[key] = thread
        thread.start()
        return "building"

    def _run(self, key: K) -> None:
        try:
            self._prepare(key)
        except BaseException as exc:  # reported to the caller through state()/error()
            with self._lock:
                self._state[key] = "failed"
                self._errors[key] = exc
            self._log(f"background build for {self._describe(key)} failed: {exc}")
            return
        with self._lock:
            self._state[key] = "ready"

    def state(self, key: K) -> State | None:
        with self._lock:
            return self._state.get(key)

    def error(self, key: K) -> BaseException | None:
        with self._lock:
            return self._errors.get(key)

    @property
    def pending(self) -> bool:
        with self._lock:
            return any(state == "building" for state in self._state.values())

    def join(self) -> None:
        """Wait for every build thread (after asking them to stop, if they can)."""
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join()
