"""Tiled inference: span geometry, the receptive field, seamless stitching and the
memory bound on each call to the inner engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamfix.engines.tiling import TiledEngine, receptive_radius, tile_spans
from streamfix.engines.torch_engine import TorchConfig, TorchEngine
from streamfix.core.network import CARDRN, ModelArgs
from streamfix.core.weights import ModelInfo

torch.set_num_threads(1)
INFO = ModelInfo(name="random", description="", task="video", conditioning="qp",
                 model_args=ModelArgs(cond_channels=1))


def random_model(seed: int = 0, **args) -> CARDRN:
    """Random weights with a non-zero last layer (a fresh CAR-DRN is the identity)."""
    torch.manual_seed(seed)
    model = CARDRN(ModelArgs(cond_channels=1, **args))
    with torch.no_grad():
        torch.nn.init.normal_(model.reconstruct.weight, std=0.05)
    return model.eval()


class RecordingEngine:
    """Doubles its first channel and records the batch shapes it was given."""

    name = "recording"
    device = "cpu"

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def __enter__(self) -> "RecordingEngine":
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def infer(self, batch: np.ndarray) -> np.ndarray:
        self.shapes.append(batch.shape)
        return batch[:, :1] * 2


@pytest.mark.parametrize("length", [1, 15, 47, 48, 49, 100, 257])
@pytest.mark.parametrize("tile,margin", [(16, 16), (24, 14), (64, 0)])
def test_spans_cover_the_axis_with_full_context(length, tile, margin):
    spans = tile_spans(length, tile, margin)
    assert spans[0].core_start == 0 and spans[-1].core_stop == length
    assert all(a.core_stop == b.core_start for a, b in zip(spans, spans[1:]))
    assert len({s.stop - s.start for s in spans}) == 1, "windows must share one size to batch"
    for s in spans:
        assert 0 <= s.start <= s.core_start < s.core_stop <= s.stop <= length
        assert s.start == 0 or s.core_start - s.start >= margin
        assert s.stop == length or s.stop - s.core_stop >= margin


def test_receptive_radius_follows_the_architecture():
    assert receptive_radius(CARDRN(ModelArgs())) == 14  # the 29 px of model.py
    assert receptive_radius(CARDRN(ModelArgs(dilation=3))) == 17


def test_tiled_equals_whole_frame():
    model = random_model(1)
    x = np.random.default_rng(0).random((2, 2, 75, 101), dtype=np.float32)
    with TorchEngine(model, INFO, TorchConfig(device="cpu")) as whole:
        expected = whole.infer(x)
    inner = TorchEngine(model, INFO, TorchConfig(device="cpu"))
    with TiledEngine(inner, tile=24, overlap=receptive_radius(model)) as tiled:
        out = tiled.infer(x)
    assert out.shape == expected.shape
    assert np.abs(out - expected).max() < 1e-5


def test_a_margin_below_the_radius_leaves_seams():
    """Shows the test above can fail: with 4 px less context the tiles disagree."""
    model = random_model(2)
    x = np.random.default_rng(1).random((1, 2, 64, 64), dtype=np.float32)
    with TorchEngine(model, INFO, TorchConfig(device="cpu")) as whole:
        expected = whole.infer(x)
    with TiledEngine(TorchEngine(model, INFO, TorchConfig(device="cpu")), tile=20, overlap=10) as tiled:
        assert np.abs(tiled.infer(x) - expected).max() > 1e-4


def test_frames_over_max_pixels_are_tiled_and_calls_stay_bounded():
    inner = RecordingEngine()
    x = np.random.default_rng(2).random((3, 2, 90, 130), dtype=np.float32)  # 11,700 px a frame
    with TiledEngine(inner, tile=0, overlap=16, max_pixels=9000, auto_tile=32, max_batch=8) as engine:
        out = engine.infer(x)
    np.testing.assert_array_equal(out, x[:, :1] * 2)
    # 3 x 5 windows of 64 x 64 per frame, two windows (8,192 px) per call
    assert [s[2:] for s in inner.shapes] == [(64, 64)] * 23
    assert sum(s[0] for s in inner.shapes) == 45
    assert max(s[0] for s in inner.shapes) == 2


def test_small_frames_pass_whole_and_big_batches_are_split():
    inner = RecordingEngine()
    x = np.zeros((10, 2, 30, 40), np.float32)
    with TiledEngine(inner, tile=0, max_pixels=3 * 30 * 40, max_batch=8) as engine:
        assert engine.infer(x).shape == (10, 1, 30, 40)
    assert [s[0] for s in inner.shapes] == [3, 3, 3, 1]
    assert all(s[2:] == (30, 40) for s in inner.shapes)


def test_explicit_tile_leaves_frames_that_fit_in_one_window_alone():
    inner = RecordingEngine()
    with TiledEngine(inner, tile=32, overlap=16) as engine:
        engine.infer(np.zeros((1, 2, 64, 50), np.float32))
    assert inner.shapes == [(1, 2, 64, 50)]


def test_wrapper_reports_the_inner_engine():
    engine = TiledEngine(RecordingEngine(), tile=16)
    assert (engine.name, engine.device) == ("recording", "cpu")
