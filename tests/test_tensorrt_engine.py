"""The TensorRT engine's behaviour that needs no GPU: why it is unavailable (one
line), its strict config, the name-based runner's checks (against a stand-in for the
tensorrt module), background builds, and `streamfix engine`."""

import dataclasses
import json
import sys
import threading
import types
from pathlib import Path

import numpy as np
import pytest

from streamfix.cli.main import main
from streamfix.core.yaml_config import ConfigError
from streamfix.engines.background_build import BackgroundBuilds
from streamfix.engines.base import EngineUnavailable
from streamfix.engines.engine_cache import Built, EngineCache, EngineKey
from streamfix.engines.select import engine_config
from streamfix.engines.tensorrt_engine import TensorRTConfig, TensorRTEngine, check_available, device_index
from streamfix.engines.trt_runner import EngineRejected, TensorRTError, TrtRunner
from streamfix.engines.trt_shapes import exact_profile
from streamfix.core.weights import load_model


# -- availability: one line each -------------------------------------------------------
def _one_line_reason(config=TensorRTConfig(device="cuda")) -> str:
    with pytest.raises(EngineUnavailable) as info:
        check_available(config)
    reason = str(info.value)
    assert "\n" not in reason
    return reason


def test_cpu_device_is_refused():
    assert "NVIDIA GPUs only" in _one_line_reason(TensorRTConfig(device="cpu"))
    assert device_index("cuda:3") == 3 and device_index("auto") == 0


def test_missing_tensorrt_package_names_the_extra_for_the_driver(monkeypatch):
    from streamfix.engines import cuda_driver

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    monkeypatch.setattr(cuda_driver, "driver_cuda_version", lambda: (12, 8))
    assert _one_line_reason() == 'the tensorrt package is not installed: pip install "streamfix[tensorrt-cu12]"'


def _fake_trt(monkeypatch, version: str) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__=version))


def test_old_tensorrt(monkeypatch):
    _fake_trt(monkeypatch, "8.6.1")
    assert "8.6.1 is too old" in _one_line_reason()


def test_missing_pycuda(monkeypatch):
    _fake_trt(monkeypatch, "10.13.0.35")
    monkeypatch.setitem(sys.modules, "pycuda", None)
    assert _one_line_reason().startswith("pycuda is not installed")


def _fake_driver(monkeypatch, *, init_error: str | None = None, count: int = 1):
    driver = types.ModuleType("pycuda.driver")

    class Error(Exception):
        pass

    def init():
        if init_error:
            raise Error(init_error)

    class Device:
        def __init__(self, index):
            self.index = index

        @staticmethod
        def count():
            return count

        def compute_capability(self):
            return (9, 0)

        def name(self):
            return "NVIDIA H100 80GB HBM3"

        def total_memory(self):
            return 80 << 30

    driver.Error, driver.init, driver.Device = Error, init, Device
    package = types.ModuleType("pycuda")
    package.driver = driver
    monkeypatch.setitem(sys.modules, "pycuda", package)
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver)


def test_no_driver(monkeypatch):
    _fake_trt(monkeypatch, "11.4.0")
    _fake_driver(monkeypatch, init_error="cuInit failed: no CUDA-capable device is detected")
    assert "NVIDIA driver is not usable here" in _one_line_reason()


def test_no_gpu_and_wrong_index(monkeypatch):
    _fake_trt(monkeypatch, "11.4.0")
    _fake_driver(monkeypatch, count=0)
    assert _one_line_reason() == "no CUDA GPU found"
    _fake_driver(monkeypatch, count=1)
    assert _one_line_reason(TensorRTConfig(device="cuda:2")) == "there is no CUDA device 2 (found 1)"


def test_opening_the_engine_without_tensorrt_says_why():
    model, info = load_model("video-x264-qp")
    with pytest.raises(EngineUnavailable, match="tensorrt"):
        with TensorRTEngine(model, info, TensorRTConfig(device="cuda")):
            pass


# -- config ----------------------------------------------------------------------------
def test_config_loads_strictly_from_yaml_data(tmp_path):
    config = engine_config("tensorrt", {"shapes": ["1920x1080", "64x64-640x480"], "cache_dir": str(tmp_path),
                                        "while_building": "wait", "max_batch": 4})
    assert config.shapes == ("1920x1080", "64x64-640x480") and config.cache_dir == tmp_path
    with pytest.raises(ConfigError, match="unknown key 'max_bach'"):
        engine_config("tensorrt", {"max_bach": 4})
    with pytest.raises(ConfigError, match="bad shape '1920'"):
        engine_config("tensorrt", {"shapes": ["1920"]})
    with pytest.raises(ConfigError, match="while_building"):
        engine_config("tensorrt", {"while_building": "later"})
    with pytest.raises(ValueError, match="opt_level"):
        TensorRTConfig(opt_level=7)


# -- the name-based runner, against a stand-in tensorrt module ---------------------------
class _Context:
    def __init__(self, refuse: str | None):
        self.refuse = refuse
        self.calls: list[tuple] = []
        self.shape = None

    def set_input_shape(self, name, shape):
        self.calls.append(("shape", name, shape))
        self.shape = shape
        return self.refuse != "shape"

    def get_tensor_shape(self, name):
        return (self.shape[0], 1, *self.shape[2:])

    def set_tensor_address(self, name, pointer):
        self.calls.append(("address", name, pointer))
        return self.refuse != f"address:{name}"

    def execute_async_v3(self, stream):
        self.calls.append(("execute", stream))
        return self.refuse != "execute"


