"""Signals during `streamfix run`: every one ends the run the documented way.

Each test runs the real command in a subprocess fed by a PyAV sender
(tests/streamtools.py) and sends real signals, with hard timeouts.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import streamtools

TOOLS = str(Path(streamtools.__file__))
HARD_TIMEOUT_S = 90


def _run_live(tmp_path: Path, out: Path) -> tuple[subprocess.Popen, subprocess.Popen]:
    config = tmp_path / "cpu.yaml"
    config.write_text("engines: {torch: {threads: 1}}\n")
    producer = subprocess.Popen([sys.executable, TOOLS, "send", "-", "--frames", "600", "--realtime"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    runner = subprocess.Popen([sys.executable, "-m", "streamfix.cli.main", "run", "-", str(out), "--engine", "torch",
                               "--device", "cpu", "--batch", "2", "--config", str(config)],
                              stdin=producer.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    producer.stdout.close()
    return producer, runner


def _wait_for(path: Path, seconds: float = 60.0) -> None:
    give_up = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < give_up:
        time.sleep(0.05)


def test_three_quick_ctrl_c_exit_130_with_a_finished_output(tmp_path):
    """Three quick Ctrl-Cs aborted the process (SIGABRT, 'terminate called without
    an active exception') in 5 of 8 tries: the third KeyboardInterrupt was raised into
    the encoder's flush while native threads still ran."""
    out = tmp_path / "out.mkv"
    producer, runner = _run_live(tmp_path, out)
    try:
        _wait_for(tmp_path / "out.partial.mkv")
        time.sleep(1.0)  # let some frames through
        for _ in range(3):
            runner.send_signal(signal.SIGINT)
            time.sleep(0.05)
        _, errors = runner.communicate(timeout=HARD_TIMEOUT_S)
    finally:
        producer.kill()
        runner.kill()
    text = errors.decode()
    assert runner.returncode == 130, text
    assert "Traceback" not in text and "terminate called" not in text
    assert out.exists() and not (tmp_path / "out.partial.mkv").exists()
    assert streamtools.receive(str(out), fmt=None, timeout=10)["frames"] > 0


def test_ctrl_c_before_the_threads_start_exits_130(tmp_path):
    """A signal while the input is still being opened stops at once with 130 (it
    must not be reported as a failure to open the stream, exit 2)."""
    config = tmp_path / "cpu.yaml"
    config.write_text("engines: {torch: {threads: 1}}\n")
    # stdin that stays open and silent: the run waits in its input's open.
    silent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], stdout=subprocess.PIPE)
    runner = subprocess.Popen([sys.executable, "-m", "streamfix.cli.main", "run", "-", str(tmp_path / "o.mkv"),
                               "--engine", "torch", "--device", "cpu", "--config", str(config)],
                              stdin=silent.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    silent.stdout.close()
    try:
        time.sleep(3.0)
        start = time.monotonic()
        runner.send_signal(signal.SIGINT)
        _, errors = runner.communicate(timeout=HARD_TIMEOUT_S)
        took = time.monotonic() - start
    finally:
        silent.kill()
        runner.kill()
    assert runner.returncode == 130, errors.decode()
    assert "Traceback" not in errors.decode()
    assert took < 5.0, f"the signal took {took:.1f} s to end the run"
