"""Open an output: a still image or a video, each written by its own class.

`open_output` decides which, in one place (`writes_still`): a file target with an
image suffix (.png, .jpg, ...) and no container format named is written by
StillWriter with PIL (see stills.py); everything else by VideoWriter through
FFmpeg. Both share frame_writer.py's target handling: the `.partial` name while
writing, `finish()` and `abort()`, and the early `check_writable`.

`MediaWriter` is the name the rest of streamfix calls this by: another name for
`open_output`. EncodeConfig and the helpers below are part of this module's
interface, so callers need one import for an output.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from streamfix.media import endpoints
from streamfix.media import stills
from streamfix.media.containers import container_format_for
from streamfix.media.decoded import VideoInfo
from streamfix.media.encoding import EncodeConfig, choose_pix_fmt, parse_bitrate
from streamfix.media.frame_writer import check_writable, partial_path
from streamfix.media.still_writer import StillWriter
from streamfix.media.video_writer import VideoWriter

__all__ = ["EncodeConfig", "MediaWriter", "OutputWriter", "StillWriter", "VideoWriter", "check_writable",
           "choose_pix_fmt", "container_format_for", "open_output", "parse_bitrate", "partial_path",
           "writes_still"]

OutputWriter = StillWriter | VideoWriter


def writes_still(target: str | Path | object, container_format: str | None = None) -> bool:
    """Whether `target` is written as one still image: a file named like an image,
    unless a container format is named for it."""
    return container_format is None and endpoints.is_path(target) and stills.is_image_target(target)


def open_output(target: str | Path | object, video: VideoInfo, copy_streams: list,
                config: EncodeConfig | None = None, *, container_format: str | None = None,
                options: dict[str, str] | None = None, source: str | Path | None = None,
                log: Callable[[str], None] = print) -> OutputWriter:
    """A writer for `target` (see VideoWriter for what each argument means; a still
    image has no use for `copy_streams`, `config` or `options`)."""
    if writes_still(target, container_format):
        return StillWriter(target, video, source=source, log=log)
    return VideoWriter(target, video, copy_streams, config, container_format=container_format,
                       options=options, source=source, log=log)


MediaWriter = open_output
