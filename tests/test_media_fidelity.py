"""End-to-end fidelity of reader -> writer with an identity "restore".

Each test writes a clip with a property real inputs have, passes every decoded frame
through unchanged, and compares what an ffprobe user would compare: frame count,
every frame's time, audio/subtitle packets (times, bytes, where they end), colour
tags, rotation, size, pixel format.
"""

from __future__ import annotations

import av
import numpy as np
import pytest

import mediagen as mg
from streamfix.media.planes import array_to_plane, plane_to_array
from streamfix.media.reader import DecodedFrame, open_input
from streamfix.media.writer import EncodeConfig, open_output


def pass_through(source, target, config: EncodeConfig | None = None, **writer_kw):
    """Copy `source` to `target` frame by frame, the way the pipeline will."""
    with open_input(source) as reader:
        with open_output(target, reader.video, reader.copy_streams, config or EncodeConfig(preset="ultrafast"),
                         log=lambda line: None, **writer_kw) as writer:
            for item in reader.items():
                if isinstance(item, DecodedFrame):
                    writer.write_frame(item.frame)
                else:
                    writer.write_packet(item)
            done = writer.finish()
    return reader.video, done


def assert_same_video_timing(src: mg.Probe, out: mg.Probe) -> None:
    assert len(out.frame_pts) == len(src.frame_pts)
    assert out.frame_times() == src.frame_times()


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".mov"])
def test_bframes_with_late_start_keep_every_frame_time(tmp_path, suffix):
    """B-frames reorder decoding; a first frame at 1.5 s must stay at 1.5 s."""
    clip = mg.h264_bframes_late_start(tmp_path / f"in{suffix}", start_s=1.5)
    info, out = pass_through(clip.path, tmp_path / f"out{suffix}")
    src, dst = mg.probe(clip.path), mg.probe(out)
    assert src.frame_times()[0] == pytest.approx(1.5)
    assert_same_video_timing(src, dst)
    if suffix != ".mkv":  # Matroska has no frame count; there it is only an estimate
        assert info.frame_count == len(src.frame_pts)


def test_mpegts_output_keeps_times(tmp_path):
    clip = mg.h264_bframes_late_start(tmp_path / "in.mkv", start_s=2.0)
    _, out = pass_through(clip.path, tmp_path / "out.ts")
    assert_same_video_timing(mg.probe(clip.path), mg.probe(out))


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_variable_frame_rate_survives(tmp_path, suffix):
    clip = mg.variable_frame_rate(tmp_path / f"in{suffix}")
    _, out = pass_through(clip.path, tmp_path / f"out{suffix}")
    src, dst = mg.probe(clip.path), mg.probe(out)
    gaps = np.diff(src.frame_times())
    assert gaps.max() > 3 * gaps.min()  # the input really is irregular
    assert_same_video_timing(src, dst)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".mov"])
def test_audio_and_subtitles_copied_in_sync(tmp_path, suffix):
    """Audio and subtitles are remuxed untouched: same bytes, same times, same end."""
    clip = mg.h264_with_audio_and_subtitles(tmp_path / f"in{suffix}")
    _, out = pass_through(clip.path, tmp_path / f"out{suffix}")
    src, dst = mg.probe(clip.path), mg.probe(out)
    assert_same_video_timing(src, dst)
    for kind in ("audio", "subtitle"):
        a, b = src.stream(kind), dst.stream(kind)
        assert b.codec == a.codec
        assert b.packet_bytes == a.packet_bytes, kind
        assert mg.packet_times(b) == mg.packet_times(a), kind
        assert mg.stream_end(b) == pytest.approx(mg.stream_end(a), abs=1e-3), kind
    texts = b"".join(dst.stream("subtitle").packet_bytes)
    assert b"line 0" in texts and b"line 1" in texts


def test_stream_language_tag_is_copied(tmp_path):
    import av

    clip = mg.h264_with_audio_and_subtitles(tmp_path / "in.mkv")
    tagged = tmp_path / "tagged.mkv"
    with av.open(str(clip.path)) as src, av.open(str(tagged), "w") as dst:
        mapping = {}
        for s in src.streams:
            mapping[s.index] = dst.add_stream_from_template(s)
            if s.type == "audio":
                mapping[s.index].metadata["language"] = "fra"
        for packet in src.demux():
            if packet.size:
                packet.stream = mapping[packet.stream.index]
                dst.mux(packet)
    _, out = pass_through(tagged, tmp_path / "out.mkv")
    with av.open(str(out)) as result:
        assert result.streams.audio[0].metadata.get("language") == "fra"


