"""The built-in stages on their own: scale keeps timing and tags; restore honours deadlines."""

from __future__ import annotations

from fractions import Fraction

import pytest

from mediagen import make_frame
from streamfix.media.reader import DecodedFrame, VideoInfo
from streamfix.restore.restorer import Restorer
from streamfix.pipeline.restore_stage import RestoreStage
from streamfix.pipeline.stages import BatchContext, ScaleStage, Stage


def video_info(width: int = 64, height: int = 48) -> VideoInfo:
    return VideoInfo(width=width, height=height, pix_fmt="yuv420p", codec_name="h264", bit_depth=8,
                     time_base=Fraction(1, 1000), average_rate=Fraction(25), start_time=0, color_range=1,
                     color_primaries=1, color_trc=1, colorspace=1, rotation=0, frame_count=10,
                     duration_s=0.4, is_still=False)


def tagged(index: int) -> DecodedFrame:
    frame = make_frame(index, 64, 48, "yuv420p", pts=40 * index + 7, time_base=Fraction(1, 1000))
    frame.color_range, frame.colorspace = 1, 1
    return DecodedFrame(index=index, frame=frame, qp_map=None, packet_bytes=None, jpeg_quality=None)


def test_scale_keeps_the_aspect_ratio_when_one_side_is_given():
    video = video_info(640, 360)
    out = ScaleStage(width=320).open(video)
    assert (out.width, out.height, out.pix_fmt) == (320, 180, "yuv420p")
    assert ScaleStage(height=100, pix_fmt="yuv444p").open(video).width == 178  # even, for 4:2:0


def test_scale_keeps_timestamps_and_colour_tags():
    stage = ScaleStage(width=32, height=24, pix_fmt="yuv444p")
    stage.open(video_info())
    decoded = [tagged(i) for i in range(3)]
    out = stage.process([d.frame for d in decoded], BatchContext(decoded))
    assert [(f.width, f.height, f.format.name) for f in out] == [(32, 24, "yuv444p")] * 3
    assert [f.pts for f in out] == [7, 47, 87] and all(f.time_base == Fraction(1, 1000) for f in out)
    assert all((f.color_range, f.colorspace) == (1, 1) for f in out)


def test_scale_rejects_bad_options():
    from streamfix.core.yaml_config import ConfigError

    with pytest.raises(ConfigError, match="width must be at least 2"):
        ScaleStage(width=1)


def test_builtin_stages_have_the_stage_shape():
    assert isinstance(ScaleStage(), Stage)
    assert isinstance(RestoreStage(Restorer(log=lambda m: None)), Stage)


def test_a_late_batch_passes_through_unrestored():
    """Live use: a batch that starts after its deadline must not delay the stream more."""
    now = [100.0]
    stage = RestoreStage(Restorer(log=lambda m: None), clock=lambda: now[0])
    decoded = [tagged(i) for i in range(2)]
    frames = [d.frame for d in decoded]
    out = stage.process(frames, BatchContext(decoded, deadline=99.5))
    assert out == frames and out[0] is frames[0]
    assert stage.stats()["late"] == 2 and stage.stats()["passed_through"] == 2


def test_an_installed_plugin_is_found_by_its_entry_point(monkeypatch):
    from importlib.metadata import EntryPoint

    import streamfix.pipeline.stages as stages

    point = EntryPoint(name="rescale", value="streamfix.pipeline.stages:ScaleStage", group=stages.ENTRY_POINT_GROUP)
    monkeypatch.setattr(stages, "entry_points", lambda group: [point] if group == stages.ENTRY_POINT_GROUP else [])
    (stage,) = stages.build_stages([{"type": "rescale", "width": 40}], lambda: None)
    assert isinstance(stage, ScaleStage) and stage.options.width == 40
