"""PyTorch CUDA FP16 against the FP32 model at the sizes streams come in (720p,
1080p): the standby engine while TensorRT builds, and where auto ends on a GPU
without TensorRT. Skipped without a GPU (tests/conftest.py)."""

import pytest

from streamfix.core.weights import load_model
from streamfix.engines.fp16_gate import output_psnr, reference_output, sample_frames
from streamfix.engines.torch_engine import TorchConfig, TorchEngine

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("width,height", [(1280, 720), (1920, 1080)], ids=["720p", "1080p"])
def test_torch_fp16_on_the_gpu_matches_the_fp32_model(width, height):
    model, info = load_model("video-x264-qp")
    x = sample_frames(2, 1, height, width, count=2)
    with TorchEngine(model, info, TorchConfig(device="cuda", fp16=True, max_batch=2)) as engine:
        assert engine.device.startswith("cuda")
        out = engine.infer(x)
    assert out.shape == (2, 1, height, width)
    assert output_psnr(reference_output(model, x), out) >= 45.0  # the FP16 gate's bar for TensorRT
