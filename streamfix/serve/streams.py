"""Several streams restored at once in one process, sharing one engine.

`run_streams` runs one Pipeline per (source, target) pair, each on threads of its own,
all restoring through one SharedEngine (streamfix.engines.shared), which merges their
frames into common engine calls and serves the streams round-robin. One stream failing
does not stop the others: each pair gets its RunResult or the exception that ended it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from streamfix.engines.shared import SharedEngine
from streamfix.pipeline.pipeline import Pipeline
from streamfix.pipeline.run_config import RunConfig, engine_configs
from streamfix.restore.restorer import VIDEO_MODEL
from streamfix.serve.metrics_server import HOST, MetricsServer


def run_streams(pairs: Sequence[tuple[Any, Any]], config: RunConfig | None = None, *, max_batch: int | None = None,
                metrics_port: int | None = None, metrics_address: str = HOST,
                log: Callable[[str], None] = print) -> list[Any]:
    """Restore every (source, target) pair at once, one pipeline thread set per
    stream, all sharing one engine. Returns, per pair in order, its RunResult or the
    exception that ended it (one stream failing does not stop the others).

    `config` is one RunConfig for all (its model, engine, device, batch, ...);
    `max_batch` (default: batch x streams, at most 16) bounds an engine call across
    streams; `metrics_port` serves every stream's metrics on `metrics_address`
    (default 127.0.0.1, see MetricsServer)."""
    config = config or RunConfig()
    max_batch = max_batch or min(16, config.batch * max(1, len(pairs)))
    results: list[Any] = [None] * len(pairs)
    with SharedEngine.load(config.model or VIDEO_MODEL, engine=config.engine, device=config.device,
                           max_batch=max_batch, tile=config.tile, memory_mb=config.memory_budget_mb,
                           engine_configs=engine_configs(config),
                           log=log) as shared:
        pipelines = [Pipeline(source, target, config, engine=shared, quiet=True, log=log, name=f"stream{i}")
                     for i, (source, target) in enumerate(pairs)]
        server = None
        if metrics_port is not None:
            server = MetricsServer(metrics_port, [p.metrics for p in pipelines], address=metrics_address)

        def run_one(i: int) -> None:
            try:
                results[i] = pipelines[i].run()
            except BaseException as exc:  # noqa: BLE001 - reported per stream
                results[i] = exc

        threads = [threading.Thread(target=run_one, args=(i,), name=f"streamfix-stream{i}") for i in range(len(pairs))]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            if server is not None:
                server.close()
    return results
