"""Where a file may be cut (only where a decoder can start and display order splits),
how it is cut into pieces, and the fingerprints that let a rerun trust old pieces.
One pass over packets, nothing decoded: these tests run no model."""

from __future__ import annotations

import av
import pytest

import mediagen as mg
from segtools import BLOCKY_GOPS
from streamfix.segments.keyframes import index_file
from streamfix.segments.plan import clock, plan_pieces

OPEN_GOP = {**BLOCKY_GOPS, "x264-params": "open-gop=1"}


def _has_encoder(name: str) -> bool:
    try:
        av.Codec(name, "w")
    except (ValueError, av.error.FFmpegError):
        return False
    return True


def test_closed_gops_are_cut_at_every_idr(tmp_path):
    clip = mg.write_clip(tmp_path / "in.mkv", frames=48, encoder_options=BLOCKY_GOPS)
    index = index_file(clip.path)
    assert [g.first for g in index.gops] == [0, 12, 24, 36]
    assert index.cut_points() == [1, 2, 3]
    pieces = plan_pieces(index, 0.4)
    assert [(p.first_packet, p.packets) for p in pieces] == [(0, 12), (12, 12), (24, 12), (36, 12)]
    assert pieces[1].describe() == "piece 1 (0:00:00.480-0:00:00.920)"
    # Pieces reach at least S seconds: two GOPs each for 0.6 s.
    assert [p.packets for p in plan_pieces(index, 0.6)] == [24, 24]


def test_a_short_tail_joins_the_piece_before_it(tmp_path):
    clip = mg.write_clip(tmp_path / "in.mkv", frames=44, encoder_options=BLOCKY_GOPS)
    pieces = plan_pieces(index_file(clip.path), 0.4)
    assert [p.packets for p in pieces] == [12, 12, 20]  # the last 8 frames (0.32 s) are no piece of their own
    assert [p.packets for p in plan_pieces(index_file(clip.path), 10.0)] == [44]


def test_transport_streams_are_read_by_their_start_codes(tmp_path):
    """MPEG-TS carries H.264 in Annex B form (start codes, no length prefixes)."""
    clip = mg.write_clip(tmp_path / "in.ts", frames=36, encoder_options=BLOCKY_GOPS)
    assert index_file(clip.path).cut_points() == [1, 2]


def test_open_gop_i_frames_are_not_cut_points(tmp_path):
    """x264's open-GOP keyframes are I-frames but not IDRs: frames after them may refer
    to frames before them, so the file stays one piece."""
    clip = mg.write_clip(tmp_path / "in.mkv", frames=48, encoder_options=OPEN_GOP)
    index = index_file(clip.path)
    assert len(index.gops) > 1 and not any(g.random_access for g in index.gops[1:])
    assert index.cut_points() == []
    assert len(plan_pieces(index, 0.2)) == 1


@pytest.mark.skipif(not _has_encoder("libx265"), reason="needs libx265")
def test_hevc_leading_pictures_keep_their_cra_from_being_a_cut(tmp_path):
    """x265's default open GOPs: a CRA is followed (in decode order) by pictures shown
    before it, which refer to the GOP before; a piece starting at that CRA would lose
    them. With closed GOPs every IDR is a cut."""
    x265 = "keyint=12:min-keyint=12:scenecut=0:log-level=error"
    open_clip = mg.write_clip(tmp_path / "open.mkv", frames=48, codec="libx265",
                              encoder_options={"crf": "40", "x265-params": x265})
    closed = mg.write_clip(tmp_path / "closed.mkv", frames=48, codec="libx265",
                           encoder_options={"crf": "40", "x265-params": f"{x265}:open-gop=0"})
    assert index_file(open_clip.path).cut_points() == []
    assert index_file(closed.path).cut_points() == [1, 2, 3]


def test_packets_without_timestamps_cannot_be_cut(tmp_path):
    """A raw H.264 stream has no pts: pieces could not be put back in place."""
    clip = mg.write_clip(tmp_path / "in.h264", frames=24, encoder_options=BLOCKY_GOPS, container_format="h264")
    index = index_file(clip.path)
    assert index.unsafe is not None and "timestamps" in index.unsafe
    assert index.cut_points() == [] and len(plan_pieces(index, 0.2)) == 1


def _first_packets(source, target, count: int):
    with av.open(str(source)) as container, av.open(str(target), "w") as out:
        stream = container.streams.video[0]
        copy = out.add_stream_from_template(stream)
        for number, packet in enumerate(p for p in container.demux(stream) if p.size):
            if number < count:
                packet.stream = copy
                out.mux(packet)


def test_a_piece_keeps_its_digest_while_its_packets_stay_the_same(tmp_path):
    """What lets a rerun on a changed input redo only the pieces whose packets changed."""
    clip = mg.write_clip(tmp_path / "in.mkv", frames=48, encoder_options=BLOCKY_GOPS)
    _first_packets(clip.path, tmp_path / "cut.mkv", 36)
    other = mg.write_clip(tmp_path / "other.mkv", frames=48, encoder_options={**BLOCKY_GOPS, "crf": "35"})
    whole, cut, changed = (plan_pieces(index_file(p), 0.4) for p in (clip.path, tmp_path / "cut.mkv", other.path))
    assert [p.digest for p in cut] == [p.digest for p in whole[:3]]
    assert not {p.digest for p in changed} & {p.digest for p in whole}


def test_clock_reads_like_a_player():
    assert clock(0) == "0:00:00.000"
    assert clock(5423.0406) == "1:30:23.041"
