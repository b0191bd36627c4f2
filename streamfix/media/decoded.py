"""What every reader hands out: a description of the input and its decoded frames.

Both kinds of reader (video.py's VideoReader, still_reader.py's StillReader) give
the same two things, so the layers above never ask which kind they got:
- `VideoInfo`, the facts about the input that the writer mirrors in the output;
- `DecodedFrame`, one decoded frame with what the bitstream says about its
  compression (QP map, coded size, JPEG quality).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """The facts about the input video that the writer mirrors in the output."""

    width: int
    height: int
    pix_fmt: str
    codec_name: str
    bit_depth: int
    time_base: Fraction
    average_rate: Fraction | None
    start_time: int | None          # in time_base units, None if the container has none
    color_range: int                # AVColorRange: 0 unspecified, 1 limited (tv), 2 full (pc)
    color_primaries: int            # AVColorPrimaries (1 = BT.709, 2 = unspecified, ...)
    color_trc: int                  # AVColorTransferCharacteristic
    colorspace: int                 # AVColorSpace, the YUV matrix
    rotation: int                   # display rotation, counter-clockwise degrees: 0/90/180/270
    frame_count: int | None         # an estimate, for progress bars only
    duration_s: float | None
    is_still: bool
    sample_aspect_ratio: Fraction | None = None
    # A still's EXIF/ICC blobs, written back to a still output (orientation, profile).
    image_metadata: tuple[tuple[str, bytes], ...] = ()
    # A video file's own tags (title, artist, ...) and chapters, carried to the output.
    container_metadata: tuple[tuple[str, str], ...] = ()
    chapters: tuple[dict, ...] = ()

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"


@dataclass(frozen=True, slots=True)
class DecodedFrame:
    index: int                      # 0-based decode-output index
    frame: av.VideoFrame            # with pts/time_base of the source
    qp_map: np.ndarray | None       # H.264 per-macroblock QP
    packet_bytes: int | None        # size of the coded packet this frame came from
    jpeg_quality: int | None        # JPEG stills and MJPEG frames: quality from the tables
    # Codecs whose decoder exports no quantizer, read from the bitstream instead:
    # (codec, value on its own scale), e.g. ("av1", base_q_idx); media/packet_hints.py.
    quantizer: tuple[str, float] | None = None
    arrival: float | None = None    # time.monotonic() when the decoder produced it
    # Live inputs: the reader had waited for the data of the packet that completed this
    # frame, i.e. nothing was queued in front of the pipeline (pipeline/live.py).
    input_idle: bool = False
