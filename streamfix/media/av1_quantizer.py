"""AV1's quantizer, read from the frame headers of the coded packets.

FFmpeg's AV1 decoder (libdav1d) exports no encoding parameters, so unlike VP9 the
decoded frame says nothing about how coarsely it was quantized. The frame header
does: `base_q_idx` (0-255, AV1's counterpart of VP9's q index). Its position in the
header depends on the sequence header and on a dozen earlier fields, so rather than
a parser of our own this reads what FFmpeg's own AV1 header parser prints: the
`trace_headers` bitstream filter logs every header field it parses, and PyAV's log
capture collects those lines for the thread that ran the filter.

What a packet is given: the mean base_q_idx of the last WINDOW coded frames. One AV1
packet (a temporal unit) often carries several frames that are never shown on their
own (an alt-ref and the layers of a pyramid, at q 119-184 in one SVT-AV1 stream)
beside the one it shows, and a shown frame can be a copy of an earlier hidden one
(`show_existing_frame`) or a frame of 23 bytes at q 200 that mostly copies its
references. No single frame's q describes what the viewer sees; the recent mean
does, and it is the same quantity the conditioning fit was made on
(train/calibrate_blind_qp.py).
"""

from __future__ import annotations

import re
import threading
from collections import deque

import av
import av.logging

WINDOW = 8
# One traced field: "<bit position> <name> <bits> = <value>".
_FIELD = re.compile(r"^\s*\d+\s+(\w+)\s+[01]+\s+=\s+(\d+)\s*$")
# PyAV's log level is global: one filter call at a time turns the INFO lines on.
_TRACE_LOCK = threading.Lock()


def is_av1(stream: av.stream.Stream) -> bool:
    codec = getattr(stream.codec_context, "codec", None)
    return getattr(codec, "canonical_name", None) == "av1"


def frame_header_quantizers(lines: list[str]) -> list[int]:
    """base_q_idx of each newly coded frame in a packet's traced headers (frames shown
    again with show_existing_frame code no quantizer of their own)."""
    found, existing = [], False
    for line in lines:
        match = _FIELD.match(line)
        if match is None:
            continue
        name, value = match.groups()
        if name == "show_existing_frame":
            existing = value == "1"
        elif name == "base_q_idx" and not existing:
            found.append(int(value))
    return found


class Av1Quantizer:
    """The recent base_q_idx of one AV1 stream, packet by packet (see the module
    docstring). Any trouble (a header FFmpeg cannot parse, a stream joined without
    its sequence header) leaves that packet's quantizer unknown, never stops the run."""

    def __init__(self, stream: av.stream.Stream) -> None:
        from av.bitstream import BitStreamFilterContext

        self._filter = BitStreamFilterContext("trace_headers", stream)
        self._recent: deque[int] = deque(maxlen=WINDOW)

    def of(self, packet: av.Packet) -> float | None:
        """The stream's quantizer once `packet` is read, None while none is known
        (or when this packet's headers could not be read)."""
        coded = self.coded(packet)
        return None if coded is None else self.current

    def coded(self, packet: av.Packet) -> list[int] | None:
        """base_q_idx of the frames `packet` codes (remembered for `current`), None
        if its headers could not be read."""
        if not packet.size:
            return []
        try:
            lines = self._trace(packet)
        except (av.error.FFmpegError, ValueError):
            return None
        found = frame_header_quantizers(lines)
        self._recent.extend(found)
        return found

    @property
    def current(self) -> float | None:
        return sum(self._recent) / len(self._recent) if self._recent else None

    def _trace(self, packet: av.Packet) -> list[str]:
        # The filter takes over the packet it is given: it gets a copy, so the packet
        # itself still goes to the decoder.
        copy = av.Packet(bytes(packet))
        with _TRACE_LOCK:
            level = av.logging.get_level()
            av.logging.set_level(av.logging.INFO)
            try:
                with av.logging.Capture() as logs:
                    self._filter.filter(copy)
            finally:
                av.logging.set_level(level)
        return [message for _level, name, message in logs if name == "trace_headers"]
