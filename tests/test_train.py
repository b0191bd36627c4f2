"""The training module: the smoke config trains a model that improves its validation
images, and a run killed mid-way resumes to exactly the weights of an unbroken run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from streamfix.core import yaml_config as config_io
from streamfix.core.weights import load_model
from streamfix.train.config import load_train_config
from streamfix.train.train import get_lr, run

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs/train/smoke.yaml"
TRAIN_IMAGES = ROOT.parent / "shared/data/train/BSDS500/train"

needs_data = pytest.mark.skipif(not TRAIN_IMAGES.is_dir(), reason=f"training images not found at {TRAIN_IMAGES}")


def _config(tmp_path: Path, **changes):
    cfg = load_train_config(SMOKE)
    data = config_io.to_dict(cfg)
    data["data"]["folders"] = [str(TRAIN_IMAGES)]
    data["out_dir"] = str(tmp_path)
    data.update(changes)
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_train_config(path), path


def test_lr_schedule_warms_up_then_decays():
    cfg = load_train_config(SMOKE)
    lrs = [get_lr(s, cfg) for s in range(cfg.steps)]
    assert lrs[0] < lrs[cfg.warmup - 1] == pytest.approx(cfg.lr)
    assert lrs[-1] == pytest.approx(cfg.lr_min, rel=0.05)
    assert all(a >= b for a, b in zip(lrs[cfg.warmup :], lrs[cfg.warmup + 1 :]))


def test_every_training_config_loads():
    for path in (ROOT / "configs/train").glob("*.yaml"):
        load_train_config(path)


def test_unknown_key_is_refused(tmp_path):
    data = yaml.safe_load(SMOKE.read_text())
    data["stpes"] = 10
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(config_io.ConfigError, match="stpes"):
        load_train_config(path)


@needs_data
def test_smoke_training_improves_validation_images(tmp_path):
    cfg, _ = _config(tmp_path)
    weights = run(cfg, log=lambda *_: None)
    _, info = load_model(weights)
    scores = info.scores["validation"]["q10"]
    assert scores["gain"] > 0.3, scores
    assert (tmp_path / "smoke" / "config.yaml").exists()
    assert info.trained_on["steps"] == cfg.steps


@needs_data
def test_resume_after_kill_matches_an_unbroken_run(tmp_path):
    changes = dict(steps=300, checkpoint_every=50, val_every=1000, log_every=50)
    cfg_a, _ = _config(tmp_path / "a", name="unbroken", **changes)
    weights_a = run(cfg_a, log=lambda *_: None)

    cfg_b, path_b = _config(tmp_path / "b", name="killed", **changes)
    ckpt = tmp_path / "b" / "killed" / "checkpoint.pt"
    proc = subprocess.Popen([sys.executable, "-m", "streamfix.cli.main", "train", "--config", str(path_b)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    killed_at = torch.load(ckpt, weights_only=True)["step"]
    assert killed_at < cfg_b.steps, "the run finished before it could be killed"

    lines = []
    weights_b = run(cfg_b, log=lines.append)
    assert any(f"resumed killed at step {killed_at}" in line for line in lines)
    model_a, _ = load_model(weights_a)
    model_b, _ = load_model(weights_b)
    for (name, pa), pb in zip(model_a.state_dict().items(), model_b.state_dict().values()):
        assert torch.allclose(pa, pb, atol=1e-6), name
