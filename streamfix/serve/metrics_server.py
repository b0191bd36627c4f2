"""A Prometheus endpoint for running streams, on localhost unless told otherwise.

    server = MetricsServer(9108, [pipeline.metrics])      # http://127.0.0.1:9108/metrics
    ...
    server.close()

Media servers scrape it to see each stream's frames, how many were restored or passed
through, queue depths, stage times and latency. It binds to 127.0.0.1 by default: the
numbers name inputs and outputs, which are nobody else's business. A media server
whose scraper reaches it over another interface (a container's network, a private
LAN) passes `address` (the CLI's --metrics-address).

prometheus_client writes the exposition format and serves it. The metrics live in a
registry of the server's own, not prometheus_client's global one, so an embedder's
own metrics and several servers in one process never collide. Nothing is stored
between scrapes: each scrape reads `snapshot()` of every registered StreamMetrics
(safe from any thread), so streams can be added and removed while it runs.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from streamfix.core.errors import OptionError

HOST = "127.0.0.1"

# snapshot key -> help text; each is exposed as the counter streamfix_<key>_total
COUNTERS = (
    ("frames_in", "frames decoded from the input"),
    ("frames_out", "frames written to the output"),
    ("restored", "frames restored by the model"),
    ("restored_light", "of those, frames restored by the light model (live mode, for lack of time)"),
    ("passed_through", "frames written unrestored (clean, unknown strength, or late)"),
    ("late", "frames passed through because restoring them would have missed the latency budget"),
)


def _family(kind: type[Metric], name: str, text: str, labels: list[str],
            samples: Iterable[tuple[list[Any], Any]]) -> Metric:
    family = kind(f"streamfix_{name}", text, labels=labels)
    for values, value in samples:
        family.add_metric([str(v) for v in values], float(value))
    return family


class StreamsCollector:
    """The metrics of every stream `snapshots()` returns, read afresh at each scrape."""

    def __init__(self, snapshots: Callable[[], list[dict[str, Any]]]) -> None:
        self._snapshots = snapshots

    def collect(self) -> Iterator[Metric]:
        snaps = self._snapshots()
        for key, text in COUNTERS:
            yield _family(CounterMetricFamily, f"{key}_total", text, ["stream"],
                          (([s["stream"]], s[key]) for s in snaps))
        yield _family(GaugeMetricFamily, "queue_depth", "items waiting in each queue between the pipeline's threads",
                      ["stream", "queue"],
                      (([s["stream"], q], n) for s in snaps for q, n in s["queue_depth"].items()))
        yield _family(CounterMetricFamily, "stage_seconds_total", "seconds each stage was busy", ["stream", "stage"],
                      (([s["stream"], st], sec) for s in snaps for st, sec in s["stage_seconds"].items()))
        yield _family(GaugeMetricFamily, "latency_seconds", "time from decoder to encoder per frame (last, mean, max)",
                      ["stream", "stat"], (([s["stream"], k], v) for s in snaps for k, v in s["latency_s"].items()))
        yield _family(GaugeMetricFamily, "running", "1 while the stream is being restored", ["stream"],
                      (([s["stream"]], int(s["running"])) for s in snaps))
        yield _family(GaugeMetricFamily, "live", "1 when the stream runs in live mode", ["stream"],
                      (([s["stream"]], int(s["live"])) for s in snaps))
        yield _family(GaugeMetricFamily, "engine_info", "the model and engine restoring the stream",
                      ["stream", "engine", "device", "model"],
                      (([s["stream"], s["engine"] or "", s["device"] or "", s["model"] or ""], 1) for s in snaps))


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scrape every few seconds is not news


class _Server(ThreadingWSGIServer):
    def __init__(self, address: tuple[str, int], family: socket.AddressFamily) -> None:
        self.address_family = family  # IPv6 addresses need an IPv6 socket
        super().__init__(address, _QuietHandler)


class MetricsServer:
    """Serves /metrics for `sources` (StreamMetrics) on `address`:`port` until `close()`.

    Port 0 picks a free port (see `port`). Thread-safe: `add`/`remove` from any thread.
    """

    def __init__(self, port: int, sources: Iterable[Any] = (), *, address: str = HOST) -> None:
        self._sources = list(sources)
        self._lock = threading.Lock()
        self.address = address
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(StreamsCollector(self.snapshots))
        try:
            family, _, _, _, bound = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM,
                                                        flags=socket.AI_PASSIVE)[0]
            self._server = _Server((bound[0], port), family)
        except OSError as exc:
            raise OptionError(f"metrics: cannot listen on {address} port {port} ({exc.strerror or exc}); "
                              f"choose a free --metrics-port, or an address of this machine for "
                              f"--metrics-address") from None
        self._server.set_app(make_wsgi_app(self.registry))
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="streamfix-metrics", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}/metrics"

    def add(self, metrics: Any) -> None:
        with self._lock:
            self._sources.append(metrics)

    def remove(self, metrics: Any) -> None:
        with self._lock:
            self._sources = [m for m in self._sources if m is not metrics]

    def snapshots(self) -> list[dict[str, Any]]:
        with self._lock:
            sources = list(self._sources)
        return [m.snapshot() for m in sources]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> "MetricsServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
