"""Open an input: a still image or a video, each read by its own class.

`open_input` decides which one reads it, in one place (`reads_as_still`): a local
file that PIL recognises by its content as a single-frame still image goes to
StillReader (stills are decoded by PIL, see stills.py); everything else (videos,
animated images, pipes, URLs, open objects, or any input whose demuxer is forced)
goes to VideoReader, through FFmpeg. Both describe the input as a VideoInfo and
hand out DecodedFrames (decoded.py).

`MediaReader` is the name the rest of streamfix calls this by: another name for
`open_input`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from streamfix.media import endpoints
from streamfix.media import stills
from streamfix.media.decoded import DecodedFrame, VideoInfo
from streamfix.media.input_source import check_input_file
from streamfix.media.still_reader import StillReader
from streamfix.media.video_reader import NETWORK_TIMEOUT_S, VideoReader

__all__ = ["DecodedFrame", "InputReader", "MediaReader", "StillReader", "VideoInfo", "VideoReader",
           "open_input", "reads_as_still"]

InputReader = StillReader | VideoReader


def reads_as_still(path: str | Path, input_format: str | None = None) -> bool:
    """Whether the local file `path` is read as one still image: by content, not by
    suffix, and never when a demuxer is forced."""
    return input_format is None and stills.sniff_still(path) is not None


def open_input(source: str | Path | object, *, input_format: str | None = None,
               options: dict[str, str] | None = None, timeout_s: float = NETWORK_TIMEOUT_S,
               reconnect: int = 0, log: Callable[[str], None] = print) -> InputReader:
    """A reader for `source` (see VideoReader for what each argument means).

    A local file is checked first, so a missing or unreadable one is refused with a
    clear message before anything tries to read it."""
    if endpoints.is_path(source):
        check_input_file(Path(source))
        if reads_as_still(source, input_format):
            return StillReader(source)
    return VideoReader(source, input_format=input_format, options=options, timeout_s=timeout_s,
                       reconnect=reconnect, log=log)


MediaReader = open_input
