"""The fields a new frame must take over from the frame it replaces.

A restored, scaled or converted frame is a new av.VideoFrame that starts with no
timestamps and unspecified colour tags. The encoder needs the source's pts and
time base (variable frame rate, B-frame delays and late start times survive only
that way) and its colour tags (range, matrix, primaries, transfer), or players
guess the colours. Every place that makes a frame from another copies them here.
"""

from __future__ import annotations

from typing import Any

import av

COLOUR_FIELDS = ("color_range", "colorspace", "color_primaries", "color_trc")


def colour_tags(source: Any) -> dict[str, int]:
    """The colour tags of a frame (or anything with those attributes, e.g. VideoInfo)."""
    return {name: int(getattr(source, name)) for name in COLOUR_FIELDS}


def copy_timing(source: av.VideoFrame, target: av.VideoFrame) -> av.VideoFrame:
    """pts, time base and duration of `source` onto `target`."""
    target.pts = source.pts
    if source.time_base is not None:
        target.time_base = source.time_base
    target.duration = source.duration
    return target


def copy_frame_fields(source: av.VideoFrame, target: av.VideoFrame) -> av.VideoFrame:
    """Timing and colour tags of `source` onto `target`."""
    copy_timing(source, target)
    for name in COLOUR_FIELDS:
        setattr(target, name, getattr(source, name))
    return target
