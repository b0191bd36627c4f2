"""TensorRTEngine end to end on a simulated GPU: streamfix's own glue, not TensorRT.

No GPU or TensorRT here, so stand-ins replace the two external modules: a `tensorrt`
whose "engine" is the ONNX graph it was built from (executed by ONNX Runtime when
`execute_async_v3` runs), and a `pycuda.driver` whose device memory is host memory
addressed by integers. They follow the documented call signatures of TensorRT 10/11
and pycuda, and record what they are asked. What this checks: the build -> FP16 gate
-> cache -> load -> run path through every streamfix module, the gate's ladder on
real graph variants, page-locked slots and tickets, the cache on a second open, the
rebuild of an engine TensorRT refuses, and the progress lines. The real thing is
tests/test_tensorrt_gpu.py, run on a GPU by benchmarks/run_gpu_checks.sh.
"""

import enum
import itertools
import json
import sys
import time
import types

import numpy as np
import onnxruntime as ort
import pytest

from streamfix.engines import trt_build
from streamfix.engines.fp16_gate import output_psnr, reference_output, sample_frames
from streamfix.engines.tensorrt_engine import TensorRTConfig, TensorRTEngine
from streamfix.core.weights import load_model

MAGIC = b"SIMULATED-ENGINE\n"


# -- a stand-in tensorrt module -----------------------------------------------------------
class _Severity(enum.Enum):
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)


class _ILogger:
    Severity = _Severity

    def __init__(self):
        pass


class _ProgressMonitor:
    def __init__(self):
        pass


class _TimingCache:
    def __init__(self, data):
        self.data = bytes(data)

    def serialize(self):
        return self.data + b"+timed"


class _Profile:
    def set_shape(self, name, lo, opt, hi):
        self.shapes = (name, tuple(lo), tuple(opt), tuple(hi))


class _BuilderConfig:
    def __init__(self, log):
        self.log, self.progress_monitor, self.builder_optimization_level = log, None, None
        self.profiles, self.cleared = [], []

    def set_memory_pool_limit(self, pool, size):
        self.workspace = size

    def clear_flag(self, flag):
        self.cleared.append(flag)

    def add_optimization_profile(self, profile):
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def create_timing_cache(self, data):
        return _TimingCache(data)

    def set_timing_cache(self, cache, ignore_mismatch):
        self.timing = cache
        return True

    def get_timing_cache(self):
        return self.timing


class _Network:
    def __init__(self, flags):
        self.flags, self.onnx = flags, None

    def get_input(self, i):
        return types.SimpleNamespace(name="input")


class _Builder:
    def __init__(self, logger):
        self.logger = logger

    def create_network(self, flags):
        SIM.log.append(("network flags", flags))
        return _Network(flags)

    def create_builder_config(self):
        return _BuilderConfig(SIM.log)

    def create_optimization_profile(self):
        return _Profile()

    def build_serialized_network(self, network, config):
        monitor = config.progress_monitor
        steps = 500 if SIM.slow_build else 2  # slow: 5 s unless cancelled
        monitor.phase_start("Building engine", None, steps)
        for step in range(steps):
            if not monitor.step_complete("Building engine", step):
                return None
            if SIM.slow_build:
                time.sleep(0.01)
        monitor.phase_finish("Building engine")
        (profile,) = config.profiles
        SIM.log.append(("build", profile.shapes, config.builder_optimization_level))
        header = json.dumps({"profile": profile.shapes[1:]}).encode()
        return MAGIC + header + b"\n" + network.onnx


class _Parser:
    num_errors = 0

    def __init__(self, network, logger):
        self.network = network

    def parse(self, data):
        self.network.onnx = bytes(data)
        return True


class _Context:
    def __init__(self, engine):
        self.engine, self.addresses, self.shape = engine, {}, None

    def set_input_shape(self, name, shape):
        self.shape = tuple(shape)
        return True

    def get_tensor_shape(self, name):
        return (self.shape[0], 1, *self.shape[2:])

    def set_tensor_address(self, name, pointer):
        self.addresses[name] = pointer
        return True

    def execute_async_v3(self, stream):
        n = int(np.prod(self.shape))
        x = DEVICE_MEMORY[self.addresses["input"]][: n * 4].view(np.float32).reshape(self.shape)
        y = self.engine.session.run(None, {"input": x.copy()})[0]
        DEVICE_MEMORY[self.addresses["output"]][: y.nbytes] = y.reshape(-1).view(np.uint8)
        SIM.log.append(("execute", self.shape, stream))
        return True


class _Engine:
    num_io_tensors = 2
    device_memory_size_v2 = 1 << 20

    def __init__(self, data):
        header, graph = data[len(MAGIC):].split(b"\n", 1)
        self.profile = json.loads(header)["profile"]
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.log_severity_level = 1, 3
        self.session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])

    def get_tensor_name(self, i):
        return ("input", "output")[i]

    def get_tensor_mode(self, name):
        return name

    def get_tensor_dtype(self, name):
        return "float32"

    def get_tensor_profile_shape(self, name, index):
        return self.profile

    def create_execution_context(self):
        return _Context(self)


class _Runtime:
    def __init__(self, logger):
        pass

    def deserialize_cuda_engine(self, data):
        return _Engine(bytes(data)) if bytes(data).startswith(MAGIC) else None


