"""Live channels on Ray: actors that each host a few channels, placed by Ray where there is room.

- Each actor is a ChannelHost (channel_host.py) for up to `channels_per_worker`
  channels, which share its engine and its GPU share (`num_gpus`, fractions allowed)
  or its CPUs. A channel stays on its actor while it runs; new channels fill actors
  with room first, and an actor left without channels is let go.
- An actor that dies is restarted by Ray (`max_restarts=-1`). A restarted actor
  knows no channels: the driver sees that its channels are missing and gives them
  to it again at the next tick. A channel's pipeline that ends or fails inside a
  live actor is restarted by its host, with backoff.
- The driver asks every actor for its channels' metrics each tick; an actor that
  does not answer in time shows its channels as not running until it does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streamfix.fleet.channel_host import ChannelHost, idle_snapshot
from streamfix.fleet.channels_config import Channel, RestartPolicy
from streamfix.fleet.ray_executor import import_ray

ANSWER_S = 2.0


class ChannelHostActor:
    """What runs inside each Ray actor: a ChannelHost. A restarted actor starts empty."""

    def __init__(self, share_engine: bool, restart: RestartPolicy) -> None:
        self._host = ChannelHost(share_engine=share_engine, restart=restart, log=lambda message: None)

    def set_channels(self, channels: dict[str, Channel]) -> None:
        self._host.set_channels(channels)

    def snapshots(self) -> list[dict[str, Any]]:
        return self._host.snapshots()

    def close(self) -> None:
        self._host.close()


class _Slot:
    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.channels: dict[str, Channel] = {}
        self.pending: Any = None  # the last set_channels call, until it is done


class RayChannels:
    """The driver's side: which actor runs which channel; see the module docstring."""

    def __init__(self, *, share_engine: bool, restart: RestartPolicy, use_gpu: bool, gpus_per_worker: float,
                 cpus_per_worker: int, log: Callable[[str], None] = print) -> None:
        ray = import_ray()
        resources = {"num_gpus": gpus_per_worker, "num_cpus": 1} if use_gpu else {"num_cpus": cpus_per_worker}
        self._class = ray.remote(max_restarts=-1, max_concurrency=4, **resources)(ChannelHostActor)
        total = ray.cluster_resources()
        self._room = (int(total.get("GPU", 0) / gpus_per_worker) if use_gpu
                      else int(total.get("CPU", 0) // cpus_per_worker))
        self._settings = (share_engine, restart)
        self._slots: list[_Slot] = []
        self._log = log

    def apply(self, channels: dict[str, Channel], per_worker: int) -> None:
        """Make the actors run exactly `channels`, moving as few as possible."""
        ray = import_ray()
        changed: set[int] = set()
        for i, slot in enumerate(self._slots):
            for name in [n for n, c in slot.channels.items() if channels.get(n) != c]:
                del slot.channels[name]
                changed.add(i)
        placed = {name for slot in self._slots for name in slot.channels}
        for name, channel in channels.items():
            if name in placed:
                continue
            room = next((i for i, s in enumerate(self._slots) if len(s.channels) < per_worker), None)
            if room is None:
                self._slots.append(_Slot(self._class.remote(*self._settings)))
                room = len(self._slots) - 1
            self._slots[room].channels[name] = channel
            changed.add(room)
        for slot in [s for s in self._slots if not s.channels]:
            ray.kill(slot.handle)
        kept = [s for s in self._slots if s.channels]
        if len(kept) > self._room:
            self._log(f"streamfix: {len(kept)} channel workers, but the Ray cluster has room for {self._room}: "
                      f"the others wait until there is (lower scale.cpus_per_worker or gpus_per_worker, raise "
                      f"channels_per_worker, or add nodes)")
        for i in sorted(changed):
            if self._slots[i].channels:
                self._send(self._slots[i])
        self._slots = kept

    @staticmethod
    def _send(slot: _Slot) -> None:
        """Tell an actor its channels; never waits (an actor may be starting, or waiting for room)."""
        slot.pending = slot.handle.set_channels.remote(dict(slot.channels))

    def snapshots(self) -> list[dict[str, Any]]:
        """Every channel's metrics; gives an actor that lost its channels (restarted) them again."""
        ray = import_ray()
        asked = [(slot, slot.handle.snapshots.remote()) for slot in self._slots]
        ready, _ = ray.wait([ref for _, ref in asked], num_returns=len(asked), timeout=ANSWER_S)
        found: list[dict[str, Any]] = []
        for slot, ref in asked:
            answer: list[dict[str, Any]] = []
            if ref in ready:
                try:
                    answer = ray.get(ref)
                except Exception:  # noqa: BLE001 - the actor died: Ray restarts it
                    answer = []
                running = {s["stream"] for s in answer}
                settled = slot.pending is None or bool(ray.wait([slot.pending], timeout=0)[0])
                if running != set(slot.channels) and settled:
                    if not running:
                        self._log(f"streamfix: the worker of channel {', '.join(sorted(slot.channels))} was "
                                  f"restarted; starting it again")
                    self._send(slot)
            by_name = {s["stream"]: s for s in answer}
            found += [by_name.get(name) or idle_snapshot(channel) for name, channel in slot.channels.items()]
        return found

    def actor_of(self, name: str) -> Any:
        """The actor running channel `name` (ray.kill it to see a channel worker recover)."""
        return next(slot.handle for slot in self._slots if name in slot.channels)

    def close(self) -> None:
        ray = import_ray()
        for slot in self._slots:
            try:
                ray.get(slot.handle.close.remote(), timeout=60)
            except Exception:  # noqa: BLE001 - going away anyway
                pass
            ray.kill(slot.handle)
        self._slots = []
