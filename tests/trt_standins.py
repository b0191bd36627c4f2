"""Stand-ins for `tensorrt`, `pycuda.driver` and libcuda, for testing streamfix's
TensorRT glue on a machine without a GPU (used through the `simulated_gpu` fixture).

tensorrt: its "engine" is the ONNX graph it was built from, run by ONNX Runtime when
`execute_async_v3` is called. Calls follow TensorRT 10/11's Python signatures, and
every call that needs the GPU checks that a live CUDA context is current on the
calling thread.

pycuda.driver: device memory is host memory behind integer addresses. Contexts follow
pycuda 2025.1's C++ (src/cpp/cuda.hpp) and the driver's rules:
- each thread has a driver stack of current contexts, and pycuda keeps its own
  per-thread stack beside it;
- `ctx.push()` first pops the driver's current context when pycuda's stack is not
  empty, then pushes; `Context.pop()` pops both and pushes pycuda's new top again;
- `detach()` of a primary context calls cuDevicePrimaryCtxRelease, which never pops
  the context: detached while current, it stays current; detached while not current
  (on its creating thread) it is pushed first and left pushed; on another thread
  nothing is released at all;
- a stream or event is destroyed when its Python object goes, which needs its
  context alive and current or activatable on this thread; otherwise pycuda warns
  and leaks it (recorded in SIM.leaks).

Failure switches, `SIM.fail`, each failing the way the real bindings do:
  "runtime", "builder": the factory returns NULL, which pybind11 turns into
      TypeError("pybind11::init(): factory function returned nullptr")
  "build": build_serialized_network returns None
  "deserialize": deserialize_cuda_engine returns None
  "execute": execute_async_v3 returns False
  "stream": cuStreamCreate fails (pycuda raises its MemoryError)
Build pacing: SIM.hold_build keeps a build stepping until its progress monitor asks
to stop (or 3000 steps pass); SIM.build_started is set when a build begins;
SIM.after_build runs when a build has produced its engine.
"""

from __future__ import annotations

import enum
import itertools
import json
import threading
import time
import types

import numpy as np
import onnxruntime as ort

MAGIC = b"SIMULATED-ENGINE\n"
NULLPTR = "pybind11::init(): factory function returned nullptr"

SIM = types.SimpleNamespace()


def reset() -> None:
    SIM.log = []
    SIM.fail = set()
    SIM.hold_build = False
    SIM.build_started = threading.Event()
    SIM.after_build = None
    SIM.lock = threading.Lock()
    SIM.driver_stacks = {}  # thread id -> driver-level context stack
    SIM.pycuda_stacks = {}  # thread id -> pycuda's stack
    SIM.retains = 0
    SIM.releases = 0
    SIM.created = {"Stream": 0, "Event": 0}
    SIM.destroyed = {"Stream": 0, "Event": 0}
    SIM.leaks = []
    SIM.stream_flags = []
    SIM.event_flags = []
    SIM.driver_cuda = (13, 0)


reset()


# -- the driver level: per-thread stacks ---------------------------------------------------
class _Primary:
    """The device's primary context (one per device); alive while retained."""

    refcount = 0

    @property
    def alive(self) -> bool:
        return self.refcount > 0


PRIMARY = _Primary()


def driver_stack() -> list:
    with SIM.lock:
        return SIM.driver_stacks.setdefault(threading.get_ident(), [])


def _pycuda_stack() -> list:
    with SIM.lock:
        return SIM.pycuda_stacks.setdefault(threading.get_ident(), [])


def require_current_context(what: str) -> None:
    stack = driver_stack()
    if not stack or not stack[-1].alive:
        raise RuntimeError(f"stand-in: {what} called with no live CUDA context current on this thread")


def pop_current_context() -> None:
    """Stands in for cuda_driver.pop_current_context (cuCtxPopCurrent)."""
    from streamfix.engines.cuda_driver import DriverError

    stack = driver_stack()
    if not stack:
        raise DriverError("cuCtxPopCurrent failed with CUDA error 201")
    stack.pop()


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
    def __init__(self):
        self.progress_monitor, self.builder_optimization_level = None, None
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


def _factory(kind: str) -> None:
    require_current_context(f"trt.{kind}()")
    if kind.lower() in SIM.fail:
        raise TypeError(NULLPTR)


