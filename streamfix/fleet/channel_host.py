"""Live channels kept running: each one a Pipeline on a thread, restarted when it ends.

A ChannelHost runs some channels (`streamfix serve` on this machine runs all of them
in one host; on Ray, each actor is a host for its share of them). `set_channels`
makes the running set match what it is given: new channels start, removed ones
stop, a channel whose settings changed restarts; the others are not touched.

Why a live channel is restarted whatever ended it: a stream that stops sending, a
sender that restarts, a network hiccup that outlasts the input timeout, a crash in
a stage: for a service, all of these mean "wait a little and listen again". The
wait doubles with each restart in a row (backoff, so a channel whose source is gone
does not spin), and starts over once a run lasted long enough to count as healthy.

Channels with the same engine settings share one engine (streamfix.SharedEngine)
when `share_engine` is on: on a GPU, one engine fed by several streams does more
frames per second than several engines taking turns (benchmarks/multistream.md).

Thread-safety: `set_channels`, `snapshots` and `close` from any one thread at a time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from streamfix.fleet.channels_config import Channel, RestartPolicy

MAX_SHARED_BATCH = 16


def idle_snapshot(channel: Channel) -> dict[str, Any]:
    """The metrics of a channel that is not running (yet, or any more)."""
    return {"stream": channel.name, "input": channel.input, "output": channel.output, "running": False,
            "live": True, "frames_in": 0, "frames_out": 0, "restored": 0, "passed_through": 0, "late": 0,
            "queue_depth": {}, "stage_seconds": {}, "latency_s": {"last": 0.0, "mean": 0.0, "max": 0.0},
            "engine": None, "device": None, "model": None, "restarts": 0, "last_error": None}


class _Running:
    """One channel's supervisor thread and its current pipeline."""

    def __init__(self, channel: Channel, host: "ChannelHost") -> None:
        self.channel, self._host = channel, host
        self.stop = threading.Event()
        self.pipeline: Any = None
        self.restarts = 0
        self.last_error: str | None = None
        self.thread = threading.Thread(target=self._supervise, name=f"streamfix-channel-{channel.name}", daemon=True)
        self.thread.start()

    def _supervise(self) -> None:
        from streamfix.pipeline.pipeline import Pipeline

        channel, policy = self.channel, self._host.restart
        failures = 0
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                engine = self._host.engine_for(channel.config)
                self.pipeline = Pipeline(channel.input, channel.output, channel.config, engine=engine, quiet=True,
                                         log=lambda m: self._host.log(f"streamfix: {channel.name}: {m}"),
                                         name=channel.name)
                if self.stop.is_set():
                    return
                self.pipeline.run()
                why = "its input ended"
            except KeyboardInterrupt:  # PipelineInterrupted: stopped, or interrupted from outside
                why = "it was interrupted"
            except Exception as exc:  # noqa: BLE001 - a channel's failure must not end the service
                why = f"it failed: {str(exc).splitlines()[0]}"
                self.last_error = why
            if self.stop.is_set():
                return
            failures = 1 if time.monotonic() - started >= policy.healthy_after_s else failures + 1
            wait = policy.wait_s(failures)
            self.restarts += 1
            self._host.log(f"streamfix: channel {channel.name}: {why}; restarting in {wait:g} s")
            self.stop.wait(wait)

    def snapshot(self) -> dict[str, Any]:
        pipeline = self.pipeline
        snapshot = pipeline.metrics.snapshot() if pipeline is not None else idle_snapshot(self.channel)
        return {**snapshot, "restarts": self.restarts, "last_error": self.last_error}

    def end(self) -> None:
        self.stop.set()
        if self.pipeline is not None:
            self.pipeline.interrupt()


class ChannelHost:
    """Runs channels on threads of this process; see the module docstring."""

    def __init__(self, *, share_engine: bool = True, restart: RestartPolicy | None = None,
                 log: Callable[[str], None] = print) -> None:
        self.share_engine, self.restart, self.log = share_engine, restart or RestartPolicy(), log
        self._running: dict[str, _Running] = {}
        self._engines: dict[tuple, Any] = {}
        self._lock = threading.Lock()  # the running set
        self._engine_lock = threading.Lock()  # supervisor threads load engines

    def set_channels(self, channels: dict[str, Channel], stop_timeout_s: float = 30.0) -> None:
        """Start, stop and restart channels so that exactly `channels` run. A channel
        that goes (or changes) is stopped first: its successor may need its port."""
        with self._lock:
            ending = [self._running.pop(n) for n, r in list(self._running.items()) if channels.get(n) != r.channel]
        for running in ending:
            running.end()
        for running in ending:
            running.thread.join(stop_timeout_s)
        with self._lock:
            for name, channel in channels.items():
                if name not in self._running:
                    self._running[name] = _Running(channel, self)

    def snapshots(self) -> list[dict[str, Any]]:
        with self._lock:
            running = list(self._running.values())
        return [r.snapshot() for r in running]

    def engine_for(self, config: Any) -> Any:
        """The shared engine for `config`'s engine settings (None: each channel its own)."""
        if not self.share_engine:
            return None
        import streamfix
        from streamfix.pipeline.run_config import engine_configs
        from streamfix.restore.restorer import VIDEO_MODEL

        model = str(config.model) if config.model is not None else VIDEO_MODEL
        key = (model, config.engine, config.device, config.tile, config.memory_budget_mb, repr(sorted(config.engines.items())))
        with self._engine_lock:
            if key not in self._engines:
                shared = streamfix.SharedEngine.load(model, engine=config.engine, device=config.device,
                                                     max_batch=min(MAX_SHARED_BATCH, 4 * config.batch),
                                                     tile=config.tile, memory_mb=config.memory_budget_mb,
                                                     engine_configs=engine_configs(config),
                                                     log=self.log)
                self._engines[key] = shared.__enter__()
            return self._engines[key]

    def close(self, timeout_s: float = 30.0) -> None:
        with self._lock:
            running, self._running = list(self._running.values()), {}
        for channel in running:
            channel.end()
        for channel in running:
            channel.thread.join(timeout_s)
        engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            engine.__exit__(None, None, None)
