"""A broken or mismatched TensorRT never stops a run under `--engine auto`: every way
it can fail (no runtime, build, deserialize, first batch) falls back to the next
engine with one logged reason and the same batch; `--engine tensorrt` fails with one
line and exit code 2. The GPU is simulated (tests/trt_standins.py) and the engines
auto falls back to run on the CPU."""

import av
import numpy as np
import pytest
import yaml

import mediagen as mg
import trt_standins
from trt_standins import SIM, context_balanced
from streamfix.cli.main import main
from streamfix.core.errors import OptionError
from streamfix.core.weights import load_model
from streamfix.engines import select
from streamfix.engines.fallback import FallbackEngine
from streamfix.engines.fp16_gate import output_psnr, reference_output, sample_frames
from streamfix.engines.onnxruntime_engine import OnnxRuntimeConfig
from streamfix.engines.tensorrt_engine import TensorRTConfig
from streamfix.engines.torch_engine import TorchConfig


@pytest.fixture
def simulated_gpu(monkeypatch):
    """The stand-in GPU, with "auto" resolving to it (so auto tries TensorRT first)."""
    real = select.resolve_device
    monkeypatch.setattr(select, "resolve_device", lambda device: "cuda" if device == "auto" else real(device))
    return trt_standins.install(monkeypatch)


@pytest.fixture(scope="module")
def video_model():
    return load_model("video-x264-qp")


def _configs(tmp_path, **tensorrt):
    """TensorRT on the simulated GPU; the engines after it on the CPU."""
    tensorrt = {"while_building": "wait", **tensorrt}
    return {"tensorrt": TensorRTConfig(cache_dir=tmp_path, gate_frames=1, **tensorrt),
            "onnxruntime": OnnxRuntimeConfig(device="cpu", threads=1, cache_dir=tmp_path),
            "torch": TorchConfig(device="cpu", threads=1)}


def _choose(model, info, tmp_path, engine="auto", **tensorrt):
    lines = []
    chosen, fallbacks = select.choose(model, info, engine=engine, max_batch=2, log=lines.append,
                                      configs=_configs(tmp_path, **tensorrt))
    return chosen, fallbacks, lines


def _frames(n=2):
    return sample_frames(2, 1, 24, 40, count=n)


def test_a_runtime_tensorrt_cannot_create_is_a_reason_before_anything_opens(simulated_gpu, video_model, tmp_path):
    """Bug: check_available() never created a trt.Runtime, so with a broken install
    (the library returns NULL: pybind11's TypeError) auto promised TensorRT and the
    run then failed."""
    SIM.fail = {"runtime"}
    chosen, fallbacks, lines = _choose(*video_model, tmp_path)
    assert chosen.name == "onnxruntime" and [f.engine for f in fallbacks] == ["tensorrt"]
    assert lines == [str(fallbacks[0])]
    assert ("cannot create a runtime on cuda:0 (TypeError: pybind11::init(): factory function returned nullptr); "
            "its libraries are probably for another CUDA than the driver's: reinstall with "
            'pip install "streamfix[tensorrt-cu13]"') in lines[0]
    assert context_balanced()


@pytest.mark.parametrize("failure,when,why", [
    ("builder", "failed on its first batch", "TypeError: pybind11::init(): factory function returned nullptr"),
    ("build", "failed on its first batch", "TensorRT could not build"),
    ("execute", "failed on its first batch", "TensorRT refused execute_async_v3"),
])
def test_auto_falls_back_on_the_first_batch_with_the_same_batch(simulated_gpu, video_model, tmp_path, failure,
                                                                when, why):
    """Bug: a TensorRT failure after check_available() (build, first batch) ended the
    run; now the next engine takes over with the same batch, and one reason is logged."""
    model, info = video_model
    SIM.fail = {failure}
    chosen, fallbacks, lines = _choose(model, info, tmp_path)
    assert chosen.name == "tensorrt" and fallbacks == []
    x = _frames()
    with chosen:
        out = chosen.infer(x)
        assert chosen.name == "onnxruntime"
    assert output_psnr(reference_output(model, x), out) >= 45.0
    assert [f.engine for f in fallbacks] == ["tensorrt"] and lines == [str(fallbacks[0])]
    assert lines[0].startswith(f"engine tensorrt not used: {when}: ") and why in lines[0]
    assert "\n" not in lines[0] and context_balanced()


