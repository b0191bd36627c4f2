"""A Prometheus text endpoint for running streams, on localhost only.

    server = MetricsServer(9108, [pipeline.metrics])      # http://127.0.0.1:9108/metrics
    ...
    server.close()

Media servers scrape it to see each stream's frames, how many were restored or passed
through, queue depths, stage times and latency. It binds to 127.0.0.1 on purpose:
the numbers name inputs and outputs, which are nobody else's business; expose them
further through the server's own reverse proxy if needed.

The standard library's ThreadingHTTPServer runs on one daemon thread; each scrape
reads `snapshot()` of every registered StreamMetrics (safe from any thread). Streams
can be added and removed while it runs (`add`, `remove`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from streamfix.core.errors import OptionError

HOST = "127.0.0.1"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# name, type, help, how to read it from a snapshot
COUNTERS = (
    ("frames_in", "frames decoded from the input"),
    ("frames_out", "frames written to the output"),
    ("restored", "frames restored by the model"),
    ("passed_through", "frames written unrestored (clean, unknown strength, or late)"),
    ("late", "frames passed through because restoring them would have missed the latency budget"),
)


def _escape(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: Any) -> str:
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items()) + "}"


def render(snapshots: Iterable[dict[str, Any]]) -> str:
    """Prometheus text exposition format for StreamMetrics snapshots."""
    snapshots = list(snapshots)
    lines: list[str] = []

    def family(name: str, kind: str, text: str, samples: list[tuple[str, Any]]) -> None:
        lines.append(f"# HELP streamfix_{name} {text}")
        lines.append(f"# TYPE streamfix_{name} {kind}")
        lines.extend(f"streamfix_{name}{labels} {float(value):g}" for labels, value in samples)

    for key, text in COUNTERS:
        family(f"{key}_total", "counter", text, [(_labels(stream=s["stream"]), s[key]) for s in snapshots])
    family("queue_depth", "gauge", "items waiting in each queue between the pipeline's threads",
           [(_labels(stream=s["stream"], queue=q), n) for s in snapshots for q, n in s["queue_depth"].items()])
    family("stage_seconds_total", "counter", "seconds each stage was busy",
           [(_labels(stream=s["stream"], stage=st), sec) for s in snapshots for st, sec in s["stage_seconds"].items()])
    family("latency_seconds", "gauge", "time from decoder to encoder per frame (last, mean, max)",
           [(_labels(stream=s["stream"], stat=k), v) for s in snapshots for k, v in s["latency_s"].items()])
    family("running", "gauge", "1 while the stream is being restored",
           [(_labels(stream=s["stream"]), int(s["running"])) for s in snapshots])
    family("live", "gauge", "1 when the stream runs in live mode",
           [(_labels(stream=s["stream"]), int(s["live"])) for s in snapshots])
    family("engine_info", "gauge", "the model and engine restoring the stream",
           [(_labels(stream=s["stream"], engine=s["engine"] or "", device=s["device"] or "",
                     model=s["model"] or ""), 1) for s in snapshots])
    return "\n".join(lines) + "\n"


class MetricsServer:
    """Serves /metrics for `sources` (StreamMetrics) on 127.0.0.1:`port` until `close()`.

    Port 0 picks a free port (see `port`). Thread-safe: `add`/`remove` from any thread.
    """

    def __init__(self, port: int, sources: Iterable[Any] = ()) -> None:
        self._sources = list(sources)
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
                if self.path.split("?")[0] not in ("/metrics", "/"):
                    self.send_error(404, "only /metrics is served here")
                    return
                body = render(owner.snapshots()).encode()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # a scrape every few seconds is not news

        try:
            self._server = ThreadingHTTPServer((HOST, port), Handler)
        except OSError as exc:
            raise OptionError(f"--metrics-port {port}: cannot listen on {HOST}:{port} ({exc.strerror}); "
                              f"choose a free port") from None
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="streamfix-metrics", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/metrics"

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