class _Builder:
    def __init__(self, logger):
        _factory("Builder")
        self.logger = logger

    def create_network(self, flags):
        SIM.log.append(("network flags", flags))
        return _Network(flags)

    def create_builder_config(self):
        return _BuilderConfig()

    def create_optimization_profile(self):
        return _Profile()

    def build_serialized_network(self, network, config):
        require_current_context("build_serialized_network")
        monitor = config.progress_monitor
        SIM.build_started.set()
        monitor.phase_start("Building engine", None, 2)
        steps = 3000 if SIM.hold_build else 2
        for step in range(steps):
            if not monitor.step_complete("Building engine", step):
                return None
            if SIM.hold_build:
                time.sleep(0.01)
        monitor.phase_finish("Building engine")
        if "build" in SIM.fail:
            return None
        (profile,) = config.profiles
        SIM.log.append(("build", profile.shapes, config.builder_optimization_level))
        header = json.dumps({"profile": profile.shapes[1:]}).encode()
        if SIM.after_build is not None:
            SIM.after_build()
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
        require_current_context("execute_async_v3")
        if "execute" in SIM.fail:
            return False
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
        _factory("Runtime")

    def deserialize_cuda_engine(self, data):
        require_current_context("deserialize_cuda_engine")
        if "deserialize" in SIM.fail or not bytes(data).startswith(MAGIC):
            return None
        return _Engine(bytes(data))


def stand_in_tensorrt(version: str = "10.13.0.35") -> types.ModuleType:
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


# -- a stand-in pycuda.driver ---------------------------------------------------------------
DEVICE_MEMORY: dict[int, np.ndarray] = {}
_ADDRESSES = itertools.count(0x10000, 0x10000)


class Error(Exception):
    pass


class LogicError(Error):
    pass


class CudaMemoryError(Error):
    pass


class _PyContext:
    """pycuda's `primary_context` object (one per retain)."""

    def __init__(self):
        self.valid = True
        self.thread = threading.get_ident()
        SIM.retains += 1
        PRIMARY.refcount += 1

    def push(self):
        if _pycuda_stack():
            driver_stack().pop()  # prepare_context_switch
        driver_stack().append(PRIMARY)
        _pycuda_stack().append(self)

    def _release(self):
        SIM.releases += 1
        PRIMARY.refcount -= 1

    def detach(self):
        if not self.valid:
            raise LogicError("context::detach failed: invalid device context - cannot detach from invalid context")
        active = _current_context() is self
        if active:
            self._release()
        elif self.thread == threading.get_ident():
            driver_stack().append(PRIMARY)  # cuCtxPushCurrent, then the release does not pop
            self._release()
        self.valid = False
        if active:
            new_active = _current_context(self)
            if new_active is not None:
                driver_stack().append(PRIMARY)


def _current_context(except_=None):
    stack = _pycuda_stack()
    while stack:
        top = stack[-1]
        if top is not except_ and top.valid:
            return top
        stack.pop()
    return None


def _context_pop():
    if _pycuda_stack():
        driver_stack().pop()
    stack = _pycuda_stack()
    if not stack:
        raise LogicError("context::pop failed: invalid device context - cannot pop non-current context")
    stack.pop()
    if _current_context() is not None:
        driver_stack().append(PRIMARY)


def _acquire_context():
    ctx = _current_context()
    if ctx is None:
        raise LogicError("explicit_context_dependent failed: invalid device context - no currently active context?")
    return ctx


class _ContextDependent:
    kind = ""

    def __init__(self, flags=0):
        self._ctx = _acquire_context()
        SIM.created[self.kind] += 1

    def __del__(self):
        ctx = getattr(self, "_ctx", None)
        if ctx is None:
            return
        if not ctx.valid:
            SIM.leaks.append((self.kind, "dead context"))
        elif _current_context() is not ctx and ctx.thread != threading.get_ident():
            SIM.leaks.append((self.kind, "out-of-thread context"))
        else:
            SIM.destroyed[self.kind] += 1


class Stream(_ContextDependent):
    kind = "Stream"

    def __init__(self, flags=0):
        if "stream" in SIM.fail:
            raise CudaMemoryError("cuStreamCreate failed: out of memory")
        super().__init__(flags)
        SIM.stream_flags.append(flags)
        self.handle = 40 + SIM.created["Stream"]

    def wait_for_event(self, event):
        pass

    def synchronize(self):
        pass


