"""`--engine auto --precision auto` on a CPU: the decision from given timings and gains,
its one-line reasons, and its cache (keyed by CPU, packages, model and candidates;
measured again when any of them changes). Timings are injected: no test here times."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from streamfix.core.errors import OptionError
from streamfix.core.network import CARDRN, ModelArgs
from streamfix.core.weights import ModelInfo
from streamfix.engines import auto_choice, precision, select
from streamfix.engines.auto_choice import Candidate, Measurement, decide
from streamfix.engines.onnxruntime_engine import OnnxRuntimeConfig
from streamfix.engines.torch_engine import TorchConfig

torch.set_num_threads(1)
NO_BF16 = ("Test CPU", frozenset({"avx2", "fma"}))


def narrow_model(seed: int = 0) -> tuple[CARDRN, ModelInfo]:
    torch.manual_seed(seed)
    args = ModelArgs(features=16, mid_features=8, cond_channels=1, batch_norm=False)
    return CARDRN(args).eval(), ModelInfo("narrow-test", "test model", "video", "qp", args)


def test_the_fastest_candidate_that_keeps_the_gain_wins():
    label, reason = decide([
        Measurement("onnxruntime fp32", seconds=0.60, gain_db=0.300),
        Measurement("onnxruntime int8", seconds=0.30, gain_db=0.290),
        Measurement("openvino int8", seconds=0.20, gain_db=0.250),  # faster, but loses 0.05 dB
        Measurement("torch fp32", seconds=0.90, gain_db=0.300),
        Measurement("openvino fp32", error="cannot import openvino"),
    ], reference_gain_db=0.300)
    assert label == "onnxruntime int8"
    assert reason == ("fastest of 3 that keep the gain (2.00x onnxruntime fp32; gain +0.290 dB, float32 "
                      "+0.300 dB, at most 0.02 dB less allowed); dropped openvino int8 loses 0.050 dB, "
                      "openvino fp32: cannot import openvino")


def test_the_bound_is_inclusive_and_a_gain_above_float32_is_kept():
    measurements = [Measurement("a fp32", seconds=1.0, gain_db=0.30), Measurement("b int8", seconds=0.5, gain_db=0.28),
                    Measurement("c int8", seconds=0.4, gain_db=0.2799)]
    assert decide(measurements, 0.30)[0] == "b int8"
    assert decide(measurements + [Measurement("d int8", seconds=0.1, gain_db=0.31)], 0.30)[0] == "d int8"


def test_nothing_kept_is_an_option_error():
    with pytest.raises(OptionError, match="no engine keeps the restoration gain on this CPU .*--engine and --precision"):
        decide([Measurement("a int8", seconds=1.0, gain_db=0.1), Measurement("b fp32", error="broken")], 0.3)


@pytest.fixture
def counting(monkeypatch):
    """Injected measurements: `.times` per label (default 1 s), all keeping the gain;
    `.runs` lists the candidates of each measurement."""
    record = SimpleNamespace(runs=[], times={})

    def measure(candidates, build, calibration):
        record.runs.append([c.label for c in candidates])
        return [Measurement(c.label, seconds=record.times.get(c.label, 1.0), gain_db=0.3) for c in candidates]

    monkeypatch.setattr(auto_choice, "measure", measure)
    monkeypatch.setattr(auto_choice, "reference_output", lambda model, x: x[:, :1] * 0 + 0.5)
    monkeypatch.setattr(auto_choice, "cpu_description", lambda: NO_BF16)
    return record


def candidates(threads: int = 1) -> list[Candidate]:
    return [Candidate("onnxruntime", "fp32", OnnxRuntimeConfig(threads=threads)),
            Candidate("onnxruntime", "int8", OnnxRuntimeConfig(threads=threads, int8=True)),
            Candidate("torch", "fp32", TorchConfig(threads=threads))]


def test_the_decision_is_cached_and_keyed(counting, monkeypatch, tmp_path):
    model, info = narrow_model()

    def choice(model=model, cands=None):
        return auto_choice.measured_choice(model, info, cands or candidates(), build=None, cache_dir=tmp_path,
                                           log=lambda line: None)

    first = choice()
    assert not first.from_cache and len(counting.runs) == 1
    again = choice()
    assert again.from_cache and again.label == first.label and len(counting.runs) == 1
    assert again.line().startswith(f"engine auto on this CPU: {first.label}: fastest of 3") and "cached" in again.line()
    choice(cands=candidates(threads=2))  # other engine options
    assert len(counting.runs) == 2
    choice(model=narrow_model(seed=1)[0])  # other weights
    assert len(counting.runs) == 3
    monkeypatch.setattr(auto_choice, "cpu_description", lambda: ("Test CPU", frozenset({"avx2", "avx512_vnni"})))
    choice()  # another CPU (or the same one with other flags)
    assert len(counting.runs) == 4
    monkeypatch.setattr(auto_choice, "_package_versions", lambda: {"onnxruntime": "9.9"})
    choice()  # another onnxruntime
    assert len(counting.runs) == 5
    choice()
    assert len(counting.runs) == 5


def test_a_stored_decision_for_another_key_is_not_used(counting, tmp_path):
    model, info = narrow_model()
    made = auto_choice.measured_choice(model, info, candidates(), build=None, cache_dir=tmp_path, log=lambda line: None)
    (path,) = tmp_path.glob("*.json")
    data = json.loads(path.read_text())
    data["key"]["cpu"] = "some other CPU"  # e.g. a cache folder copied from another machine
    path.write_text(json.dumps(data))
    assert auto_choice.cached_choice(model, info, candidates(), cache_dir=tmp_path) is None
    path.write_text("{not json")
    again = auto_choice.measured_choice(model, info, candidates(), build=None, cache_dir=tmp_path, log=lambda line: None)
    assert again.label == made.label and len(counting.runs) == 2


@pytest.fixture
def on_this_cpu(counting, monkeypatch, tmp_path):
    """A CPU without bf16, a fresh cache, ONNX Runtime int8 twice as fast as fp32:
    (model, info, configs) for `select.choose`."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(precision, "cpu_description", lambda: NO_BF16)
    counting.times.update({"onnxruntime int8": 0.4, "onnxruntime fp32": 0.8})
    model, info = narrow_model()
    configs = {"onnxruntime": OnnxRuntimeConfig(threads=1, cache_dir=tmp_path / "onnx"), "torch": TorchConfig(threads=1)}
    return model, info, configs


