"""Live mode keeps real time on a CPU that cannot restore every frame in time.

A paced sender plays a 30 fps, 320x240 stream for STREAM_S seconds to a UDP port on
127.0.0.1, like a camera or `ffmpeg -re`. On a 2-core CPU the model needs several
frame periods per frame at this size, so a run that restored everything would end
many seconds late. Live mode must instead finish within the stream's length plus its
latency budget (plus the allowances stated below), with every frame in the output,
some restored and some passed through, and the counts adding up.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time

import streamtools
from test_streams_network import wait_for_udp_listener
from test_streams_pipe import HARD_TIMEOUT_S, engine_flags, probe, send, streamfix

STREAM_S = 3
RATE = 30
# Generous enough that one 320x240 frame fits even when the machine is very busy.
BUDGET_MS = 800
# A UDP stream has no end marker: it ends when nothing came for this long.
INPUT_TIMEOUT_S = 1.0
# The sender starts once streamfix listens; the model then loads after the first
# frame, while the next ones queue up (they pass through). This allowance covers that
# on a busy 2-core machine; it is not a speed measurement.
START_UP_S = 5.0
# After the last frame was sent: its budget, the input timeout, then the encoder's
# flush and closing the file.
TAIL_S = BUDGET_MS / 1000 + INPUT_TIMEOUT_S + 2.0


def test_a_stream_faster_than_the_model_stays_real_time_with_honest_counts(tmp_path):
    frames = STREAM_S * RATE
    port = streamtools.free_port(socket.SOCK_DGRAM)
    out, stats = tmp_path / "out.mkv", tmp_path / "stats.json"
    runner = subprocess.Popen(streamfix(f"udp://127.0.0.1:{port}", str(out), "--input-format", "mpegts",
                                        "--input-timeout", str(INPUT_TIMEOUT_S), "--max-latency", str(BUDGET_MS),
                                        "--preset", "veryfast", "--stats", str(stats), *engine_flags(tmp_path)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for_udp_listener(port, runner)
        start = time.monotonic()
        subprocess.run(send(f"udp://127.0.0.1:{port}?pkt_size=1316", "--frames", str(frames), "--size", "320x240",
                            "--rate", str(RATE), "--realtime", "--crf", "42"), check=True, timeout=HARD_TIMEOUT_S)
        sent_done = time.monotonic()
        _, errors = runner.communicate(timeout=HARD_TIMEOUT_S)
        finished = time.monotonic()
    finally:
        runner.kill()
    assert runner.returncode == 0, errors.decode()
    report = json.loads(stats.read_text())
    print(f"live: {report['restored']} restored, {report['passed_through']} passed through, "
          f"{finished - start:.1f} s in all, {finished - sent_done:.2f} s after the last frame was sent, "
          f"latency {report['latency_s']}")

    assert report["live"] is True
    assert probe(out)["frames"] == report["frames_out"] == report["frames_in"] == frames
    assert report["restored"] > 0 and report["passed_through"] > 0
    assert report["restored"] + report["passed_through"] == frames
    assert report["late"] > 0  # passed through for time, not because the frames were clean
    assert finished - sent_done <= TAIL_S
    assert finished - start <= STREAM_S + BUDGET_MS / 1000 + INPUT_TIMEOUT_S + START_UP_S
