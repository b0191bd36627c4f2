"""choose(): which backend runs, and exactly one reason per backend it skipped."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from streamfix.engines import select
from streamfix.engines.onnxruntime_engine import OnnxRuntimeConfig
from streamfix.engines.select import Backend, choose, describe_engines
from streamfix.engines.tiling import DEFAULT_CPU_MEMORY_MB, TiledEngine, TilingConfig, pixels_for_budget
from streamfix.engines.torch_engine import TorchConfig
from streamfix.core.errors import OptionError
from streamfix.core.weights import load_model

torch.set_num_threads(1)
needs_cpu_only = pytest.mark.skipif(torch.cuda.is_available(), reason="describes a machine without a GPU")


@pytest.fixture(scope="module")
def bundled():
    return load_model("video-x264-qp")


@pytest.fixture
def measured(monkeypatch, tmp_path):
    """`--engine auto` on the CPU times its candidates (engines/auto_choice.py): here the
    timings are given, so the choice is deterministic and takes no time. Times in the
    dict override; every other candidate is slow; all keep the gain."""
    from streamfix.engines import auto_choice

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    times: dict[str, float] = {"onnxruntime fp32": 1.0}

    def measure(candidates, build, calibration):
        return [auto_choice.Measurement(c.label, seconds=times.get(c.label, 9.0), gain_db=0.3) for c in candidates]

    monkeypatch.setattr(auto_choice, "measure", measure)
    monkeypatch.setattr(auto_choice, "reference_output", lambda model, x: x[:, :1])
    return times


@pytest.fixture
def configs(tmp_path):
    return {
        "onnxruntime": OnnxRuntimeConfig(threads=1, cache_dir=tmp_path),
        "torch": TorchConfig(threads=1),
    }


def break_backend(monkeypatch, name: str) -> None:
    """Make `name`'s module fail to import, as when its package is not installed."""
    row = select.BACKENDS[name]
    broken = Backend(f"streamfix.engines.not_installed_{name}", row.config_class, row.engine_class, row.install_hint)
    monkeypatch.setitem(select.BACKENDS, name, broken)


@needs_cpu_only
def test_auto_on_a_cpu_takes_the_measured_fastest(bundled, configs, measured):
    model, info = bundled
    lines: list[str] = []
    engine, fallbacks = choose(model, info, log=lines.append, configs=configs)
    assert (engine.name, engine.device) == ("onnxruntime", "cpu")
    assert [f.engine for f in fallbacks] == ["tensorrt"]
    assert lines[0] == str(fallbacks[0])
    assert lines[0].startswith("engine tensorrt not used: ") and "\n" not in lines[0]
    assert lines[-1].startswith("engine auto on this CPU: onnxruntime fp32: fastest of ")
    x = np.random.default_rng(0).random((2, 2, 24, 31), dtype=np.float32)
    with engine:
        assert engine.infer(x).shape == (2, 1, 24, 31)


@needs_cpu_only
def test_requesting_tensorrt_here_gives_the_reason_in_one_line(bundled):
    model, info = bundled
    lines: list[str] = []
    with pytest.raises(OptionError) as err:
        choose(model, info, engine="tensorrt", log=lines.append)
    message = str(err.value)
    assert message.startswith("engine tensorrt cannot be used: ") and "\n" not in message
    assert lines == [], "an explicit request is an error, not a logged fallback"


def test_missing_onnxruntime_falls_back_to_torch_with_one_line_each(monkeypatch, bundled, configs, measured):
    break_backend(monkeypatch, "tensorrt")
    break_backend(monkeypatch, "onnxruntime")
    break_backend(monkeypatch, "openvino")
    model, info = bundled
    lines: list[str] = []
    engine, fallbacks = choose(model, info, device="cpu", precision="fp32", log=lines.append, configs=configs)
    assert engine.name == "torch"
    assert [f.engine for f in fallbacks] == ["tensorrt", "onnxruntime", "openvino"]
    assert lines == [str(f) for f in fallbacks] + ["engine auto on this CPU: torch fp32: the only candidate"]
    assert "not_installed_onnxruntime" in lines[1] and "pip install onnxruntime" in lines[1]
    assert all("\n" not in line for line in lines)


