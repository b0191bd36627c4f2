"""Network streams on loopback only (127.0.0.1): UDP in, TCP served in listen mode,
reconnecting to a sender that restarts, and a sender that is not there. Every
subprocess and socket wait has a hard timeout, so a bug fails the test, never hangs it.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import pytest

import streamtools
from test_streams_pipe import HARD_TIMEOUT_S, engine_flags, probe, send, streamfix


def wait_for_udp_listener(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    """Block until something on this machine has bound UDP `port` (read from
    /proc/net/udp), so the sender's first packets are not sent into the void."""
    hex_port = f":{port:04X}"
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        for table in ("/proc/net/udp", "/proc/net/udp6"):
            try:
                rows = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            if any(row.split()[1].endswith(hex_port) for row in rows):
                return
        if process.poll() is not None:
            raise AssertionError(f"streamfix exited early: {process.stderr.read().decode()}")
        time.sleep(0.05)
    raise AssertionError(f"nothing bound UDP port {port} within {timeout} s")


def test_udp_in_file_out_keeps_every_frame(tmp_path):
    port = streamtools.free_port(socket.SOCK_DGRAM)
    out, stats = tmp_path / "out.mkv", tmp_path / "stats.json"
    receiver = subprocess.Popen(streamfix(f"udp://127.0.0.1:{port}", str(out), "--input-format", "mpegts",
                                          "--input-timeout", "1.5", "--stats", str(stats), *engine_flags(tmp_path)),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for_udp_listener(port, receiver)
        subprocess.run(send(f"udp://127.0.0.1:{port}?pkt_size=1316", "--frames", "30", "--realtime"),
                       check=True, timeout=HARD_TIMEOUT_S)
        _, errors = receiver.communicate(timeout=HARD_TIMEOUT_S)
    finally:
        receiver.kill()
    assert receiver.returncode == 0, errors.decode()
    report = json.loads(stats.read_text())
    assert report["live"] is True
    assert report["frames_out"] == report["frames_in"] == probe(out)["frames"] == 30
    assert report["restored"] + report["passed_through"] == 30
    assert "no data for 1.5 s" in report["input_ended"]  # how a UDP stream ends


def test_tcp_listen_output_serves_a_reader(tmp_path):
    source = tmp_path / "in.ts"
    subprocess.run(send(str(source), "--frames", "20", "--audio"), check=True, timeout=HARD_TIMEOUT_S)
    port = streamtools.free_port()
    server = subprocess.Popen(streamfix(str(source), f"tcp://127.0.0.1:{port}", "--output-option", "listen=1",
                                        "--output-option", "listen_timeout=30000", *engine_flags(tmp_path)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        got = streamtools.receive(f"tcp://127.0.0.1:{port}", fmt="mpegts", timeout=30)
        _, errors = server.communicate(timeout=HARD_TIMEOUT_S)
    finally:
        server.kill()
    assert server.returncode == 0, errors.decode()
    sent = probe(source)
    assert got["frames"] == 20 and got["times"] == sent["times"]
    assert got["audio_packets"] == sent["audio_packets"]


def test_reconnects_to_a_sender_that_restarts_and_continues_the_timestamps(tmp_path):
    port = streamtools.free_port()
    url = f"tcp://127.0.0.1:{port}"
    out, stats = tmp_path / "out.mkv", tmp_path / "stats.json"
    first = subprocess.Popen(send(f"{url}?listen=1&listen_timeout=30000", "--frames", "12"),
                             stderr=subprocess.PIPE)
    receiver = subprocess.Popen(streamfix(url, str(out), "--input-format", "mpegts", "--reconnect", "3",
                                          "--input-timeout", "3", "--stats", str(stats), *engine_flags(tmp_path)),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_connectable(url, receiver)
        first.wait(timeout=HARD_TIMEOUT_S)
        second = subprocess.run(send(f"{url}?listen=1&listen_timeout=30000", "--frames", "12"),
                                stderr=subprocess.PIPE, timeout=HARD_TIMEOUT_S)
        assert second.returncode == 0, second.stderr.decode()
        _, errors = receiver.communicate(timeout=HARD_TIMEOUT_S)
    finally:
        first.kill()
        receiver.kill()
    assert receiver.returncode == 0, errors.decode()
    report = json.loads(stats.read_text())
    times = probe(out)["times"]
    assert len(times) == report["frames_out"] == 24
    assert all(b > a for a, b in zip(times, times[1:]))  # the second sender's clock restarted at 0
    assert report["reconnects"] >= 1 and "reconnecting" in errors.decode()


def _wait_connectable(url: str, receiver: subprocess.Popen) -> None:
    """The first sender only sends once streamfix has connected; nothing to wait for
    here but a receiver that died at start-up."""
    time.sleep(0.2)
    if receiver.poll() is not None:
        raise AssertionError(receiver.stderr.read().decode())


def test_a_sender_that_is_not_there_is_one_line_and_exit_2(tmp_path):
    port = streamtools.free_port()
    result = subprocess.run(streamfix(f"tcp://127.0.0.1:{port}", str(tmp_path / "out.mkv"), "--input-timeout", "2",
                                      *engine_flags(tmp_path)),
                            capture_output=True, timeout=HARD_TIMEOUT_S)
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1
    assert lines[0].startswith("streamfix: error:") and "cannot open the stream" in lines[0]
    assert not list(tmp_path.glob("out*"))


def test_metrics_endpoint_serves_prometheus_text_on_loopback(tmp_path):
    import urllib.request

    from streamfix.serve.metrics_server import MetricsServer
    from streamfix.pipeline.counters import StreamMetrics

    metrics = StreamMetrics("cam-1", "udp://127.0.0.1:5000", "out.ts")
    metrics.frames_in, metrics.live, metrics.running = 7, True, True
    metrics.frame_written(0.25)
    with MetricsServer(0, [metrics]) as server:
        assert server.url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(server.url, timeout=5) as response:
            body = response.read().decode()
            assert response.headers["Content-Type"].startswith("text/plain")
    found = samples(body)
    assert found["streamfix_frames_in_total", (("stream", "cam-1"),)] == 7
    assert found["streamfix_frames_out_total", (("stream", "cam-1"),)] == 1
    assert found["streamfix_latency_seconds", (("stat", "max"), ("stream", "cam-1"))] == 0.25
    assert "# TYPE streamfix_restored_total counter" in body


def test_cli_metrics_port_reports_a_running_stream(tmp_path):
    """--metrics-port: scrape while a paced stream is being restored."""
    import urllib.request

    port = streamtools.free_port()
    producer = subprocess.Popen(send("-", "--frames", "90", "--realtime"), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    runner = subprocess.Popen(streamfix("-", str(tmp_path / "out.mkv"), "--metrics-port", str(port),
                                        *engine_flags(tmp_path)),
                              stdin=producer.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    producer.stdout.close()
    body, give_up = "", time.monotonic() + 60
    try:
        while time.monotonic() < give_up and not _some_frames_written(body):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
                    body = response.read().decode()
            except OSError:
                time.sleep(0.2)
            if runner.poll() is not None:
                break
        runner.communicate(timeout=HARD_TIMEOUT_S)
    finally:
        producer.kill()
        runner.kill()
    assert runner.returncode == 0
    found = samples(body)
    assert found["streamfix_live", (("stream", "stdin"),)] == 1
    assert any(name == "streamfix_engine_info" and ("stream", "stdin") in labels and ("engine", "torch") in labels
               for name, labels in found)



def samples(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text body: (name, sorted labels) -> value. The
    order of labels within a sample has no meaning (prometheus_client sorts them)."""
    from prometheus_client.parser import text_string_to_metric_families

    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body) for sample in family.samples}


def _some_frames_written(body: str) -> bool:
    for line in body.splitlines():
        if line.startswith("streamfix_frames_out_total{"):
            return float(line.rsplit(" ", 1)[1]) > 0
    return False


def test_an_hls_playlist_over_http_is_read_to_its_end(tmp_path):
    """HLS as far as the bundled FFmpeg reads it: a VOD playlist of MPEG-TS segments
    served by a loopback HTTP server."""
    import functools
    import http.server
    import threading
    from fractions import Fraction

    import av

    import mediagen as mg

    site = tmp_path / "site"
    site.mkdir()
    with av.open(str(site / "play.m3u8"), "w", format="hls",
                 options={"hls_time": "0.5", "hls_playlist_type": "vod"}) as playlist:
        video = playlist.add_stream("libx264", rate=30, options={"crf": "40", "preset": "ultrafast", "g": "15"})
        video.width, video.height, video.pix_fmt = 96, 64, "yuv420p"
        for i in range(45):
            playlist.mux(video.encode(mg.make_frame(i, 96, 64, "yuv420p", pts=i, time_base=Fraction(1, 30))))
        playlist.mux(video.encode(None))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    out, stats = tmp_path / "out.mkv", tmp_path / "stats.json"
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/play.m3u8"
        result = subprocess.run(streamfix(url, str(out), "--no-live", "--input-timeout", "5", "--stats", str(stats),
                                          *engine_flags(tmp_path)), capture_output=True, timeout=HARD_TIMEOUT_S)
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(stats.read_text())
    assert report["frames_out"] == probe(out)["frames"] == 45 and report["restored"] > 0
    # Matroska keeps milliseconds: the same times, to the millisecond.
    assert probe(out)["times"] == pytest.approx(probe(site / "play.m3u8")["times"], abs=0.001)