def test_an_engine_tensorrt_cannot_deserialize_falls_back_while_opening(simulated_gpu, video_model, tmp_path):
    SIM.fail = {"deserialize"}
    chosen, fallbacks, lines = _choose(*video_model, tmp_path, shapes=("40x24",))
    with chosen:
        assert chosen.name == "onnxruntime"
        assert chosen.infer(_frames(1)).shape == (1, 1, 24, 40)
    assert lines[0].startswith("engine tensorrt not used: failed to open: ") and "could not deserialize" in lines[0]
    assert context_balanced()


def test_named_tensorrt_fails_with_one_line_instead(simulated_gpu, video_model, tmp_path):
    SIM.fail = {"build"}
    chosen, fallbacks, lines = _choose(*video_model, tmp_path, engine="tensorrt")
    with chosen, pytest.raises(OptionError) as failure:
        chosen.infer(_frames())
    assert str(failure.value).startswith("engine tensorrt cannot be used: failed on its first batch: TensorRT "
                                         "could not build ")
    assert "\n" not in str(failure.value) and lines == [] and fallbacks == []


def test_after_its_first_batch_tensorrt_failures_are_its_own(simulated_gpu, video_model, tmp_path):
    """Falling back is for an engine that never worked; a failure after TensorRT has
    served a batch is raised, not hidden."""
    from streamfix.engines.trt_runner import TensorRTError

    chosen, fallbacks, _ = _choose(*video_model, tmp_path)
    with chosen:
        chosen.infer(_frames())
        SIM.fail = {"execute"}
        with pytest.raises(TensorRTError):
            chosen.infer(_frames())
    assert fallbacks == []


def test_standby_batches_do_not_count_as_tensorrts_first(simulated_gpu, video_model, tmp_path, monkeypatch):
    """With the standby serving while the engine builds, the first batch that fails
    on TensorRT itself still falls back."""
    trt_standins.use_cpu_standby(monkeypatch)
    chosen, fallbacks, lines = _choose(*video_model, tmp_path, while_building="standby")
    guard = chosen.inner
    assert isinstance(guard, FallbackEngine)
    with chosen:
        chosen.infer(_frames())  # the standby answers
        guard.engine.wait_for_builds()
        SIM.fail = {"execute"}
        out = chosen.infer(_frames())
        assert chosen.name == "onnxruntime" and out.shape == (2, 1, 24, 40)
    assert [f.engine for f in fallbacks] == ["tensorrt"]


# -- the command line ---------------------------------------------------------------------
def _run_config(tmp_path) -> str:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"batch": 2, "engines": {
        "tensorrt": {"while_building": "wait", "gate_frames": 1, "cache_dir": str(tmp_path / "trt")},
        "onnxruntime": {"device": "cpu", "threads": 1, "cache_dir": str(tmp_path / "onnx")},
        "torch": {"device": "cpu", "threads": 1}}}))
    return str(path)


def test_streamfix_run_restores_the_video_when_the_tensorrt_build_fails(simulated_gpu, tmp_path, capsys):
    SIM.fail = {"build"}
    clip = mg.write_clip(tmp_path / "in.mp4", width=40, height=24, frames=5)
    out = tmp_path / "out.mp4"
    assert main(["run", str(clip.path), str(out), "--config", _run_config(tmp_path)]) == 0
    err = capsys.readouterr().err
    reasons = [line for line in err.splitlines() if "engine tensorrt not used" in line]
    assert len(reasons) == 1 and "could not build" in reasons[0] and "Traceback" not in err
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 5


def test_streamfix_run_with_named_tensorrt_is_one_error_line_and_exit_2(simulated_gpu, tmp_path, capsys):
    SIM.fail = {"build"}
    clip = mg.write_clip(tmp_path / "in.mp4", width=40, height=24, frames=3)
    code = main(["run", str(clip.path), str(tmp_path / "out.mp4"), "--engine", "tensorrt",
                 "--config", _run_config(tmp_path)])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("streamfix: error:")]
    assert code == 2 and "Traceback" not in err
    assert len(errors) == 1 and "engine tensorrt cannot be used: failed on its first batch" in errors[0]
    assert not (tmp_path / "out.mp4").exists()


def test_outputs_of_a_fallback_match_the_next_engine(simulated_gpu, video_model, tmp_path):
    """The batch that failed on TensorRT is the one the next engine restores: nothing
    is skipped or duplicated."""
    model, info = video_model
    SIM.fail = {"execute"}
    chosen, _, _ = _choose(model, info, tmp_path)
    x = [_frames(2) + np.float32(0.01 * i) for i in range(3)]
    with chosen:
        outs = [chosen.infer(b) for b in x]
    for batch, out in zip(x, outs):
        assert output_psnr(reference_output(model, batch), out) >= 45.0
