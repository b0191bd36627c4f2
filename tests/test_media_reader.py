"""The readers (open_input): what they report, what they hand out, and how they refuse bad inputs."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

import mediagen as mg
from streamfix.core.errors import InputError
from streamfix.media.reader import DecodedFrame, StillReader, VideoReader, open_input


def read_all(source, **kw):
    """(reader, frames, packets as (stream type, size, pts)). Packets and streams are
    only valid while their container is open, so they are summarised inside."""
    with open_input(source, **kw) as reader:
        items = list(reader.items())
        packets = [(i.stream.type, i.size, i.pts) for i in items if not isinstance(i, DecodedFrame)]
        reader.copied_types = sorted(s.type for s in reader.copy_streams)
    frames = [i for i in items if isinstance(i, DecodedFrame)]
    return reader, frames, packets


def test_video_info_describes_the_input(tmp_path):
    clip = mg.h264_bframes_late_start(tmp_path / "in.mp4", start_s=1.5, frames=24)
    reader, frames, _ = read_all(clip.path)
    info = reader.video
    assert (info.width, info.height, info.pix_fmt, info.bit_depth) == (64, 48, "yuv420p", 8)
    assert info.codec_name == "h264"
    assert info.average_rate == 25
    assert info.start_time * info.time_base == Fraction(3, 2)
    assert info.frame_count == 24 and info.duration_s == pytest.approx(0.96)
    assert info.rotation == 0 and not info.is_still


def test_frames_in_display_order_with_consecutive_indices(tmp_path):
    clip = mg.h264_bframes_late_start(tmp_path / "in.mkv", frames=20)
    _, frames, _ = read_all(clip.path)
    assert [f.index for f in frames] == list(range(20))
    pts = [f.frame.pts for f in frames]
    assert pts == sorted(pts) == list(clip.frame_pts)
    assert all(f.frame.time_base == Fraction(1, 1000) for f in frames)


def test_frames_follow_the_source_pixels(tmp_path):
    """Decoded frame i is the pattern's frame i (nothing swapped or duplicated)."""
    clip = mg.write_clip(tmp_path / "in.mkv", codec="ffv1", frames=5)
    _, frames, _ = read_all(clip.path)
    for f in frames:
        expected = mg.make_frame(f.index, 64, 48, "yuv420p").to_ndarray()
        np.testing.assert_array_equal(f.frame.to_ndarray(), expected)


def test_h264_frames_carry_qp_maps_and_packet_sizes(tmp_path):
    clip = mg.write_clip(tmp_path / "in.mp4", width=80, height=48, frames=8,
                         encoder_options={"crf": "38", "bf": "2"})
    _, frames, _ = read_all(clip.path)
    with av.open(str(clip.path)) as c:
        sizes = {p.pts: p.size for p in c.demux(video=0) if p.size}
    for f in frames:
        assert f.qp_map is not None and f.qp_map.shape == (3, 5)
        assert 10 < f.qp_map.mean() < 52
        assert f.packet_bytes == sizes[f.frame.pts]
        assert f.jpeg_quality is None
    assert frames[0].packet_bytes > frames[1].packet_bytes  # the keyframe is the big one


def test_non_h264_frames_have_no_qp_map(tmp_path):
    clip = mg.write_clip(tmp_path / "in.mkv", codec="ffv1", frames=3)
    _, frames, _ = read_all(clip.path)
    assert all(f.qp_map is None and f.packet_bytes > 0 for f in frames)


@pytest.mark.parametrize("qscale, lower, upper", [(3, 85, 100), (20, 20, 70)])
def test_mjpeg_frames_report_jpeg_quality(tmp_path, qscale, lower, upper):
    clip = mg.mjpeg(tmp_path / "in.avi", qscale=qscale, frames=4)
    reader, frames, _ = read_all(clip.path)
    assert reader.video.codec_name == "mjpeg" and reader.video.color_range == 2
    qualities = {f.jpeg_quality for f in frames}
    assert len(qualities) == 1
    assert lower <= qualities.pop() <= upper


def test_copied_stream_packets_are_handed_out_in_demux_order(tmp_path):
    clip = mg.h264_with_audio_and_subtitles(tmp_path / "in.mkv")
    reader, frames, packets = read_all(clip.path)
    assert reader.copied_types == ["audio", "subtitle"]
    assert len(frames) == 24
    src = mg.probe(clip.path)
    assert [p[2] for p in packets if p[0] == "audio"] == src.stream("audio").packet_pts
    assert [p[2] for p in packets if p[0] == "subtitle"] == src.stream("subtitle").packet_pts
    assert all(size > 0 for _, size, _ in packets)
    with open_input(clip.path) as again:
        kinds = ["video" if isinstance(i, DecodedFrame) else i.stream.type for i in again.items()]
    assert kinds.index("audio") < len(kinds) - kinds[::-1].index("video")  # interleaved, not appended


