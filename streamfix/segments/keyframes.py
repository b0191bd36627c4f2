"""One pass over a file's video packets: where it can be cut, and a fingerprint of each part.

Why packets and not frames: decoding a two-hour film only to find its keyframes
would cost as much as a quarter of the restoration itself; demuxing reads the bytes
once and decodes nothing, so the index costs about as much as copying the file.

A cut before packet K (in decode order) is safe when decoding from K alone yields
exactly the frames a full decode shows from K's frame on, pixel for pixel:
- K is a point a decoder can start from: an H.264 IDR, an HEVC IRAP (IDR/CRA/BLA),
  or, for other codecs, a packet the demuxer flags as a keyframe. An H.264 I-frame
  that is not an IDR does not qualify: frames after it may still refer to frames
  before it.
- Display order splits there too: every packet before K shows before K's frame, and
  K's frame shows first of all the packets from K on. Open GOPs fail this test:
  their leading pictures (decoded after K, shown before it) refer to frames before
  K, so a file made only of open GOPs (x265's default) is one piece.
The restored frames then depend only on their piece (the model sees one frame and
its QP map; HEVC's frame-QP estimate is anchored on the I-frame that starts the piece).

Each GOP (a keyframe and the packets after it) gets a digest of its packets' bytes
and timestamps, so a changed file invalidates only the pieces whose packets changed.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from streamfix.core.errors import InputError

# NAL unit types a decoder can start from.
H264_IDR = frozenset({5})
HEVC_IRAP = frozenset(range(16, 24))


@dataclass(frozen=True, slots=True)
class Gop:
    """A run of packets in decode order that starts with a keyframe (or the file's start)."""

    first: int              # decode index of its first packet
    count: int              # packets in it
    key_pts: int            # pts of its first packet
    pts_min: int
    pts_max: int
    random_access: bool     # its first packet is a point a decoder can start from
    digest: str             # of its packets' bytes and timestamps


@dataclass(frozen=True, slots=True)
class KeyframeIndex:
    """What one pass over the video packets found (see the module docstring)."""

    path: str
    format_name: str        # the demuxer's name, e.g. "matroska,webm"
    codec_name: str
    time_base: Fraction
    average_rate: Fraction | None  # what the demuxer reports (a single pass's encoder gets it too)
    first_pts: int          # the earliest frame's pts
    gops: tuple[Gop, ...]
    frame_pts: tuple[int, ...]  # every frame's pts, in decode order
    unsafe: str | None = None   # why no cut is safe at all (e.g. packets without pts)

    @property
    def frames(self) -> int:
        return len(self.frame_pts)

    def seconds(self, pts: int) -> float:
        """Seconds from the file's first frame."""
        return float((pts - self.first_pts) * self.time_base)

    def cut_points(self) -> list[int]:
        """Indexes of the GOPs a piece may start with (besides the first)."""
        if self.unsafe is not None:
            return []
        gops = self.gops
        before = [0] * len(gops)  # the latest frame shown by the GOPs before each one
        latest = None
        for i, gop in enumerate(gops):
            before[i] = latest
            latest = gop.pts_max if latest is None else max(latest, gop.pts_max)
        cuts, earliest = [], None
        for i in range(len(gops) - 1, 0, -1):
            earliest = gops[i].pts_min if earliest is None else min(earliest, gops[i].pts_min)
            if gops[i].random_access and before[i] < earliest == gops[i].key_pts:
                cuts.append(i)
        return sorted(cuts)


def _nal_length_size(codec: str, extradata: bytes | None) -> int | None:
    """Bytes in each NAL's length prefix (avcC/hvcC), or None for Annex B start codes."""
    if not extradata or extradata[0] != 1:
        return None
    if codec == "h264" and len(extradata) > 4:
        return (extradata[4] & 3) + 1
    if codec == "hevc" and len(extradata) > 21:
        return (extradata[21] & 3) + 1
    return None


def _nal_types(codec: str, data: bytes, length_size: int | None) -> list[int]:
    headers: list[int] = []
    if length_size is not None:
        at = 0
        while at + length_size < len(data):
            size = int.from_bytes(data[at:at + length_size], "big")
            headers.append(data[at + length_size])
            at += length_size + size
    else:
        at = data.find(b"\x00\x00\x01")
        while 0 <= at and at + 3 < len(data):
            headers.append(data[at + 3])
            at = data.find(b"\x00\x00\x01", at + 3)
    if codec == "h264":
        return [h & 0x1F for h in headers]
    return [(h >> 1) & 0x3F for h in headers]


def starts_decoding(codec: str, packet: av.Packet, length_size: int | None) -> bool:
    """Whether a decoder can start at `packet` and get every later frame right."""
    if not packet.is_keyframe:
        return False
    if codec not in ("h264", "hevc"):
        return True
    wanted = H264_IDR if codec == "h264" else HEVC_IRAP
    return any(t in wanted for t in _nal_types(codec, bytes(packet), length_size))


class _GopBuilder:
    def __init__(self, first: int, key_pts: int, random_access: bool) -> None:
        self.first, self.key_pts, self.count, self.random_access = first, key_pts, 0, random_access
        self.pts_min: int | None = None
        self.pts_max: int | None = None
        self.hash = hashlib.blake2b(digest_size=16)

    def add(self, packet: av.Packet, data: bytes) -> None:
        self.count += 1
        pts = packet.pts
        self.pts_min = pts if self.pts_min is None else min(self.pts_min, pts)
        self.pts_max = pts if self.pts_max is None else max(self.pts_max, pts)
        dts = packet.dts if packet.dts is not None else -(2 ** 62)
        self.hash.update(struct.pack("<qqB", pts, dts, int(packet.is_keyframe)))
        self.hash.update(data)

    def done(self) -> Gop:
        return Gop(self.first, self.count, self.key_pts, self.pts_min, self.pts_max, self.random_access,
                   self.hash.hexdigest())


def open_video(path: str | Path) -> av.container.InputContainer:
    """`path` opened for demuxing; InputError (one line) if it holds no video."""
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise InputError(f"{path}: cannot be read as a video ({exc.strerror}); it is not a media file, "
                         f"or it is truncated or corrupt") from None
    if not container.streams.video:
        container.close()
        raise InputError(f"{path}: has no video stream; streamfix restores video and still images only")
    return container


def index_file(path: str | Path) -> KeyframeIndex:
    """Read every video packet of `path` once (nothing is decoded); see the module docstring."""
    path = Path(path)
    with open_video(path) as container:
        stream = container.streams.video[0]
        codec = stream.codec_context.name
        length_size = _nal_length_size(codec, stream.codec_context.extradata)
        gops: list[Gop] = []
        frame_pts: list[int] = []
        current: _GopBuilder | None = None
        unsafe = None
        try:
            for packet in container.demux(stream):
                if not packet.size:
                    continue
                if packet.pts is None:
                    # Counted on (the whole file is then one piece): its place stands in.
                    unsafe = "its video packets carry no timestamps"
                    packet.pts = len(frame_pts)
                data = bytes(packet)
                if current is None or packet.is_keyframe:
                    if current is not None:
                        gops.append(current.done())
                    current = _GopBuilder(len(frame_pts), packet.pts, starts_decoding(codec, packet, length_size))
                current.add(packet, data)
                frame_pts.append(packet.pts)
        except av.error.FFmpegError as exc:
            unsafe = f"reading it failed after {len(frame_pts)} packets ({exc.strerror})"
        if current is not None:
            gops.append(current.done())
        if unsafe is None and len(set(frame_pts)) != len(frame_pts):
            unsafe = "two of its frames share a timestamp"
        if not frame_pts:
            raise InputError(f"{path}: contains no video packets; the file is empty or corrupt")
        return KeyframeIndex(path=str(path), format_name=container.format.name, codec_name=codec,
                             time_base=stream.time_base, average_rate=_rate(stream), first_pts=min(frame_pts),
                             gops=tuple(gops),
                             frame_pts=tuple(frame_pts), unsafe=unsafe)


def _rate(stream: av.video.stream.VideoStream) -> Fraction | None:
    rate = stream.average_rate or stream.guessed_rate
    return Fraction(rate) if rate else None
