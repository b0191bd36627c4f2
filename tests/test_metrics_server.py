"""The Prometheus endpoint: its own registry, streams added and removed while it runs,
another interface on request, and one clear line when it cannot listen."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.request

import pytest
from prometheus_client import REGISTRY, generate_latest

from streamfix.core.errors import OptionError
from streamfix.pipeline.counters import StreamMetrics
from streamfix.serve.metrics_server import MetricsServer
from test_streams_network import samples


def stream(name: str, frames: int) -> StreamMetrics:
    metrics = StreamMetrics(name, "udp://127.0.0.1:5000", "out.ts")
    metrics.frames_in = frames
    return metrics


def scrape(server: MetricsServer) -> dict:
    with urllib.request.urlopen(server.url, timeout=5) as response:
        return samples(response.read().decode())


def test_streams_come_and_go_between_scrapes():
    first, second = stream("cam-1", 3), stream("cam-2", 5)
    with MetricsServer(0, [first]) as server:
        server.add(second)
        found = scrape(server)
        assert found["streamfix_frames_in_total", (("stream", "cam-1"),)] == 3
        assert found["streamfix_frames_in_total", (("stream", "cam-2"),)] == 5
        server.remove(first)
        found = scrape(server)
        assert ("streamfix_frames_in_total", (("stream", "cam-1"),)) not in found
        assert found["streamfix_engine_info", (("device", ""), ("engine", ""), ("model", ""), ("stream", "cam-2"))] == 1


def test_each_server_keeps_its_own_registry_apart_from_the_global_one():
    with MetricsServer(0, [stream("a", 1)]) as one, MetricsServer(0, [stream("b", 2)]) as two:
        assert ("streamfix_frames_in_total", (("stream", "b"),)) not in scrape(one)
        assert scrape(two)["streamfix_frames_in_total", (("stream", "b"),)] == 2
    assert b"streamfix_" not in generate_latest(REGISTRY)


def test_another_interface_can_be_chosen():
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        server = MetricsServer(0, [stream("cam-6", 6)], address="::1")
    except OptionError as exc:
        pytest.skip(f"::1 is not usable here ({exc})")
    with server:
        assert server.url.startswith("http://[::1]:")
        assert scrape(server)["streamfix_frames_in_total", (("stream", "cam-6"),)] == 6


def test_a_port_in_use_is_one_clear_error():
    with MetricsServer(0) as taken, pytest.raises(OptionError, match=f"cannot listen on 127.0.0.1 port {taken.port}"):
        MetricsServer(taken.port)


def test_cli_metrics_address_needs_a_port(tmp_path):
    result = subprocess.run([sys.executable, "-m", "streamfix.cli.main", "run", "in.mp4", str(tmp_path / "out.mkv"),
                             "--metrics-address", "0.0.0.0"], capture_output=True, timeout=120)
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 2 and lines == ["streamfix: error: --metrics-address needs --metrics-port PORT"]
