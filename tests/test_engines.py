"""The PyTorch and ONNX Runtime engines: same results as the model, the protocol,
their configs, and what they say when they cannot run."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from streamfix.core.yaml_config import ConfigError
from streamfix.engines.base import Engine, EngineUnavailable
from streamfix.engines.onnxruntime_engine import OnnxRuntimeConfig, OnnxRuntimeEngine
from streamfix.engines.onnxruntime_engine import check_available as ort_available
from streamfix.engines.select import engine_config
from streamfix.engines.torch_engine import TorchConfig, TorchEngine
from streamfix.engines.torch_engine import check_available as torch_available
from streamfix.core.network import CARDRN, ModelArgs
from streamfix.core.weights import ModelInfo, load_model

torch.set_num_threads(1)
NO_GPU = not torch.cuda.is_available()


def random_model(seed: int = 0, channels: int = 1, cond: int = 1) -> CARDRN:
    """Random weights with a non-zero last layer (a fresh CAR-DRN is the identity)."""
    torch.manual_seed(seed)
    model = CARDRN(ModelArgs(channels=channels, cond_channels=cond))
    with torch.no_grad():
        torch.nn.init.normal_(model.reconstruct.weight, std=0.05)
        model.bn_b.running_var.fill_(2.0)
    return model.eval()


def reference(model: CARDRN, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(x)).numpy()


def engines(model, info, tmp_path):
    return [
        TorchEngine(model, info, TorchConfig(device="cpu", threads=1)),
        OnnxRuntimeEngine(model, info, OnnxRuntimeConfig(device="cpu", threads=1, cache_dir=tmp_path)),
    ]


@pytest.fixture(scope="module")
def bundled():
    return load_model("video-x264-qp")


@pytest.mark.parametrize("shape", [(1, 2, 48, 64), (3, 2, 35, 23), (4, 2, 16, 17)])
def test_engines_match_the_model(tmp_path, bundled, shape):
    _, info = bundled
    model = random_model(1)
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    expected = reference(model, x)
    for engine in engines(model, info, tmp_path):
        assert isinstance(engine, Engine)
        with engine:
            out = engine.infer(x)
        assert out.shape == (shape[0], 1, shape[2], shape[3]), engine.name
        assert out.dtype == np.float32
        assert np.abs(out - expected).max() < 1e-4, engine.name


def test_bundled_model_changes_a_blocky_frame(tmp_path, bundled):
    """The engines must run the real weights, not an identity: a frame of flat 8x8
    blocks at a high QP has edges the model is trained to soften."""
    model, info = bundled
    rng = np.random.default_rng(1)
    blocks = np.kron(rng.random((6, 8), dtype=np.float32), np.ones((8, 8), np.float32))
    x = np.stack([blocks, np.full_like(blocks, 40 / 51)])[None]
    outs = []
    for engine in engines(model, info, tmp_path):
        with engine:
            outs.append(engine.infer(x))
    assert np.abs(outs[0] - outs[1]).max() < 1e-4
    assert np.abs(outs[0][0, 0] - blocks).mean() > 1e-3


def test_three_channel_model(tmp_path, bundled):
    _, info = bundled
    model = random_model(2, channels=3, cond=0)
    x = np.random.default_rng(2).random((2, 3, 21, 30), dtype=np.float32)
    for engine in engines(model, info, tmp_path):
        with engine:
            assert np.abs(engine.infer(x) - reference(model, x)).max() < 1e-4


def test_wrong_channel_count_is_refused_with_the_expected_shape(tmp_path, bundled):
    model, info = bundled
    for engine in engines(model, info, tmp_path):
        with engine, pytest.raises(ValueError, match=r"N x 2 x H x W"):
            engine.infer(np.zeros((1, 1, 8, 8), np.float32))


def test_onnxruntime_on_the_cpu_runs_without_a_memory_pattern(tmp_path):
    """With one, every call shape held its activations twice (benchmarks/cpu.md)."""
    model = random_model(3)
    info = ModelInfo(name="random", description="", task="video", conditioning="qp", model_args=model.args)
    config = OnnxRuntimeConfig(device="cpu", threads=1, cache_dir=tmp_path)
    with OnnxRuntimeEngine(model, info, config) as engine:
        assert engine._session.get_session_options().enable_mem_pattern is False
    with OnnxRuntimeEngine(model, info, dataclasses.replace(config, memory_pattern=True)) as engine:
        assert engine._session.get_session_options().enable_mem_pattern is True


def test_infer_outside_the_context_is_an_error(tmp_path, bundled):
    model, info = bundled
    for engine in engines(model, info, tmp_path):
        with pytest.raises(RuntimeError, match="with engine"):
            engine.infer(np.zeros((1, 2, 8, 8), np.float32))


def test_cpu_bf16_stays_close(bundled):
    """bfloat16 autocast keeps 8 bits of mantissa in the convolutions; the global
    skip adds a float32 input to a bf16 residual, which promotes to float32, so the
    image itself is not rounded to bf16."""
    _, info = bundled
    model = random_model(4)
    x = np.random.default_rng(3).random((1, 2, 40, 40), dtype=np.float32)
    with TorchEngine(model, info, TorchConfig(device="cpu", threads=1, cpu_bf16=True)) as engine:
        out = engine.infer(x)
    expected = reference(model, x)
    assert out.dtype == np.float32
    assert np.abs(out - expected).max() > 0, "bf16 gave float32-exact output: autocast is not active"
    error = float(np.mean((out.astype(np.float64) - expected) ** 2))
    assert 10 * np.log10(1 / error) > 45


@pytest.mark.skipif(not NO_GPU, reason="checks the message shown on machines without a GPU")
def test_cuda_requests_say_why_not_in_one_line():
    with pytest.raises(EngineUnavailable) as err:
        torch_available(TorchConfig(device="cuda"))
    assert "\n" not in str(err.value) and "--device cpu" in str(err.value)
    with pytest.raises(EngineUnavailable) as err:
        ort_available(OnnxRuntimeConfig(device="cuda:0"))
    assert "\n" not in str(err.value) and "onnxruntime-gpu" in str(err.value)


def test_missing_onnxruntime_package_is_a_reason(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)  # import now fails
    with pytest.raises(EngineUnavailable, match="pip install onnxruntime"):
        ort_available(OnnxRuntimeConfig(device="cpu"))


def test_unknown_device_is_refused():
    with pytest.raises(EngineUnavailable, match="unknown device"):
        torch_available(TorchConfig(device="tpu"))


def test_engine_configs_load_strictly_from_yaml_data(tmp_path):
    config = engine_config("onnxruntime", {"threads": 2, "cache_dir": str(tmp_path), "graph_optimization": "basic"})
    assert config == OnnxRuntimeConfig(threads=2, cache_dir=tmp_path, graph_optimization="basic")
    with pytest.raises(ConfigError, match="'thread'"):
        engine_config("torch", {"thread": 2}, "run.yaml: engines.torch")
    with pytest.raises(ConfigError, match="graph_optimization"):
        engine_config("onnxruntime", {"graph_optimization": "max"})
    with pytest.raises(ConfigError, match="threads must be >= 0"):
        engine_config("torch", {"threads": -1})


def psnr_unit(a: np.ndarray, b: np.ndarray) -> float:
    error = float(np.mean((np.clip(a, 0, 1).astype(np.float64) - np.clip(b, 0, 1)) ** 2))
    return float("inf") if error == 0 else 10 * np.log10(1 / error)


@pytest.mark.gpu
def test_torch_cuda_fp16_matches_cpu_fp32(bundled):
    _, info = bundled
    model = random_model(5)
    x = np.random.default_rng(5).random((3, 2, 45, 77), dtype=np.float32)
    with TorchEngine(model, info, TorchConfig(device="cuda")) as engine:
        assert engine.device == "cuda:0"
        out = engine.infer(x)
    assert out.dtype == np.float32 and out.shape == (3, 1, 45, 77)
    assert psnr_unit(out, reference(model, x)) > 45


@pytest.mark.gpu
def test_onnxruntime_cuda_fp16_matches_cpu_fp32(tmp_path, bundled):
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime-gpu is not installed")
    _, info = bundled
    model = random_model(6)
    x = np.random.default_rng(6).random((2, 2, 61, 39), dtype=np.float32)
    with OnnxRuntimeEngine(model, info, OnnxRuntimeConfig(device="cuda", cache_dir=tmp_path)) as engine:
        assert engine.fp16 and engine.device == "cuda:0"
        out = engine.infer(x)
    assert psnr_unit(out, reference(model, x)) > 45
