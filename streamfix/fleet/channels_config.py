"""CHANNELS.yaml for `streamfix serve`: which live streams to restore, and how to keep them up.

    metrics_port: 9108          # one Prometheus endpoint for every channel (127.0.0.1)
    config: configs/gpu.yaml    # run config every channel starts from (null: the defaults)
    share_engine: true          # channels on one worker share one engine
    channels_per_worker: 4      # Ray: channels one actor runs (sharing its GPU share)
    restart: {backoff_s: 1, max_backoff_s: 30, healthy_after_s: 60}
    channels:
      - name: lobby
        input: udp://0.0.0.0:5000
        output: udp://10.0.0.5:6000
        options: {input: {format: mpegts}, output: {format: mpegts}, live: {max_latency_ms: 500}}

A channel's `options` are RunConfig fields over the shared config, the way `run`'s
flags are (sections as mappings). Every channel's config is built and checked when
the file is read, so a typo is one error that names the channel, and a file changed
into a bad one is refused while the channels keep running as they were.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamfix.core.yaml_config import from_dict, load_yaml, to_dict


@dataclass(frozen=True, slots=True, kw_only=True)
class RestartPolicy:
    backoff_s: float = 1.0  # wait before the first restart of a channel that ended or failed
    max_backoff_s: float = 30.0  # each restart in a row waits twice as long, up to this
    healthy_after_s: float = 60.0  # a channel that ran this long starts over from backoff_s

    def __post_init__(self) -> None:
        for name in ("backoff_s", "max_backoff_s", "healthy_after_s"):
            if not 0 <= getattr(self, name) < math.inf:
                raise ValueError(f"restart.{name} must be 0 or more seconds, got {getattr(self, name)}")

    def wait_s(self, failures_in_a_row: int) -> float:
        return min(self.max_backoff_s, self.backoff_s * 2 ** max(0, failures_in_a_row - 1))


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelSpec:
    name: str
    input: str
    output: str
    options: dict[str, Any] = field(default_factory=dict)  # RunConfig fields over the shared config


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeConfig:
    channels: tuple[ChannelSpec, ...] = ()
    metrics_port: int | None = None
    config: str | None = None  # a run config file (YAML), relative to this file
    share_engine: bool = True
    channels_per_worker: int = 1
    restart: RestartPolicy = field(default_factory=RestartPolicy)

    def __post_init__(self) -> None:
        names = [c.name for c in self.channels]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"channel {twice[0]!r} is named twice; channel names must differ")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ValueError(f"metrics_port must be a TCP port (0-65535), got {self.metrics_port}")
        if self.channels_per_worker < 1:
            raise ValueError(f"channels_per_worker must be 1 or more, got {self.channels_per_worker}")


@dataclass(frozen=True, slots=True)
class Channel:
    """A channel ready to run: its full run config. Equal channels need no restart."""

    name: str
    input: str
    output: str
    config: Any  # RunConfig


def _merged(base: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """`options` over `base`, section by section (a section given in part keeps the rest)."""
    merged = dict(base)
    for key, value in options.items():
        merged[key] = _merged(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) \
            else value
    return merged


def load_channels(path: str | Path, base: Any = None) -> tuple[ServeConfig, Any, dict[str, Channel]]:
    """The file's settings, the run config its channels start from, and its channels by
    name, each with its config checked as strictly as a config file. `base` (a
    RunConfig) is what `config:` stands in for when the file names none."""
    from streamfix.pipeline.run_config import RunConfig, load_run_config

    path = Path(path)
    serve = from_dict(ServeConfig, load_yaml(path), str(path))
    if serve.config is not None:
        base = load_run_config(path.parent / serve.config)
    base = base or RunConfig()
    shared = to_dict(base)
    channels = {}
    for spec in serve.channels:
        config = from_dict(RunConfig, _merged(shared, spec.options), f"{path}: channel {spec.name!r}: options")
        channels[spec.name] = Channel(spec.name, spec.input, spec.output, config)
    return serve, base, channels


def same_settings(a: ServeConfig, b: ServeConfig) -> bool:
    """Whether two versions of the file differ in more than their channels."""
    return dataclasses.replace(a, channels=()) == dataclasses.replace(b, channels=())