def test_choose_on_a_cpu_logs_the_choice_and_why(counting, on_this_cpu):
    """The lines a run starts with: one per backend skipped, one for the choice."""
    model, info, configs = on_this_cpu
    lines: list[str] = []
    engine, fallbacks = select.choose(model, info, device="cpu", configs=configs, log=lines.append)
    assert (engine.name, precision.precision_of(engine)) == ("onnxruntime", "int8")
    assert [f.engine for f in fallbacks][0] == "tensorrt"
    assert lines[: len(fallbacks)] == [str(f) for f in fallbacks]
    timing, chosen = lines[len(fallbacks):]
    assert timing.startswith("engine auto: timing onnxruntime fp32, onnxruntime int8") and "torch fp32" in timing
    assert chosen.startswith("engine auto on this CPU: onnxruntime int8: fastest of ")
    assert "(2.00x onnxruntime fp32;" in chosen and "measured now" in chosen
    # The next run reads the decision: no timing, one line.
    lines.clear()
    select.choose(model, info, device="cpu", configs=configs, log=lines.append)
    assert len(counting.runs) == 1 and lines[-1].startswith("engine auto on this CPU: onnxruntime int8") and "cached" in lines[-1]
    # `streamfix info` reads the same decision.
    shown = select.cpu_choice(model, info, configs=configs)
    assert shown is not None and shown.label == "onnxruntime int8"


