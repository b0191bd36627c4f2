"""Timestamps every writer accepts: increasing, present, continuous across jumps.

Two kinds of trouble, two remedies:

- The clock of the whole input jumps. MPEG-TS streams restart their clock
  (concatenated recordings, encoder restarts, broadcast splices), jump ahead, or
  wrap around 2^33 ticks after 26.5 hours where FFmpeg's own unwrapping cannot
  help; a reconnected source starts a clock of its own. Copied as they are, such
  timestamps make the muxer refuse audio ("non monotonically increasing dts") or
  squeeze a second of video into a fraction of a millisecond. So packets are
  watched before they are decoded: a stream whose dts falls back by more than
  BACKWARD_SLACK_S, or (in formats whose timestamps may be discontinuous, FFmpeg's
  AVFMT_TS_DISCONT: MPEG-TS and friends) a video dts that leaps FORWARD_JUMP_S past
  where the last frame ended, is a jump. From that packet on every stream is
  shifted by the same amount, so the new part starts where the old one ended (the
  latest end of any stream: nothing overlaps, nothing is squeezed) and audio keeps
  its place next to its video. A reconnect is a jump by definition. Video and audio
  decide; subtitle and data packets are only shifted along.
- Single frames whose pts does not advance (damaged or badly muxed files): such a
  frame is moved one tick after the previous one, because muxers refuse equal or
  falling timestamps and dropping the frame would lose it. Frames without a pts (raw
  .h264) get their dts, or the previous pts plus one frame period.

Every jump and every moved frame is counted (`jumps`, `moved`) so the run can say
what it did. Frames are rescaled to the first connection's time base.
"""

from __future__ import annotations

from fractions import Fraction

import av

# FFmpeg's own thresholds for discontinuous inputs (fftools: -dts_delta_threshold 10,
# and a dts more than 0.1 s behind the stream's last one).
FORWARD_JUMP_S = Fraction(10)
BACKWARD_SLACK_S = Fraction(1, 10)
_DECIDING_TYPES = ("video", "audio")


class Timestamps:
    """The reader's timestamp keeper for one input (see the module docstring)."""

    def __init__(self, stream: av.video.stream.VideoStream, *, discontinuous: bool = False) -> None:
        self.time_base = stream.time_base
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        self.step = max(1, round(1 / (Fraction(rate) * self.time_base)))
        self.last: int | None = None
        self.first = stream.start_time or 0
        self.shift_s = Fraction(0)  # added to every timestamp of the input from here on
        self.jumps: list[tuple[float, float]] = []  # (output time, how far the input clock jumped), seconds
        self.moved = 0  # frames moved later because their pts did not advance
        self._video_index = stream.index
        self._discontinuous = discontinuous
        self._new_segment = False
        self._last_dts: dict[int, Fraction] = {}  # per stream, on the output clock
        self._end: dict[int, Fraction] = {}  # where each stream's last packet ended, output clock

    def new_segment(self, stream: av.video.stream.VideoStream) -> None:
        """A reconnect: the next packet continues where the input stopped."""
        self._new_segment = True
        self._video_index = stream.index

    # --- packets: jumps of the whole input --------------------------------------

    def shift_packet(self, packet: av.Packet) -> None:
        tb = packet.time_base
        if tb is None:
            return
        when = packet.dts if packet.dts is not None else (packet.pts if self._new_segment else None)
        if when is not None:
            self._watch(packet, when * tb + self.shift_s)
        if self.shift_s:
            ticks = round(self.shift_s / tb)
            if packet.pts is not None:
                packet.pts += ticks
            if packet.dts is not None:
                packet.dts += ticks
        if packet.dts is not None:
            latest = packet.dts if packet.pts is None else max(packet.dts, packet.pts)
            self._remember(packet, packet.dts * tb, latest * tb)

    def _watch(self, packet: av.Packet, t: Fraction) -> None:
        """Shift from `packet` on if its time `t` (output clock) is a jump."""
        if self._new_segment:
            self._new_segment = False
            self._continue_from(t, counted=False)
            return
        index, kind = packet.stream_index, packet.stream.type
        if kind not in _DECIDING_TYPES:
            return
        last = self._last_dts.get(index)
        if last is not None and t < last - BACKWARD_SLACK_S:
            self._continue_from(t, counted=True)
        elif (self._discontinuous and index == self._video_index and index in self._end
              and t - self._end[index] > FORWARD_JUMP_S):
            self._continue_from(t, counted=True)

    def _continue_from(self, t: Fraction, *, counted: bool) -> None:
        end = max(self._end.values(), default=None)
        if end is None:
            return
        self.shift_s += end - t
        if counted:
            self.jumps.append((float(end), float(t - end)))

    def _remember(self, packet: av.Packet, dts: Fraction, latest: Fraction) -> None:
        """`latest`: the later of its dts and pts (B-frames show after they decode)."""
        index = packet.stream_index
        self._last_dts[index] = dts
        length = packet.duration * packet.time_base if packet.duration else Fraction(0)
        if not length and index == self._video_index:
            length = self.step * self.time_base
        self._end[index] = max(self._end.get(index, latest), latest + length)

    # --- frames: each one later than the one before ---------------------------------

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
            self.moved += 1
        self.last = frame.pts


def _rescale(value: int, src: Fraction, dst: Fraction) -> int:
    """`value` from time base `src` to `dst`, rounded as FFmpeg's muxer rounds (to
    the nearest, halves away from zero)."""
    exact = Fraction(value) * src / dst
    half = Fraction(1, 2)
    return int(exact + half) if exact >= 0 else -int(-exact + half)


class OutputTimestamps:
    """Every packet reaches the muxer with a dts later than the last one of its stream,
    in that stream's own time base. Two increasing input times can become equal on a
    coarser output clock (1/90000 s TS ticks into Matroska's milliseconds), and muxers
    refuse an equal or falling dts; such a packet is moved one tick later (its pts too
    if it would fall before its dts) and counted in `fixed`."""

    def __init__(self) -> None:
        self.fixed = 0
        self._last: dict[int, int] = {}

    def fit(self, packet: av.Packet, stream: av.stream.Stream) -> None:
        src, dst = packet.time_base, stream.time_base
        if packet.dts is None or src is None or dst is None:
            return
        dts = _rescale(packet.dts, src, dst)
        last = self._last.get(stream.index)
        if last is not None and dts <= last:
            pts = _rescale(packet.pts, src, dst) if packet.pts is not None else None
            duration = _rescale(packet.duration, src, dst) if packet.duration else 0
            dts = last + 1
            packet.time_base = dst
            packet.dts, packet.pts, packet.duration = dts, None if pts is None else max(pts, dts), duration
            self.fixed += 1
        self._last[stream.index] = dts
