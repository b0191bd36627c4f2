"""What a reader met in its input and dealt with, so that nothing happens silently.

A damaged or discontinuous input is read on, the way FFmpeg reads it: packets the
decoder cannot decode are skipped, damage it can hide is concealed, demuxer errors
are read past where the demuxer can go on, and timestamp jumps are closed. Each of
these is counted here; at the end of the run every kind that happened becomes one
warning line and its count goes into `--stats`. `notes` are the decisions said at
the start (a stream copied unrestored or not carried, a picture converted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Codecs whose every video packet decodes to exactly one frame, so fewer frames than
# packets means frames were lost to damage. (MPEG-4 part 2 packs B-frames and sends
# "not coded" placeholders, VP8 sends invisible frames: their counts differ normally.)
ONE_FRAME_PER_PACKET = frozenset({"h264", "hevc", "vp9", "av1", "mjpeg", "ffv1", "prores", "dnxhd",
                                  "libdav1d", "libaom-av1", "utvideo", "huffyuv", "ffvhuff", "qtrle"})


@dataclass(slots=True)
class InputReport:
    """Counts of what was done about damage and timestamps; see the module docstring."""

    video_packets: int = 0        # non-empty video packets handed to the decoder
    failed_packets: int = 0       # ... of which the decoder refused (an error): skipped
    lost_frames: int = 0          # frames missing: packets that produced no frame (see ONE_FRAME_PER_PACKET)
    concealed: int = 0            # packets flagged damaged by the demuxer, frames by the decoder
    read_errors: int = 0          # demuxer errors read past
    timestamp_jumps: list[tuple[float, float]] = field(default_factory=list)  # (output s, jump s)
    timestamps_fixed: int = 0     # frames and packets moved later because their time did not advance
    dropped_packets: int = 0      # damaged audio/subtitle packets the output could not store
    notes: list[str] = field(default_factory=list)

    def close_count(self, codec: str, frames: int, *, interlaced: bool = False) -> None:
        """At the end of the input: how many frames the damage cost. Interlaced video
        may send each field as a packet of its own, so there only refused packets count."""
        if codec in ONE_FRAME_PER_PACKET and not interlaced:
            self.lost_frames = max(0, self.video_packets - frames)
        else:
            self.lost_frames = self.failed_packets

    def warnings(self, source: str) -> list[str]:
        """One line per kind of trouble met (none for a clean input)."""
        lines = []
        if self.lost_frames or self.failed_packets or self.concealed:
            parts = []
            if self.lost_frames or self.failed_packets:
                parts.append(f"{max(self.lost_frames, self.failed_packets)} of {self.video_packets} video "
                             f"packets could not be decoded (their frames are missing from the output)")
            if self.concealed:
                parts.append(f"{self.concealed} damaged packets or frames were concealed by the decoder")
            lines.append(f"streamfix: warning: {source} is damaged: {'; '.join(parts)}; decoding went on "
                         f"past the damage")
        if self.read_errors:
            lines.append(f"streamfix: warning: {source}: the demuxer failed {_times(self.read_errors)} and "
                         f"reading went on after each failure; data at those places is missing")
        if self.timestamp_jumps:
            shown = ", ".join(f"{'back' if jump < 0 else 'ahead'} {abs(jump):.2f} s at {at:.2f} s"
                              for at, jump in self.timestamp_jumps[:3])
            more = f" and {len(self.timestamp_jumps) - 3} more" if len(self.timestamp_jumps) > 3 else ""
            count = len(self.timestamp_jumps)
            lines.append(f"streamfix: warning: {source}: the timestamps jumped {_times(count)} ({shown}{more} "
                         f"of the output); the output continues across {'it' if count == 1 else 'each jump'} "
                         f"without a gap, audio and subtitles shifted with the video")
        if self.dropped_packets:
            lines.append(f"streamfix: warning: {source}: {self.dropped_packets} damaged audio, subtitle or data "
                         f"packets could not be stored in the output and were left out")
        if self.timestamps_fixed:
            lines.append(f"streamfix: warning: {source}: {self.timestamps_fixed} frames or packets had a "
                         f"timestamp that did not advance; each was moved just after the one before")
        return lines

    def stats(self) -> dict[str, Any]:
        """The `--stats` fields."""
        return {"damaged_packets": max(self.lost_frames, self.failed_packets), "concealed": self.concealed,
                "read_errors": self.read_errors, "timestamp_jumps": len(self.timestamp_jumps),
                "timestamps_fixed": self.timestamps_fixed, "dropped_packets": self.dropped_packets}


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"
