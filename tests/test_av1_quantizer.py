"""AV1's quantizer, read from its frame headers (media/av1_quantizer.py).

libdav1d exports no quantizer with the decoded frame, so AV1 passed through
unrestored; the reader now reads base_q_idx from the frame headers of each packet
and hands it on with the frame it becomes.
"""

from __future__ import annotations

from types import SimpleNamespace

import av
import av.logging
import numpy as np
import pytest

import mediagen as mg
from streamfix.media.av1_quantizer import WINDOW, Av1Quantizer, frame_header_quantizers
from streamfix.media.reader import DecodedFrame, open_input
from streamfix.restore.conditioning import CLEAN_QP, needs_restoring
from streamfix.restore.strength import QUANTIZER_FITS, StreamStrength

pytestmark = pytest.mark.skipif("libsvtav1" not in av.codecs_available, reason="this FFmpeg has no AV1 encoder")


def test_frames_shown_again_code_no_quantizer():
    lines = ["Frame Header", "24          show_existing_frame              0 = 0",
             "43          base_q_idx                01011111 = 95",
             "16          show_existing_frame              1 = 1", "17 frame_to_show_map_idx 110 = 6",
             "16          show_existing_frame              0 = 0",
             "74          base_q_idx                10010010 = 146", "Tile Group"]
    assert frame_header_quantizers(lines) == [95, 146]


def _av1_clip(tmp_path, name, crf, frames=12):
    return mg.write_clip(tmp_path / name, frames=frames, width=96, height=64, rate=25, codec="libsvtav1",
                         encoder_options={"crf": str(crf), "preset": "10"})


def _decoded(path):
    with open_input(path, log=lambda m: None) as reader:
        return [d for d in reader.items() if isinstance(d, DecodedFrame)]


def test_reader_hands_every_av1_frame_its_quantizer(tmp_path):
    coarse, fine = _av1_clip(tmp_path, "coarse.mkv", 60), _av1_clip(tmp_path, "fine.mkv", 10)
    level = av.logging.get_level()
    for clip in (coarse, fine):
        frames = _decoded(clip.path)
        assert len(frames) == 12
        assert all(d.quantizer is not None and d.quantizer[0] == "av1" for d in frames)
    assert av.logging.get_level() == level  # the log level the filter needed is given back
    q = {name: np.mean([d.quantizer[1] for d in _decoded(c.path)]) for name, c in
         (("coarse", coarse), ("fine", fine))}
    assert 0 <= q["fine"] < q["coarse"] <= 255


def test_reading_headers_leaves_the_packets_to_the_decoder(tmp_path):
    """The header filter takes over the packet it is given: it must get a copy."""
    clip = _av1_clip(tmp_path, "in.mkv", 40)
    with av.open(str(clip.path)) as container:
        plain = [f.to_ndarray(format="gray") for f in container.decode(video=0)]
    read = [d.frame.to_ndarray(format="gray") for d in _decoded(clip.path)]
    assert len(read) == len(plain) and all(np.array_equal(a, b) for a, b in zip(read, plain))


def test_quantizer_is_the_mean_of_recent_coded_frames(tmp_path):
    clip = _av1_clip(tmp_path, "in.mkv", 50, frames=20)
    with av.open(str(clip.path)) as container:
        stream = container.streams.video[0]
        reader = Av1Quantizer(stream)
        coded: list[int] = []
        for packet in container.demux(stream):
            found = reader.coded(packet)
            assert found is not None
            coded.extend(found)
            if coded:
                assert reader.current == pytest.approx(np.mean(coded[-WINDOW:]))


def test_unreadable_headers_leave_the_quantizer_unknown(tmp_path):
    clip = _av1_clip(tmp_path, "in.mkv", 40)
    with av.open(str(clip.path)) as container:
        reader = Av1Quantizer(container.streams.video[0])
        assert reader.of(av.Packet(b"\x32\x05\xff\xff\xff\xff\xff")) is None  # a cut frame OBU


def test_av1_frames_get_the_fitted_qp_and_its_gate_margin(tmp_path):
    fit = QUANTIZER_FITS["av1"]
    frames = _decoded(_av1_clip(tmp_path, "in.mkv", 55).path)
    strengths = StreamStrength("libdav1d")
    for d in frames:
        s = strengths.of(d)
        assert s.frame_qp == pytest.approx(fit.a + fit.b * d.quantizer[1] - fit.margin)
        assert s.gate_margin == fit.gate_margin


def test_the_gate_margin_raises_the_bar_only_for_gated_runs():
    info = SimpleNamespace(conditioning="qp")  # all the gate reads of the model
    assert needs_restoring(info, frame_qp=CLEAN_QP + 1, gate_margin=0.0)
    assert not needs_restoring(info, frame_qp=CLEAN_QP + 1, gate_margin=2.0)
    assert needs_restoring(info, frame_qp=CLEAN_QP + 2, gate_margin=2.0)
    assert needs_restoring(info, frame_qp=CLEAN_QP + 1, gate_margin=2.0, clean_qp=None)  # --gate off


def test_a_header_parser_that_refuses_the_stream_leaves_it_decodable(tmp_path, monkeypatch):
    """Damaged extradata can make the header filter refuse to start; the video must
    still decode (its frames then have no quantizer), not fail to open."""
    import av.bitstream

    def refuse(*args, **kwargs):
        raise av.error.InvalidDataError(-1094995529, "refused")

    monkeypatch.setattr(av.bitstream, "BitStreamFilterContext", refuse)
    frames = _decoded(_av1_clip(tmp_path, "in.mkv", 40).path)
    assert len(frames) == 12 and all(d.quantizer is None for d in frames)
