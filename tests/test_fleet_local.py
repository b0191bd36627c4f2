"""Local worker processes: a worker that dies is replaced and its piece tried again; a
piece that keeps failing ends the run with its time range named; a user's mistake is
reported once, in one line, without retries (also: no Ray, no file to join into)."""

from __future__ import annotations

import dataclasses
import sys

import pytest

import mediagen as mg
from segtools import lossless  # noqa: F401 - a fixture
from segtools import BLOCKY_GOPS, assert_same_output, segmented, single_pass
from streamfix.core.errors import OptionError, StreamfixError
from streamfix.fleet.jobs import run_in_pieces
from streamfix.segments.piece_worker import TaskCrash



@pytest.fixture
def clip(tmp_path):
    return mg.write_clip(tmp_path / "in.mkv", frames=48, audio=True, encoder_options=BLOCKY_GOPS)


def _with_stage(config, stage: dict):
    return dataclasses.replace(config, stages=({"type": "restore"}, stage))


def test_a_killed_worker_is_replaced_and_its_piece_redone(tmp_path, clip, lossless):
    marker = tmp_path / "died"
    config = _with_stage(lossless, {"type": "flaky_stages:DieOnce", "marker": str(marker), "at_pts": 1000})
    lines: list[str] = []
    result = run_in_pieces(clip.path, tmp_path / "out.mkv", segmented(config, workers=2), log=lines.append)
    assert marker.exists(), "the worker was killed once"
    assert any("worker process died" in line and "trying again (1 of 2)" in line for line in lines), lines
    assert result.pieces == 4
    single_pass(clip.path, tmp_path / "single.mkv", lossless)
    assert_same_output(tmp_path / "out.mkv", tmp_path / "single.mkv")


def test_a_piece_that_keeps_failing_fails_the_run_and_names_its_time_range(tmp_path, clip, lossless):
    config = _with_stage(lossless, {"type": "flaky_stages:FailFrom", "at_pts": 1000})
    lines: list[str] = []
    with pytest.raises(TaskCrash, match=r"piece 2 \(0:00:00.960-0:00:01.400\).*lens cap") as failure:
        run_in_pieces(clip.path, tmp_path / "out.mkv", segmented(config, workers=1, retries=1), log=lines.append)
    assert "RuntimeError" in str(failure.value)
    assert sum("piece 2 " in line and "trying again (1 of 1)" in line for line in lines) == 1
    assert not (tmp_path / "out.mkv").exists()
    assert (tmp_path / "out.mkv.pieces" / "manifest.json").exists(), "finished pieces stay for a rerun"


def test_a_bad_option_is_one_error_not_retried(tmp_path, clip, cpu_config):
    config = dataclasses.replace(cpu_config, encode=dataclasses.replace(cpu_config.encode, codec="no-such-codec"))
    lines: list[str] = []
    with pytest.raises(StreamfixError, match="piece 0 .*no-such-codec") as failure:
        run_in_pieces(clip.path, tmp_path / "out.mkv", segmented(config, workers=1), log=lines.append)
    assert "\n" not in str(failure.value) and not any("trying again" in line for line in lines)


def test_asking_for_ray_without_it_says_how_to_install_it(monkeypatch, tmp_path, clip, lossless):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(OptionError, match=r'pip install "streamfix\[ray\]"'):
        run_in_pieces(clip.path, tmp_path / "out.mkv", segmented(lossless, executor="ray"), log=lambda m: None)


@pytest.mark.parametrize("target, needle", [("-", "writes a file"), ("out.png", "an image holds one frame")])
def test_segments_need_a_file_to_join_into(tmp_path, capsys, clip, target, needle):
    from streamfix.cli.main import main

    code = main(["run", str(clip.path), target if target == "-" else str(tmp_path / target),
                 "--segment-seconds", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and needle in err[0] and err[0].startswith("streamfix: error:")
