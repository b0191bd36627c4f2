"""`streamfix serve CHANNELS.yaml`: live channels kept running, the file watched for changes.

    streamfix serve channels.yaml                    # threads of this process
    streamfix serve channels.yaml --executor ray     # Ray actors, placed where there is room

Every second the driver
- reads CHANNELS.yaml again if it changed: added channels start, removed ones stop,
  changed ones restart, the others go on untouched (a file that does not load is
  reported once and the channels keep running as they were);
- gathers every channel's metrics for the one Prometheus endpoint (`metrics_port`,
  http://127.0.0.1:PORT/metrics, streamfix.MetricsServer): each channel is one
  `stream` label, as it would be for a single run.
Ctrl-C or SIGTERM stops every channel, finishing its output cleanly.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streamfix.core.errors import StreamfixError
from streamfix.fleet.channel_host import ChannelHost, idle_snapshot
from streamfix.fleet.channels_config import Channel, ServeConfig, load_channels, same_settings

TICK_S = 1.0


class _ChannelMetrics:
    """One channel as the metrics endpoint sees it: its latest snapshot."""

    def __init__(self, channel: Channel) -> None:
        self.latest = idle_snapshot(channel)

    def snapshot(self) -> dict[str, Any]:
        return self.latest


class Server:
    """See the module docstring. `run()` until `stop` is set (or Ctrl-C)."""

    def __init__(self, path: str | Path, *, base_config: Any = None, executor: str = "local",
                 log: Callable[[str], None] = print) -> None:
        self.path, self.base, self.executor, self._log = Path(path), base_config, executor, log
        self.settings, self.config, self.channels = load_channels(self.path, base_config)  # errors here are fatal
        self._mtime = self._stamp()
        self._metrics: dict[str, _ChannelMetrics] = {}
        self._server: Any = None
        self.hosts: Any = None
        self.stop = threading.Event()

    def _stamp(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def _open_hosts(self, settings: ServeConfig) -> Any:
        if self.executor == "ray":
            from streamfix.fleet.ray_channels import RayChannels

            device, scale = self.config.device, self.config.scale
            return RayChannels(share_engine=settings.share_engine, restart=settings.restart,
                               use_gpu=device.startswith("cuda") or (device == "auto" and _cluster_has_gpus()),
                               gpus_per_worker=scale.gpus_per_worker, cpus_per_worker=scale.cpus_per_worker,
                               log=self._log)
        return ChannelHost(share_engine=settings.share_engine, restart=settings.restart, log=self._log)

    def _apply(self) -> None:
        if self.executor == "ray":
            self.hosts.apply(self.channels, self.settings.channels_per_worker)
        else:
            self.hosts.set_channels(self.channels)
        self._log(f"streamfix: serving {len(self.channels)} channels: {', '.join(sorted(self.channels)) or 'none'}")

    def _reload(self) -> None:
        """The file changed: apply its channels, unless it no longer loads."""
        try:
            settings, _, channels = load_channels(self.path, self.base)
        except (StreamfixError, OSError) as exc:
            self._log(f"streamfix: {self.path} changed but cannot be used ({exc}); the channels run on as before")
            return
        if not same_settings(settings, self.settings):
            self._log(f"streamfix: {self.path}: only channel changes take effect while serving; restart "
                      f"streamfix serve for the other settings")
        self.channels = channels
        self._apply()

    def _refresh_metrics(self) -> None:
        snapshots = {s["stream"]: s for s in self.hosts.snapshots()}
        for name in [n for n in self._metrics if n not in self.channels]:
            if self._server is not None:
                self._server.remove(self._metrics[name])
            del self._metrics[name]
        for name, channel in self.channels.items():
            if name not in self._metrics:
                self._metrics[name] = _ChannelMetrics(channel)
                if self._server is not None:
                    self._server.add(self._metrics[name])
            self._metrics[name].latest = snapshots.get(name, idle_snapshot(channel))

    def snapshots(self) -> dict[str, dict[str, Any]]:
        """Every channel's latest metrics, by name (as of the last tick)."""
        return {name: metrics.latest for name, metrics in self._metrics.items()}

    def run(self) -> None:
        import streamfix

        if self.settings.metrics_port is not None:
            self._server = streamfix.MetricsServer(self.settings.metrics_port, [])
            self._log(f"streamfix: metrics on {self._server.url}")
        self.hosts = self._open_hosts(self.settings)
        try:
            self._apply()
            while not self.stop.wait(TICK_S):
                stamp = self._stamp()
                if stamp != self._mtime and stamp is not None:
                    self._mtime = stamp
                    self._reload()
                self._refresh_metrics()
        finally:
            self.hosts.close()
            if self._server is not None:
                self._server.close()

    @property
    def metrics_url(self) -> str | None:
        return self._server.url if self._server is not None else None


def _cluster_has_gpus() -> bool:
    import ray

    return ray.cluster_resources().get("GPU", 0) > 0
