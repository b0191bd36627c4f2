"""Engine wrappers (tiling, ensemble, sharing) describe the engine they wrap and pass
its lifetime through, defining only what they change."""

from __future__ import annotations

import numpy as np
import pytest

from streamfix.engines.ensemble import EnsembleEngine
from streamfix.engines.tiling import TiledEngine
from streamfix.engines.wrapper import EngineWrapper


class Backend:
    name, device, fp16 = "onnxruntime", "cuda:0", True
    info = "model info"

    def __init__(self) -> None:
        self.events: list[str] = []

    def __enter__(self):
        self.events.append("enter")
        return self

    def __exit__(self, *exc):
        self.events.append("exit")

    def infer(self, batch):
        return batch[:, :1] + 1.0


def test_a_wrapper_is_described_as_the_backend_it_runs():
    for wrapper in (TiledEngine(Backend()), EnsembleEngine(Backend()), TiledEngine(EnsembleEngine(Backend()))):
        assert (wrapper.name, wrapper.device, wrapper.info, wrapper.fp16) == ("onnxruntime", "cuda:0", "model info", True)


def test_entering_a_wrapper_enters_the_inner_engine_once():
    inner = Backend()
    with TiledEngine(inner) as tiled:
        assert isinstance(tiled, TiledEngine)
        out = tiled.infer(np.zeros((1, 2, 4, 4), np.float32))
    assert inner.events == ["enter", "exit"] and out.shape == (1, 1, 4, 4) and (out == 1).all()


def test_what_a_wrapper_defines_itself_wins_and_a_missing_attribute_is_an_error():
    class Renamed(EngineWrapper):
        name = "mine"

    wrapper = Renamed(Backend())
    assert wrapper.name == "mine" and wrapper.device == "cuda:0"
    with pytest.raises(AttributeError):
        wrapper.no_such_attribute
