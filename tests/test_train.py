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


@needs_data
def test_a_fine_tuning_stage_starts_from_the_given_checkpoint(tmp_path):
    base, _ = _config(tmp_path / "base", steps=20, checkpoint_every=10, val_every=1000, log_every=10)
    base_weights = run(base, log=lambda *_: None)
    checkpoint = tmp_path / "base" / "smoke" / "checkpoint.pt"
    # No steps of its own: the stage's weights are exactly the checkpoint's model.
    stage, _ = _config(tmp_path / "stage", steps=0, init_from=str(checkpoint))
    stage_weights = run(stage, log=lambda *_: None)
    x = torch.rand(1, 1, 40, 40)  # the smoke model: one luma plane, no conditioning
    with torch.no_grad():
        assert torch.equal(load_model(stage_weights)[0](x), load_model(base_weights)[0](x))
    # A different architecture, or inference weights (batch norm folded), are refused.
    other, _ = _config(tmp_path / "other", steps=0, init_from=str(checkpoint), model={"features": 32})
    with pytest.raises(ValueError, match="differs from this run"):
        run(other, log=lambda *_: None)
    folded, _ = _config(tmp_path / "folded", steps=0, init_from=str(base_weights))
    with pytest.raises(ValueError, match="not a training checkpoint"):
        run(folded, log=lambda *_: None)


def test_hardware_like_clips_have_a_flat_qp_map():
    from PIL import Image
    import numpy as np
    from streamfix.train.config import VideoConfig
    from streamfix.train.degrade import make_clip

    rng = np.random.default_rng(3)
    picture = Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8))
    clip = make_clip(rng, picture, VideoConfig(codecs=("libx264-hw",), clip_size=64, clip_frames=4), crf=33)
    assert clip.codec == "libx264-hw"
    assert np.all(clip.qp == 33)  # every macroblock of every frame type at the asked QP
    x264 = make_clip(np.random.default_rng(3), picture, VideoConfig(codecs=("libx264",), clip_size=64, clip_frames=4),
                     crf=33)
    assert not np.all(x264.qp == x264.qp.flat[0])  # x264's own rate control varies it
