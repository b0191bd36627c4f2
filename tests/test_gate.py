"""The clean-frame gate can be overridden (`--gate auto|off|QP`, `gate:` in the config):
for encoders whose QP statistics differ from x264's, where the calibrated cutoff would
pass through frames that are far from clean."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

import mediagen as mg
from streamfix.core.options import gate_qp
from streamfix.core.weights import load_model
from streamfix.core.yaml_config import ConfigError
from streamfix.media.encoding import EncodeConfig
from streamfix.pipeline.output_plan import COPY_BELOW_QP, copy_below
from streamfix.pipeline.pipeline import Pipeline
from streamfix.pipeline.run_config import load_run_config
from streamfix.restore.conditioning import CLEAN_QP, needs_restoring


def test_gate_values():
    assert gate_qp("auto", CLEAN_QP) == CLEAN_QP
    assert gate_qp("off", CLEAN_QP) is None
    assert gate_qp(18, CLEAN_QP) == 18.0
    for bad in (-1, 64, "sometimes", True):
        with pytest.raises(ValueError, match="gate must be"):
            gate_qp(bad, CLEAN_QP)


def test_needs_restoring_follows_the_gate():
    _, info = load_model("video-x264-qp")
    flat = np.full((2, 2), 20.0, np.float32)
    assert not needs_restoring(info, qp_map=flat)
    assert needs_restoring(info, qp_map=flat, clean_qp=None)
    assert needs_restoring(info, qp_map=flat, clean_qp=19.5)
    assert not needs_restoring(info, frame_qp=20.0, clean_qp=21.0)
    assert not needs_restoring(info, clean_qp=None), "an unknown strength is never restored blind"


def test_the_copy_threshold_never_overrules_the_users_gate():
    assert copy_below("auto") == COPY_BELOW_QP
    assert copy_below("off") is None
    assert copy_below(18) == 18
    assert copy_below(40) == COPY_BELOW_QP


@pytest.mark.parametrize(("text", "expected"), [("off", "off"), ("'off'", "off"), ("auto", "auto"), ("30", 30.0)])
def test_gate_from_yaml(tmp_path, text, expected):
    """YAML reads a bare `off` as false: it still means the word."""
    path = tmp_path / "run.yaml"
    path.write_text(f"gate: {text}\nlive: {{mode: off}}\n")
    config = load_run_config(path)
    assert config.gate == expected and config.live.mode == "off"


def test_bad_gate_in_yaml_is_one_error(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("gate: 99\n")
    with pytest.raises((ConfigError, ValueError), match="gate"):
        load_run_config(path)


def test_gate_decides_which_clean_frames_are_restored(tmp_path, cpu_config):
    """An x264 CRF 12 clip (mean QP under 24): left alone by the calibrated gate,
    restored with the gate off or set below its QP."""
    clip = mg.write_clip(tmp_path / "in.mkv", frames=6, encoder_options={"crf": "12"})
    config = dataclasses.replace(cpu_config, encode=EncodeConfig(codec="ffv1", crf=None))
    counts = {}
    for gate in ("auto", "off", 5.0):
        result = Pipeline(clip.path, tmp_path / f"out-{gate}.mkv", dataclasses.replace(config, gate=gate),
                          quiet=True).run()
        counts[gate] = result.restored
    assert counts == {"auto": 0, "off": 6, 5.0: 6}


@pytest.mark.parametrize("value", ["99", "sometimes", "-1"])
def test_bad_gate_flag_is_one_line_and_exit_2(tmp_path, value):
    run = subprocess.run([sys.executable, "-m", "streamfix.cli.main", "run", "in.mp4", "out.mp4", "--gate", value],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert run.returncode == 2
    assert len(run.stderr.strip().splitlines()) == 1 and "--gate" in run.stderr


def test_b_frames_read_as_no_cleaner_than_their_references(tmp_path, cpu_config):
    """x264 set up like a hardware encoder: constant QP 26, B-frames at QP 20 and 23
    (pbratio 0.5). The calibrated gate used to pass the B-frames through; they are
    restored now, as their P-frames are. --gate QP over the references' QP still wins."""
    from streamfix.media.reader import DecodedFrame, open_input
    from streamfix.restore.strength import StreamStrength, picture_kind

    clip = mg.write_clip(tmp_path / "in.mkv", frames=12, width=128, height=96, encoder_options={
        "x264-params": "qp=26:ipratio=1.0:pbratio=0.5:aq-mode=0:b-adapt=0:bframes=2:scenecut=0"})
    with open_input(clip.path) as reader:
        strengths = StreamStrength(reader.video.codec_name)
        seen = [(picture_kind(d.frame.pict_type), strengths.of(d)) for d in reader.items()
                if isinstance(d, DecodedFrame)]
    b_frames = [s for kind, s in seen if kind == "B"]
    assert b_frames and all(s.mean_qp < CLEAN_QP <= s.reference_qp for s in b_frames)
    assert all(s.reference_qp is None for kind, s in seen if kind != "B")

    config = dataclasses.replace(cpu_config, encode=EncodeConfig(codec="ffv1", crf=None))
    counts = {gate: Pipeline(clip.path, tmp_path / f"out-{gate}.mkv", dataclasses.replace(config, gate=gate),
                             quiet=True).run().restored for gate in ("auto", 27.0)}
    assert counts == {"auto": 12, 27.0: 0}
