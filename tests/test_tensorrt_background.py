"""Builds in the background and on close: what a build under load may store, that a
re-opened engine builds again, that a finished build is kept, and that closing does
not wait on another process's lock, the ONNX export or the gate's reference. The GPU
is simulated (tests/trt_standins.py)."""

import json
import threading

import numpy as np
import pytest
import torch
from filelock import FileLock

import trt_standins
from trt_standins import SIM, context_balanced
from streamfix.core.weights import load_model
from streamfix.engines import fp16_gate, trt_prepare
from streamfix.engines.base import EngineUnavailable
from streamfix.engines.engine_cache import Built, EngineCache, EngineKey, LockWaitCancelled
from streamfix.engines.fp16_gate import sample_frames
from streamfix.engines.tensorrt_engine import TensorRTConfig, TensorRTEngine
from streamfix.engines.trt_build import BuildRequest, build_serialized
from streamfix.engines.trt_shapes import exact_profile

KEY = EngineKey(model="video-x264-qp", onnx_sha256="ab" * 32, tensorrt="10.13.0", gpu="Simulated GPU",
                compute_capability="9.0", precision="fp16", profile=exact_profile(24, 40, 2), workspace_mib=64,
                opt_level=1, min_psnr_db=45.0)


@pytest.fixture
def simulated_gpu(monkeypatch):
    return trt_standins.install(monkeypatch)


@pytest.fixture(scope="module")
def video_model():
    return load_model("video-x264-qp")


@pytest.fixture
def cpu_standby(monkeypatch):
    trt_standins.use_cpu_standby(monkeypatch)


def _config(tmp_path, **changes):
    values = dict(device="cuda", max_batch=2, cache_dir=tmp_path, while_building="wait", gate_frames=1)
    values.update(changes)
    return TensorRTConfig(**values)


def _frames(height=24, width=40):
    return sample_frames(2, 1, height, width, count=1)


def _builds():
    return [entry for entry in SIM.log if entry[0] == "build"]


def test_a_reopened_engine_builds_again(simulated_gpu, video_model, tmp_path):
    """Bug: closing set the cancel event and nothing cleared it, so every build of a
    re-entered engine was cancelled at its first step."""
    engine = TensorRTEngine(*video_model, _config(tmp_path), log=lambda line: None)
    with engine:
        engine.infer(_frames())
    with engine:
        assert engine.infer(_frames(16, 32)).shape == (1, 1, 16, 32)
    assert len(_builds()) == 2 and context_balanced()


def test_a_reopened_engine_retries_a_background_build_the_close_cancelled(simulated_gpu, cpu_standby,
                                                                             video_model, tmp_path):
    """The per-open build states start over too: a build cancelled by the previous
    close is not "failed" forever."""
    engine = TensorRTEngine(*video_model, _config(tmp_path, while_building="standby"), log=lambda line: None)
    SIM.hold_build = True
    with engine:
        engine.infer(_frames())
        assert SIM.build_started.wait(60)
    SIM.hold_build = False
    with engine:
        engine.infer(_frames())
        engine.wait_for_builds()
        assert engine.ready(1, 24, 40)


def test_a_build_that_finished_is_kept_when_closing_starts_just_after(simulated_gpu, tmp_path):
    """Bug: the cancel flag was checked after build_serialized_network returned, so an
    engine TensorRT had finished was thrown away when closing began a moment later."""
    from streamfix.engines.trt_build import GraphSource

    model, _ = load_model("video-x264-qp")
    cancel = threading.Event()
    request = BuildRequest(label="x", precision="fp16", profile=exact_profile(24, 40, 2), planes=2,
                           workspace_mib=64, opt_level=1, min_psnr_db=45.0, log_path=tmp_path / "x.log", cancel=cancel)
    SIM.after_build = cancel.set
    graphs = GraphSource(model)
    ctx = trt_standins._PyContext()
    ctx.push()
    try:
        import tensorrt

        engine, timing = build_serialized(tensorrt, graphs.variant("fp16"), request, b"", lambda line: None)
    finally:
        trt_standins._context_pop()
        graphs.close()
    assert engine.startswith(trt_standins.MAGIC) and cancel.is_set()


