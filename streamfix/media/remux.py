"""Copy an input's video (with its audio and subtitles) into a new container, packet
for packet: what `streamfix run` writes when no frame of the input needs restoring.

Re-encoding costs quality even at a low CRF (measured in benchmarks/output.md: x264
CRF 16 takes 1.0-1.2 dB from an x264 CRF 18 clip), so a clip the model would leave
alone is better copied than encoded again: the output is then the input's own
bitstream, bit for bit, with its timestamps. Same rules as the writer: written under
the `.partial` name and renamed when complete; a stream the container cannot hold is
dropped with a logged line (data streams) or refused.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import av

from streamfix.core.errors import OutputError
from streamfix.media.containers import container_format_for
from streamfix.media.frame_writer import partial_path

COPIED_TYPES = ("video", "audio", "subtitle")


class CannotCopy(OutputError):
    """The output container cannot hold the input's video codec as it is."""


def remux(source: str | Path, target: str | Path, *, container_format: str | None = None,
          log: Callable[[str], None] = print) -> int:
    """Copy `source`'s first video stream and its audio and subtitle streams into
    `target`; returns the number of video packets (frames) copied."""
    target = Path(target)
    partial = partial_path(target)
    frames = 0
    with av.open(str(source)) as inp:
        video = inp.streams.video[0]
        keep = [video] + [s for s in inp.streams if s.type in COPIED_TYPES[1:]]
        try:
            out = av.open(str(partial), "w", format=container_format_for(target, container_format))
        except (av.error.FFmpegError, OSError) as exc:
            raise OutputError(f"{target}: cannot be created ({exc}); check the path and free space") from None
        try:
            mapping = _add_streams(out, keep, video, target, log)
            for packet in inp.demux(keep):
                if packet.dts is None and packet.size == 0:
                    continue  # the demuxer's end-of-stream marker, not data
                stream = mapping.get(packet.stream.index)
                if stream is None:
                    continue
                packet.stream = stream
                out.mux(packet)
                frames += packet.stream.type == "video"
        except BaseException:
            out.close()
            partial.unlink(missing_ok=True)
            raise
        out.close()
    os.replace(partial, target)
    return frames


def _add_streams(out: av.container.OutputContainer, keep: list, video: av.stream.Stream, target: Path,
                 log: Callable[[str], None]) -> dict[int, av.stream.Stream]:
    mapping = {}
    for source in keep:
        try:
            stream = out.add_stream_from_template(source)
        except ValueError:
            name = source.codec_context.name if source.codec_context is not None else source.type
            if source is video:
                raise CannotCopy(f"{target}: {out.format.name} cannot hold {name} video as it is") from None
            raise OutputError(f"{target}: {source.type} stream #{source.index} ({name}) cannot be stored in "
                              f"{out.format.name} without re-encoding; write the input's container type "
                              "(same suffix)") from None
        stream.disposition = source.disposition
        mapping[source.index] = stream
    return mapping
