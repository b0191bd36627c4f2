"""Inputs FFmpeg reads must restore without a traceback, whatever their codec.

Codecs other than H.264 attach other side data (VP9: frame-level parameters and no
blocks; MPEG-2/MPEG-4: qscales) or none; through the default path every one of them
must come out whole, passed through unrestored (no QP map, no estimate) with one
line saying why, or restored where an estimate exists (HEVC from frame sizes, VP9
and AV1 from their frame quantizers).
"""

from __future__ import annotations

import av
import numpy as np
import pytest

import mediagen as mg
from clirun import run_cli
from streamfix.media.qp import EXPORT_QP_OPTIONS, frame_qp_map

CODECS = {
    "mpeg4.avi": {"codec": "mpeg4"},
    "mpeg2.avi": {"codec": "mpeg2video"},  # AVI: the 1/25 s clock MPEG-2 needs
}


@pytest.mark.parametrize("name", CODECS)
def test_non_h264_codecs_pass_through_the_default_path(tmp_path, capsys, name):
    """Every VP9 input (WebM) exited 1 with a traceback from the QP-map side data
    ('Expected frame size to match number of blocks in side data')."""
    clip = mg.write_clip(tmp_path / name, frames=8, rate=25, **CODECS[name])
    code, err, stats = run_cli([clip.path, tmp_path / "out.mkv"], capsys, tmp_path)
    assert code == 0, err
    assert not any("Traceback" in line for line in err)
    assert stats["frames_out"] == 8 and stats["passed_through"] == 8 and stats["restored"] == 0
    # One line says why nothing was restored (the frames pass through, or the video is copied).
    assert any(("quantizer" in line and "unrestored" in line) or "video copied" in line for line in err), err
    assert len(mg.probe(tmp_path / "out.mkv").frame_pts) == 8


def test_vp9_is_restored_from_its_quantizer_and_clean_vp9_is_left_alone(tmp_path, capsys):
    """Every VP9 input (WebM) exited 1 with a traceback from the QP-map side data
    ('Expected frame size to match number of blocks in side data'); then it passed
    through. Now its base_q_idx gives the model a QP (restore/strength.py)."""
    blocky = mg.write_clip(tmp_path / "blocky.webm", frames=8, rate=25, codec="libvpx-vp9",
                           encoder_options={"crf": "62", "b": "0"})
    code, err, stats = run_cli([blocky.path, tmp_path / "out.mkv"], capsys, tmp_path)
    assert code == 0 and not any("Traceback" in line for line in err), err
    assert stats["frames_out"] == 8 and stats["restored"] > 0
    clean = mg.write_clip(tmp_path / "clean.webm", frames=8, rate=25, codec="libvpx-vp9",
                          encoder_options={"crf": "4", "b": "0"})
    code, err, stats = run_cli([clean.path, tmp_path / "clean-out.webm"], capsys, tmp_path)
    assert code == 0 and stats["restored"] == 0 and stats["output_video"]["mode"] == "copy", err


@pytest.mark.skipif("libsvtav1" not in av.codecs_available, reason="this FFmpeg has no AV1 encoder")
def test_av1_is_restored_from_its_headers_and_clean_av1_is_left_alone(tmp_path, capsys):
    """AV1 passed through: libdav1d exports no quantizer. Its frame headers' base_q_idx
    now gives the model a QP (media/av1_quantizer.py, restore/strength.py)."""
    blocky = mg.write_clip(tmp_path / "blocky.mkv", frames=8, rate=25, width=96, height=64, codec="libsvtav1",
                           encoder_options={"crf": "63", "preset": "10"})
    code, err, stats = run_cli([blocky.path, tmp_path / "out.mkv"], capsys, tmp_path)
    assert code == 0 and not any("Traceback" in line for line in err), err
    assert stats["frames_out"] == 8 and stats["restored"] > 0
    clean = mg.write_clip(tmp_path / "clean.mkv", frames=8, rate=25, width=96, height=64, codec="libsvtav1",
                          encoder_options={"crf": "5", "preset": "10"})
    code, err, stats = run_cli([clean.path, tmp_path / "clean-out.mkv"], capsys, tmp_path)
    assert code == 0 and stats["restored"] == 0 and stats["output_video"]["mode"] == "copy", err


