"""Copy one piece's video packets out of the input into a file of its own.

The piece file uses the input's own container format, so its demuxer reports the
same time base, colour tags, display rotation and aspect ratio as the input's:
the piece's restored video is then encoded with the same parameters a single pass
would use (x264, for one, writes the time base into its bitstream). Packets are
copied byte for byte, so decoding gives the same frames and the same QP maps.

The worker seeks to the piece's keyframe instead of reading from the start (pieces
near the end of a film would otherwise read most of it). Demuxers seek
approximately (MPEG-TS by bytes), so the packets after the seek are matched
against the index by decode position: the reader goes on from an earlier point,
or from the start, until it meets the piece's first packet.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import av

from streamfix.media.copied_streams import stream_from_template
from streamfix.segments.plan import Piece

# Demuxer names (as FFmpeg lists them) -> the muxer that writes the same container.
MUXERS = {"mov,mp4,m4a,3gp,3g2,mj2": "mp4", "matroska,webm": "matroska"}


def muxer_for(format_name: str) -> str:
    """The muxer for an input container; Matroska where FFmpeg has none of its own."""
    if format_name in MUXERS:
        return MUXERS[format_name]
    for name in format_name.split(","):
        try:
            av.format.ContainerFormat(name, "w")
        except (ValueError, av.error.FFmpegError):
            continue
        return name
    return "matroska"


class CutError(Exception):
    """The piece's packets could not be found in the input again."""


def cut_piece(source: str | Path, piece: Piece, wanted: Sequence[int], format_name: str, target: Path) -> int:
    """Write `piece`'s video packets from `source` into `target`; returns how many.

    `wanted` is the pts of each of the piece's packets in decode order, from the
    keyframe index: the piece starts at the packet with `wanted[0]`, and the packets
    that follow it in the file must carry the others."""
    first_pts = wanted[0]
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        packets = _packets_from(container, stream, first_pts, piece.start_pts)
        with av.open(str(target), "w", format=muxer_for(format_name)) as out:
            copy = stream_from_template(out, stream)
            copy.time_base = stream.time_base
            # Containers that store a frame rate (Matroska) would otherwise guess one,
            # and the piece's encoder would get another rate than a single pass's.
            rate = stream.average_rate or stream.guessed_rate
            if rate:
                copy.codec_context.framerate = rate
            written = 0
            for packet in packets:
                if written == len(wanted):
                    break
                if packet.pts != wanted[written]:
                    raise CutError(f"packet {piece.first_packet + written} of the input has pts {packet.pts}, "
                                   f"the index says {wanted[written]}; the file changed while it was read")
                packet.stream = copy
                out.mux(packet)
                written += 1
    if written != len(wanted):
        raise CutError(f"the input ended after {written} of the piece's {len(wanted)} packets; "
                       f"the file changed while it was read")
    return written


def _packets_from(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                  first_pts: int, start_pts: int):
    """Video packets from the one with `first_pts` on: after a seek if it lands before
    that packet, else from the start of the file."""
    for seek_to in (start_pts, None):
        try:
            if seek_to is None:
                container.seek(0, backward=True, any_frame=True, stream=stream)
            else:
                container.seek(seek_to, backward=True, any_frame=False, stream=stream)
        except av.error.FFmpegError:
            continue
        packets = (p for p in container.demux(stream) if p.size)
        for packet in packets:
            if packet.pts == first_pts:
                yield packet
                yield from packets
                return
            if packet.is_keyframe and packet.pts is not None and packet.pts > start_pts:
                break  # the seek landed past the piece: read from the start instead
    raise CutError(f"the packet with pts {first_pts} was not found; the file changed while it was read")
