"""The default output: the input's video copied when there is nothing to restore,
otherwise encoded at a CRF that fits the input's quantizer (pipeline/output_plan.py).

The bug this answers: the old fixed x264 CRF 16 re-encode took 1.0-1.6 dB from a
clean x264 CRF 18 clip that the model had left untouched, so "no harm to good video"
held only with a lossless output codec.
"""

from __future__ import annotations

import json
import re

import av
import pytest

import mediagen as mg
from streamfix.cli.main import main
from streamfix.pipeline.output_plan import (COPY_BELOW_QP, CRF_BELOW_QP, FIDELITY_OPTIONS, MAX_CRF, MIN_CRF,
                                            fidelity_options, plan_output, settle_for_pieces)

CPU = ["--engine", "torch", "--device", "cpu", "--quiet"]


def _packets(path, kind):
    with av.open(str(path)) as c:
        stream = c.streams.video[0] if kind == "video" else c.streams.audio[0]
        return [(bytes(p), p.pts, p.dts) for p in c.demux(stream) if p.size]


def _run(source, target, stats, *flags):
    assert main(["run", str(source), str(target), *CPU, "--stats", str(stats), *flags]) == 0
    return json.loads(stats.read_text())


def test_a_clean_clip_is_copied_bit_for_bit_with_its_audio(tmp_path):
    clip = mg.write_clip(tmp_path / "clean.mp4", width=96, height=64, frames=20, audio=True,
                         encoder_options={"crf": "12"})
    report = _run(clip.path, tmp_path / "out.mp4", tmp_path / "s.json")
    assert report["output_video"]["mode"] == "copy" and report["output_video"]["mean_qp"] < COPY_BELOW_QP
    assert report["restored"] == 0 and report["frames_out"] == 20
    assert _packets(tmp_path / "out.mp4", "video") == _packets(clip.path, "video")
    assert _packets(tmp_path / "out.mp4", "audio") == _packets(clip.path, "audio")
    assert not (tmp_path / "out.partial.mp4").exists()


@pytest.mark.parametrize("codec, suffix", [("libvpx", ".mkv")])
def test_codecs_without_a_usable_quantizer_are_copied(tmp_path, codec, suffix):
    """VP8 frames pass through unrestored, so re-encoding them could only lose."""
    clip = mg.write_clip(tmp_path / f"in{suffix}", width=64, height=48, frames=10, codec=codec)
    report = _run(clip.path, tmp_path / f"out{suffix}", tmp_path / "s.json")
    assert report["output_video"]["mode"] == "copy" and report["output_video"]["mean_qp"] is None
    assert _packets(tmp_path / f"out{suffix}", "video") == _packets(clip.path, "video")


def test_a_low_bitrate_clip_is_restored_and_encoded_at_a_crf_from_its_quantizer(tmp_path):
    clip = mg.write_clip(tmp_path / "bad.mp4", width=64, height=48, frames=8, encoder_options={"crf": "42"})
    report = _run(clip.path, tmp_path / "out.mp4", tmp_path / "s.json")
    plan = report["output_video"]
    assert plan["mode"] == "encode" and report["restored"] > 0
    assert plan["crf"] == min(MAX_CRF, max(MIN_CRF, round(plan["mean_qp"]) - CRF_BELOW_QP))
    # Tuned for fidelity, and said so in --stats; x264 writes the settings it really
    # used into the stream, so the encode itself is checked, not only the plan.
    assert plan["options"] == FIDELITY_OPTIONS == {"tune": "psnr"}
    data = (tmp_path / "out.mp4").read_bytes()
    assert b" psy=0 " in data and re.search(rb" aq=(0|\d:0\.00)\b", data)  # no psy-rd, no AQ


def test_the_fidelity_tuning_goes_only_to_encoders_that_take_it():
    assert fidelity_options("libx264") == {"tune": "psnr"}
    assert fidelity_options("libsvtav1") == {} and fidelity_options("mpeg4") == {}
    assert fidelity_options("no-such-encoder") == {}


def test_a_run_in_pieces_gets_the_same_crf_and_tuning(monkeypatch, tmp_path):
    """Every piece must be encoded alike for the join, so the plan is made once."""
    import streamfix.pipeline.output_plan as output_plan
    from streamfix.pipeline.run_config import RunConfig

    monkeypatch.setattr(output_plan, "probe_mean_qp", lambda source, frames=0: (45.4, "h264", False))
    config, plan = settle_for_pieces(tmp_path / "in.mp4", tmp_path / "out.mp4", RunConfig())
    assert plan.mode == "encode" and config.encode.crf == plan.crf == 45 - CRF_BELOW_QP
    assert config.encode.options == {"tune": "psnr"}


@pytest.mark.parametrize("mean_qp", [26.0, 30.0, 32.4])
def test_inputs_just_over_the_copy_line_are_never_encoded_losslessly(monkeypatch, mean_qp):
    """CRF = mean QP - 32 was 0 (lossless: High 4:4:4 Predictive, which browsers and
    hardware decoders do not play) for every input under mean QP 33."""
    import streamfix.pipeline.output_plan as output_plan

    monkeypatch.setattr(output_plan, "probe_mean_qp", lambda source: (mean_qp, "h264", False))
    plan = plan_output("in.mp4")
    assert plan.mode == "encode" and plan.crf == MIN_CRF >= 1


def test_the_default_output_plays_in_ordinary_players(tmp_path):
    """CRF 20 on this pattern: mean QP 29, just over the copy line, where CRF 0 was planned."""
    clip = mg.write_clip(tmp_path / "in.mp4", width=64, height=48, frames=8, encoder_options={"crf": "20"})
    report = _run(clip.path, tmp_path / "out.mp4", tmp_path / "s.json")
    assert report["output_video"]["mode"] == "encode" and report["output_video"]["crf"] == MIN_CRF
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert c.streams.video[0].codec_context.profile == "High"


def test_an_explicit_crf_is_the_users_choice(tmp_path):
    clip = mg.write_clip(tmp_path / "clean.mp4", width=64, height=48, frames=6, encoder_options={"crf": "12"})
    report = _run(clip.path, tmp_path / "out.mp4", tmp_path / "s.json", "--crf", "20")
    assert report["output_video"] is None


def test_stills_and_jpeg_video_are_not_planned(tmp_path):
    from PIL import Image

    Image.new("L", (32, 32), 128).save(tmp_path / "a.jpg", quality=30)
    assert plan_output(tmp_path / "a.jpg") is None