def test_hevc_is_restored_from_its_estimate(tmp_path, capsys):
    clip = mg.write_clip(tmp_path / "in.mp4", frames=6, codec="libx265", encoder_options={"crf": "40"})
    code, err, stats = run_cli([clip.path, tmp_path / "out.mp4"], capsys, tmp_path)
    assert code == 0, err
    assert stats["frames_out"] == 6 and stats["restored"] == 6


@pytest.mark.parametrize("codec", ["libvpx-vp9", "libx264"])
def test_webm_output_works_by_default(tmp_path, capsys, codec):
    """`streamfix run in.webm out.webm` failed: the default H.264 encoder cannot go
    into WebM. An encoded WebM output gets VP9, and one line says so."""
    clip = mg.write_clip(tmp_path / "in.mkv", frames=6, codec=codec)
    code, err, stats = run_cli([clip.path, tmp_path / "out.webm"], capsys, tmp_path)
    assert code == 0, err
    assert mg.probe(tmp_path / "out.webm").stream("video").codec == "vp9"
    if codec == "libx264":
        assert any("webm cannot hold libx264 video: encoding with libvpx-vp9" in line for line in err), err


def _first_frame(path, **decoder_options):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = dict(EXPORT_QP_OPTIONS)
        return next(container.decode(stream))


@pytest.mark.parametrize("codec, suffix", [("libvpx-vp9", ".webm"), ("mpeg4", ".avi")])
def test_side_data_of_other_codecs_is_no_qp_map(tmp_path, codec, suffix):
    """MPEG-4's qscale (4 here) was read as H.264 QP 4, and VP9's side data crashed."""
    clip = mg.write_clip(tmp_path / f"in{suffix}", frames=2, codec=codec)
    frame = _first_frame(clip.path)
    assert frame.side_data.get(av.sidedata.sidedata.Type.VIDEO_ENC_PARAMS) is not None  # there is side data
    assert frame_qp_map(frame) is None


def test_h264_qp_map_covers_the_frame(tmp_path):
    clip = mg.write_clip(tmp_path / "in.mp4", frames=2, width=80, height=40)
    qp = frame_qp_map(_first_frame(clip.path))
    assert qp.shape == (3, 5) and np.isfinite(qp).all()


def _side_data(blocks: list[tuple[int, int, int, int, int]], *, claim: int | None = None):
    """VIDEO_ENC_PARAMS bytes as FFmpeg lays them out: a 64-byte header, then one
    20-byte record (x, y, w, h, delta QP) per block; `claim` overrides the count."""
    header = np.zeros(64, np.uint8).tobytes()
    body = np.array(blocks, dtype="<i4").tobytes()

    class Params(bytearray):
        codec_type = av.sidedata.encparams.VideoEncParamsType.H264
        nb_blocks = claim if claim is not None else len(blocks)
        blocks_offset, block_size, qp = 64, 20, 30

    return Params(header + body)


class _Frame:
    width, height = 32, 32

    def __init__(self, params):
        self.side_data = {av.sidedata.sidedata.Type.VIDEO_ENC_PARAMS: params}


WHOLE = [(x, y, 16, 16, 2) for y in (0, 16) for x in (0, 16)]


@pytest.mark.parametrize("params", [
    _side_data(WHOLE[:3]),                                # a block missing
    _side_data([(x, y, 8, 8, 0) for x, y, *_ in WHOLE]),  # blocks of another size
    _side_data(WHOLE, claim=40),                          # more blocks claimed than stored
], ids=["missing block", "other block size", "short buffer"])
def test_unusable_side_data_is_no_qp_map(params):
    """Damaged H.264 frames can carry side data that does not fit the frame."""
    assert frame_qp_map(_Frame(params)) is None


def test_blocks_outside_the_frame_are_left_out():
    """Interlaced H.264 (MBAFF) reports macroblock pairs, so a 48-line frame has a
    fourth row of blocks below it; PyAV's qp_map() raised on that, a traceback for
    every interlaced H.264 input."""
    below = WHOLE + [(x, 32, 16, 16, 9) for x in (0, 16)]
    assert frame_qp_map(_Frame(_side_data(below))).tolist() == [[32.0, 32.0], [32.0, 32.0]]