def test_a_build_under_load_stores_no_timings_and_is_rebuilt_on_an_idle_gpu(simulated_gpu, cpu_standby,
                                                                              video_model, tmp_path):
    """A background build is timed while the standby uses the same GPU: its timings
    must not enter the shared timing cache, and its engine is marked so that an open
    on an idle GPU ("wait") rebuilds it, while a standby open loads it as it is."""
    lines = []
    with TensorRTEngine(*video_model, _config(tmp_path, while_building="standby"), log=lines.append) as engine:
        engine.infer(_frames())
        engine.wait_for_builds()
    (sidecar,) = tmp_path.glob("*.json")
    assert json.loads(sidecar.read_text())["timed_under_load"] is True
    assert not list(tmp_path.glob("timing_*.cache"))

    with TensorRTEngine(*video_model, _config(tmp_path, while_building="standby"), log=lines.append) as engine:
        engine.infer(_frames())
        engine.wait_for_builds()
    assert len(_builds()) == 1 and any("built while the GPU was also serving frames" in line for line in lines)

    with TensorRTEngine(*video_model, _config(tmp_path, shapes=("40x24",)), log=lines.append) as engine:
        assert engine.loaded[0]["built"]
    assert len(_builds()) == 2 and "timed_under_load" not in json.loads(sidecar.read_text())
    assert list(tmp_path.glob("timing_*.cache"))


def test_waiting_for_another_process_lock_stops_when_the_engine_closes(tmp_path):
    """Bug: a closing engine whose background build waited for another process's
    build lock waited for that whole build (up to the hour-long lock timeout)."""
    cache = EngineCache(tmp_path)
    cancel = threading.Event()
    outcome = []
    held = FileLock(str(cache.lock_path(KEY)))
    held.acquire()

    def wait():
        try:
            cache.get_or_build(KEY, lambda: Built(b"engine", {}), log=lambda line: None, cancel=cancel)
        except LockWaitCancelled as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    cancel.set()
    waiter.join(60)
    held.release()
    assert not waiter.is_alive() and len(outcome) == 1 and "the engine is closing" in str(outcome[0])


def test_a_closing_engine_neither_exports_nor_computes_the_reference(simulated_gpu, cpu_standby, video_model,
                                                                     tmp_path, monkeypatch):
    """Bug: the gate's FP32 reference (seconds of CPU per frame at 1080p) was computed
    before the build started, so closing waited for it even when the build was then
    cancelled at its first step."""
    computed = []
    monkeypatch.setattr(trt_prepare, "reference_output", lambda *a: computed.append(1))
    SIM.hold_build = True
    with TensorRTEngine(*video_model, _config(tmp_path, while_building="standby"), log=lambda line: None) as engine:
        engine.infer(_frames())
        assert SIM.build_started.wait(60)
    assert computed == [] and context_balanced()


def test_a_cancelled_preparation_stops_before_the_onnx_export(video_model, tmp_path):
    model, info = video_model
    exported = []

    class Graphs:
        def path(self, fp16):
            exported.append(fp16)

    cancel = threading.Event()
    cancel.set()
    preparer = trt_prepare.ProfilePreparer(trt=None, cache=EngineCache(tmp_path), graphs=Graphs(), model=model,
                                           info=info, facts=None, config=_config(tmp_path), cancel=cancel,
                                           log=lambda line: None)
    with pytest.raises(EngineUnavailable, match="cancelled: the engine is closing"):
        preparer.prepare(exact_profile(24, 40, 2), gpu_busy=True)
    assert exported == []


def test_the_gate_reference_never_touches_process_wide_tf32_flags(monkeypatch):
    """Bug: the reference switched PyTorch's process-wide TF32 flags off and back on;
    two builds in two threads (and the standby meanwhile) raced on them. The
    reference runs on the CPU, where there is no TF32 to switch."""
    written = []

    class Flags:
        def __setattr__(self, name, value):
            written.append(name)

    monkeypatch.setattr(torch.backends, "cudnn", Flags())
    monkeypatch.setattr(torch.backends.cuda, "matmul", Flags())
    model, _ = load_model("video-x264-qp")
    out = fp16_gate.reference_output(model, sample_frames(2, 1, 16, 16, count=1))
    assert out.shape == (1, 1, 16, 16) and np.isfinite(out).all() and written == []
