"""TensorRT on a real GPU: build, FP16 parity with PyTorch, batch sizes, odd sizes,
two engines in one process, the cache on a second run, and rebuilding a bad file.

Skipped without an NVIDIA GPU (tests/conftest.py). On a GPU machine without the
`tensorrt` extra they skip with the reason, unless STREAMFIX_REQUIRE_TENSORRT=1
(benchmarks/run_gpu_checks.sh sets it) turns that into a failure. Frames are tiny
and the builder's optimization level low, so each build takes seconds.
"""

import copy
import hashlib
import json
import os

import numpy as np
import pytest
import torch

from streamfix.engines.base import EngineUnavailable
from streamfix.engines.fp16_gate import output_psnr, reference_output, sample_frames
from streamfix.engines.tensorrt_engine import TensorRTConfig, TensorRTEngine, check_available
from streamfix.core.weights import load_model

pytestmark = pytest.mark.gpu
MAX_BATCH = 4


@pytest.fixture(scope="module", autouse=True)
def tensorrt_here():
    try:
        check_available(TensorRTConfig(device="cuda"))
    except EngineUnavailable as exc:
        if os.environ.get("STREAMFIX_REQUIRE_TENSORRT") == "1":
            pytest.fail(f"TensorRT is required here but unavailable: {exc}")
        pytest.skip(f"TensorRT unavailable: {exc}")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("trt-cache")


@pytest.fixture(scope="module")
def video_model():
    return load_model("video-x264-qp")


def config(cache_dir, **changes) -> TensorRTConfig:
    values = dict(device="cuda", max_batch=MAX_BATCH, cache_dir=cache_dir, opt_level=1, workspace_mib=1024,
                  while_building="wait")
    values.update(changes)
    return TensorRTConfig(**values)


def frames(model, n: int, height: int, width: int) -> np.ndarray:
    args = model.args
    return sample_frames(args.channels + args.cond_channels, args.channels, height, width, count=n, seed=n)


def test_build_gate_and_fp16_parity(video_model, cache_dir):
    model, info = video_model
    with TensorRTEngine(model, info, config(cache_dir, shapes=("64x48",))) as engine:
        meta = engine.loaded[0]
        assert meta["built"] and meta["variant"].startswith("fp16")
        assert meta["gate"]["steps"][-1]["passed"]
        x = frames(model, MAX_BATCH, 48, 64)
        out = engine.infer(x)
        memory = engine.memory()
    assert out.shape == (MAX_BATCH, 1, 48, 64) and out.dtype == np.float32
    assert output_psnr(reference_output(model, x), out) >= 45.0
    assert memory["activation_bytes"] > 0 and memory["io_bytes"] > 0
    sidecar = json.loads(open(meta["path"].replace(".engine", ".json")).read())
    assert sidecar["key"]["profile"]["batch"] == [1, MAX_BATCH, MAX_BATCH]


def test_every_batch_size_up_to_max_and_beyond(video_model, cache_dir):
    model, info = video_model
    x = frames(model, 2 * MAX_BATCH + 1, 48, 64)
    reference = reference_output(model, x)
    with TensorRTEngine(model, info, config(cache_dir)) as engine:
        for n in range(1, MAX_BATCH + 1):
            assert output_psnr(reference[:n], engine.infer(x[:n])) >= 45.0, n
        assert output_psnr(reference, engine.infer(x)) >= 45.0  # split into max_batch chunks


@pytest.mark.parametrize("height,width", [(29, 37), (1, 1), (33, 8)])
def test_odd_sizes(video_model, cache_dir, height, width):
    model, info = video_model
    x = frames(model, 3, height, width)
    with TensorRTEngine(model, info, config(cache_dir)) as engine:
        out = engine.infer(x)
    assert out.shape == (3, 1, height, width)
    assert output_psnr(reference_output(model, x), out) >= 45.0


def test_second_run_loads_from_the_cache(video_model, cache_dir):
    model, info = video_model
    with TensorRTEngine(model, info, config(cache_dir, shapes=("64x48",))) as engine:
        assert not engine.loaded[0]["built"]


