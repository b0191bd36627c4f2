"""TensorRTEngine end to end on a simulated GPU: streamfix's own glue, not TensorRT.

No GPU or TensorRT here, so stand-ins (tests/trt_standins.py) replace `tensorrt`,
`pycuda.driver` and libcuda: a `tensorrt` whose "engine" is the ONNX graph it was
built from (executed by ONNX Runtime when `execute_async_v3` runs), and a
`pycuda.driver` whose device memory is host memory addressed by integers and whose
contexts follow pycuda's own rules. What this checks: the build -> FP16 gate
-> cache -> load -> run path through every streamfix module, the gate's ladder on
real graph variants, page-locked slots and tickets, the cache on a second open, the
rebuild of an engine TensorRT refuses, and the progress lines. The real thing is
tests/test_tensorrt_gpu.py, run on a GPU by benchmarks/run_gpu_checks.sh.
"""

import json
import sys

import numpy as np
import pytest

import trt_standins
from trt_standins import SIM, context_balanced, stand_in_tensorrt
from streamfix.engines.fp16_gate import output_psnr, reference_output, sample_frames
from streamfix.engines.tensorrt_engine import TensorRTConfig, TensorRTEngine
from streamfix.core.weights import load_model


@pytest.fixture
def simulated_gpu(monkeypatch):
    return trt_standins.install(monkeypatch)


@pytest.fixture(scope="module")
def video_model():
    return load_model("video-x264-qp")


def _config(tmp_path, **changes):
    values = dict(device="cuda", max_batch=3, cache_dir=tmp_path, while_building="wait", gate_frames=1)
    values.update(changes)
    return TensorRTConfig(**values)


def _frames(n, height=24, width=40, seed=0):
    return sample_frames(2, 1, height, width, count=n, seed=seed)


def test_build_gate_cache_and_run(simulated_gpu, video_model, tmp_path):
    model, info = video_model
    lines = []
    # A bar above what all-FP16 reaches (~80 dB here) makes the gate climb the ladder.
    config = _config(tmp_path, shapes=("40x24",), min_psnr_db=90.0)
    with TensorRTEngine(model, info, config, log=lines.append) as engine:
        meta = engine.loaded[0]
        x = _frames(3)
        out = engine.infer(x)
    assert meta["built"] and meta["variant"] == "fp16-tail1"
    assert [s["variant"] for s in meta["gate"]["steps"]] == ["fp16", "fp16-tail1"]
    assert output_psnr(reference_output(model, x), out) >= 90.0
    assert ("network flags", 1 << 1) in SIM.log  # strongly typed on 10.x
    builds = [entry for entry in SIM.log if entry[0] == "build"]
    assert builds[0][1] == ("input", (1, 2, 24, 40), (3, 2, 24, 40), (3, 2, 24, 40)) and builds[0][2] == 3
    assert any("rebuilding as fp16-tail1" in line for line in lines)
    assert any("building video-x264-qp_fp16_40x24_b1-3" in line and "Building engine" in line for line in lines)
    timing = next(tmp_path.glob("timing_simulated-gpu-sm90_trt10.13.0.cache"))
    assert timing.read_bytes().endswith(b"+timed")
    assert context_balanced()  # every push popped, the context released, streams and events destroyed
    assert sum(e[1] for e in SIM.log if e[0] == "free host") > 0

    SIM.log.clear()
    with TensorRTEngine(model, info, config, log=lines.append) as engine:
        assert not engine.loaded[0]["built"]
        np.testing.assert_array_equal(engine.infer(x), out)
    assert not [entry for entry in SIM.log if entry[0] == "build"]


