"""Live channels on Ray: actors that each host a few channels, placed by Ray where there is room.

- Each actor is a ChannelHost (channel_host.py) for up to `channels_per_worker`
  channels, which share its engine and its GPU share (`num_gpus`, fractions allowed)
  or its CPUs. A channel stays on its actor while it runs; new channels fill actors
  with room first, and an actor left without channels is let go.
- An actor that dies is restarted by Ray (`max_restarts=-1`). A restarted actor
  knows no channels: it reports a new incarnation, and the driver gives it its
  channels again at the next tick. A channel's pipeline that ends or fails inside
  a live actor is restarted by its host, with backoff.
- The driver asks every actor for its channels' metrics each tick; an actor that
  does not answer in time shows its channels as not running until it does.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from streamfix.fleet.channel_host import ChannelHost, idle_snapshot
from streamfix.fleet.channels_config import Channel, RestartPolicy
from streamfix.fleet.ray_executor import import_ray

ANSWER_S = 2.0


class ChannelHostActor:
    """What runs inside each Ray actor: a ChannelHost and the incarnation it belongs to."""

    def __init__(self, share_engine: bool, restart: RestartPolicy) -> None:
        self.incarnation = uuid.uuid4().hex
        self._host = ChannelHost(share_engine=share_engine, restart=restart, log=lambda message: None)

    def set_channels(self, channels: dict[str, Channel]) -> str:
        self._host.set_channels(channels)
        return self.incarnation

    def snapshots(self) -> tuple[str, list[dict[str, Any]]]:
        return self.incarnation, self._host.snapshots()

    def close(self) -> None:
        self._host.close()


class _Slot:
    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.channels: dict[str, Channel] = {}
        self.incarnation: str | None = None  # what the actor said when it last took its channels


class RayChannels:
    """The driver's side: which actor runs which channel; see the module docstring."""

    def __init__(self, *, share_engine: bool, restart: RestartPolicy, use_gpu: bool, gpus_per_worker: float,
                 cpus_per_worker: int, log: Callable[[str], None] = print) -> None:
        ray = import_ray()
        resources = {"num_gpus": gpus_per_worker, "num_cpus": 1} if use_gpu else {"num_cpus": cpus_per_worker}
        self._class = ray.remote(max_restarts=-1, max_concurrency=4, **resources)(ChannelHostActor)
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
        for i in sorted(changed):
            self._send(self._slots[i])
        for slot in [s for s in self._slots if not s.channels]:
            ray.kill(slot.handle)
        self._slots = [s for s in self._slots if s.channels]

    def _send(self, slot: _Slot) -> None:
        try:
            slot.incarnation = import_ray().get(slot.handle.set_channels.remote(dict(slot.channels)),
                                                timeout=60)
        except Exception as exc:  # noqa: BLE001 - a dead or busy actor: tried again next tick
            slot.incarnation = None
            self._log(f"streamfix: a channel worker did not take its channels ({str(exc).splitlines()[0]}); "
                      f"trying again")

    def snapshots(self) -> list[dict[str, Any]]:
        """Every channel's metrics; gives a restarted actor its channels again."""
        ray = import_ray()
        asked = [(slot, slot.handle.snapshots.remote()) for slot in self._slots]
        ready, _ = ray.wait([ref for _, ref in asked], num_returns=len(asked), timeout=ANSWER_S)
        found: list[dict[str, Any]] = []
        for slot, ref in asked:
            answer = None
            if ref in ready:
                try:
                    answer = ray.get(ref)
                except Exception:  # noqa: BLE001 - the actor died: Ray restarts it
                    answer = None
            if answer is not None and answer[0] == slot.incarnation:
                found += answer[1]
                continue
            if answer is not None:
                self._log(f"streamfix: a channel worker was restarted; starting its channels "
                          f"{', '.join(sorted(slot.channels))} again")
                self._send(slot)
            found += [idle_snapshot(channel) for channel in slot.channels.values()]
        return found

    def actor_of(self, name: str) -> Any:
        """The actor running channel `name` (for operators: ray.kill it to test recovery)."""
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
