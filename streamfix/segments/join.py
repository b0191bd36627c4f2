"""Joining restored pieces into the output by stream copy, with the input's audio and subtitles.

What a single pass would have written, and how it is reproduced without decoding:
- Video: each piece's packets, copied. Every frame gets back the exact pts it has in
  the input (the n-th earliest frame of a piece is the piece's n-th earliest input
  frame), in the input's time base, so timestamps come out as a single pass writes
  them whatever the piece's container did to them.
- Decode timestamps are rebuilt for the whole stream, the way x264 makes them: with
  a reorder depth of d frames, a packet's dts is the pts of the frame d places
  earlier in display order (the first d packets' are shifted back from the first
  pts). Each piece's own dts restart before its first frame and would collide at
  the cuts; these increase strictly across them. Intra-only codecs (FFV1) get d = 0:
  dts = pts.
- Audio, subtitle and data packets come once, from the input, untouched, with their
  original timestamps; the same streams are kept, refused or dropped as a single
  pass would (the writer's rules, checked before any piece is restored).
- The video stream's header comes from the first piece (the same encoder settings
  wrote every piece: checked), its frame rate and time base from the input.

The output is written under its `.partial` name and renamed when complete.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from streamfix.core.errors import OutputError
from streamfix.media.container_extras import carry_container_extras
from streamfix.media.containers import container_format_for
from streamfix.media.copied_streams import add_copied_stream
from streamfix.media.input_streams import copied_streams as single_pass_copies, restored_video
from streamfix.media.partial_file import PartialFile
from streamfix.media.video_reader import STALE_CONTAINER_TAGS
from streamfix.segments.keyframes import KeyframeIndex
from streamfix.segments.plan import Piece


def copied_streams(container: av.container.InputContainer) -> list[av.stream.Stream]:
    """The input streams a single pass copies (the reader's choice, input_streams.py),
    attachments included (they have no packets: carry_container_extras writes them)."""
    video = restored_video(container)
    return single_pass_copies(container, video, "")[0] if video is not None else []


def add_copies(out: av.container.OutputContainer, streams: list[av.stream.Stream], *, target: Any,
               drop_uncopyable: bool, log: Callable[[str], None]) -> dict[int, av.stream.Stream]:
    """Output streams for the copied input streams (the writer's rules): input index -> stream."""
    copies = {}
    for source in streams:
        if source.type == "attachment":
            continue
        stream = add_copied_stream(out, source, target=target, drop_uncopyable=drop_uncopyable, log=log)
        if stream is not None:
            copies[source.index] = stream
    return copies


def check_copies(source: str, target: Path, config: Any) -> None:
    """Refuse now, not after hours of restoring, what the join would refuse."""
    format_name = container_format_for(target, config.output.format)
    with av.open(source) as container, av.open(io.BytesIO(), "w", format=format_name) as out:
        add_copies(out, copied_streams(container), target=target,
                   drop_uncopyable=config.encode.drop_uncopyable, log=lambda message: None)


def _timestamps(pieces: list[Piece], files: list[Path], index: KeyframeIndex) -> list[list[tuple[int, int]]]:
    """(pts, dts) in the input's time base for every packet of every piece, in file order."""
    ordered: list[int] = []  # every output packet's pts, in decode order across pieces
    counts, first = [], None
    for piece, path in zip(pieces, files):
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            found = [p.pts for p in container.demux(stream) if p.size]
            header = (stream.codec_context.name, stream.codec_context.width, stream.codec_context.height,
                      stream.codec_context.format.name if stream.codec_context.format else None,
                      bytes(stream.codec_context.extradata or b""))
        first = first or header
        if header != first:
            raise OutputError(f"{piece.describe()} was encoded with other settings than piece 0 "
                              f"({path}); delete the work folder and run again")
        wanted = sorted(index.frame_pts[piece.first_packet:piece.first_packet + piece.packets])
        if len(found) != len(wanted) or None in found:
            raise OutputError(f"{piece.describe()}: {path} holds {len(found)} frames with timestamps, "
                              f"{len(wanted)} expected; delete it and run again")
        original = dict(zip(sorted(found), wanted))
        ordered += [original[pts] for pts in found]
        counts.append(len(found))
    shown = sorted(ordered)
    rank = {pts: i for i, pts in enumerate(shown)}
    depth = max(0, max(j - rank[pts] for j, pts in enumerate(ordered)))
    lead = shown[depth] - shown[0]
    dts = [shown[j - depth] if j >= depth else shown[j] - lead for j in range(len(ordered))]
    result, at = [], 0
    for count in counts:
        result.append(list(zip(ordered[at:at + count], dts[at:at + count])))
        at += count
    return result


def _video_packets(files: list[Path], stamps: list[list[tuple[int, int]]], stream: av.stream.Stream,
                   index: KeyframeIndex) -> Iterator[av.Packet]:
    """The pieces' packets with the input's timestamps and no duration: the encoders
    give a single pass's packets none either (the muxer derives it, e.g. from the
    frame rate), while a piece's container may have filled one in."""
    for path, piece_stamps in zip(files, stamps):
        with av.open(str(path)) as container:
            packets = (p for p in container.demux(container.streams.video[0]) if p.size)
            for packet, (pts, dts) in zip(packets, piece_stamps):
                packet.stream = stream
                packet.time_base = index.time_base
                packet.pts, packet.dts, packet.duration = pts, dts, 0
                yield packet


def _when(packet: av.Packet) -> float:
    """A packet's place in the interleaving, in seconds (no timestamp: now)."""
    ts = packet.dts if packet.dts is not None else packet.pts
    return float(ts * packet.time_base) if ts is not None and packet.time_base else float("-inf")


def join_pieces(source: str, index: KeyframeIndex, pieces: list[Piece], files: list[Path], target: Path,
                config: Any, log: Callable[[str], None] = print) -> Path:
    """Write `target` from the restored piece `files`; see the module docstring."""
    stamps = _timestamps(pieces, files, index)
    partial = PartialFile(target)
    if partial.note:
        log(partial.note)
    options = {str(k): str(int(v) if isinstance(v, bool) else v) for k, v in config.output.options.items()}
    try:
        out = av.open(partial.open_path, "w", format=container_format_for(target, config.output.format),
                      options=options)
    except (av.error.FFmpegError, OSError) as exc:
        partial.remove()
        raise OutputError(f"{partial.path}: cannot be created ({exc}); check the path and free space") from None
    try:
        with av.open(source) as container, av.open(str(files[0])) as first:
            video = out.add_stream_from_template(first.streams.video[0])
            video.time_base = index.time_base
            video.codec_context.framerate = index.average_rate or Fraction(25)
            streams = copied_streams(container)
            copies = add_copies(out, streams, target=target, drop_uncopyable=config.encode.drop_uncopyable, log=log)
            tags = tuple((k, v) for k, v in container.metadata.items() if k.lower() not in STALE_CONTAINER_TAGS)
            carry_container_extras(out, tags, tuple(container.chapters()), streams)
            wanted = [s for s in container.streams if s.index in copies]
            others = (p for p in container.demux(wanted) if p.size) if wanted else iter(())
            _interleave(out, _video_packets(files, stamps, video, index), others, copies)
        out.close()
    except BaseException:
        out.close()
        partial.remove()
        raise
    partial.rename_to_target()
    return target


def _interleave(out: av.container.OutputContainer, video: Iterator[av.Packet], others: Iterator[av.Packet],
                copies: dict[int, av.stream.Stream]) -> None:
    """Mux both packet sequences in time order (the muxer's own interleaving does the rest)."""
    head_video, head_other = next(video, None), next(others, None)
    while head_video is not None or head_other is not None:
        if head_other is None or (head_video is not None and _when(head_video) <= _when(head_other)):
            out.mux(head_video)
            head_video = next(video, None)
        else:
            head_other.stream = copies[head_other.stream_index]
            out.mux(head_other)
            head_other = next(others, None)
