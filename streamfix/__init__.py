"""streamfix: real-time removal of compression artifacts from video and images.

The public API, for embedders:

    import streamfix

    result = streamfix.run("in.mp4", "out.mp4", batch=8)     # a whole file
    with streamfix.Restorer() as restorer:                    # frame by frame
        clean = restorer.restore(frame, qp_map=qp)
    model, info = streamfix.load_model("video-x264-qp")       # the bare network
    for clean in streamfix.restore_stream(restorer, frames, max_pending=8): ...  # worker thread
    streamfix.run("udp://127.0.0.1:5000", "-", output={"format": "mpegts"})   # live streams
    streamfix.run_streams([(a, a_out), (b, b_out)], config)   # many streams, one engine

Names are imported on first use, so `import streamfix` (and the CLI's start-up)
does not pay for torch and PyAV until they are needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Restorer", "run", "load_model", "RunConfig", "RunResult", "Pipeline", "PipelineError",
           "PipelineInterrupted", "FrameStream", "restore_stream", "SharedEngine", "run_streams", "MetricsServer", "__version__"]

_LAZY = {
    "Restorer": "restore.restorer",
    "run": "pipeline.pipeline",
    "Pipeline": "pipeline.pipeline",
    "PipelineError": "pipeline.pipeline",
    "PipelineInterrupted": "pipeline.pipeline",
    "RunResult": "pipeline.pipeline",
    "FrameStream": "serve.frame_stream",
    "restore_stream": "serve.frame_stream",
    "SharedEngine": "engines.shared",
    "run_streams": "serve.streams",
    "MetricsServer": "serve.metrics_server",
    "RunConfig": "pipeline.run_config",
    "load_model": "core.weights",
}

if TYPE_CHECKING:
    from streamfix.core.weights import load_model
    from streamfix.serve.frame_stream import FrameStream, restore_stream
    from streamfix.serve.metrics_server import MetricsServer
    from streamfix.engines.shared import SharedEngine
    from streamfix.serve.streams import run_streams
    from streamfix.pipeline.pipeline import Pipeline, PipelineError, PipelineInterrupted, RunResult, run
    from streamfix.restore.restorer import Restorer
    from streamfix.pipeline.run_config import RunConfig


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
