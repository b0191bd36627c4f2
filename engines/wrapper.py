"""The base of engines that run another engine and change one thing about how.

TiledEngine (tiling.py) cuts large frames into tiles, EnsembleEngine (ensemble.py)
averages over flips and rotations, SharedEngine (shared.py) merges several streams'
calls. Each is still the same backend on the same device running the same model, so
everything a wrapper does not define itself (`name`, `device`, `info`, a backend's
own attributes such as `fp16`) is read from the engine it wraps: what is reported
about a wrapped engine is what really runs. Entering and leaving a wrapper enters and
leaves the inner engine.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from streamfix.engines.base import Engine


class EngineWrapper:
    """An engine that runs `inner`; subclasses override what they change (usually `infer`)."""

    def __init__(self, inner: Engine) -> None:
        self.inner = inner

    def __getattr__(self, attribute: str) -> Any:
        # Called only for attributes the wrapper lacks. `inner` itself and dunder names
        # are not forwarded: a wrapper copied or unpickled before `inner` is set must
        # fail plainly instead of recursing.
        if attribute == "inner" or attribute.startswith("__"):
            raise AttributeError(attribute)
        return getattr(self.inner, attribute)

    def __enter__(self) -> Any:
        self.inner.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.inner.__exit__(*exc)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self.inner.infer(batch)
