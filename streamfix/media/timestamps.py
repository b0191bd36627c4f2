"""Timestamps every writer accepts: increasing, present, continuous across reconnects."""

from __future__ import annotations

from fractions import Fraction

import av


class Timestamps:
    """Every frame leaves with a pts later than the previous frame's.

    A frame without one (raw .h264 has none) gets its dts, or the previous pts plus
    one frame period. A frame whose pts does not advance (damaged or badly muxed
    files) is moved one tick after the previous frame: muxers refuse equal or falling
    timestamps, and dropping the frame would lose it.

    After a reconnect the sender's clock usually starts again somewhere else: the new
    connection's timestamps (frames and copied packets alike) are shifted so that its
    first packet sits one frame period after the last frame, and frames are rescaled
    to the first connection's time base.
    """

    def __init__(self, stream: av.video.stream.VideoStream) -> None:
        self.time_base = stream.time_base
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        self.step = max(1, round(1 / (Fraction(rate) * self.time_base)))
        self.last: int | None = None
        self.first = stream.start_time or 0
        self.shift_s = Fraction(0)  # added to every timestamp of the current connection
        self._new_segment = False

    def new_segment(self, stream: av.video.stream.VideoStream) -> None:
        self._new_segment = True

    def shift_packet(self, packet: av.Packet) -> None:
        when = packet.pts if packet.pts is not None else packet.dts
        if self._new_segment and when is not None and packet.time_base is not None:
            end = (self.last + self.step) * self.time_base if self.last is not None else Fraction(0)
            self.shift_s = end - when * packet.time_base
            self._new_segment = False
        if self.shift_s and packet.time_base is not None:
            ticks = round(self.shift_s / packet.time_base)
            if packet.pts is not None:
                packet.pts += ticks
            if packet.dts is not None:
                packet.dts += ticks

    def fill(self, frame: av.VideoFrame) -> None:
        if frame.time_base is None:
            frame.time_base = self.time_base
        if frame.time_base != self.time_base:
            if frame.pts is not None:
                frame.pts = round(frame.pts * frame.time_base / self.time_base)
            frame.time_base = self.time_base
        if frame.pts is None:
            if frame.dts is not None and (self.last is None or frame.dts > self.last):
                frame.pts = frame.dts
            else:
                frame.pts = self.first if self.last is None else self.last + self.step
        elif self.last is not None and frame.pts <= self.last:
            frame.pts = self.last + 1
        self.last = frame.pts
