"""Copy an input's video (with its audio and subtitles) into a new container, packet
for packet: what `streamfix run` writes when no frame of the input needs restoring.

Re-encoding costs quality even at a low CRF (measured in benchmarks/output.md: x264
CRF 16 takes 1.0-1.2 dB from an x264 CRF 18 clip), so a clip the model would leave
alone is better copied than encoded again: the output is then the input's own
bitstream, bit for bit, with its timestamps, tags, chapters and attachments.

The copy is only for inputs that copy cleanly. Anything the decode-and-encode path
repairs or reports is left to it, by raising CannotCopy before the output takes its
name: a codec the output container cannot hold, a clock that jumps back (restarted
or wrapped MPEG-TS), a packet the demuxer or muxer refuses as damaged. The caller
then encodes instead (pipeline/output_plan.py). Same file rules as the writer: the
output is written into this run's own partial file (partial_file.py) and renamed
when complete.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av

from streamfix.core.errors import OutputError
from streamfix.media.container_extras import carry_container_extras, extras_notes_for
from streamfix.media.containers import container_format_for
from streamfix.media.partial_file import PartialFile
from streamfix.media.timestamps import OutputTimestamps
from streamfix.media.copied_streams import add_copied_stream, stream_from_template
from streamfix.media.input_streams import copied_streams, restored_video
from streamfix.media.video_reader import STALE_CONTAINER_TAGS

class CannotCopy(OutputError):
    """The input cannot be copied as it is; encoding it instead is the way out."""


def remux(source: str | Path, target: str | Path, *, container_format: str | None = None,
          drop_uncopyable: bool = False, log: Callable[[str], None] = print) -> int:
    """Copy `source`'s video and the streams a single pass copies (audio, subtitles,
    data, further video; its tags, chapters and attachments) into `target`; returns the number of frames (packets) of the first
    video stream copied. Raises CannotCopy (nothing written) where only encoding can
    give a correct output."""
    target = Path(target)
    with av.open(str(source)) as inp:
        video = restored_video(inp)
        if video is None:
            raise CannotCopy("no video stream a decoder can read")
        # The streams a single pass would carry (input_streams.py), so copying and
        # encoding give the same set of streams.
        copies = copied_streams(inp, video, str(source))[0]
        keep = [video] + [s for s in copies if s.type != "attachment"]
        others = [s for s in copies if s.type == "attachment"]
        format_name = container_format_for(target, container_format)
        partial = PartialFile(target)
        if partial.note:
            log(partial.note)
        try:
            out = av.open(partial.open_path, "w", format=format_name)
        except (av.error.FFmpegError, OSError) as exc:
            partial.remove()
            raise OutputError(f"{target}: cannot be created ({exc}); check the path and free space") from None
        try:
            mapping = _add_streams(out, keep, video, target, drop_uncopyable, log)
            tags = tuple((k, v) for k, v in inp.metadata.items() if k.lower() not in STALE_CONTAINER_TAGS)
            carry_container_extras(out, tags, tuple(inp.chapters()), others)
            for line in extras_notes_for(out.format.name, len(inp.chapters()), others):
                log(line)
            frames = _copy_packets(inp, out, keep, mapping, video)
            out.close()
        except BaseException:
            try:
                out.close()
            except (av.error.FFmpegError, OSError):
                pass
            partial.remove()
            raise
    partial.rename_to_target()
    return frames


def _copy_packets(inp: av.container.InputContainer, out: av.container.OutputContainer, keep: list,
                  mapping: dict[int, av.stream.Stream], video: av.stream.Stream) -> int:
    stamps = OutputTimestamps()
    last: dict[int, Fraction] = {}
    frames = 0
    try:
        for packet in inp.demux(keep):
            if packet.dts is None and packet.size == 0:
                continue  # the demuxer's end-of-stream marker, not data
            index = packet.stream.index
            if index not in mapping:
                continue  # a data stream the container cannot hold (dropped, said once)
            if packet.dts is not None and packet.time_base is not None:
                when = packet.dts * packet.time_base
                if index in last and when < last[index]:
                    raise CannotCopy(f"the input's clock jumps back at {float(when):.3f} s")
                last[index] = when
            counted = index == video.index
            packet.stream = mapping[index]
            stamps.fit(packet, packet.stream)
            out.mux(packet)
            frames += counted
    except (av.error.InvalidDataError, ValueError) as exc:
        # Damage: the decode path reads past it and counts it; a copy would carry
        # it silently or stop half-way.
        raise CannotCopy(f"a damaged packet ({exc})") from None
    except av.error.FFmpegError as exc:
        raise OutputError(f"copying the video failed ({exc}); check free disk space") from None
    return frames


def _add_streams(out: av.container.OutputContainer, keep: list, video: av.stream.Stream,
                 target: Path, drop_uncopyable: bool, log: Callable[[str], None]) -> dict[int, av.stream.Stream]:
    """Output streams for `keep`: the restored video as it is (or CannotCopy: then the
    encode path re-encodes it), the others by the writer's rules (copied_streams.py),
    so a copy keeps, drops or refuses the same streams an encoding run would."""
    try:
        stream = stream_from_template(out, video)
    except ValueError:
        name = video.codec_context.name if video.codec_context is not None else "unknown"
        raise CannotCopy(f"{out.format.name} cannot hold {name} video as it is") from None
    stream.disposition = video.disposition
    mapping = {video.index: stream}
    for source in keep:
        if source is not video:
            copied = add_copied_stream(out, source, target=target, drop_uncopyable=drop_uncopyable, log=log)
            if copied is not None:
                mapping[source.index] = copied
    return mapping
