"""Helpers for the segmented-run tests: configs, a reference single pass, an in-process
executor, and the comparison that says "what a single pass writes"."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import av
import pytest

import mediagen as mg
from streamfix.media.writer import EncodeConfig
from streamfix.pipeline.pipeline import Pipeline
from streamfix.pipeline.run_config import with_overrides
from streamfix.segments.piece_worker import PieceWorker, TaskCrash, TaskError

LOSSLESS = EncodeConfig(codec="ffv1", crf=None)
# x264 at CRF 40, a keyframe every 12 frames (0.48 s at 25 fps), B-frames: blocky
# enough to be restored, and GOPs short enough for several pieces in a 2 s clip.
BLOCKY_GOPS = {"crf": "40", "g": "12", "keyint_min": "12", "sc_threshold": "0", "bf": "3"}


@pytest.fixture
def lossless(cpu_config):
    """The test config with a lossless encoder: outputs compare bit for bit."""
    return dataclasses.replace(cpu_config, encode=LOSSLESS)


def segmented(config, seconds: float = 0.4, **scale):
    """`config` with segments of `seconds` (and other scale fields)."""
    return with_overrides(config, scale={"segment_seconds": seconds, **scale})


def single_pass(source, target, config):
    """The reference: one ordinary pass, no pieces."""
    plain = dataclasses.replace(config, scale=dataclasses.replace(config.scale, segment_seconds=None))
    return Pipeline(source, target, plain, quiet=True).run()


class InProcess:
    """An executor that runs every task here, one after another (no worker processes):
    for tests about planning, resuming and joining, where process start-up would only
    cost time."""

    workers = 1

    def __init__(self) -> None:
        self.ran: list = []

    def run(self, tasks, *, done, progress=lambda frames: None):
        worker = PieceWorker(log=lambda message: None)
        try:
            for task in tasks:
                try:
                    outcome = worker.run(task, progress)
                except (TaskError, TaskCrash) as exc:
                    outcome = exc
                self.ran.append(task)
                done(task, outcome)
        finally:
            worker.close()


def video_header(path: Path) -> dict:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        return {"format": container.format.name, "codec": ctx.name, "size": (ctx.width, ctx.height),
                "pix_fmt": ctx.pix_fmt, "time_base": stream.time_base, "rate": stream.average_rate,
                "sar": stream.sample_aspect_ratio, "extradata": bytes(ctx.extradata or b""),
                "streams": [(s.type, s.codec_context.name if s.codec_context else None, dict(s.metadata),
                             s.disposition) for s in container.streams if s.type != "video"]}


def assert_same_output(segmented_path: Path, single_path: Path, *, exact_luma: bool = True) -> None:
    """Frames, timestamps, restored luma (bit for bit), copied packets (byte for byte),
    colour tags, rotation and the video header: as the single pass wrote them."""
    seg, one = mg.probe(segmented_path, keep_luma=True), mg.probe(single_path, keep_luma=True)
    assert len(seg.frame_pts) == len(one.frame_pts)
    assert seg.frame_times() == one.frame_times()
    if exact_luma:
        differ = [i for i, (a, b) in enumerate(zip(seg.luma, one.luma)) if (a != b).any()]
        assert not differ, f"luma differs in frames {differ}"
    assert (seg.color, seg.frame_color, seg.rotation) == (one.color, one.frame_color, one.rotation)
    assert [s.type for s in seg.streams] == [s.type for s in one.streams]
    for a, b in zip(seg.streams, one.streams):
        if a.type == "video":
            assert a.packet_durations == b.packet_durations
            continue
        assert a.packet_bytes == b.packet_bytes, f"{a.type} packets differ"
        assert a.packet_pts == b.packet_pts and a.packet_durations == b.packet_durations
    mine, theirs = video_header(segmented_path), video_header(single_path)
    if not exact_luma:
        mine.pop("extradata"), theirs.pop("extradata")
    assert mine == theirs