@pytest.mark.parametrize("tags", [mg.BT709_TAGS, mg.BT601_FULL_TAGS], ids=["bt709-limited", "bt601-full"])
def test_colour_tags_carried_to_stream_and_frames(tmp_path, tags):
    clip = mg.colour_tagged(tmp_path / "in.mp4", tags=tags)
    info, out = pass_through(clip.path, tmp_path / "out.mp4")
    assert {k: getattr(info, k) for k in tags} == tags
    dst = mg.probe(out)
    assert dst.color == tags
    assert dst.frame_color == tags


def test_full_range_yuvj_stays_full_range(tmp_path):
    clip = mg.full_range_yuvj(tmp_path / "in.mp4")
    _, out = pass_through(clip.path, tmp_path / "out.mp4")
    dst = mg.probe(out)
    assert dst.pix_fmt == "yuvj420p"
    assert dst.color["color_range"] == 2 and dst.frame_color["color_range"] == 2


@pytest.mark.parametrize("degrees", [90, 180, 270])
@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_rotation_carried_over(tmp_path, degrees, suffix):
    clip = mg.rotated(tmp_path / f"in{suffix}", degrees=degrees)
    info, out = pass_through(clip.path, tmp_path / f"out{suffix}")
    assert info.rotation == degrees
    assert mg.probe(out).rotation == degrees


def test_ten_bit_stays_ten_bit(tmp_path):
    clip = mg.ten_bit(tmp_path / "in.mp4")
    info, out = pass_through(clip.path, tmp_path / "out.mp4")
    assert (info.pix_fmt, info.bit_depth) == ("yuv420p10le", 10)
    dst = mg.probe(out)
    assert dst.pix_fmt == "yuv420p10le"
    assert set(dst.frame_formats) == {"yuv420p10le"}


def test_eight_bit_stays_yuv420p(tmp_path):
    clip = mg.write_clip(tmp_path / "in.mp4")
    _, out = pass_through(clip.path, tmp_path / "out.mp4")
    assert mg.probe(out).pix_fmt == "yuv420p"


def test_odd_size_lossless_ffv1_is_bit_exact(tmp_path):
    """FFV1 in MKV is the measurement format: every pixel of every frame must survive."""
    clip = mg.odd_size(tmp_path / "in.mkv", width=65, height=49)
    _, out = pass_through(clip.path, tmp_path / "out.mkv", EncodeConfig(codec="ffv1", crf=None))
    src, dst = mg.probe(clip.path, keep_luma=True), mg.probe(out, keep_luma=True)
    assert (dst.width, dst.height, dst.pix_fmt) == (65, 49, "yuv420p")
    assert_same_video_timing(src, dst)
    for a, b in zip(src.luma, dst.luma, strict=True):
        np.testing.assert_array_equal(a, b)


def test_ffv1_ten_bit_lossless(tmp_path):
    clip = mg.write_clip(tmp_path / "in.mkv", codec="ffv1", pix_fmt="yuv420p10le", frames=4)
    _, out = pass_through(clip.path, tmp_path / "out.mkv", EncodeConfig(codec="ffv1", crf=None))
    src, dst = mg.probe(clip.path, keep_luma=True), mg.probe(out, keep_luma=True)
    assert dst.pix_fmt == "yuv420p10le"
    for a, b in zip(src.luma, dst.luma, strict=True):
        np.testing.assert_array_equal(a, b)


def test_odd_size_into_h264_keeps_size_as_444(tmp_path):
    """x264 cannot code odd sizes in 4:2:0; the size wins and chroma goes 4:4:4."""
    clip = mg.odd_size(tmp_path / "in.mkv", width=65, height=49)
    notes = []
    with open_input(clip.path) as reader:
        with open_output(tmp_path / "out.mp4", reader.video, reader.copy_streams,
                         EncodeConfig(preset="ultrafast"), log=notes.append) as writer:
            for item in reader.items():
                writer.write_frame(item.frame)
    dst = mg.probe(tmp_path / "out.mp4")
    assert (dst.width, dst.height, dst.pix_fmt) == (65, 49, "yuv444p")
    assert len(dst.frame_pts) == 12
    assert any("yuv444p" in line for line in notes)


