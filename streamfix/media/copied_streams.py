"""Streams copied unchanged from input to output (audio, subtitles, data): what a
container can hold, and which of their tags still describe them after remuxing.

Shared by the writer (a single pass) and the segment joiner (streamfix/segments),
so a file restored in pieces keeps, drops or refuses exactly the streams a single
pass would.
"""

from __future__ import annotations

from collections.abc import Callable

import av

from streamfix.core.errors import OutputError

# Muxers that accept any codec when asked (no codec table) but cannot really carry
# these: MPEG-TS would write text subtitles as an unlabelled private stream.
MUXER_REFUSES = {"mpegts": frozenset({"mov_text", "subrip", "srt", "ass", "ssa", "webvtt", "text"})}
# Mux stream tags that describe the old file and would be wrong in the new one.
STALE_TAG_PREFIXES = ("DURATION", "NUMBER_OF_", "_STATISTICS")


def stream_from_template(container: av.container.OutputContainer, template: av.stream.Stream) -> av.stream.Stream:
    """`container.add_stream_from_template(template)`, also for a stream whose decoder
    has no encoder of the same name: PyAV looks the codec up by the decoder's name, and
    AV1 decodes with libdav1d, so copying AV1 raised UnknownCodecError. Such a stream
    is copied as opaque codec parameters. ValueError where the container cannot hold it."""
    try:
        return container.add_stream_from_template(template)
    except av.codec.codec.UnknownCodecError:
        return container.add_stream_from_template(template, opaque=True)


def add_copied_stream(container: av.container.OutputContainer, source: av.stream.Stream, *, target: object,
                      drop_uncopyable: bool, log: Callable[[str], None]) -> av.stream.Stream | None:
    """An output stream remuxing `source` as it is (tags less the stale ones, disposition);
    None where the container cannot hold it and it may go (data streams always may)."""
    name = source.codec_context.name if source.codec_context is not None else source.type
    try:
        if name in MUXER_REFUSES.get(container.format.name, ()):
            raise ValueError(name)
        stream = stream_from_template(container, source)
    except ValueError:
        message = (f"{source.type} stream #{source.index} ({name}) cannot be stored in "
                   f"{container.format.name} without re-encoding")
        if source.type == "data" or drop_uncopyable:
            log(f"{message}: dropped")
            return None
        raise OutputError(f"{target}: {message}; write the input's container type "
                          f"(same suffix), or allow dropping such streams") from None
    for key, value in source.metadata.items():
        if not key.startswith(STALE_TAG_PREFIXES):
            stream.metadata[key] = value
    stream.disposition = source.disposition
    return stream