def _stand_in_tensorrt(version: str) -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.ILogger, trt.IProgressMonitor, trt.Builder, trt.OnnxParser, trt.Runtime = (
        _ILogger, _ProgressMonitor, _Builder, _Parser, _Runtime)
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=1)
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE=0)
    trt.BuilderFlag = types.SimpleNamespace(TF32="TF32")
    trt.TensorIOMode = types.SimpleNamespace(INPUT="input", OUTPUT="output")
    trt.nptype = np.dtype
    return trt


# -- a stand-in pycuda.driver: device memory is host memory behind integer addresses -----
DEVICE_MEMORY: dict[int, np.ndarray] = {}
_ADDRESSES = itertools.count(0x10000, 0x10000)


class _DeviceAllocation:
    def __init__(self, nbytes):
        self.address = next(_ADDRESSES)
        DEVICE_MEMORY[self.address] = np.zeros(nbytes, np.uint8)

    def __int__(self):
        return self.address

    def free(self):
        SIM.log.append(("free device", DEVICE_MEMORY.pop(self.address).nbytes))


class _HostAllocation:
    def __init__(self, count, dtype):
        self.raw = np.zeros(count, dtype)
        self.__array_interface__ = self.raw.__array_interface__

    def free(self):
        SIM.log.append(("free host", self.raw.nbytes))


def _stand_in_pycuda() -> types.ModuleType:
    cuda = types.ModuleType("pycuda.driver")

    class Error(Exception):
        pass

    class Device:
        def __init__(self, index):
            self.index = index

        count = staticmethod(lambda: 1)
        compute_capability = lambda self: (9, 0)  # noqa: E731
        name = lambda self: "Simulated GPU"  # noqa: E731
        total_memory = lambda self: 80 << 30  # noqa: E731

        def retain_primary_context(self):
            return types.SimpleNamespace(push=lambda: SIM.depth.append(1),
                                         detach=lambda: SIM.log.append(("detach",)))

    class Stream:
        handle = 42

        def wait_for_event(self, event):
            pass

        def synchronize(self):
            pass

    class Event:
        def record(self, stream=None):
            pass

        def synchronize(self):
            pass

    def htod(dest, src, stream=None):
        DEVICE_MEMORY[int(dest)][: src.nbytes] = np.ascontiguousarray(src).reshape(-1).view(np.uint8)

    def dtoh(dest, src, stream=None):
        dest.reshape(-1).view(np.uint8)[:] = DEVICE_MEMORY[int(src)][: dest.nbytes]

    cuda.Error, cuda.Device, cuda.Stream, cuda.Event = Error, Device, Stream, Event
    cuda.Context = types.SimpleNamespace(pop=lambda: SIM.depth.pop())
    cuda.init = lambda: None
    cuda.mem_alloc = _DeviceAllocation
    cuda.pagelocked_empty = lambda count, dtype: np.asarray(_HostAllocation(count, dtype))
    cuda.memcpy_htod_async, cuda.memcpy_dtoh_async = htod, dtoh
    cuda.mem_get_info = lambda: (70 << 30, 80 << 30)
    return cuda


SIM = types.SimpleNamespace(log=[], depth=[], slow_build=False)


@pytest.fixture
def simulated_gpu(monkeypatch):
    SIM.log.clear()
    SIM.depth.clear()
    SIM.slow_build = False
    cuda = _stand_in_pycuda()
    package = types.ModuleType("pycuda")
    package.driver = cuda
    monkeypatch.setitem(sys.modules, "pycuda", package)
    monkeypatch.setitem(sys.modules, "pycuda.driver", cuda)
    monkeypatch.setitem(sys.modules, "tensorrt", _stand_in_tensorrt("10.13.0.35"))
    monkeypatch.setattr(trt_build, "_LOGGER", None)  # one logger per (simulated) process
    return SIM


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
    assert ("detach",) in SIM.log and SIM.depth == []  # every push popped, context released
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
    monkeypatch.setitem(sys.modules, "tensorrt", _stand_in_tensorrt("11.4.0"))
    model, info = video_model
    with TensorRTEngine(model, info, _config(tmp_path, fp16=False, shapes=("40x24",)),
                        log=lambda line: None) as engine:
        meta = engine.loaded[0]
    assert meta["variant"] == "fp32" and len(meta["gate"]["steps"]) == 1
    assert ("network flags", 0) in SIM.log
    assert "_fp32_40x24_b1-3_simulated-gpu-sm90_trt11.4.0_" in meta["path"]


@pytest.fixture
def cpu_standby(monkeypatch):
    """The standby engine is PyTorch on the engine's GPU; here, on the CPU."""
    from streamfix.engines import torch_engine

    class CpuTorchEngine(torch_engine.TorchEngine):
        def __init__(self, model, info, config):
            super().__init__(model, info, torch_engine.TorchConfig(device="cpu", threads=1))

    monkeypatch.setattr(torch_engine, "TorchEngine", CpuTorchEngine)


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
    model, info = video_model
    SIM.slow_build = True
    lines = []
    started = time.monotonic()
    with TensorRTEngine(model, info, _config(tmp_path, while_building="standby"), log=lines.append) as engine:
        engine.infer(_frames(1))  # starts the build, served by the standby
    assert time.monotonic() - started < 4.0
    assert any("failed" in line and "cancelled" in line for line in lines)
    assert not list(tmp_path.glob("*.engine")) and not list(tmp_path.glob("*.json"))
