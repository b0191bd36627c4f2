"""`streamfix run - -` between two processes, the way it sits between two FFmpeg
commands: nothing but the stream on stdout, every frame and its time kept, audio
kept, and an input that stalls or turns to garbage ends cleanly, never hangs.

The sender and receiver are PyAV scripts (tests/streamtools.py) standing in for
FFmpeg, which this machine does not have. Every subprocess has a hard timeout.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import streamtools

TOOLS = str(Path(streamtools.__file__))
HARD_TIMEOUT_S = 90
# Small and fast: the torch engine on one thread, tiny frames (see conftest.py).
ENGINE = ["--engine", "torch", "--device", "cpu", "--batch", "2", "--config", "CONFIG"]


def engine_flags(tmp_path: Path) -> list[str]:
    config = tmp_path / "cpu.yaml"
    config.write_text("engines: {torch: {threads: 1}}\n")
    return [str(config) if flag == "CONFIG" else flag for flag in ENGINE]


def streamfix(*args: str) -> list[str]:
    return [sys.executable, "-m", "streamfix.cli.main", "run", *args]


def send(*args: str) -> list[str]:
    return [sys.executable, TOOLS, "send", *args]


def piped(sender: list[str], command: list[str], stdout=subprocess.PIPE) -> tuple[subprocess.CompletedProcess, bytes]:
    """Run `sender | command`; returns the command's result and the sender's stderr."""
    producer = subprocess.Popen(sender, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        result = subprocess.run(command, stdin=producer.stdout, stdout=stdout, stderr=subprocess.PIPE,
                                timeout=HARD_TIMEOUT_S)
    finally:
        producer.stdout.close()
        producer.kill()
        _, errors = producer.communicate(timeout=10)
    return result, errors


def probe(path: Path) -> dict:
    return streamtools.receive(str(path), fmt=None, timeout=10)


def test_stdin_to_stdout_keeps_every_frame_time_and_audio_and_stdout_holds_only_the_stream(tmp_path):
    reference = tmp_path / "sent.ts"
    subprocess.run(send(str(reference), "--frames", "24", "--audio"), check=True, timeout=HARD_TIMEOUT_S)
    stats = tmp_path / "stats.json"
    result, _ = piped(["cat", str(reference)],
                      streamfix("-", "-", "--format", "mpegts", "--stats", str(stats), *engine_flags(tmp_path)))
    assert result.returncode == 0, result.stderr.decode()
    restored = tmp_path / "restored.ts"
    restored.write_bytes(result.stdout)  # all of stdout must parse as the stream
    sent, got = probe(reference), probe(restored)
    assert got["error"] is None
    assert got["frames"] == sent["frames"] == 24
    assert got["times"] == sent["times"]
    assert got["audio_packets"] == sent["audio_packets"] > 0
    report = json.loads(stats.read_text())
    assert report["live"] is True and report["restored"] + report["passed_through"] == 24
    assert b"streamfix: wrote -" in result.stderr  # logs went to stderr


def test_a_stdout_stream_needs_a_container_format(tmp_path):
    result, _ = piped(send("-", "--frames", "10"), streamfix("-", "-", *engine_flags(tmp_path)))
    assert result.returncode == 2 and result.stdout == b""
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "--format" in lines[0]


def test_a_stalled_pipe_ends_cleanly_with_every_frame_received(tmp_path):
    out = tmp_path / "out.mkv"
    stats = tmp_path / "stats.json"
    result, _ = piped(send("-", "--frames", "40", "--stall-after", "12", "--stall", "30"),
                      streamfix("-", str(out), "--input-timeout", "1", "--stats", str(stats), *engine_flags(tmp_path)))
    assert result.returncode == 0, result.stderr.decode()
    assert "stopped sending after" in result.stderr.decode() and "Traceback" not in result.stderr.decode()
    report = json.loads(stats.read_text())
    assert "no data for 1 s" in report["input_ended"]
    # Everything the sender had muxed before it stalled (x264 with zerolatency
    # holds no frames back) is in a finished, playable file.
    assert probe(out)["frames"] == report["frames_out"] == 12


def test_garbage_after_good_frames_ends_cleanly(tmp_path):
    out = tmp_path / "out.mkv"
    result, _ = piped(send("-", "--frames", "30", "--garbage-after", "15"),
                      streamfix("-", str(out), "--input-timeout", "2", *engine_flags(tmp_path)))
    errors = result.stderr.decode()
    assert result.returncode == 0, errors
    assert "Traceback" not in errors
    assert probe(out)["frames"] == 15


def test_no_live_restores_every_frame_from_a_pipe(tmp_path):
    out = tmp_path / "out.mkv"
    stats = tmp_path / "stats.json"
    result, _ = piped(send("-", "--frames", "10", "--crf", "45"),
                      streamfix("-", str(out), "--no-live", "--stats", str(stats), *engine_flags(tmp_path)))
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(stats.read_text())
    assert report["live"] is False and report["late"] == 0
    assert report["frames_out"] == 10 and report["restored"] >= 8


def test_sigterm_ends_a_live_run_like_ctrl_c_with_a_finished_output(tmp_path):
    """A service manager stops streamfix with SIGTERM: the output must be finished
    and playable under its real name, not cut off mid-write."""
    import signal
    import time

    out = tmp_path / "out.mkv"
    producer = subprocess.Popen(send("-", "--frames", "600", "--realtime"), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    runner = subprocess.Popen(streamfix("-", str(out), *engine_flags(tmp_path)), stdin=producer.stdout,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    producer.stdout.close()
    try:
        give_up = time.monotonic() + 60
        while not (tmp_path / "out.partial.mkv").exists() and time.monotonic() < give_up:
            time.sleep(0.1)
        time.sleep(1.0)  # let some frames through
        runner.send_signal(signal.SIGTERM)
        _, errors = runner.communicate(timeout=HARD_TIMEOUT_S)
    finally:
        producer.kill()
        runner.kill()
    assert runner.returncode == 130, errors.decode()
    assert "interrupted" in errors.decode() and "Traceback" not in errors.decode()
    assert probe(out)["frames"] > 0 and not (tmp_path / "out.partial.mkv").exists()
