"""Precision on the CPU engines: what each engine offers, exact requests, parity bounds
against float32 measured as restoration gain, and the cached int8 graph."""

from __future__ import annotations

import dataclasses
import importlib.util

import numpy as np
import pytest
import torch

from streamfix.core.errors import OptionError
from streamfix.core.network import CARDRN, ModelArgs
from streamfix.core.weights import ModelInfo, load_model
from streamfix.core.yaml_config import ConfigError
from streamfix.engines import int8_quantize, precision
from streamfix.engines.calibration_set import CalibrationUnavailable, calibration_set
from streamfix.engines.onnxruntime_engine import OnnxRuntimeConfig, OnnxRuntimeEngine
from streamfix.engines.select import choose, engine_config
from streamfix.engines.torch_engine import TorchConfig

torch.set_num_threads(1)
needs_openvino = pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino not installed")
NO_BF16 = ("Test CPU", frozenset({"avx2", "fma"}))
WITH_BF16 = ("Test CPU", frozenset({"avx2", "avx512f", "avx512_bf16"}))


def narrow_model(seed: int = 0) -> tuple[CARDRN, ModelInfo]:
    """A narrow CAR-DRN (16/8 features, the lite tier's shape) that gently restores:
    random weights with a small residual, so its int8 error is measurable."""
    torch.manual_seed(seed)
    args = ModelArgs(features=16, mid_features=8, cond_channels=1, batch_norm=False)
    model = CARDRN(args).eval()
    with torch.no_grad():
        model.reconstruct.weight.mul_(0.05)
    return model, ModelInfo("narrow-test", "test model", "video", "qp", args)


@pytest.fixture(scope="module")
def video_model():
    return load_model("video-x264-qp")


def test_the_table_sets_each_engines_own_option(monkeypatch):
    monkeypatch.setattr(precision, "cpu_description", lambda: WITH_BF16)
    assert precision.with_precision("onnxruntime", OnnxRuntimeConfig(), "int8", "cpu").int8 is True
    assert precision.with_precision("torch", TorchConfig(), "bf16", "cpu").cpu_bf16 is True
    assert precision.with_precision("torch", TorchConfig(cpu_bf16=True), "fp32", "cpu").cpu_bf16 is False
    assert precision.with_precision("onnxruntime", OnnxRuntimeConfig(fp16=True), "fp32", "cuda:0").fp16 is False
    assert precision.with_precision("torch", TorchConfig(cpu_bf16=True), "auto", "cpu").cpu_bf16 is True


@pytest.mark.parametrize("engine,wanted,device,message", [
    ("onnxruntime", "bf16", "cpu", "engine onnxruntime has no bf16 on the CPU (it offers fp32, int8); "
                                   "bf16 runs on: openvino, torch"),
    ("torch", "int8", "cpu", "engine torch has no int8 on the CPU (it offers fp32, bf16); int8 runs on: onnxruntime, openvino"),
    ("torch", "int8", "cuda:0", "precision int8 is for the CPU engines; on cuda:0 use --precision auto"),
    ("torch", "bf16", "cpu", "precision bf16 needs a CPU with bf16 units (AVX-512 BF16 or AMX); this one (Test CPU) has none"),
])
def test_what_an_engine_cannot_do_is_one_clear_error(monkeypatch, engine, wanted, device, message):
    monkeypatch.setattr(precision, "cpu_description", lambda: NO_BF16)
    config = {"onnxruntime": OnnxRuntimeConfig(), "torch": TorchConfig()}[engine]
    with pytest.raises(OptionError) as err:
        precision.with_precision(engine, config, wanted, device)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_bf16_is_offered_only_with_bf16_units(monkeypatch):
    monkeypatch.setattr(precision, "cpu_description", lambda: NO_BF16)
    assert precision.offered("torch") == ("fp32",) and precision.offered("openvino") == ("fp32", "int8")
    monkeypatch.setattr(precision, "cpu_description", lambda: WITH_BF16)
    assert precision.offered("torch") == ("fp32", "bf16")


def test_a_named_engine_and_precision_is_used_exactly(tmp_path):
    model, info = narrow_model()
    configs = {"onnxruntime": OnnxRuntimeConfig(threads=1, cache_dir=tmp_path)}
    lines: list[str] = []
    engine, fallbacks = choose(model, info, engine="onnxruntime", precision="int8", device="cpu",
                               configs=configs, log=lines.append)
    assert (engine.name, precision.precision_of(engine), fallbacks, lines) == ("onnxruntime", "int8", [], [])
    engine, _ = choose(model, info, engine="onnxruntime", device="cpu", configs=configs, log=lines.append)
    assert precision.precision_of(engine) == "fp32", "a named engine without a precision stays exact"


def test_unknown_layer_names_in_the_int8_settings_name_the_key():
    with pytest.raises(ConfigError, match="engines.onnxruntime.quantization: .*unknown layer 'conv9'"):
        engine_config("onnxruntime", {"int8": True, "quantization": {"keep_float": ["conv9"]}},
                      "engines.onnxruntime")


def _gain(engine_config_, model, info, tmp_path) -> float:
    check = calibration_set(info)
    with OnnxRuntimeEngine(model, info, engine_config_) as engine:
        return check.gain_db(engine.infer(check.check))