def test_two_engines_and_pytorch_share_one_process(cache_dir, video_model):
    jpeg_model, jpeg_info = load_model("jpeg-y-blind")
    model, info = video_model
    x_video, x_jpeg = frames(model, 2, 48, 64), frames(jpeg_model, 2, 48, 64)
    torch_net = copy.deepcopy(model).to("cuda").eval()
    with TensorRTEngine(model, info, config(cache_dir)) as a, TensorRTEngine(jpeg_model, jpeg_info,
                                                                              config(cache_dir)) as b:
        for _ in range(2):  # interleaved, with PyTorch CUDA work in between
            out_a = a.infer(x_video)
            with torch.inference_mode():
                torch_out = torch_net(torch.from_numpy(x_video).cuda()).cpu().numpy()
            out_b = b.infer(x_jpeg)
    assert output_psnr(reference_output(model, x_video), out_a) >= 45.0
    assert output_psnr(reference_output(jpeg_model, x_jpeg), out_b) >= 45.0
    assert output_psnr(torch_out, out_a) >= 45.0


def test_submit_result_keeps_two_batches_in_flight(video_model, cache_dir):
    model, info = video_model
    batches = [frames(model, MAX_BATCH, 48, 64) + np.float32(0.01 * i) for i in range(5)]
    with TensorRTEngine(model, info, config(cache_dir)) as engine:
        expected = [engine.infer(b) for b in batches]
        tickets = [engine.submit(b) for b in batches[:2]]
        third = engine.submit(batches[2])  # reuses the first slot: its result is kept
        got = [engine.result(t) for t in (*tickets, third)]
        streamed = list(engine.infer_stream(batches))
    # The batches differ by 0.01 each, so a mix-up is far outside this tolerance (a
    # kernel that accumulates in another order is not).
    for want, have in zip(expected, got):
        np.testing.assert_allclose(want, have, atol=2e-3)
    for want, have in zip(expected, streamed):
        np.testing.assert_allclose(want, have, atol=2e-3)


def test_bad_engine_file_is_rebuilt(video_model, cache_dir):
    """A cached engine whose bytes match its sidecar but that TensorRT refuses
    (another TensorRT version, a damaged disk) is removed and rebuilt."""
    model, info = video_model
    cfg = config(cache_dir, shapes=("64x48",))
    with TensorRTEngine(model, info, cfg) as engine:
        path = engine.loaded[0]["path"]
    sidecar_path = path.replace(".engine", ".json")
    garbage = b"not an engine" * 100
    with open(path, "wb") as f:
        f.write(garbage)
    meta = json.loads(open(sidecar_path).read())
    meta.update(engine_bytes=len(garbage), engine_sha256=hashlib.sha256(garbage).hexdigest())
    with open(sidecar_path, "w") as f:
        json.dump(meta, f)
    with TensorRTEngine(model, info, cfg) as engine:
        assert engine.loaded[0]["built"]
        x = frames(model, 1, 48, 64)
        assert output_psnr(reference_output(model, x), engine.infer(x)) >= 45.0


def test_standby_serves_until_the_engine_is_ready(video_model, cache_dir):
    model, info = video_model
    x = frames(model, 2, 40, 56)
    reference = reference_output(model, x)
    lines = []
    with TensorRTEngine(model, info, config(cache_dir, while_building="standby"), log=lines.append) as engine:
        first = engine.infer(x)  # no engine for 56x40 yet: PyTorch answers
        assert any("serving with torch" in line for line in lines)
        engine.wait_for_builds()
        assert engine.ready(2, 40, 56)
        second = engine.infer(x)
    assert any("switched from torch to tensorrt" in line for line in lines)
    assert output_psnr(reference, first) >= 45.0 and output_psnr(reference, second) >= 45.0


def test_fp32_engine(video_model, cache_dir):
    model, info = video_model
    x = frames(model, 2, 48, 64)
    with TensorRTEngine(model, info, config(cache_dir, fp16=False)) as engine:
        out = engine.infer(x)
        assert engine.loaded[0]["variant"] == "fp32"
    assert output_psnr(reference_output(model, x), out) >= 60.0
