"""Read a still image (JPEG, PNG, BMP, TIFF, WebP) as a one-frame input.

Stills never go through FFmpeg (stills.py says why). The reader offers the same
interface as VideoReader, so the pipeline does not ask which one it has: `video`,
`items()` (one DecodedFrame, no packets), `copy_streams` (none), `live`,
`end_reason` and `reconnects` (a file neither stalls nor reconnects), and `notes`
(what reading the picture lost, e.g. 16-bit colour or an alpha channel).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

from streamfix.media import stills
from streamfix.media.decoded import DecodedFrame, VideoInfo
from streamfix.media.frame_fields import colour_tags
from streamfix.media.planes import bit_depth


class StillReader:
    """Decode the image at `path` (a checked, readable file) with PIL, at once."""

    def __init__(self, path: str | Path) -> None:
        self.source = str(path)
        self.live = False
        self.end_reason: str | None = None
        self.reconnects = 0
        self.copy_streams: list = []
        still = stills.read_still(path)
        frame = still.frame
        self.video = VideoInfo(
            width=frame.width, height=frame.height, pix_fmt=frame.format.name,
            codec_name=still.format.lower(), bit_depth=bit_depth(frame),
            time_base=Fraction(1, 1), average_rate=None, start_time=0, **colour_tags(frame),
            rotation=still.rotation, frame_count=1, duration_s=None, is_still=True,
            image_metadata=still.metadata)
        # What reading the picture lost, said before the run starts (one line).
        self.notes = ([f"streamfix: warning: {self.source}: {'; '.join(still.conversions)}"]
                      if still.conversions else [])
        self._pending = [DecodedFrame(index=0, frame=frame, qp_map=None, packet_bytes=None,
                                      jpeg_quality=still.jpeg_quality, arrival=time.monotonic())]

    def items(self) -> Iterator[DecodedFrame]:
        """The one frame, once."""
        while self._pending:
            yield self._pending.pop()

    def close(self) -> None:
        """Nothing stays open: PIL closed the file after decoding."""

    def __enter__(self) -> StillReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
