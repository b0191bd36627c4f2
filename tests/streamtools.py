"""Live test streams made with PyAV: a sender that paces frames like a camera, and a
receiver. Tests run them as subprocesses on pipes and loopback sockets (127.0.0.1
only), in place of the FFmpeg commands users would run:

    python tests/streamtools.py send - --format mpegts --frames 30 --realtime | streamfix run - ...
    python tests/streamtools.py receive tcp://127.0.0.1:PORT --timeout 10

`send` writes the moving test pattern of mediagen.py (H.264, high CRF so the model
has blocks to remove), optionally with an AAC tone, optionally stalling (sending
nothing, keeping the connection open) after some frames. `receive` prints one JSON
line: the number of video frames, their times in seconds, and audio packets.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from fractions import Fraction

import av
import numpy as np

import mediagen as mg


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port nobody listens on right now, on 127.0.0.1."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def send(target: str, *, fmt: str, frames: int, width: int, height: int, rate: int, realtime: bool,
         crf: int, audio: bool, stall_after: int | None, stall_s: float, garbage_after: int | None,
         options: dict[str, str], gop: int | None = None) -> None:
    sink = sys.stdout.buffer if target == "-" else target
    out = av.open(sink, "w", format=fmt, options=options)
    x264 = {"crf": str(crf), "preset": "ultrafast", "tune": "zerolatency"}
    if gop is not None:  # a receiver joining late waits for the next keyframe
        x264["g"] = str(gop)
    video = out.add_stream("libx264", rate=rate, options=x264)
    video.width, video.height, video.pix_fmt = width, height, "yuv420p"
    video.codec_context.time_base = Fraction(1, rate)
    tone = out.add_stream("aac", rate=8000, layout="mono") if audio else None
    start = time.monotonic()
    samples = 0
    for i in range(frames):
        if realtime:
            time.sleep(max(0.0, start + i / rate - time.monotonic()))
        if stall_after is not None and i == stall_after:
            time.sleep(stall_s)
        if garbage_after is not None and i == garbage_after:
            out.close()  # the muxer's view ends here; raw bytes follow on the same pipe
            sys.stdout.buffer.write(np.random.default_rng(0).integers(0, 256, 200_000, np.uint8).tobytes())
            sys.stdout.buffer.flush()
            return
        frame = mg.make_frame(i, width, height, "yuv420p", pts=i, time_base=Fraction(1, rate))
        out.mux(video.encode(frame))
        while tone is not None and samples < (i + 1) * 8000 // rate:
            chunk = av.AudioFrame.from_ndarray(np.zeros((1, 256), np.float32), format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 8000, samples
            samples += 256
            out.mux(tone.encode(chunk))
        if target == "-":
            sys.stdout.buffer.flush()
    out.mux(video.encode(None))
    if tone is not None:
        out.mux(tone.encode(None))
    out.close()


def open_when_listening(source: str, fmt: str | None, timeout: float) -> av.container.InputContainer:
    """Connect to a server that may still be starting (refused until it listens)."""
    give_up = time.monotonic() + timeout
    while True:
        try:
            return av.open(source, format=fmt, timeout=(timeout, timeout))
        except ConnectionRefusedError:
            if time.monotonic() > give_up:
                raise
            time.sleep(0.1)


def receive(source: str, *, fmt: str | None, timeout: float) -> dict:
    times, audio = [], 0
    with open_when_listening(source, fmt, timeout) as container:
        video = container.streams.video[0]
        wanted = [video] + list(container.streams.audio)
        try:
            for packet in container.demux(wanted):
                if packet.stream.type == "audio":
                    audio += bool(packet.size)
                    continue
                for frame in packet.decode():
                    times.append(float(frame.pts * frame.time_base))
        except av.error.FFmpegError as exc:
            return {"frames": len(times), "times": times, "audio_packets": audio, "error": str(exc)}
    return {"frames": len(times), "times": times, "audio_packets": audio, "error": None}


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("send")
    s.add_argument("target")
    s.add_argument("--format", default="mpegts")
    s.add_argument("--frames", type=int, default=30)
    s.add_argument("--size", default="96x64")
    s.add_argument("--rate", type=int, default=30)
    s.add_argument("--realtime", action="store_true")
    s.add_argument("--crf", type=int, default=40)
    s.add_argument("--audio", action="store_true")
    s.add_argument("--stall-after", type=int)
    s.add_argument("--stall", type=float, default=0.0)
    s.add_argument("--garbage-after", type=int)
    s.add_argument("--option", action="append", default=[])
    s.add_argument("--gop", type=int, help="frames between keyframes (default: x264's)")
    r = sub.add_parser("receive")
    r.add_argument("source")
    r.add_argument("--format")
    r.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    if args.command == "send":
        width, height = (int(v) for v in args.size.split("x"))
        send(args.target, fmt=args.format, frames=args.frames, width=width, height=height, rate=args.rate,
             realtime=args.realtime, crf=args.crf, audio=args.audio, stall_after=args.stall_after,
             stall_s=args.stall, garbage_after=args.garbage_after,
             options=dict(o.split("=", 1) for o in args.option), gop=args.gop)
    else:
        print(json.dumps(receive(args.source, fmt=args.format, timeout=args.timeout)), flush=True)


if __name__ == "__main__":
    main()