def test_a_live_run_does_not_stop_to_time_but_uses_a_stored_choice(counting, on_this_cpu):
    """Timing takes seconds per model, during which a live stream's frames would pass
    through: measure=False takes the first candidate, unmeasured, and says how to fix
    it, until a decision is stored; then it uses that one."""
    model, info, configs = on_this_cpu
    lines: list[str] = []
    engine, _ = select.choose(model, info, device="cpu", configs=configs, log=lines.append, measure=False)
    assert counting.runs == [] and (engine.name, precision.precision_of(engine)) == ("onnxruntime", "fp32")
    assert "unmeasured" in lines[-1] and "streamfix info --measure" in lines[-1]
    select.cpu_choice(model, info, configs=configs, measure=True, log=lambda line: None)
    engine, _ = select.choose(model, info, device="cpu", configs=configs, log=lines.append, measure=False)
    assert len(counting.runs) == 1 and precision.precision_of(engine) == "int8" and "cached" in lines[-1]


def test_a_named_precision_narrows_the_candidates(counting, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(precision, "cpu_description", lambda: NO_BF16)
    model, info = narrow_model()
    configs = {"onnxruntime": OnnxRuntimeConfig(threads=1, cache_dir=tmp_path / "onnx"), "torch": TorchConfig(threads=1)}
    engine, _ = select.choose(model, info, device="cpu", precision="fp32", configs=configs, log=lambda line: None)
    assert precision.precision_of(engine) == "fp32"
    assert all(label.endswith(" fp32") for label in counting.runs[-1])
    with pytest.raises(OptionError, match="precision bf16 needs a CPU with bf16 units"):
        select.choose(model, info, device="cpu", precision="bf16", configs=configs, log=lambda line: None)


def test_info_says_what_auto_picks_per_model_and_why(counting, monkeypatch, tmp_path, capsys):
    from streamfix.cli.main import main
    from streamfix.core.weights import load_model

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    counting.times["onnxruntime fp32"] = 0.5
    model, info = load_model("video-x264-qp")
    select.cpu_choice(model, info, measure=True, log=lambda line: None)
    assert main(["info", "--device", "cpu"]) == 0
    out = capsys.readouterr().out.splitlines()
    start = out.index("engine auto on this CPU (engine x precision, timed once per machine):")
    end = next(i for i in range(start + 1, len(out)) if not out[i].startswith("  "))
    shown = {line.split()[0]: line for line in out[start + 1 : end]}
    assert "video-x264-qp    onnxruntime fp32: fastest of " in shown["video-x264-qp"]
    assert "cached, measured" in shown["video-x264-qp"]
    assert "not measured yet" in shown["jpeg-y-blind"]


def test_a_candidate_that_fails_is_dropped_with_its_reason(tmp_path):
    """Measuring for real (tiny model): an engine that breaks while building or while
    running is one reason in the choice, not the end of it."""
    model, info = narrow_model()
    from streamfix.engines.calibration_set import calibration_set

    class Working:
        def __init__(self, scale: float) -> None:
            self.scale = scale

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        def infer(self, batch):
            return batch[:, :1] * self.scale

    class BreaksWhileRunning(Working):
        def infer(self, batch):
            raise RuntimeError("kernel crashed\nwith details")

    def build(candidate):
        if candidate.label == "onnxruntime int8":
            raise ImportError("libopenvino.so: cannot open shared object file")
        return BreaksWhileRunning(1.0) if candidate.label == "torch fp32" else Working(1.0)

    measured = auto_choice.measure(candidates(), build, calibration_set(info))
    by_label = {m.label: m for m in measured}
    assert by_label["onnxruntime int8"].error == "libopenvino.so: cannot open shared object file"
    assert by_label["torch fp32"].error == "kernel crashed"
    assert by_label["onnxruntime fp32"].error is None and by_label["onnxruntime fp32"].gain_db == 0.0
    label, reason = decide(measured, reference_gain_db=0.0)
    assert label == "onnxruntime fp32" and "torch fp32: kernel crashed" in reason
