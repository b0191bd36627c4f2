"""Write one restored frame as a still image (.png, .jpg, .bmp, .tif, .webp) with PIL.

An image holds one frame, so a video input is refused when the writer opens, before
any work, and a second frame is refused when it arrives. The frame is kept until
`finish()` saves it (into this run's partial file first, like any file output), with the
input's EXIF/ICC blobs, so a photo's orientation and colour profile survive.
Copied streams have nowhere to go in an image: their packets are ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import av

from streamfix.core.errors import OutputError
from streamfix.media import stills
from streamfix.media.decoded import VideoInfo
from streamfix.media.frame_writer import FrameWriter


class StillWriter(FrameWriter):
    """Save the one frame written to the image file `target` (a path with an image suffix)."""

    def __init__(self, target: str | Path, video: VideoInfo, *, source: str | Path | None = None,
                 log: Callable[[str], None] = print) -> None:
        super().__init__(target, video, container_format=None, source=source, log=log)
        if not video.is_still and video.frame_count != 1:
            self._closed = True
            self._remove_partial()
            raise OutputError(f"{self.target}: an image file holds one frame and the input is a video; "
                              f"write a video file (.mp4, .mkv) instead")
        self.image_format = stills.IMAGE_SUFFIXES[self.target.suffix.lower()]
        self.pix_fmt = video.pix_fmt
        self._frame: av.VideoFrame | None = None

    def _store(self, frame: av.VideoFrame) -> None:
        if self._frame is not None:
            raise OutputError(f"{self.target}: an image file holds one frame and the input has more; "
                              f"write a video file (.mp4, .mkv) instead")
        self._frame = frame

    def write_packet(self, packet: av.Packet) -> None:
        self._check_open()

    def _close(self, *, quiet: bool) -> None:
        """Save the frame; with none written there is nothing to save."""
        if self._frame is None:
            return
        info = self.video
        try:
            stills.write_still(self._write_path, self._frame, image_format=self.image_format,
                               metadata=info.image_metadata, colorspace=info.colorspace,
                               color_range=info.color_range)
        except (OSError, ValueError) as exc:
            raise OutputError(f"{self.partial}: the image cannot be written ({exc})") from None