class _Engine:
    num_io_tensors = 2
    device_memory_size_v2 = 12345

    def __init__(self, refuse):
        self.context = _Context(refuse)

    def get_tensor_name(self, i):
        return ("input", "output")[i]

    def get_tensor_mode(self, name):
        return name.upper()

    def get_tensor_dtype(self, name):
        return "float32"

    def get_tensor_profile_shape(self, name, profile):
        return [(1, 2, 48, 64), (4, 2, 48, 64), (4, 2, 48, 64)]

    def create_execution_context(self):
        return self.context


def _stand_in_trt(refuse: str | None = None, loads: bool = True):
    engine = _Engine(refuse)

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            return engine if loads else None

    return types.SimpleNamespace(__version__="10.13.0", Runtime=Runtime, nptype=np.dtype,
                                 TensorIOMode=types.SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT")), engine


def test_runner_reads_io_and_profile_by_name():
    trt, engine = _stand_in_trt()
    runner = TrtRunner(trt, None, b"engine")
    assert (runner.input, runner.output, runner.planes) == ("input", "output", 2)
    assert runner.profile == exact_profile(48, 64, 4) and runner.activation_bytes == 12345
    assert runner.output_shape((3, 2, 48, 64)) == (3, 1, 48, 64)
    runner.enqueue(100, 200, 7)
    runner.output_shape((3, 2, 48, 64))
    runner.enqueue(100, 200, 7)  # same shape and buffers: nothing set again
    runner.enqueue(300, 400, 7)  # the other in-flight slot
    assert engine.context.calls == [
        ("shape", "input", (3, 2, 48, 64)), ("address", "input", 100), ("address", "output", 200), ("execute", 7),
        ("execute", 7), ("address", "input", 300), ("address", "output", 400), ("execute", 7)]


def test_runner_refuses_shapes_outside_the_profile():
    runner = TrtRunner(_stand_in_trt()[0], None, b"engine")
    with pytest.raises(TensorRTError, match="input 'input': shape \\(5, 2, 48, 64\\) is outside"):
        runner.output_shape((5, 2, 48, 64))
    with pytest.raises(TensorRTError, match="outside"):
        runner.output_shape((1, 2, 48, 65))


@pytest.mark.parametrize("refuse,message", [
    ("shape", "set_input_shape\\('input', \\(1, 2, 48, 64\\)\\)"),
    ("address:input", "set_tensor_address\\('input'\\)"),
    ("address:output", "set_tensor_address\\('output'\\)"),
    ("execute", "execute_async_v3 for input 'input'"),
])
def test_every_false_return_raises_with_the_tensor_name(refuse, message):
    runner = TrtRunner(_stand_in_trt(refuse)[0], None, b"engine")
    with pytest.raises(TensorRTError, match=message):
        runner.output_shape((1, 2, 48, 64))
        runner.enqueue(1, 2, 3)


def test_an_engine_tensorrt_cannot_load_is_rejected_for_rebuild():
    with pytest.raises(EngineRejected, match="could not deserialize"):
        TrtRunner(_stand_in_trt(loads=False)[0], None, b"engine")


# -- background builds ------------------------------------------------------------------
def test_background_build_reports_building_then_ready():
    gate = threading.Event()
    done = []
    builds = BackgroundBuilds(lambda key: gate.wait(10) and done.append(key), log=lambda line: None)
    assert builds.request("720p") == "building"
    assert builds.request("720p") == "building" and builds.pending
    gate.set()
    builds.join()
    assert builds.state("720p") == "ready" and done == ["720p"] and not builds.pending


def test_background_build_failure_is_logged_once_and_not_retried():
    lines, calls = [], []

    def failing(key):
        calls.append(key)
        raise RuntimeError("builder ran out of memory")

    builds = BackgroundBuilds(failing, log=lines.append)
    builds.request("1080p")
    builds.join()
    assert builds.request("1080p") == "failed" and calls == ["1080p"]
    assert lines == ["background build for 1080p failed: builder ran out of memory"]
    assert isinstance(builds.error("1080p"), RuntimeError)


# -- the CLI ----------------------------------------------------------------------------
def test_engine_list_shows_cached_engines(tmp_path, capsys):
    key = EngineKey(model="video-x264-qp", onnx_sha256="0" * 64, tensorrt="10.13.0", gpu="NVIDIA H100 80GB HBM3",
                    compute_capability="9.0", precision="fp16", profile=exact_profile(720, 1280, 8),
                    workspace_mib=4096, opt_level=3, min_psnr_db=45.0)
    EngineCache(tmp_path).get_or_build(key, lambda: Built(b"x" * 2048, {"variant": "fp16-tail1"}),
                                       log=lambda line: None)
    assert main(["engine", "list", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"TensorRT engine cache: {tmp_path}"
    assert out[1].split()[:5] == ["ok", "video-x264-qp", "fp16-tail1", "1280x720", "batch"]
    assert "NVIDIA H100 80GB HBM3 (sm 9.0), TensorRT 10.13.0" in out[1] and key.stem() in out[1]


def test_engine_build_without_tensorrt_is_one_line_exit_2(tmp_path, capsys):
    assert main(["engine", "build", "--cache-dir", str(tmp_path), "--shapes", "64x48"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("streamfix: error: cannot build TensorRT engines here: ")


def test_engine_build_refuses_a_bad_shape(capsys):
    assert main(["engine", "build", "--shapes", "1920by1080"]) == 2
    assert "bad shape '1920by1080'" in capsys.readouterr().err


def test_config_dataclass_has_the_documented_defaults():
    defaults = {f.name: f.default for f in dataclasses.fields(TensorRTConfig) if f.name != "cache_dir"}
    assert defaults["fp16"] is True and defaults["max_batch"] == 8 and defaults["in_flight"] == 2
    assert defaults["while_building"] == "standby" and defaults["min_psnr_db"] == 45.0
    assert isinstance(TensorRTConfig().cache_dir, Path)
    assert json.dumps(TensorRTConfig().precision) == '"fp16"'
