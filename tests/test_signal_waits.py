"""Every wait ends within a second or two of Ctrl-C or SIGTERM, with exit code 130.

The two waits that happen inside FFmpeg before any thread starts: an output in TCP
listen mode waiting for its client, and an input that stays silent while it is being
opened. Each test waits until the run really is in that wait (its socket shows up
in /proc/net), then signals it, with hard timeouts everywhere.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import mediagen as mg
from clirun import CONFIG

HARD_TIMEOUT_S = 90
PROC_NET = Path("/proc/net")

pytestmark = pytest.mark.skipif(not (PROC_NET / "tcp").exists(), reason="needs Linux's /proc/net to see the wait")


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bound(port: int, table: str, *, listening: bool) -> bool:
    """Whether a socket is bound to 127.0.0.1:`port` (in LISTEN state for TCP)."""
    for line in (PROC_NET / table).read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(f":{port:04X}") and (not listening or fields[3] == "0A"):
            return True
    return False


def _signal_while_waiting(tmp_path: Path, args: list[str], port: int, table: str, signum: int) -> tuple[int, str, float]:
    config = tmp_path / "cpu.yaml"
    config.write_text(CONFIG)
    runner = subprocess.Popen([sys.executable, "-m", "streamfix.cli.main", "run", *args, "--engine", "torch",
                               "--device", "cpu", "--config", str(config)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        give_up = time.monotonic() + HARD_TIMEOUT_S
        while not _bound(port, table, listening=table == "tcp"):
            assert runner.poll() is None, runner.stderr.read().decode()
            assert time.monotonic() < give_up, "the run never started waiting"
            time.sleep(0.05)
        time.sleep(1.0)  # well inside the wait
        start = time.monotonic()
        runner.send_signal(signum)
        _, errors = runner.communicate(timeout=HARD_TIMEOUT_S)
        return runner.returncode, errors.decode(), time.monotonic() - start
    finally:
        runner.kill()


def test_sigterm_ends_a_listen_mode_output_waiting_for_its_client(tmp_path):
    """A TCP output in listen mode waiting for its client ignored Ctrl-C and SIGTERM;
    only SIGKILL ended it."""
    clip = mg.write_clip(tmp_path / "in.mp4", frames=4)
    port = _free_port(socket.SOCK_STREAM)
    code, errors, took = _signal_while_waiting(
        tmp_path, [str(clip.path), f"tcp://127.0.0.1:{port}", "--output-option", "listen=1"],
        port, "tcp", signal.SIGTERM)
    assert code == 130, errors
    assert "Traceback" not in errors
    assert took < 5.0, f"the signal took {took:.1f} s to end the wait"


def test_ctrl_c_while_a_live_input_is_silent_during_open(tmp_path):
    """Ctrl-C while a UDP input sent nothing during its open was waited out for the
    whole input timeout, then reported as exit 2 'cannot open the stream'."""
    port = _free_port(socket.SOCK_DGRAM)
    code, errors, took = _signal_while_waiting(
        tmp_path, [f"udp://127.0.0.1:{port}", str(tmp_path / "out.mkv"), "--input-format", "mpegts",
                   "--input-timeout", "60"], port, "udp", signal.SIGINT)
    assert code == 130, errors
    assert "Traceback" not in errors and "cannot open" not in errors
    assert took < 5.0, f"the signal took {took:.1f} s to end the wait"
    assert not list(tmp_path.glob("out*"))