def test_raw_stream_without_timestamps_gets_them(tmp_path):
    raw = tmp_path / "in.h264"
    with av.open(str(raw), "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=25, options={"bf": "2", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(6):
            out.mux(stream.encode(mg.make_frame(i, 64, 48, "yuv420p")))
        out.mux(stream.encode(None))
    _, frames, _ = read_all(raw)
    pts = [f.frame.pts for f in frames]
    assert None not in pts and len(pts) == 6
    assert len(set(np.diff(pts))) == 1 and pts[1] > pts[0]


def test_ten_bit_and_odd_sizes_are_reported(tmp_path):
    reader, _, _ = read_all(mg.ten_bit(tmp_path / "a.mp4").path)
    assert (reader.video.pix_fmt, reader.video.bit_depth) == ("yuv420p10le", 10)
    reader, frames, _ = read_all(mg.odd_size(tmp_path / "b.mkv").path)
    assert reader.video.size == "65x49" and frames[0].frame.width == 65


def test_colour_and_rotation_are_reported(tmp_path):
    reader, _, _ = read_all(mg.colour_tagged(tmp_path / "a.mp4").path)
    assert (reader.video.color_range, reader.video.color_primaries,
            reader.video.color_trc, reader.video.colorspace) == (1, 1, 1, 1)
    reader, _, _ = read_all(mg.rotated(tmp_path / "b.mp4", degrees=270).path)
    assert reader.video.rotation == 270


def test_still_images_are_routed_by_content_not_suffix(tmp_path):
    """A JPEG named .mp4 is still a JPEG: PIL decodes it, one frame, quality known."""
    path = mg.jpeg_still(tmp_path / "photo.mp4", quality=30)
    reader, frames, packets = read_all(path)
    assert reader.video.is_still and reader.video.codec_name == "jpeg"
    assert len(frames) == 1 and not packets and reader.copied_types == []
    assert frames[0].jpeg_quality == 30 and frames[0].frame.pts == 0



def test_each_input_goes_to_its_reader(tmp_path):
    """The one choice open_input makes: by content, and a forced demuxer always means
    FFmpeg (a JPEG read with jpeg_pipe is a one-frame MJPEG video)."""
    still = mg.jpeg_still(tmp_path / "photo.jpg", quality=30)
    clip = mg.write_clip(tmp_path / "in.mkv", frames=3)
    with open_input(still) as a, open_input(clip.path) as b, open_input(still, input_format="jpeg_pipe") as c:
        assert isinstance(a, StillReader) and a.video.is_still
        assert isinstance(b, VideoReader) and not b.video.is_still
        assert isinstance(c, VideoReader) and (c.video.codec_name, c.video.is_still) == ("mjpeg", False)


def test_a_still_hands_out_its_frame_once(tmp_path):
    with open_input(mg.jpeg_still(tmp_path / "photo.jpg")) as reader:
        assert len(list(reader.items())) == 1 and list(reader.items()) == []

# --- inputs that must fail with one clear line ------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        open_input(tmp_path / "nope.mp4")


def test_directory(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        open_input(tmp_path)


def test_empty_file(tmp_path):
    with pytest.raises(InputError, match="empty"):
        open_input(mg.empty_file(tmp_path / "empty.mp4"))


def test_text_named_mp4(tmp_path):
    with pytest.raises(InputError, match="not a media file"):
        open_input(mg.text_named_like_video(tmp_path / "notes.mp4"))


def test_audio_only(tmp_path):
    with pytest.raises(InputError, match="no video stream.*audio"):
        open_input(mg.audio_only(tmp_path / "song.m4a"))


def test_zero_frames(tmp_path):
    with pytest.raises(InputError, match="zero frames"):
        open_input(mg.zero_frames(tmp_path / "zero.mkv"))


def test_truncated_mp4_cannot_open(tmp_path):
    clip = mg.h264_with_audio_and_subtitles(tmp_path / "in.mp4")
    cut = mg.truncated_copy(clip.path, tmp_path / "cut.mp4", keep=0.6)
    with pytest.raises(InputError, match="truncated or corrupt"):
        open_input(cut)


def test_truncated_mkv_decodes_what_is_there_and_says_so(tmp_path):
    clip = mg.h264_with_audio_and_subtitles(tmp_path / "in.mkv", frames=24)
    cut = mg.truncated_copy(clip.path, tmp_path / "cut.mkv", keep=0.6)
    with open_input(cut) as reader:
        frames = [item for item in reader.items() if isinstance(item, DecodedFrame)]
        reason = reader.end_reason
    assert 3 <= len(frames) < 24
    assert [f.index for f in frames] == list(range(len(frames)))
    assert reason is not None and f"after {len(frames)} frames" in reason and "truncated or corrupt" in reason


def _overwrite_packet(source, target, index):
    """Overwrite video packet `index` (from its block header on) with filler bytes:
    Matroska's demuxer loses its place there and stops without an error."""
    with av.open(str(source)) as container:
        packets = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
    data = bytearray(Path(source).read_bytes())
    pos, size = packets[index]
    data[pos:pos + size] = bytes([0x5A]) * size
    Path(target).write_bytes(bytes(data))
    return Path(target)


def test_corrupt_middle_names_the_frame_reached(tmp_path):
    """Damage in the middle: the 12 frames before it come out, and the reader says how
    much of the declared video is missing instead of ending as if the file were whole."""
    clip = mg.write_clip(tmp_path / "in.mkv", frames=24, width=96, height=64, codec="ffv1")
    broken = _overwrite_packet(clip.path, tmp_path / "broken.mkv", 12)
    with open_input(broken) as reader:
        frames = [item for item in reader.items() if isinstance(item, DecodedFrame)]
        reason = reader.end_reason
    assert len(frames) == 12
    assert reason is not None and "after 12 frames" in reason and "about 12 frames" in reason


@pytest.mark.parametrize("name, kwargs", [
    ("plain.mkv", {}),
    ("av.mkv", {"audio": True, "subtitles": "auto", "start_s": 0.5}),
    ("bframes.mp4", {"encoder_options": {"bf": "2"}, "start_s": 1.0, "audio": True}),
    ("vfr.mkv", {"frame_pts_ms": [0, 40, 80, 200, 240, 400, 440, 480]}),
    ("vfr.mp4", {"frame_pts_ms": [0, 40, 80, 200, 240, 400, 440, 480]}),
    ("stream.ts", {"audio": True}),
])
def test_whole_files_are_not_reported_short(tmp_path, name, kwargs):
    clip = mg.write_clip(tmp_path / name, frames=24, **kwargs)
    with open_input(clip.path) as reader:
        frames = [item for item in reader.items() if isinstance(item, DecodedFrame)]
        assert reader.end_reason is None
    assert len(frames) == len(clip.frame_pts)


def test_resolution_change_is_refused_with_frame_and_sizes(tmp_path):
    clip = mg.resolution_change(tmp_path / "in.ts", first=(64, 48), second=(80, 64), frames_each=6)
    seen = []
    with pytest.raises(InputError, match="at frame 6, from 64x48 to 80x64"):
        with open_input(clip.path) as reader:
            for item in reader.items():
                seen.append(item)
    assert len(seen) == 6


def test_unreachable_url(tmp_path):
    with pytest.raises(InputError, match="cannot open the stream"):
        open_input("http://127.0.0.1:9/stream.ts")


def test_errors_are_one_line(tmp_path):
    cases = [tmp_path / "nope.mp4", mg.text_named_like_video(tmp_path / "t.mp4"),
             mg.audio_only(tmp_path / "a.m4a")]
    for case in cases:
        with pytest.raises(InputError) as failure:
            open_input(case)
        assert "\n" not in str(failure.value) and str(case) in str(failure.value)


def test_repeated_timestamps_are_made_increasing(tmp_path):
    """A badly muxed file repeats a pts; every frame must still come out, in order."""
    clip = mg.write_clip(tmp_path / "in.mkv", frames=8, encoder_options={"bf": "0"})
    damaged = tmp_path / "repeated.mkv"
    with av.open(str(clip.path)) as src, av.open(str(damaged), "w") as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(video=0):
            if packet.size:
                if packet.pts == 120:  # frame 3 claims frame 2's time
                    packet.pts = packet.dts = 80
                packet.stream = stream
                dst.mux(packet)
    _, frames, _ = read_all(damaged)
    pts = [f.frame.pts for f in frames]
    assert len(pts) == 8
    assert all(b > a for a, b in zip(pts, pts[1:]))


def test_a_live_reader_says_which_frames_it_had_to_wait_for(tmp_path):
    """Live mode's deadlines (pipeline/live.py) trust a frame's lateness only where the
    reader waited for its data; from a file nothing is ever waited for."""
    import io
    import os
    import threading
    import time

    FRAMES = 50
    clip = io.BytesIO()
    with av.open(clip, "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=25, options={"preset": "ultrafast", "tune": "zerolatency"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(FRAMES):
            out.mux(stream.encode(mg.make_frame(i, 64, 48, "yuv420p")))
        out.mux(stream.encode(None))
    data = clip.getvalue()
    read_end, write_end = os.pipe()

    def trickle() -> None:  # a real-time source (after the part FFmpeg probes): the reader waits
        chunk = len(data) // FRAMES + 1
        with os.fdopen(write_end, "wb") as pipe:
            for start in range(0, len(data), chunk):
                pipe.write(data[start : start + chunk])
                pipe.flush()
                time.sleep(0.04)

    sender = threading.Thread(target=trickle)
    sender.start()
    try:
        with open_input(f"pipe:{read_end}", input_format="mpegts") as reader:
            assert reader.live
            frames = [item for item in reader.items() if isinstance(item, DecodedFrame)]
    finally:
        sender.join()
        os.close(read_end)
    assert len(frames) == FRAMES
    assert sum(f.input_idle for f in frames) >= 5, [f.input_idle for f in frames]
    file = tmp_path / "clip.ts"
    file.write_bytes(data)
    with open_input(file) as reader:
        assert not any(item.input_idle for item in reader.items() if isinstance(item, DecodedFrame))
