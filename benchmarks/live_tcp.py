"""Live mode on this CPU: a paced 30 fps x264 stream over TCP on loopback, default settings.

The stream (tests/streamtools.py, the same one the tests use: SECONDS of a panning
test picture at 30 fps, x264 CRF 40, MPEG-TS) is encoded beforehand, then its packets
are sent over TCP at their own timestamps, as a remote sender would: a sender that
encoded here would take CPU from the run it is measuring, and at 854x480 it could not
keep 30 fps beside it (the run then saw a stream falling behind its clock); `streamfix run
tcp://127.0.0.1:PORT?listen=1 OUT --input-format mpegts` (defaults otherwise: engine
and precision auto, tier auto) restores it live. Reported per size: frames in/out,
restored by the full and by the light model, passed through for lack of time, mean
and max latency, and whether the run kept real time (how long after the last frame
was sent it finished).

    python benchmarks/live_tcp.py --sizes 320x240 854x480 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SENDER = Path(__file__).resolve().parent.parent / "tests" / "streamtools.py"
RATE = 30


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def send_paced(path: Path, url: str) -> None:
    """Copy the video packets of `path` to `url` (MPEG-TS), each at its presentation
    time on the wall clock from the first one on: no encoding, next to no CPU."""
    import av

    with av.open(str(path)) as source, av.open(url, "w", format="mpegts") as out:
        video = source.streams.video[0]
        target = out.add_stream_from_template(video)
        start, first = time.monotonic(), None
        for packet in source.demux(video):
            if packet.dts is None:
                continue  # the demuxer's empty flush packet
            at = float(packet.pts * packet.time_base) if packet.pts is not None else 0.0
            first = at if first is None else first
            time.sleep(max(0.0, start + at - first - time.monotonic()))
            packet.stream = target
            out.mux(packet)


def run(size: str, seconds: int, crf: int, run_args: list[str] = ()) -> dict:
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        stats = Path(tmp) / "stats.json"
        stream = Path(tmp) / "stream.ts"
        subprocess.run([sys.executable, str(SENDER), "send", str(stream), "--frames", str(seconds * RATE),
                        "--size", size, "--rate", str(RATE), "--crf", str(crf)], check=True, timeout=600)
        runner = subprocess.Popen([sys.executable, "-m", "streamfix.cli.main", "run",
                                   f"tcp://127.0.0.1:{port}?listen=1", str(Path(tmp) / "out.mkv"),
                                   "--input-format", "mpegts", "--stats", str(stats), "--quiet", *run_args],
                                  stderr=subprocess.PIPE)
        time.sleep(8.0)  # the listener opens after the CLI has started (imports, config)
        start = time.monotonic()
        send_paced(stream, f"tcp://127.0.0.1:{port}")
        sent = time.monotonic()
        _, errors = runner.communicate(timeout=600)
        done = time.monotonic()
        if runner.returncode != 0:
            raise RuntimeError(errors.decode()[-2000:])
        report = json.loads(stats.read_text())
    frames = report["frames_out"]
    return {"size": size, "frames_in": report["frames_in"], "frames_out": frames, "restored": report["restored"],
            "light": report.get("restored_light", 0), "passed": report["passed_through"],
            "late": report.get("late", 0), "latency": report.get("latency_s", {}),
            "after_last_s": done - sent, "stream_s": sent - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["320x240", "854x480"])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--crf", type=int, default=40)
    parser.add_argument("--run-args", default="", help='more `streamfix run` options, e.g. "--preset medium"')
    args = parser.parse_args()
    print("| size | frames in / out | restored (full + light) | passed through (late) | latency mean / max | "
          "finished after the last frame |\n|---|---|---|---|---|---|")
    for size in args.sizes:
        r = run(size, args.seconds, args.crf, shlex.split(args.run_args))
        lat = r["latency"]
        print(f"| {size} | {r['frames_in']} / {r['frames_out']} | {r['restored']} ({r['restored'] - r['light']} + "
              f"{r['light']}) = {100 * r['restored'] / max(r['frames_out'], 1):.0f}% | {r['passed']} ({r['late']}) "
              f"| {lat.get('mean', float('nan')):.2f} / {lat.get('max', float('nan')):.2f} s "
              f"| {r['after_last_s']:.1f} s |", flush=True)


if __name__ == "__main__":
    main()
