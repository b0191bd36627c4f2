"""Cutting a file into pieces of at least S seconds, at safe keyframes only.

A piece is a run of whole GOPs in decode order. It starts at a cut point from the
keyframe index and reaches at least `seconds` of display time; a short tail is
merged into the piece before it, so every piece is at least S seconds long unless
the whole file is shorter. A file without a safe cut point is one piece.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from streamfix.segments.keyframes import KeyframeIndex


@dataclass(frozen=True, slots=True)
class Piece:
    index: int
    first_packet: int       # decode index of its first packet in the input
    packets: int            # one frame each
    start_pts: int          # its earliest frame's pts, in the input's time base
    end_pts: int            # its latest frame's pts
    start_s: float          # seconds from the file's first frame
    end_s: float
    digest: str             # of its packets: a piece whose input changed has another digest

    @property
    def name(self) -> str:
        return f"piece-{self.index:04d}"

    def describe(self) -> str:
        """How errors and logs name the piece: its number and time range."""
        return f"piece {self.index} ({clock(self.start_s)}-{clock(self.end_s)})"


def clock(seconds: float) -> str:
    """0:01:30.040"""
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours}:{minutes:02d}:{rest / 1000:06.3f}"


def plan_pieces(index: KeyframeIndex, seconds: float) -> list[Piece]:
    """The pieces of the indexed file; see the module docstring."""
    gops, time_base = index.gops, index.time_base
    starts = [0]
    for cut in index.cut_points():
        if (gops[cut].pts_min - gops[starts[-1]].pts_min) * time_base >= seconds:
            starts.append(cut)
    if len(starts) > 1:
        # A tail shorter than `seconds` joins the piece before it. Its last frame
        # lasts about one average frame period beyond its pts.
        last_pts = max(g.pts_max for g in gops[starts[-1]:])
        period = (max(index.frame_pts) - index.first_pts) / max(index.frames - 1, 1)
        if (last_pts + period - gops[starts[-1]].pts_min) * time_base < seconds:
            starts.pop()
    pieces = []
    for number, (begin, end) in enumerate(zip(starts, [*starts[1:], len(gops)])):
        part = gops[begin:end]
        digest = hashlib.blake2b("".join(g.digest for g in part).encode(), digest_size=16).hexdigest()
        start_pts, end_pts = min(g.pts_min for g in part), max(g.pts_max for g in part)
        pieces.append(Piece(index=number, first_packet=part[0].first, packets=sum(g.count for g in part),
                            start_pts=start_pts, end_pts=end_pts, start_s=index.seconds(start_pts),
                            end_s=index.seconds(end_pts), digest=digest))
    return pieces
