"""The run configuration: default.yaml mirrors the dataclasses, presets load, typos fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamfix.core.yaml_config import ConfigError, load_yaml, to_dict
from streamfix.pipeline.run_config import RunConfig, load_run_config, with_overrides
from streamfix.pipeline.restore_stage import RestoreStage
from streamfix.pipeline.stages import ScaleStage, build_stages

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PRESETS = sorted(p for p in CONFIGS.glob("*.yaml"))


def test_default_yaml_equals_the_dataclass_defaults():
    assert load_yaml(CONFIGS / "default.yaml") == to_dict(RunConfig())
    assert load_run_config(CONFIGS / "default.yaml") == RunConfig()


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.name)
def test_every_preset_loads_and_builds_its_stages(path):
    config = load_run_config(path)
    stages = build_stages(config.stages, lambda: RestoreStage(None))  # type: ignore[arg-type]
    assert stages and all(hasattr(s, "process") for s in stages)


def test_presets_exist():
    names = {p.name for p in PRESETS}
    assert {"default.yaml", "fast-cpu.yaml", "archive.yaml"} <= names


def test_no_file_means_the_defaults():
    assert load_run_config(None) == RunConfig()


@pytest.mark.parametrize("text, message", [
    ("bach: 8\n", "unknown key 'bach'"),
    ("encode:\n  crff: 20\n", "encode: unknown key 'crff'"),
    ("queues:\n  decodd: 3\n", "queues: unknown key 'decodd'"),
    ("batch: eight\n", "batch: expected an integer"),
    ("batch: 0\n", "batch must be from 1 to 64"),
    ("batch: 100000\n", "batch must be from 1 to 64"),
    ("tile: 1\n", "tile must be 0 (whole frames) or from 32"),
    ("memory_budget_mb: 0\n", "memory_budget_mb must be at least 1"),
    ("memory_budget_mb: lots\n", "memory_budget_mb: expected an integer"),
    ("live: {max_latency_ms: .inf}\n", "max_latency_ms must be a positive number"),
    ("engine: cuda\n", "engine: 'cuda' is not one of"),
    ("chroma: both\n", "chroma: 'both' is not one of"),
    ("engines:\n  tflite: {}\n", "unknown engine 'tflite'"),
    ("precision: fp16\n", "precision: 'fp16' is not one of"),
    ("stages:\n  - {width: 3}\n", "needs a 'type'"),
    ("progress:\n  interval_s: 0\n", "interval_s must be positive"),
])
def test_bad_files_name_the_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_run_config(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_flags_override_the_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("batch: 2\nencode:\n  crf: 20\n  preset: slow\n")
    config = with_overrides(load_run_config(path), batch=6, model=None, encode={"crf": 30, "preset": None})
    assert config.batch == 6 and config.encode.crf == 30
    assert config.encode.preset == "slow"  # not given on the command line: the file's value stays
    assert config.model is None


def test_overrides_are_validated_like_the_file():
    with pytest.raises(ConfigError, match="tile must be 0"):
        with_overrides(RunConfig(), tile=-1)


def test_stage_list_builds_restore_and_scale():
    stages = build_stages([{"type": "restore"}, {"type": "scale", "width": 32}], lambda: RestoreStage("restorer"))
    assert isinstance(stages[0], RestoreStage) and stages[0].restorer == "restorer"
    assert isinstance(stages[1], ScaleStage) and stages[1].options.width == 32


@pytest.mark.parametrize("spec, message", [
    ({"type": "sharpen"}, "unknown stage type 'sharpen'"),
    ({"type": "scale", "widht": 32}, "unknown key 'widht'"),
    ({"type": "restore", "model": "x"}, "the restore stage takes no options"),
    ({"type": "no_such_module_here:Stage"}, "cannot import module 'no_such_module_here'"),
    ({"type": "streamfix.pipeline.stages:NoSuchStage"}, "has no 'NoSuchStage'"),
    ({"type": "streamfix.pipeline.stages:BatchContext"}, "does not accept these options"),
    ({"type": "builtins:dict"}, "is not a stage"),
])
def test_bad_stage_specs_say_what_is_wrong(spec, message):
    with pytest.raises(ConfigError, match=message):
        build_stages([spec], lambda: None)