def test_default_encode_is_high_quality(tmp_path):
    """CRF 16 must not add visible loss: luma PSNR of a pass-through stays high."""
    clip = mg.write_clip(tmp_path / "in.mkv", codec="ffv1", width=96, height=64, frames=6)
    _, out = pass_through(clip.path, tmp_path / "out.mp4", EncodeConfig())
    src, dst = mg.probe(clip.path, keep_luma=True), mg.probe(out, keep_luma=True)
    for a, b in zip(src.luma, dst.luma, strict=True):
        mse = np.mean((a.astype(np.float64) - b) ** 2)
        assert 10 * np.log10(255**2 / max(mse, 1e-9)) > 38


def test_mjpeg_to_ffv1_keeps_frames_and_full_range(tmp_path):
    clip = mg.mjpeg(tmp_path / "in.avi")
    _, out = pass_through(clip.path, tmp_path / "out.mkv", EncodeConfig(codec="ffv1", crf=None))
    src, dst = mg.probe(clip.path), mg.probe(out)
    assert_same_video_timing(src, dst)
    assert dst.color["color_range"] == 2


def test_raw_h264_without_timestamps_gets_regular_ones(tmp_path):
    """A raw .h264 stream has no pts at all; the output must still be a timed file."""
    import av

    raw = tmp_path / "in.h264"
    clip = mg.write_clip(tmp_path / "tmp.mkv", frames=8)
    with av.open(str(clip.path)) as src, av.open(str(raw), "w", format="h264") as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        bsf = av.bitstream.BitStreamFilterContext("h264_mp4toannexb", src.streams.video[0])
        for packet in src.demux(video=0):
            for filtered in bsf.filter(packet if packet.size else None):
                filtered.stream = stream
                dst.mux(filtered)
    _, out = pass_through(raw, tmp_path / "out.mp4")
    times = mg.probe(out).frame_times()
    assert len(times) == 8
    assert np.allclose(np.diff(times), 0.04)


def fresh_copy(frame: av.VideoFrame) -> av.VideoFrame:
    """What the restore stage hands the writer: a new frame with planes, pts, time_base."""
    out = av.VideoFrame(frame.width, frame.height, frame.format.name)
    for i in range(len(frame.planes)):
        array_to_plane(out, i, plane_to_array(frame, i))
    out.pts, out.time_base = frame.pts, frame.time_base
    return out


@pytest.mark.parametrize("make", [mg.colour_tagged, mg.full_range_yuvj, mg.rotated, mg.ten_bit],
                         ids=["bt709", "yuvj", "rotated", "10-bit"])
def test_fresh_frames_with_planes_and_pts_only_keep_everything(tmp_path, make):
    """The writer takes colour, range, rotation and format from VideoInfo, not from the
    frames, because restored frames carry nothing but planes and timestamps."""
    clip = make(tmp_path / "in.mp4")
    with open_input(clip.path) as reader:
        with open_output(tmp_path / "out.mp4", reader.video, reader.copy_streams,
                         EncodeConfig(preset="ultrafast"), log=lambda line: None) as writer:
            for item in reader.items():
                writer.write_frame(fresh_copy(item.frame))
    src, dst = mg.probe(clip.path), mg.probe(tmp_path / "out.mp4")
    assert_same_video_timing(src, dst)
    assert (dst.pix_fmt, dst.color, dst.frame_color, dst.rotation) == (src.pix_fmt, src.color, src.frame_color, src.rotation)


def test_packets_can_outlive_the_reader(tmp_path):
    """The pipeline may close the reader while the writer still has packets queued."""
    clip = mg.h264_with_audio_and_subtitles(tmp_path / "in.mkv")
    reader = open_input(clip.path)
    writer = open_output(tmp_path / "out.mkv", reader.video, reader.copy_streams,
                         EncodeConfig(preset="ultrafast"), log=lambda line: None)
    items = list(reader.items())
    reader.close()
    for item in items:
        if isinstance(item, DecodedFrame):
            writer.write_frame(item.frame)
        else:
            writer.write_packet(item)
    writer.finish()
    src, dst = mg.probe(clip.path), mg.probe(tmp_path / "out.mkv")
    assert_same_video_timing(src, dst)
    assert dst.stream("audio").packet_bytes == src.stream("audio").packet_bytes
