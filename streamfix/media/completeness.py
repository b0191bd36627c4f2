"""Did a file deliver all the video its header promises?

FFmpeg's demuxers treat damage as the end of the data: a cut MKV or MPEG-TS, or an MKV
whose cluster is overwritten, simply stops yielding packets, without an error. The
frames that did decode are good and are restored, but the user must hear that the
input was shorter than it claims. So at the end of a file the reader compares what
it decoded with what the header declares:

- the video track's declared end (MP4: the track duration after its start; MKV: the
  DURATION tag FFmpeg's muxer writes, which is the track's last timestamp plus one
  frame), against the end of the last decoded frame; more than two frame periods
  (and 50 ms) short counts as truncated. The container's own duration is not used:
  it includes audio, which may legitimately run longer than the video.
- the exact frame count where the container stores one (MP4's sample table), with
  a slack of two frames for samples an edit list hides on purpose.

Live sources are not checked: they have no header promise to compare with.
"""

from __future__ import annotations

import re
from fractions import Fraction

import av

_TAG = re.compile(r"^(\d+):(\d{2}):(\d{2}(?:\.\d+)?)$")
SLACK_FRAMES = 2
SLACK_S = 0.05


def declared_end_s(stream: av.video.stream.VideoStream) -> float | None:
    """Where the header says the video track ends, in seconds; None if it does not say."""
    if stream.duration and stream.time_base is not None:
        start = stream.start_time if stream.start_time is not None else 0
        return float((start + stream.duration) * stream.time_base)
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    match = _TAG.match(tag.strip()) if tag else None
    if match is None:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def shortfall(stream: av.video.stream.VideoStream, *, frames: int, end_s: float | None,
              period_s: float) -> str | None:
    """Why the decoded video falls short of the header (one clause), or None."""
    listed = stream.frames or 0
    if listed and frames < listed - SLACK_FRAMES:
        return f"decoded {frames} of the {listed} frames its header lists"
    declared = declared_end_s(stream)
    if declared is None or end_s is None:
        return None
    missing = declared - end_s
    if missing > max(SLACK_FRAMES * period_s, SLACK_S):
        about = f", about {round(missing / period_s)} frames" if period_s > 0 else ""
        return (f"video ended after {frames} frames at {end_s:.2f} s, but its header declares "
                f"{declared:.2f} s ({missing:.2f} s missing{about})")
    return None


def frame_end_s(pts: int | None, duration: int | None, time_base: Fraction | None,
                period: Fraction) -> float | None:
    """Where a decoded frame ends: its pts plus its duration (or one frame period)."""
    if pts is None or time_base is None:
        return None
    length = duration * time_base if duration else period
    return float(pts * time_base + length)
