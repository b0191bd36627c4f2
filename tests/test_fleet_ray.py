"""`--executor ray` on a local Ray with 2 CPUs: the same exact output as a single pass,
Ray's retries for a failing piece, no more workers than fit, a batch of mixed files,
and live channels whose killed worker comes back."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

import mediagen as mg
from segtools import lossless  # noqa: F401 - a fixture
from segtools import BLOCKY_GOPS, assert_same_output, segmented, single_pass
from streamfix.fleet.serve import Server
from streamfix.pipeline.run_config import RunConfig, with_overrides
from test_fleet_batch import mixed_folder
from test_fleet_serve import frames, scrape, senders, serving, wait_for, write_channels  # noqa: F401 - fixture
from streamfix.core.errors import OptionError
from streamfix.fleet.jobs import run_batch, run_in_pieces
from streamfix.segments.piece_worker import TaskCrash

ray = pytest.importorskip("ray")
TESTS = str(Path(__file__).resolve().parent)


@pytest.fixture(scope="module")
def local_ray():
    """One Ray for the module (starting one takes seconds): 2 CPUs, and the tests'
    folder on the workers' path for the test stages."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")])}})
    yield
    ray.shutdown()



def on_ray(config, seconds: float = 0.4, **scale):
    return segmented(config, seconds, executor="ray", cpus_per_worker=1, **scale)


def test_two_ray_workers_write_exactly_what_a_single_pass_writes(tmp_path, local_ray, lossless):
    """Five workers asked for, two fit in the 2-CPU Ray: two run, and say so."""
    clip = mg.h264_with_audio_and_subtitles(tmp_path / "in.mkv", frames=48, encoder_options=BLOCKY_GOPS)
    lines: list[str] = []
    result = run_in_pieces(clip.path, tmp_path / "pieces.mkv", on_ray(lossless, workers=5), log=lines.append)
    single_pass(clip.path, tmp_path / "single.mkv", lossless)
    assert (result.pieces, result.workers, result.executor) == (4, 2, "ray")
    assert any("room for 2" in line for line in lines), lines
    assert_same_output(tmp_path / "pieces.mkv", tmp_path / "single.mkv")


def test_ray_retries_a_failing_piece_then_names_its_time_range(tmp_path, local_ray, lossless):
    clip = mg.write_clip(tmp_path / "in.mkv", frames=24, encoder_options=BLOCKY_GOPS)
    config = dataclasses.replace(lossless, stages=({"type": "restore"},
                                                   {"type": "flaky_stages:FailFrom", "at_pts": 500}))
    with pytest.raises(TaskCrash, match=r"piece 1 \(0:00:00.480-0:00:00.920\): failed 2 times.*lens cap"):
        run_in_pieces(clip.path, tmp_path / "out.mkv", on_ray(config, workers=2, retries=1), log=lambda m: None)


def test_a_worker_bigger_than_the_cluster_is_refused_in_one_line(tmp_path, local_ray, lossless):
    clip = mg.write_clip(tmp_path / "in.mkv", frames=24, encoder_options=BLOCKY_GOPS)
    with pytest.raises(OptionError, match="no room for one worker"):
        run_in_pieces(clip.path, tmp_path / "out.mkv", segmented(lossless, executor="ray", cpus_per_worker=3),
                      log=lambda m: None)


def test_a_batch_on_ray_restores_a_folder_of_mixed_files(tmp_path, local_ray, lossless):
    root = tmp_path / "archive"
    long = mixed_folder(root)
    (root / "broken.mp4").unlink()
    lines: list[str] = []
    outcomes = run_batch([root], tmp_path / "out", on_ray(lossless, 0.6, workers=2), report=lines.append,
                         log=lambda m: None)
    assert sorted(o.status for o in outcomes) == ["done"] * 3, lines
    assert {o.pieces for o in outcomes} == {1, 2}
    single_pass(long.path, tmp_path / "single.mkv", lossless)
    assert_same_output(tmp_path / "out" / "long.mkv", tmp_path / "single.mkv")
    assert (tmp_path / "out" / "sub" / "photo.jpg").is_file() and (tmp_path / "out" / "short.mp4").is_file()


def test_serve_on_ray_restarts_a_killed_channel_worker(tmp_path, local_ray, senders):
    """Two loopback channels, one Ray actor each; b's actor is killed: Ray restarts it,
    the driver gives it its channel again, and a never notices."""
    path = tmp_path / "channels.yaml"
    write_channels(path, {"a": senders["a"], "b": senders["b"]}, metrics_port=0)
    base = with_overrides(RunConfig(), scale={"cpus_per_worker": 1})
    lines: list[str] = []
    server = Server(path, base_config=base, executor="ray", log=lines.append)
    thread = serving(server)
    try:
        wait_for(lambda: frames(server, "a") > 5 and frames(server, "b") > 5, "both channels", timeout=120)
        b_before = frames(server, "b")
        ray.kill(server.hosts.actor_of("b"), no_restart=False)
        wait_for(lambda: frames(server, "b") < b_before, "b's worker to go")
        a_before = frames(server, "a")
        wait_for(lambda: frames(server, "b") > 5, "b to come back on a new worker", timeout=120)
        assert frames(server, "a") > a_before and server.snapshots()["a"]["restarts"] == 0
        assert any("was restarted" in line and "b" in line for line in lines), lines
        assert scrape(server.metrics_url)[("streamfix_running", "b")] == 1
    finally:
        server.stop.set()
        thread.join(120)
    assert not thread.is_alive()
