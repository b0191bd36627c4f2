"""Inference engines for CAR-DRN (installed as `streamfix.engines`).

    from streamfix.engines.select import choose
    engine, fallbacks = choose(model, info, engine="auto", max_batch=4)
    with engine:
        restored = engine.infer(batch)  # N x (C + cond) x H x W -> N x C x H x W

base.py holds the protocol; one module per backend (torch_engine, onnxruntime_engine,
tensorrt_engine); onnx_export.py makes the graph the non-PyTorch backends run;
tiling.py bounds memory on large frames; select.py picks a backend.
"""

from streamfix.engines.base import Engine, EngineUnavailable, Fallback

__all__ = ["Engine", "EngineUnavailable", "Fallback"]
