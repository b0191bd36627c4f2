"""Which container format (FFmpeg muxer) an output is written in.

A file's format comes from its suffix unless one is named; a pipe or URL has no
suffix, so a URL gets its protocol's usual container (MPEG-TS for udp://, FLV for
rtmp://) and a pipe needs one named. A named format is checked against FFmpeg's
muxers here, so a typo fails before any decoding starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av

from streamfix.core.errors import OutputError
from streamfix.media import endpoints
from streamfix.media import stills

# Output suffix -> FFmpeg muxer. Anything else needs an explicit container_format.
CONTAINER_FORMATS = {
    ".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm",
    ".ts": "mpegts", ".m2ts": "mpegts", ".mts": "mpegts", ".avi": "avi", ".nut": "nut",
    ".flv": "flv",
}


def container_format_for(target: str | Path, container_format: str | None = None) -> str:
    """The muxer for a file `target`: `container_format` if given (checked), else by suffix."""
    if container_format is not None:
        try:
            av.format.ContainerFormat(container_format, "w")
        except (ValueError, av.error.FFmpegError):
            raise OutputError(f"unknown container format {container_format!r}; try mp4, matroska or mpegts") from None
        return container_format
    suffix = Path(target).suffix.lower()
    if suffix not in CONTAINER_FORMATS:
        known = " ".join(sorted(set(CONTAINER_FORMATS) | set(stills.IMAGE_SUFFIXES)))
        raise OutputError(f"{target}: cannot tell the output format from {suffix or 'no suffix'!r}; "
                          f"use one of {known}, or name the container format (--format matroska, mp4, ...)")
    return CONTAINER_FORMATS[suffix]


def output_format_for(target: Any, container_format: str | None = None) -> str:
    """The muxer for any output endpoint: a file as above; a pipe, URL or file-like
    object by the name given, or a URL by its protocol."""
    if endpoints.is_path(target):
        return container_format_for(target, container_format)
    chosen = container_format or endpoints.output_format_for(target)
    if chosen is None:
        raise OutputError(f"{endpoints.describe(target, output=True)}: a stream output needs a container "
                          f"format; give one with --format, e.g. --format mpegts (or matroska, nut, flv)")
    return container_format_for(target, chosen)
