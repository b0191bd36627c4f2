"""`streamfix serve`: loopback channels kept running, one that dies restarted while the
other goes on, channels added and removed by editing the file, all on one metrics
endpoint; a bad file is one error at start and is ignored (with a line) while serving."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from streamfix.core.yaml_config import ConfigError
from streamfix.fleet.channels_config import load_channels
from streamfix.fleet.serve import Server
from streamtools import free_port

TESTS = Path(__file__).resolve().parent
OPTIONS = ("{engine: torch, device: cpu, engines: {torch: {threads: 1}}, input: {format: mpegts, timeout_s: 4}, "
           "output: {format: mpegts}, live: {max_latency_ms: 400}}")


class Sender:
    """A camera on a loopback UDP port: the test pattern, 10 frames a second with a
    keyframe every half second (so a channel can join at any time), until stopped."""

    def __init__(self) -> None:
        self.port = free_port(socket.SOCK_DGRAM)
        self.out_port = free_port(socket.SOCK_DGRAM)  # where its channel sends (nobody listens)
        self.process: subprocess.Popen | None = None

    def start(self) -> "Sender":
        self.process = subprocess.Popen(
            [sys.executable, str(TESTS / "streamtools.py"), "send", f"udp://127.0.0.1:{self.port}?pkt_size=1316",
             "--frames", "100000", "--rate", "10", "--size", "64x48", "--realtime", "--gop", "5"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def write_channels(path: Path, senders: dict[str, Sender], metrics_port: int, **extra) -> None:
    lines = [f"metrics_port: {metrics_port}", "restart: {backoff_s: 0.2, max_backoff_s: 1, healthy_after_s: 60}"]
    lines += [f"{key}: {value}" for key, value in extra.items()]
    lines.append("channels:")
    for name, sender in senders.items():
        lines.append(f"  - {{name: {name}, input: 'udp://127.0.0.1:{sender.port}', "
                     f"output: 'udp://127.0.0.1:{sender.out_port}', options: {OPTIONS}}}")
    path.write_text("\n".join(lines) + "\n")
    # the watcher compares modification times: make each version distinct
    time.sleep(0.05)


def scrape(url: str) -> dict[tuple[str, str], float]:
    """(metric, stream) -> value from the Prometheus text."""
    found = {}
    with urllib.request.urlopen(url, timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("streamfix_") and 'stream="' in line:
                name = line.split("{", 1)[0]
                stream = line.split('stream="', 1)[1].split('"', 1)[0]
                found[(name, stream)] = float(line.rsplit(" ", 1)[1])
    return found


def wait_for(condition, what: str, timeout: float = 60.0) -> None:
    give_up = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < give_up, f"timed out waiting for {what}"
        time.sleep(0.2)


def frames(server: Server, name: str) -> int:
    return server.snapshots().get(name, {}).get("frames_out", 0)


@pytest.fixture
def senders():
    made = {name: Sender().start() for name in ("a", "b", "c")}
    yield made
    for sender in made.values():
        sender.stop()


def serving(server: Server) -> threading.Thread:
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    return thread


def test_channels_keep_running_restart_when_they_die_and_follow_the_file(tmp_path, senders):
    path, lines = tmp_path / "channels.yaml", []
    write_channels(path, {"a": senders["a"], "b": senders["b"]}, metrics_port=0)
    server = Server(path, log=lines.append)
    thread = serving(server)
    try:
        wait_for(lambda: server.metrics_url and frames(server, "a") > 5 and frames(server, "b") > 5, "both channels")
        metrics = scrape(server.metrics_url)
        assert metrics[("streamfix_running", "a")] == metrics[("streamfix_running", "b")] == 1, lines
        assert metrics[("streamfix_frames_out_total", "b")] > 0

        # b's camera goes away: b's input ends, b restarts (with backoff) and waits; a goes on.
        b_before = frames(server, "b")
        senders["b"].stop()
        wait_for(lambda: server.snapshots()["b"]["restarts"] >= 1 and frames(server, "b") < b_before,
                 "b to restart (its new run counts from zero)")
        a_before = frames(server, "a")
        senders["b"].start()
        wait_for(lambda: frames(server, "b") > 5 and frames(server, "a") > a_before + 10, "b to come back")
        assert server.snapshots()["a"]["restarts"] == 0
        assert any("channel b: its input ended; restarting in" in line for line in lines)

        # Edit the file: c joins, a leaves, b is not touched.
        b_restarts = server.snapshots()["b"]["restarts"]
        write_channels(path, {"b": senders["b"], "c": senders["c"]}, metrics_port=0)
        wait_for(lambda: frames(server, "c") > 5 and "a" not in server.snapshots(), "c in, a out")
        assert server.snapshots()["b"]["restarts"] == b_restarts
        assert ("streamfix_frames_out_total", "a") not in scrape(server.metrics_url)

        # A broken edit is reported and changes nothing.
        path.write_text("channels: [{name: x}]\n")
        wait_for(lambda: any("cannot be used" in line for line in lines), "the broken file to be noticed")
        assert set(server.snapshots()) == {"b", "c"}
    finally:
        server.stop.set()
        thread.join(60)
    assert not thread.is_alive()


def test_a_bad_channels_file_is_one_error(tmp_path):
    path = tmp_path / "channels.yaml"
    path.write_text("channels:\n  - {name: a, input: x, output: y, options: {batch: 0}}\n")
    with pytest.raises(ConfigError, match="channel 'a': options: batch must be from 1"):
        load_channels(path)
    path.write_text("channels:\n  - {name: a, input: x, output: y}\n  - {name: a, input: z, output: w}\n")
    with pytest.raises(ConfigError, match="named twice"):
        load_channels(path)
