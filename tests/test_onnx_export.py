"""ONNX export: graph interface, FP32 and FP16 parity with PyTorch through ONNX Runtime,
and the on-disk cache of exported graphs."""

from __future__ import annotations

import hashlib

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from streamfix.engines.onnx_export import (
    cached_onnx,
    export_onnx,
    model_sha256,
    onnx_sha256,
)
from streamfix.core.network import CARDRN, ModelArgs
from streamfix.core.weights import load_model

torch.set_num_threads(1)


def random_model(seed: int = 0) -> CARDRN:
    """A CAR-DRN with random weights, a non-zero last layer (a fresh one is the identity)
    and non-trivial BN statistics, so export has to fold real batch norms."""
    torch.manual_seed(seed)
    model = CARDRN(ModelArgs(channels=1, cond_channels=1))
    with torch.no_grad():
        torch.nn.init.normal_(model.reconstruct.weight, std=0.05)
        for bn in (model.bn_a, model.bn_b, model.bn_c):
            bn.running_mean.uniform_(-0.1, 0.1)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.1, 0.1)
    return model.eval()


def psnr_unit(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of two arrays on the model's [0, 1] scale (any shape)."""
    err = float(np.mean((np.clip(a, 0, 1).astype(np.float64) - np.clip(b, 0, 1)) ** 2))
    return float("inf") if err == 0 else 10 * np.log10(1 / err)


def session(path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def reference(model: CARDRN, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(x)).numpy()


def test_graph_has_named_dynamic_io(tmp_path):
    path = export_onnx(random_model(), tmp_path / "m.onnx")
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["input"]
    assert [o.name for o in graph.output] == ["output"]
    for value in (graph.input[0], graph.output[0]):
        dims = value.type.tensor_type.shape.dim
        assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        # batch, height and width are symbolic; only the channel count is fixed
        assert [bool(d.dim_param) for d in dims] == [True, False, True, True]
    assert graph.input[0].type.tensor_type.shape.dim[1].dim_value == 2
    assert graph.output[0].type.tensor_type.shape.dim[1].dim_value == 1
    assert not [n for n in graph.node if n.op_type == "BatchNormalization"]
    assert not list(tmp_path.glob("*.tmp")), "the temporary file was left behind"


@pytest.mark.parametrize("shape", [(1, 2, 64, 64), (3, 2, 37, 51), (2, 2, 1, 9), (1, 2, 121, 33)])
def test_fp32_graph_matches_pytorch(tmp_path, shape):
    model = random_model(1)
    run = session(export_onnx(model, tmp_path / "m.onnx"))
    x = np.random.default_rng(2).random(shape, dtype=np.float32)
    out = run.run(["output"], {"input": x})[0]
    expected = reference(model, x)
    assert out.shape == expected.shape == (shape[0], 1, shape[2], shape[3])
    assert np.abs(out - expected).max() < 1e-4


@pytest.mark.parametrize("name", ["random", "video-x264-qp"])
def test_fp16_graph_is_half_inside_and_close_to_fp32(tmp_path, name):
    model = random_model(3) if name == "random" else load_model(name)[0]
    path = export_onnx(model, tmp_path / "m16.onnx", fp16=True)
    graph = onnx.load(str(path)).graph
    assert {t.data_type for t in graph.initializer if t.dims} == {onnx.TensorProto.FLOAT16}
    conv_inputs = {n.input[1] for n in graph.node if n.op_type == "Conv"}
    assert conv_inputs and all(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.initializer if t.name in conv_inputs)
    # The I/O stays float32 (documented in onnx_export): engines feed float32 either way.
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT

    rng = np.random.default_rng(4)
    x = np.stack([rng.random((2, 45, 67), dtype=np.float32) for _ in range(2)])
    x[:, 1] = 0.7  # a QP-like conditioning plane: constant, as in real use
    out = session(path).run(["output"], {"input": x})[0]
    expected = reference(model, x)
    assert out.dtype == np.float32
    value = psnr_unit(out, expected)
    assert value > 45.0, f"FP16 graph vs FP32 PyTorch: {value:.1f} dB"
    assert np.abs(out - expected).max() > 0, "the FP16 graph gave FP32-exact results: is it really FP16?"


def test_cache_reuses_the_file_and_keys_on_the_weights(tmp_path):
    model = random_model(5)
    first = cached_onnx(model, "demo", tmp_path)
    stamp = first.stat().st_mtime_ns
    again = cached_onnx(random_model(5), "demo", tmp_path)
    assert again == first and again.stat().st_mtime_ns == stamp
    other = cached_onnx(random_model(6), "demo", tmp_path)
    assert other != first
    half = cached_onnx(model, "demo", tmp_path, fp16=True)
    assert half not in (first, other) and "fp16" in half.name
    assert model_sha256(model) != model_sha256(random_model(6))


def test_cache_replaces_a_corrupt_file(tmp_path):
    """A truncated graph in the cache (e.g. a full disk) must be exported again, not loaded."""
    model = random_model(7)
    path = cached_onnx(model, "demo", tmp_path)
    path.write_bytes(path.read_bytes()[:1000])
    again = cached_onnx(model, "demo", tmp_path)
    assert again == path
    x = np.random.default_rng(8).random((1, 2, 20, 30), dtype=np.float32)
    assert np.abs(session(again).run(["output"], {"input": x})[0] - reference(model, x)).max() < 1e-4


def test_onnx_sha256_is_the_file_hash(tmp_path):
    path = export_onnx(random_model(), tmp_path / "m.onnx")
    assert onnx_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
