"""What a coded video packet tells about its frame's compression, read before decoding.

The reader attaches it to each packet (`packet.opaque`); FFmpeg carries it to the frame
that packet completes (the decoder's copy_opaque), also through frame threads and
reordering:
- the coded size, which HEVC's QP estimate reads (restore/strength.py);
- MJPEG: the JPEG quality read off the packet's quantization tables;
- AV1: the frame headers' quantizer (media/av1_quantizer.py), since libdav1d
  exports none with the decoded frame.
"""

from __future__ import annotations

import io
from typing import NamedTuple

import av
from PIL import Image

from streamfix.core.jpeg import quality_from_tables
from streamfix.media.av1_quantizer import Av1Quantizer, is_av1


class PacketHints(NamedTuple):
    size: int
    jpeg_quality: int | None = None
    # (codec, the frame's quantizer on that codec's scale), e.g. ("av1", base_q_idx).
    quantizer: tuple[str, float] | None = None


class PacketHinter:
    """Reads the hints of one video stream's packets, in demux order."""

    def __init__(self, stream: av.stream.Stream) -> None:
        self._is_mjpeg = stream.codec_context.name == "mjpeg"
        self._av1 = None
        if is_av1(stream):
            try:
                self._av1 = Av1Quantizer(stream)
            except (av.error.FFmpegError, ValueError):
                # Headers FFmpeg's parser refuses up front (damaged extradata): the
                # frames still decode, their quantizer is just unknown.
                pass

    def of(self, packet: av.Packet) -> PacketHints:
        quantizer = None
        if self._av1 is not None:
            q = self._av1.of(packet)
            quantizer = None if q is None else ("av1", q)
        return PacketHints(packet.size, self._mjpeg_quality(packet), quantizer)

    def _mjpeg_quality(self, packet: av.Packet) -> int | None:
        if not self._is_mjpeg:
            return None
        try:
            with Image.open(io.BytesIO(bytes(packet))) as image:
                return quality_from_tables(getattr(image, "quantization", None))
        except OSError:  # a damaged JPEG: the strength is then unknown, not fatal
            return None