def test_first_use_builds_per_resolution_and_slots_return_in_order(simulated_gpu, video_model, tmp_path):
    model, info = video_model
    with TensorRTEngine(model, info, _config(tmp_path), log=lambda line: None) as engine:
        batches = [_frames(n, seed=n) for n in (3, 1, 2, 3)]
        expected = [reference_output(model, b) for b in batches]
        tickets = [engine.submit(b) for b in batches[:3]]  # the third reuses slot 0
        outs = [engine.result(t) for t in tickets] + list(engine.infer_stream(batches[3:]))
        odd = engine.infer(_frames(4, height=7, width=9))  # another size: another engine, 4 > max_batch
        assert [e[1][0] for e in SIM.log if e[0] == "execute"][-2:] == [3, 1]  # 4 frames as 3 + 1
        assert len(engine.loaded) == 2 and engine.loaded[1]["path"].endswith(".engine")
        assert engine.memory()["device_total_bytes"] == 80 << 30
        executed = len([e for e in SIM.log if e[0] == "execute"])
        assert engine.measure_compute(batches[0], repeats=5) >= 0
        assert len([e for e in SIM.log if e[0] == "execute"]) == executed + 6  # warm-up + 5, no copies back
    for want, have in zip(expected, outs):
        assert have.shape == want.shape and output_psnr(want, have) >= 45.0
    assert odd.shape == (4, 1, 7, 9)


def test_engine_tensorrt_refuses_is_rebuilt(simulated_gpu, video_model, tmp_path):
    model, info = video_model
    config = _config(tmp_path, shapes=("40x24",))
    with TensorRTEngine(model, info, config, log=lambda line: None) as engine:
        path = engine.loaded[0]["path"]
    sidecar = path.replace(".engine", ".json")
    garbage = b"written by another TensorRT" * 10
    open(path, "wb").write(garbage)
    import hashlib

    meta = json.loads(open(sidecar).read())
    meta.update(engine_bytes=len(garbage), engine_sha256=hashlib.sha256(garbage).hexdigest())
    open(sidecar, "w").write(json.dumps(meta))
    lines = []
    with TensorRTEngine(model, info, config, log=lines.append) as engine:
        assert engine.loaded[0]["built"]
        assert engine.infer(_frames(1)).shape == (1, 1, 24, 40)
    assert any("could not deserialize" in line and "rebuilt" in line for line in lines)


def test_fp32_request_builds_only_fp32_and_tensorrt_11_takes_no_flags(simulated_gpu, monkeypatch, video_model,
                                                                       tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", stand_in_tensorrt("11.4.0"))
    model, info = video_model
    with TensorRTEngine(model, info, _config(tmp_path, fp16=False, shapes=("40x24",)),
                        log=lambda line: None) as engine:
        meta = engine.loaded[0]
    assert meta["variant"] == "fp32" and len(meta["gate"]["steps"]) == 1
    assert ("network flags", 0) in SIM.log
    assert "_fp32_40x24_b1-3_simulated-gpu-sm90_trt11.4.0_" in meta["path"]


@pytest.fixture
def cpu_standby(monkeypatch):
    trt_standins.use_cpu_standby(monkeypatch)


def test_standby_serves_while_the_engine_builds(simulated_gpu, cpu_standby, video_model, tmp_path):
    model, info = video_model
    lines = []
    x = _frames(2)
    reference = reference_output(model, x)
    with TensorRTEngine(model, info, _config(tmp_path, while_building="standby"), log=lines.append) as engine:
        first = engine.infer(x)
        assert any("serving with torch" in line for line in lines)
        engine.wait_for_builds()
        second = engine.infer(x)
        assert engine.ready(2, 24, 40)
    assert any("switched from torch to tensorrt" in line for line in lines)
    assert output_psnr(reference, first) >= 45.0 and output_psnr(reference, second) >= 45.0
    assert [e for e in SIM.log if e[0] == "execute"]  # the second call ran on the engine


def test_closing_cancels_a_running_build(simulated_gpu, cpu_standby, video_model, tmp_path):
    """Closing the engine stops a background build through TensorRT's progress
    monitor: nothing is stored, and closing does not wait for the build to end
    (the stand-in build would otherwise run its 3000 steps and store an engine)."""
    model, info = video_model
    SIM.hold_build = True
    lines = []
    with TensorRTEngine(model, info, _config(tmp_path, while_building="standby"), log=lines.append) as engine:
        engine.infer(_frames(1))  # starts the build, served by the standby
        assert SIM.build_started.wait(60)
    assert any("failed" in line and "cancelled" in line for line in lines)
    assert not list(tmp_path.glob("*.engine")) and not list(tmp_path.glob("*.json"))
    assert not [entry for entry in SIM.log if entry[0] == "build"]
    assert context_balanced()
