"""Tiled inference: span geometry, the receptive field, seamless stitching and the
memory bound on each call to the inner engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamfix.engines.tiling import (DEFAULT_CPU_MEMORY_MB, GPU_MAX_PIXELS, TiledEngine, budget_for,
                                     call_bytes_per_pixel, even_spans, pixels_for_budget, plan_spans,
                                     receptive_radius, tile_spans)
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


# --- memory budget ---------------------------------------------------------------


def test_a_budget_gives_the_pixels_per_call_from_the_measured_bytes_per_pixel():
    assert call_bytes_per_pixel("onnxruntime", "fp32", 64) == 816  # ~3.2 float32 maps of 64 channels
    assert call_bytes_per_pixel("onnxruntime", "int8", 64) == 544
    assert pixels_for_budget(576, "onnxruntime", "fp32", 64) == 576 * 2**20 // 816
    assert pixels_for_budget(576, "onnxruntime", "int8", 64) == 576 * 2**20 // 544
    assert pixels_for_budget(100, "torch", "fp32", 16) == 100 * 2**20 // (12.75 * 16)  # narrower: more pixels
    assert pixels_for_budget(1, "openvino", "fp32", 64) >= 1
    with pytest.raises(ValueError, match="at least 1 MiB"):
        pixels_for_budget(0, "torch", "fp32", 64)


def test_the_default_budget_is_the_cpus_and_a_gpu_keeps_its_pixel_limit():
    assert budget_for("cpu", None) == DEFAULT_CPU_MEMORY_MB
    assert budget_for("cuda:0", None) is None
    assert budget_for("cuda:0", 2048) == 2048 and budget_for("cpu", 64) == 64


@pytest.mark.parametrize("length", [1, 40, 64, 100, 257, 1080, 1920])
@pytest.mark.parametrize("count", [1, 2, 3, 7])
@pytest.mark.parametrize("margin", [0, 14, 16])
def test_even_spans_cover_the_axis_with_full_context_in_one_window_size(length, count, margin):
    spans = even_spans(length, count, margin)
    assert spans[0].core_start == 0 and spans[-1].core_stop == length
    assert all(a.core_stop == b.core_start for a, b in zip(spans, spans[1:]))
    assert len({s.stop - s.start for s in spans}) == 1
    for s in spans:
        assert 0 <= s.start <= s.core_start <= s.core_stop <= s.stop <= length
        assert s.start == 0 or s.core_start - s.start >= margin
        assert s.stop == length or s.stop - s.core_stop >= margin


@pytest.mark.parametrize("precision, width, height, windows", [
    ("fp32", 1920, 1080, (2, 2)), ("fp32", 1280, 720, (1, 2)), ("int8", 1920, 1080, (1, 3)), ("int8", 1280, 720, (1, 2)),
])
def test_the_default_budget_cuts_hd_frames_into_few_windows(precision, width, height, windows):
    max_pixels = pixels_for_budget(DEFAULT_CPU_MEMORY_MB, "onnxruntime", precision, 64)
    rows, cols = plan_spans(height, width, 16, max_pixels)
    assert (len(rows), len(cols)) == windows
    window = (rows[0].stop - rows[0].start) * (cols[0].stop - cols[0].start)
    assert window <= max_pixels
    assert len(rows) * len(cols) * window < 1.05 * width * height  # the overlaps cost under 5% more pixels


@pytest.mark.parametrize("max_pixels", [1, 5000, 20000, 100_000])
def test_planned_windows_stay_within_the_budget_down_to_the_smallest_tile(max_pixels):
    rows, cols = plan_spans(300, 500, 16, max_pixels)
    window = (rows[0].stop - rows[0].start) * (cols[0].stop - cols[0].start)
    assert window <= max(max_pixels, 70 * 70)  # cores of 32 px at least, windows ~64 px a side


def test_a_budget_tiles_exactly_and_keeps_every_call_within_it():
    model = random_model(3)
    x = np.random.default_rng(3).random((3, 2, 70, 150), dtype=np.float32)
    with TorchEngine(model, INFO, TorchConfig(device="cpu")) as whole:
        expected = whole.infer(x)

    class Recording(TorchEngine):
        shapes: list = []

        def infer(self, batch):
            self.shapes.append(batch.shape)
            return super().infer(batch)

    inner = Recording(model, INFO, TorchConfig(device="cpu"))
    with TiledEngine(inner, max_pixels=8000, auto_tile=0, max_batch=4, overlap=receptive_radius(model)) as tiled:
        out = tiled.infer(x)
    assert np.abs(out - expected).max() < 1e-5
    assert len(inner.shapes) > 3 and all(n * h * w <= 8000 for n, _, h, w in inner.shapes)
    assert len({s[2:] for s in inner.shapes}) == 1, "one window shape: the runtime plans its memory once"


def test_a_tiny_budget_still_restores_every_pixel():
    inner = RecordingEngine()
    x = np.random.default_rng(4).random((2, 2, 100, 130), dtype=np.float32)
    with TiledEngine(inner, max_pixels=1, auto_tile=0, max_batch=4) as engine:
        out = engine.infer(x)
    np.testing.assert_array_equal(out, x[:, :1] * 2)
    assert {s[0] for s in inner.shapes} == {1} and len({s[2:] for s in inner.shapes}) == 1
    assert inner.shapes[0][2] * inner.shapes[0][3] <= 70 * 70


def test_choose_sets_the_pixels_per_call_from_the_budget_on_the_cpu_only():
    from streamfix.core.errors import OptionError
    from streamfix.engines.select import _wrapped, choose
    from streamfix.engines.tiling import TilingConfig

    model = random_model(5)
    cpu = _wrapped(RecordingEngine(), model, 0, TilingConfig(), 4)
    assert cpu.max_pixels == pixels_for_budget(DEFAULT_CPU_MEMORY_MB, "recording", "fp32", 64)
    assert _wrapped(RecordingEngine(), model, 0, TilingConfig(), 4, 100).max_pixels == \
        pixels_for_budget(100, "recording", "fp32", 64)
    gpu_engine = RecordingEngine()
    gpu_engine.device = "cuda:0"
    gpu = _wrapped(gpu_engine, model, 0, TilingConfig(), 4)
    assert (gpu.max_pixels, gpu.auto_tile) == (GPU_MAX_PIXELS, 512)  # unchanged without a budget
    assert _wrapped(gpu_engine, model, 0, TilingConfig(), 4, 1024).auto_tile == 0
    engine, _ = choose(model, INFO, engine="torch", device="cpu", memory_mb=64, log=lambda line: None)
    assert engine.max_pixels == pixels_for_budget(64, "torch", "fp32", 64)
    with pytest.raises(OptionError, match="at least 1 MiB"):
        choose(model, INFO, engine="torch", device="cpu", memory_mb=0, log=lambda line: None)
