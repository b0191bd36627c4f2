"""streamfix: real-time removal of compression artifacts from video and images.

The public API, for embedders:

    import streamfix

    result = streamfix.run("in.mp4", "out.mp4", batch=8)     # a whole file
    with streamfix.Restorer() as restorer:                    # frame by frame
        clean = restorer.restore(frame, qp_map=qp)
    model, info = streamfix.load_model("video-x264-qp")       # the bare network
    for clean in restorer.stream(frames, max_pending=8): ...   # a worker thread, back-pressure
    streamfix.run("udp://127.0.0.1:5000", "-", output={"format": "mpegts"})   # live streams
    streamfix.run_streams([(a, a_out), (b, b_out)], config)   # many streams, one engine

Names are imported on first use, so `import streamfix` (and the CLI's start-up)
does not pay for torch and PyAV until they are needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Restorer", "run", "load_model", "RunConfig", "RunResult", "Pipeline", "PipelineError",
           "PipelineInterrupted", "FrameStream", "SharedEngine", "run_streams", "MetricsServer", "__version__"]

_LAZY = {
    "Restorer": "restore",
    "run": "pipeline",
    "Pipeline": "pipeline",
    "PipelineError": "pipeline",
    "PipelineInterrupted": "pipeline",
    "RunResult": "pipeline",
    "FrameStream": "frame_stream",
    "SharedEngine": "multistream",
    "run_streams": "multistream",
    "MetricsServer": "metrics_http",
    "RunConfig": "run_config",
    "load_model": "models",
}

if TYPE_CHECKING:
    from .models import load_model
    from .frame_stream import FrameStream
    from .metrics_http import MetricsServer
    from .multistream import SharedEngine, run_streams
    from .pipeline import Pipeline, PipelineError, PipelineInterrupted, RunResult, run
    from .restore import Restorer
    from .run_config import RunConfig


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
