"""The GPU benchmark's arithmetic and report (no GPU); its wrapper is in test_gpu_checks.py."""

import pytest

from streamfix.benchmarks import gpu_bench
from streamfix.benchmarks.gpu_bench import Row, ceiling_fps, macs_per_pixel, peak_tflops, report
from streamfix.core.network import CARDRN, ModelArgs


def test_macs_per_pixel_of_car_drn():
    # 2x64x81 + 64x64x9 x 4 + 64x16x9 + 16x16x9 + 16x1x9 (extract, map + residual block,
    # enhance, map2, reconstruct): about 351 GMAC for a 1080p frame.
    assert macs_per_pixel(CARDRN(ModelArgs(channels=1, cond_channels=1))) == 169_488


@pytest.mark.parametrize("name,tflops", [
    ("NVIDIA H100 80GB HBM3", 989.4), ("NVIDIA H100 PCIe", 756.0), ("NVIDIA H200", 989.4),
    ("NVIDIA L40S", 362.1), ("NVIDIA L4", 121.0), ("Tesla T4", 65.0), ("NVIDIA GeForce GTX 1080", None),
])
def test_peak_lookup_prefers_the_specific_name(name, tflops):
    assert peak_tflops(name) == tflops


def test_ceiling_of_an_h100_at_1080p():
    macs = 169_488 * 1920 * 1080
    assert ceiling_fps("NVIDIA H100 80GB HBM3", macs) == pytest.approx(1407.6, abs=0.1)
    assert ceiling_fps("unknown GPU", macs) is None


def test_report_gives_fraction_of_ceiling_memory_and_reasons():
    macs = 169_488 * 1920 * 1080
    rows = [Row("tensorrt-fp16", "compute only", "1080p", 8, 8 / 704.0, 2048.0),
            Row("torch-fp16", "host to host", "720p", 4, 0.01)]
    text = report("NVIDIA H100 80GB HBM3", "video-x264-qp", macs, rows, [],
                  ["ONNX Runtime CUDA was not measured: no CUDA provider",
                   "TensorRT was not measured: the tensorrt package is not installed"],
                  "9 passed in 80s", "python benchmarks/gpu_bench.py --quick")
    assert "Ceiling at 1080p: 1408 frames/s" in text and "GPU tests: 9 passed in 80s" in text
    assert "| tensorrt-fp16 | compute only | 1080p | 8 | 11.36 | 704.0 | 50.0 | 2048 |" in text
    # 720p has 4/9 of the pixels: the ceiling is 2.25x higher.
    assert "| torch-fp16 | host to host | 720p | 4 | 10.00 | 400.0 | 12.6 |  |" in text
    assert "- ONNX Runtime CUDA was not measured: no CUDA provider" in text
    assert "- TensorRT was not measured: the tensorrt package is not installed" in text


def test_benchmark_refuses_to_run_without_a_gpu(capsys):
    assert gpu_bench.main([]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err