def test_missing_package_inside_a_backend_is_a_reason(monkeypatch, bundled, configs, measured):
    """The module imports fine but its package (onnxruntime) does not."""
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)
    break_backend(monkeypatch, "tensorrt")
    break_backend(monkeypatch, "openvino")
    model, info = bundled
    lines: list[str] = []
    engine, _ = choose(model, info, device="cpu", precision="fp32", log=lines.append, configs=configs)
    assert engine.name == "torch"
    assert lines[1].startswith("engine onnxruntime not used: the onnxruntime package cannot be imported")


def test_no_usable_engine_is_an_option_error(monkeypatch, bundled):
    for name in select.BACKENDS:
        break_backend(monkeypatch, name)
    model, info = bundled
    with pytest.raises(OptionError, match="no engine can run on cpu: tensorrt: .*; onnxruntime: .*; torch: "):
        choose(model, info, device="cpu", log=lambda line: None)


def test_explicit_engine_has_no_fallbacks(bundled, configs):
    model, info = bundled
    lines: list[str] = []
    engine, fallbacks = choose(model, info, engine="torch", device="cpu", log=lines.append, configs=configs)
    assert engine.name == "torch" and fallbacks == [] and lines == []


@pytest.mark.parametrize("kwargs,match", [
    ({"engine": "tflite"}, "unknown engine 'tflite'"),
    ({"precision": "fp8"}, "unknown precision 'fp8'"),
    ({"device": "gpu"}, "unknown device 'gpu'"),
    ({"max_batch": 0}, "batch size must be from 1 to 64"),
    ({"max_batch": 100_000}, "batch size must be from 1 to 64"),
    ({"tile": -8}, "tile size"),
    ({"tile": 1}, "tile size must be 0 \\(whole frames\\) or from 32"),
])
def test_bad_options_are_option_errors(bundled, kwargs, match):
    model, info = bundled
    with pytest.raises(OptionError, match=match):
        choose(model, info, log=lambda line: None, **kwargs)


def test_choose_fills_in_batch_and_device_and_keeps_user_options(bundled, configs):
    model, info = bundled
    engine, _ = choose(model, info, engine="onnxruntime", device="cpu", max_batch=3, configs=configs)
    assert isinstance(engine, TiledEngine) and engine.max_batch == 3
    assert engine.inner.config.max_batch == 3 and engine.inner.config.device == "cpu"
    assert engine.inner.config.threads == 1
    # the CPU's default memory budget, at ONNX Runtime fp32's bytes per pixel (tiling.py)
    assert engine.max_pixels == pixels_for_budget(DEFAULT_CPU_MEMORY_MB, "onnxruntime", "fp32", 64)
    assert engine.auto_tile == 0


def test_tiling_margin_never_drops_below_the_receptive_field(bundled, configs):
    model, info = bundled
    engine, _ = choose(model, info, engine="torch", device="cpu", tile=64, configs=configs,
                       tiling=TilingConfig(margin=4))
    assert engine.tile == 64 and engine.margin == 14


@needs_cpu_only
def test_describe_engines_for_info():
    rows = describe_engines()
    assert [name for name, _, _ in rows] == ["tensorrt", "onnxruntime", "openvino", "torch"]
    usable = {name: ok for name, ok, _ in rows}
    openvino = importlib.util.find_spec("openvino") is not None
    assert usable == {"tensorrt": False, "onnxruntime": True, "openvino": openvino, "torch": True}
    assert all(why and "\n" not in why for _, _, why in rows)


@pytest.mark.gpu
def test_auto_on_a_gpu_machine_runs_on_the_gpu(bundled, tmp_path):
    model, info = bundled
    lines: list[str] = []
    engine, fallbacks = choose(model, info, log=lines.append,
                               configs={"onnxruntime": OnnxRuntimeConfig(cache_dir=tmp_path)})
    assert engine.device.startswith("cuda")
    skipped = list(select.AUTO_ORDER[: select.AUTO_ORDER.index(engine.name)])
    assert [f.engine for f in fallbacks] == skipped
    assert lines == [str(f) for f in fallbacks]


def test_a_configured_device_is_kept_unless_the_caller_names_one():
    own = TorchConfig(device="cuda:1")
    assert select._prepared_config("torch", own, "cpu", 4, device_named=False).device == "cuda:1"
    assert select._prepared_config("torch", own, "cpu", 4, device_named=True).device == "cpu"
    assert select._prepared_config("torch", TorchConfig(), "cpu", 4, device_named=False).device == "cpu"
