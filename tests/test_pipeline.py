"""The whole `streamfix run` pipeline on generated media, with the real bundled models
on the CPU (torch engine, one thread): what goes in comes out, restored, in order,
on time, with its audio, subtitles and colour tags.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import mediagen as mg
from streamfix.engines.select import engine_config
from streamfix.media.reader import DecodedFrame, MediaReader
from streamfix.media.writer import EncodeConfig
from streamfix.pipeline.pipeline import Pipeline, PipelineError
from streamfix.restore.restorer import Restorer

# Lossless output, so what the test reads back is exactly what the model produced.
LOSSLESS = EncodeConfig(codec="ffv1", crf=None)
# Heavily compressed inputs: the QP-conditioned model restores them (it leaves clean
# video alone by design, so a clean input would prove nothing).
BLOCKY = {"crf": "40"}


def assert_mostly_restored(result) -> None:
    """Every frame accounted for, and most restored: x264 may code a frame or two of a
    tiny test clip almost losslessly, and the model rightly leaves those alone."""
    assert result.restored + result.passed_through == result.frames_out == result.frames_in
    assert result.restored >= 0.75 * result.frames_out


def restore_file(source, target, config, **changes):
    config = dataclasses.replace(config, **changes)
    return Pipeline(source, target, config, quiet=True).run()


def restore_directly(path, config) -> list[np.ndarray]:
    """The same model applied frame by frame, without the pipeline."""
    from streamfix.media.planes import plane_to_array

    with MediaReader(path) as reader, Restorer(config.model, engine="torch", device="cpu",
                                               engine_configs={"torch": engine_config("torch", {"threads": 1})},
                                               log=lambda m: None) as restorer:
        restorer.prepare(reader.video)
        return [plane_to_array(restorer.restore_batch([item])[0], 0)
                for item in reader.items() if isinstance(item, DecodedFrame)]


def test_audio_subtitles_and_frame_times_survive_and_every_frame_is_restored_in_order(tmp_path, cpu_config):
    clip = mg.h264_with_audio_and_subtitles(tmp_path / "in.mkv", frames=16, encoder_options=BLOCKY)
    result = restore_file(clip.path, tmp_path / "out.mkv", cpu_config, encode=LOSSLESS)
    src, out = mg.probe(clip.path, keep_luma=True), mg.probe(tmp_path / "out.mkv", keep_luma=True)

    assert result.frames_in == result.frames_out == len(src.frame_pts) == 16
    assert_mostly_restored(result)
    assert out.frame_times() == src.frame_times()
    assert src.frame_times()[0] == pytest.approx(0.5)  # B-frames and a late start
    for kind in ("audio", "subtitle"):
        a, b = src.stream(kind), out.stream(kind)
        assert b.packet_bytes == a.packet_bytes, kind
        assert mg.packet_times(b) == mg.packet_times(a), kind

    direct = restore_directly(clip.path, cpu_config)
    changed = 0
    for k, (before, after, expected) in enumerate(zip(src.luma, out.luma, direct)):
        # Same model, maybe other batch sizes: equal up to float rounding.
        diff = np.abs(after.astype(int) - expected.astype(int))
        assert diff.max() <= 1 and diff.mean() < 0.05, f"frame {k} is not the restored frame {k}"
        changed += not np.array_equal(before, after)
    assert changed == result.restored  # restored frames really changed; the rest are intact


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_variable_frame_rate_survives(tmp_path, cpu_config, suffix):
    clip = mg.variable_frame_rate(tmp_path / f"in{suffix}", encoder_options=BLOCKY)
    restore_file(clip.path, tmp_path / f"out{suffix}", cpu_config)
    src, out = mg.probe(clip.path), mg.probe(tmp_path / f"out{suffix}")
    assert out.frame_times() == src.frame_times()


def test_colour_tags_and_rotation_are_carried(tmp_path, cpu_config):
    clip = mg.write_clip(tmp_path / "in.mp4", color=mg.BT709_TAGS, rotation=90, encoder_options=BLOCKY)
    result = restore_file(clip.path, tmp_path / "out.mp4", cpu_config)
    src, out = mg.probe(clip.path), mg.probe(tmp_path / "out.mp4")
    assert_mostly_restored(result)
    assert out.color == src.color == mg.BT709_TAGS
    assert out.frame_color == src.frame_color
    assert out.rotation == src.rotation == 90


def test_odd_sizes_keep_their_size(tmp_path, cpu_config):
    clip = mg.odd_size(tmp_path / "in.mkv", codec="libx264", pix_fmt="yuv444p", encoder_options=BLOCKY)
    result = restore_file(clip.path, tmp_path / "out.mkv", cpu_config)
    out = mg.probe(tmp_path / "out.mkv")
    assert (out.width, out.height) == (65, 49)
    assert_mostly_restored(result)


def test_ten_bit_in_ten_bit_out(tmp_path, cpu_config):
    clip = mg.ten_bit(tmp_path / "in.mp4", encoder_options=BLOCKY)
    result = restore_file(clip.path, tmp_path / "out.mp4", cpu_config)
    out = mg.probe(tmp_path / "out.mp4")
    assert out.pix_fmt == "yuv420p10le" and set(out.frame_formats) == {"yuv420p10le"}
    assert_mostly_restored(result)


def test_mjpeg_is_restored_by_the_jpeg_model(tmp_path, cpu_config):
    clip = mg.mjpeg(tmp_path / "in.avi", qscale=20, frames=4)
    result = restore_file(clip.path, tmp_path / "out.mkv", cpu_config)
    assert result.stage_stats["restore"]["model"] == "jpeg-y-blind"
    assert result.restored == result.frames_out == 4


def test_a_jpeg_photo_becomes_a_restored_png(tmp_path, cpu_config):
    photo = mg.jpeg_still(tmp_path / "photo.jpg", quality=10, mode="RGB")
    result = restore_file(photo, tmp_path / "restored.png", cpu_config)
    assert (tmp_path / "restored.png").is_file()
    assert result.stage_stats["restore"]["model"] == "jpeg-y-blind"
    assert result.restored == result.frames_out == 1


def test_hevc_is_restored_with_an_estimated_frame_qp(tmp_path, cpu_config):
    """HEVC decoders export no QP map: the frame QP is estimated from packet sizes."""
    clip = mg.write_clip(tmp_path / "in.mkv", codec="libx265", frames=8,
                         encoder_options={"crf": "42", "x265-params": "log-level=error"})
    result = restore_file(clip.path, tmp_path / "out.mkv", cpu_config)
    assert_mostly_restored(result)


def test_clean_video_passes_through(tmp_path, cpu_config):
    """The shipped default must not harm good video: near-lossless frames are left alone."""
    clip = mg.write_clip(tmp_path / "in.mp4", frames=6, encoder_options={"crf": "8"})
    result = restore_file(clip.path, tmp_path / "out.mp4", cpu_config)
    assert result.passed_through == result.frames_out == 6 and result.restored == 0


def test_a_mid_stream_resolution_change_is_refused_clearly(tmp_path, cpu_config):
    clip = mg.resolution_change(tmp_path / "in.ts", frames_each=6)
    target = tmp_path / "out.mkv"
    with pytest.raises(PipelineError) as err:
        restore_file(clip.path, target, cpu_config)
    message = str(err.value)
    assert err.value.user_error and err.value.stage == "decode"
    assert "changes size at frame 6" in message and "64x48 to 80x64" in message
    assert "\n" not in message
    assert not target.exists()
    # Frames written before the change stay in a file under the partial name, which the
    # message gives; if none had been written yet, no file is left at all.
    partial = err.value.partial
    if partial is None:
        assert list(tmp_path.glob("out*")) == []
    else:
        assert str(partial) in message and 0 < len(mg.probe(partial).frame_pts) <= 6


def test_a_scale_stage_after_restore(tmp_path, cpu_config):
    clip = mg.write_clip(tmp_path / "in.mp4", encoder_options=BLOCKY)
    stages = ({"type": "restore"}, {"type": "scale", "width": 32})
    restore_file(clip.path, tmp_path / "out.mp4", cpu_config, stages=stages)
    out, src = mg.probe(tmp_path / "out.mp4"), mg.probe(clip.path)
    assert (out.width, out.height) == (32, 24)
    assert out.frame_times() == src.frame_times()