class Event(_ContextDependent):
    kind = "Event"

    def __init__(self, flags=0):
        super().__init__(flags)
        SIM.event_flags.append(flags)

    def record(self, stream=None):
        return self

    def synchronize(self):
        pass


class _DeviceAllocation:
    def __init__(self, nbytes):
        _acquire_context()
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


def stand_in_pycuda() -> types.ModuleType:
    cuda = types.ModuleType("pycuda.driver")

    class Device:
        def __init__(self, index):
            self.index = index

        count = staticmethod(lambda: 1)
        compute_capability = lambda self: (9, 0)  # noqa: E731
        name = lambda self: "Simulated GPU"  # noqa: E731
        total_memory = lambda self: 80 << 30  # noqa: E731

        def retain_primary_context(self):
            return _PyContext()

    def htod(dest, src, stream=None):
        require_current_context("memcpy_htod_async")
        DEVICE_MEMORY[int(dest)][: src.nbytes] = np.ascontiguousarray(src).reshape(-1).view(np.uint8)

    def dtoh(dest, src, stream=None):
        require_current_context("memcpy_dtoh_async")
        dest.reshape(-1).view(np.uint8)[:] = DEVICE_MEMORY[int(src)][: dest.nbytes]

    def pagelocked_empty(count, dtype):
        _acquire_context()
        return np.asarray(_HostAllocation(count, dtype))

    cuda.Error, cuda.LogicError, cuda.MemoryError = Error, LogicError, CudaMemoryError
    cuda.Device, cuda.Stream, cuda.Event = Device, Stream, Event
    cuda.Context = types.SimpleNamespace(pop=_context_pop, get_current=_current_context)
    cuda.event_flags = types.SimpleNamespace(DEFAULT=0, BLOCKING_SYNC=1, DISABLE_TIMING=2, INTERPROCESS=4)
    cuda.init = lambda: None
    cuda.mem_alloc = _DeviceAllocation
    cuda.pagelocked_empty = pagelocked_empty
    cuda.memcpy_htod_async, cuda.memcpy_dtoh_async = htod, dtoh
    cuda.mem_get_info = lambda: (70 << 30, 80 << 30)
    return cuda


def install(monkeypatch, tensorrt_version: str = "10.13.0.35") -> types.SimpleNamespace:
    """Put the stand-ins in place of tensorrt, pycuda and libcuda; returns SIM."""
    import sys

    from streamfix.engines import cuda_driver, trt_build

    reset()
    PRIMARY.refcount = 0
    cuda = stand_in_pycuda()
    package = types.ModuleType("pycuda")
    package.driver = cuda
    monkeypatch.setitem(sys.modules, "pycuda", package)
    monkeypatch.setitem(sys.modules, "pycuda.driver", cuda)
    monkeypatch.setitem(sys.modules, "tensorrt", stand_in_tensorrt(tensorrt_version))
    monkeypatch.setattr(cuda_driver, "pop_current_context", pop_current_context)
    monkeypatch.setattr(cuda_driver, "driver_cuda_version", lambda: SIM.driver_cuda)
    monkeypatch.setattr(trt_build, "_LOGGER", None)  # one logger per (simulated) process
    return SIM


def context_balanced() -> bool:
    """Every retain released, no context left current on any thread, nothing leaked,
    and every stream and event destroyed."""
    import gc

    gc.collect()
    return (SIM.retains == SIM.releases and all(not s for s in SIM.driver_stacks.values())
            and all(not s for s in SIM.pycuda_stacks.values()) and not SIM.leaks
            and SIM.created == SIM.destroyed)


def use_cpu_standby(monkeypatch) -> None:
    """The standby engine is PyTorch on the engine's GPU; make it PyTorch on the CPU."""
    from streamfix.engines import torch_engine

    class CpuTorchEngine(torch_engine.TorchEngine):
        def __init__(self, model, info, config):
            super().__init__(model, info, torch_engine.TorchConfig(device="cpu", threads=1))

    monkeypatch.setattr(torch_engine, "TorchEngine", CpuTorchEngine)