def test_int8_keeps_the_gain_of_the_shipped_video_model(video_model, tmp_path):
    """Parity bound for int8, measured as the gain against the pristine crops of the
    built-in check split (PSNR against the float32 output would say nothing about
    what a viewer gets). Measured: float32 +0.261 dB, int8 +0.248 dB."""
    model, info = video_model
    fp32 = _gain(OnnxRuntimeConfig(device="cpu", threads=1, cache_dir=tmp_path), model, info, tmp_path)
    int8 = _gain(OnnxRuntimeConfig(device="cpu", threads=1, cache_dir=tmp_path, int8=True), model, info, tmp_path)
    assert fp32 > 0.2
    assert abs(int8 - fp32) <= 0.02


@needs_openvino
def test_openvino_matches_onnxruntime(tmp_path):
    from streamfix.engines.openvino_engine import OpenVinoConfig, OpenVinoEngine

    model, info = narrow_model()
    x = calibration_set(info).check[:4]
    with OnnxRuntimeEngine(model, info, OnnxRuntimeConfig(device="cpu", threads=1, cache_dir=tmp_path)) as ort:
        ort_fp32 = ort.infer(x)
    with OnnxRuntimeEngine(model, info, OnnxRuntimeConfig(device="cpu", threads=1, cache_dir=tmp_path,
                                                          int8=True)) as ort:
        ort_int8 = ort.infer(x)
    with OpenVinoEngine(model, info, OpenVinoConfig(threads=1, cache_dir=tmp_path)) as ov:
        assert np.abs(ov.infer(x) - ort_fp32).max() < 1e-4
    with OpenVinoEngine(model, info, OpenVinoConfig(threads=1, cache_dir=tmp_path, precision="int8")) as ov:
        # The same QDQ graph through other integer kernels: within a code value or two.
        assert np.abs(ov.infer(x) - ort_int8).max() * 255 < 3


@needs_openvino
def test_openvino_refuses_bf16_without_bf16_units(monkeypatch):
    from streamfix.engines import openvino_engine
    from streamfix.engines.base import EngineUnavailable

    monkeypatch.setattr(openvino_engine, "capabilities", lambda: ["FP32", "INT8"])
    with pytest.raises(EngineUnavailable, match="no bf16 units .* use --precision fp32 or int8"):
        openvino_engine.check_available(openvino_engine.OpenVinoConfig(precision="bf16"))


@pytest.mark.skipif(not precision.has_bf16_units(), reason="this CPU has no bf16 units")
def test_torch_bf16_keeps_the_gain(video_model):
    from streamfix.engines.fp16_gate import reference_output
    from streamfix.engines.torch_engine import TorchEngine

    model, info = video_model
    check = calibration_set(info)
    with TorchEngine(model, info, TorchConfig(device="cpu", cpu_bf16=True, threads=1)) as engine:
        bf16 = check.gain_db(engine.infer(check.check))
    assert abs(bf16 - check.gain_db(reference_output(model, check.check))) <= 0.02


def test_the_int8_graph_is_cached_and_keyed(monkeypatch, tmp_path):
    model, info = narrow_model()
    check = calibration_set(info)
    made: list[str] = []
    quantize = int8_quantize._quantize
    monkeypatch.setattr(int8_quantize, "_quantize", lambda *a: made.append(a[1].name) or quantize(*a))
    first = int8_quantize.cached_int8_onnx(model, info.name, tmp_path, check)
    assert int8_quantize.cached_int8_onnx(model, info.name, tmp_path, check) == first and len(made) == 1
    other = int8_quantize.cached_int8_onnx(model, info.name, tmp_path, check,
                                           int8_quantize.Int8Settings(keep_float=("extract", "reconstruct")))
    assert other != first and len(made) == 2
    retrained, _ = narrow_model(seed=1)
    assert int8_quantize.cached_int8_onnx(retrained, info.name, tmp_path, check) not in (first, other)
    first.write_bytes(b"half a file")  # a damaged cache entry is made again
    assert int8_quantize.cached_int8_onnx(model, info.name, tmp_path, check) == first and len(made) == 4
    monkeypatch.setattr(int8_quantize, "_version", lambda: "0.0.1")  # another onnxruntime
    assert int8_quantize.cached_int8_onnx(model, info.name, tmp_path, check) not in (first, other)
    assert len(made) == 5


def test_models_the_calibration_set_cannot_feed_are_refused():
    model, info = narrow_model()
    colour = dataclasses.replace(info, model_args=dataclasses.replace(info.model_args, channels=3))
    with pytest.raises(CalibrationUnavailable, match="3 image and 1 conditioning planes"):
        calibration_set(colour)
    blind = dataclasses.replace(info, conditioning="none",
                                model_args=dataclasses.replace(info.model_args, cond_channels=0))
    assert calibration_set(blind).check.shape[1] == 1


def test_the_gain_is_measured_on_8_bit_output():
    _, info = narrow_model()
    check = calibration_set(info)
    assert check.gain_db(check.check[:, :1]) == 0.0  # the input itself gains nothing
    clean = check.check_clean.astype(np.float32)[:, None] / 255.0
    assert check.gain_db(clean) == float("inf")
    assert check.gain_db(clean + 0.4 / 255) == float("inf"), "restored values are rounded to 8 bits first"


def test_run_with_a_precision_the_engine_lacks_is_one_line(tmp_path, capsys):
    import mediagen as mg
    from streamfix.cli.main import main

    clip = mg.write_clip(tmp_path / "in.mp4", frames=2, encoder_options={"crf": "40"})
    code = main(["run", str(clip.path), str(tmp_path / "out.mp4"), "--engine", "onnxruntime", "--precision", "bf16"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("streamfix: error: engine onnxruntime has no bf16 on the CPU")
