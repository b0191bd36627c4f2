"""Inputs a hostile world brings, built with PyAV the way mediagen.py builds the friendly
ones: damaged packets, clocks that restart or wrap, streams a restoration could lose,
MJPEG as IP cameras send it. Each function writes one small file and says what is
special about it; tests compare what streamfix makes of it.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

import mediagen as mg

TS_PACKET = 188
# The 33-bit MPEG-TS clock wraps after 2^33 ticks of 1/90000 s (26.5 hours).
TS_WRAP_S = 2 ** 33 / 90000


def video_packet_places(path: Path) -> list[tuple[int, int, bool]]:
    """(byte position, size, keyframe) of every video packet, in file order."""
    with av.open(str(path)) as container:
        return [(p.pos, p.size, p.is_keyframe) for p in container.demux(video=0) if p.size]


def damaged_mp4(path: Path, *, frames: int = 50, damaged: tuple[int, ...] = (20,)) -> Path:
    """An H.264 MP4 whose video packets `damaged` have a broken first NAL length, the
    way a bit error in a download breaks them: FFmpeg's decoder refuses exactly those
    packets and decodes the rest."""
    clean = path.with_name(f"clean-{path.name}")
    mg.write_clip(clean, frames=frames, audio=True, encoder_options={"g": "10", "bf": "0"})
    data = bytearray(clean.read_bytes())
    places = video_packet_places(clean)
    for index in damaged:
        pos = places[index][0]
        data[pos:pos + 4] = b"\xff\xff\xff\xff"
    path.write_bytes(bytes(data))
    return path


def ts_with_damaged_start(path: Path, *, frames: int = 50, audio: bool = True) -> Path:
    """An MPEG-TS whose first keyframe (with the SPS/PPS) lost its payload, as a
    recording that starts in a burst of lost UDP packets: nothing decodes until the
    next keyframe (every 10 frames), then everything does."""
    clean = path.with_name(f"clean-{path.name}")
    mg.write_clip(clean, frames=frames, audio=audio, container_format="mpegts",
                  encoder_options={"g": "10", "bf": "0"})
    data = bytearray(clean.read_bytes())
    pos = video_packet_places(clean)[0][0]
    first = pos - pos % TS_PACKET
    # Keep the 4-byte TS header and the PES header; overwrite the start of the H.264 data.
    data[first + 40:first + TS_PACKET] = bytes([0x5A]) * (TS_PACKET - 40)
    path.write_bytes(bytes(data))
    return path


def ts_restarting_clock(path: Path, *, audio: bool, seconds: float = 1.0, rate: int = 25) -> Path:
    """Two recordings of `seconds` each, concatenated byte for byte (as `cat a.ts b.ts`
    and encoder restarts make them): the second one's clock starts again where the
    first one's did."""
    part = path.with_name(f"part-{path.name}")
    mg.write_clip(part, frames=round(seconds * rate), rate=rate, audio=audio, container_format="mpegts")
    path.write_bytes(part.read_bytes() * 2)
    return path


def ts_wrapping_clock(path: Path, *, audio: bool, seconds: float = 2.0, rate: int = 25) -> Path:
    """One recording whose 33-bit clock wraps to zero half-way, as every broadcast
    stream does after 26.5 hours."""
    mg.write_clip(path, frames=round(seconds * rate), rate=rate, audio=audio, container_format="mpegts",
                  start_s=TS_WRAP_S - seconds / 2)
    return path


def ts_jumping_ahead(path: Path, *, audio: bool, jump_s: float = 3600.0) -> Path:
    """A splice: one second, then the clock leaps `jump_s` ahead for the next second."""
    first = path.with_name(f"first-{path.name}")
    second = path.with_name(f"second-{path.name}")
    mg.write_clip(first, frames=25, audio=audio, container_format="mpegts")
    mg.write_clip(second, frames=25, audio=audio, container_format="mpegts", start_s=jump_s)
    path.write_bytes(first.read_bytes() + second.read_bytes())
    return path


def mjpeg_stream(path: Path, *, frames: int = 30) -> Path:
    """A raw Motion-JPEG stream: JPEG images back to back, as IP cameras send."""
    mg.write_clip(path, frames=frames, codec="mjpeg", container_format="mjpeg", pix_fmt="yuvj420p",
                  encoder_options={"qmin": "8", "qmax": "8"})
    return path


def two_video_streams(path: Path, *, frames: int = 12) -> Path:
    """An MKV with a main camera (64x48) and a second angle (32x24, its own stream)."""
    tb = Fraction(1, 25)
    with av.open(str(path), "w") as out:
        streams = []
        for width, height in ((64, 48), (32, 24)):
            stream = out.add_stream("libx264", rate=25, options={"crf": "30", "preset": "veryfast"})
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            streams.append(stream)
        for i in range(frames):
            for stream in streams:
                frame = mg.make_frame(i, stream.width, stream.height, "yuv420p", pts=i, time_base=tb)
                out.mux(stream.encode(frame))
        for stream in streams:
            out.mux(stream.encode(None))
    return path


def with_tags_chapters_and_font(source: Path, path: Path) -> Path:
    """`source` remuxed into Matroska with a title, two chapters and a font
    attachment (what anime and film releases carry)."""
    with av.open(str(source)) as src, av.open(str(path), "w") as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        dst.metadata["title"] = "A film"
        dst.add_attachment("font.ttf", "application/x-truetype-font", b"\x00\x01\x00\x00font" * 16)
        dst.set_chapters([{"id": 1, "start": 0, "end": 200, "time_base": Fraction(1, 1000), "metadata": {"title": "One"}},
                          {"id": 2, "start": 200, "end": 400, "time_base": Fraction(1, 1000),
                           "metadata": {"title": "Two"}}])
        for packet in src.demux():
            if packet.size:
                packet.stream = streams[packet.stream_index]
                dst.mux(packet)
    return path


def png_16bit_rgb(path: Path, *, width: int = 64, height: int = 48) -> Path:
    """A 48-bit colour PNG (16 bits per channel), written by FFmpeg's PNG encoder."""
    values = np.random.default_rng(5).integers(0, 65535, (height, width, 3)).astype(np.uint16)
    frame = av.VideoFrame.from_ndarray(values, format="rgb48le")
    with av.open(str(path), "w", format="image2") as out:
        stream = out.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = width, height, "rgb48be"
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def png_with_alpha(path: Path) -> Path:
    pixels = np.dstack([mg.still_pixels(mode="RGB"), np.full((48, 64), 128, np.uint8)])
    Image.fromarray(pixels, mode="RGBA").save(path)
    return path


def interlaced_h264(path: Path, *, frames: int = 8) -> Path:
    """H.264 coded as interlaced fields (x264 with interlaced DCT and ME), as broadcast
    1080i is."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"crf": "30", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        flags = av.codec.context.Flags
        stream.codec_context.flags |= flags.interlaced_dct | flags.interlaced_me
        for i in range(frames):
            out.mux(stream.encode(mg.make_frame(i, 64, 48, "yuv420p")))
        out.mux(stream.encode(None))
    return path
