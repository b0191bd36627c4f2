"""No file but the output is ever touched: the `.partial` file is this run's own, never
followed through a link, never shared with another run."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

import mediagen as mg
from clirun import CONFIG, run_cli
from streamfix.core.errors import OutputError
from streamfix.media.partial_file import PartialFile, partial_path


@pytest.fixture
def clip(tmp_path):
    return mg.write_clip(tmp_path / "in.mp4", frames=12, audio=True)


@pytest.mark.parametrize("dangling", [False, True], ids=["to a file", "dangling"])
def test_a_link_at_the_partial_name_is_not_followed(tmp_path, capsys, clip, dangling):
    """A symlink planted at out.partial.mkv was followed and its target overwritten
    (or, dangling, created)."""
    victim = tmp_path / "victim.txt"
    if not dangling:
        victim.write_text("precious")
    (tmp_path / "out.partial.mkv").symlink_to(victim)
    code, err, stats = run_cli([clip.path, tmp_path / "out.mkv"], capsys, tmp_path)
    assert code == 0, err
    assert (victim.read_text() == "precious") if not dangling else not victim.exists()
    assert (tmp_path / "out.partial.mkv").is_symlink()
    assert any("out.partial.mkv is a symbolic link (left alone, not followed)" in line for line in err), err
    assert len(mg.probe(tmp_path / "out.mkv").frame_pts) == stats["frames_out"] == 12
    assert not (tmp_path / "out.partial-2.mkv").exists()


def test_a_directory_at_the_partial_name_is_left_alone(tmp_path, capsys, clip):
    """A directory at the partial name gave a traceback."""
    planted = tmp_path / "out.partial.mkv"
    planted.mkdir()
    (planted / "keep.txt").write_text("mine")
    code, err, _ = run_cli([clip.path, tmp_path / "out.mkv"], capsys, tmp_path)
    assert code == 0, err
    assert any("out.partial.mkv is a directory" in line for line in err), err
    assert (planted / "keep.txt").read_text() == "mine"
    assert len(mg.probe(tmp_path / "out.mkv").frame_pts) == 12


def test_an_earlier_runs_partial_output_is_kept(tmp_path, capsys, clip):
    left = tmp_path / "out.partial.mkv"
    left.write_bytes(b"an interrupted run's output")
    code, err, _ = run_cli([clip.path, tmp_path / "out.mkv"], capsys, tmp_path)
    assert code == 0, err
    assert any("earlier run's incomplete output" in line for line in err), err
    assert left.read_bytes() == b"an interrupted run's output"


def test_a_kept_partial_output_can_be_restored_into_its_own_name(tmp_path, capsys, clip):
    """The user's next step after an interrupted run: restore out.partial.mkv into out.mkv."""
    kept = tmp_path / "out.partial.mkv"
    kept.write_bytes((tmp_path / "in.mp4").read_bytes())
    code, err, _ = run_cli([kept, tmp_path / "out.mkv"], capsys, tmp_path)
    assert code == 0, err
    assert kept.read_bytes() == (tmp_path / "in.mp4").read_bytes()


def test_two_runs_to_one_output_each_write_their_own(tmp_path, capsys, clip):
    """Two runs writing the same output shared one partial file, and the one that
    finished reported success for the other's content."""
    config = tmp_path / "a.yaml"
    config.write_text(CONFIG)
    longer = mg.write_clip(tmp_path / "longer.ts", frames=30, container_format="mpegts")
    # Run A reads a pipe the test holds open, so it finishes only when the test says.
    first = subprocess.Popen([sys.executable, "-m", "streamfix.cli.main", "run", "-", str(tmp_path / "out.mkv"),
                              "--engine", "torch", "--device", "cpu", "--config", str(config), "--no-live",
                              "--input-timeout", "60"],
                             stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first.stdin.write(longer.path.read_bytes())
        first.stdin.flush()
        give_up = time.monotonic() + 60
        while not partial_path(tmp_path / "out.mkv").exists() and time.monotonic() < give_up:
            time.sleep(0.05)
        # Run B, started while A writes: it finishes first.
        code, err, stats = run_cli([clip.path, tmp_path / "out.mkv"], capsys, tmp_path)
        assert code == 0, err
        assert any("another run is writing to the same output right now" in line for line in err), err
        assert len(mg.probe(tmp_path / "out.mkv").frame_pts) == stats["frames_out"] == 12
        first.stdin.close()
        first.wait(timeout=120)
        first_err = first.stderr.read()
    finally:
        first.kill()
    assert first.returncode == 0, first_err.decode()
    assert "wrote " + str(tmp_path / "out.mkv") + ": 30 frames" in first_err.decode()
    # The last run to finish gave the output its content; no partial file is left over.
    assert len(mg.probe(tmp_path / "out.mkv").frame_pts) == 30
    assert sorted(p.name for p in tmp_path.glob("out*")) == ["out.mkv"]


def test_a_partial_file_swapped_while_written_is_not_renamed(tmp_path):
    target = tmp_path / "out.mkv"
    partial = PartialFile(target)
    partial.path.unlink()
    partial.path.write_bytes(b"someone else's")
    with pytest.raises(OutputError, match="was replaced or removed while it was written"):
        partial.rename_to_target()
    assert not target.exists() and partial.path.read_bytes() == b"someone else's"


def test_a_link_at_the_output_name_is_replaced_not_followed(tmp_path, capsys, clip):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "out.mkv").symlink_to(victim)
    code, err, _ = run_cli([clip.path, tmp_path / "out.mkv"], capsys, tmp_path)
    assert code == 0, err
    assert victim.read_text() == "precious" and not (tmp_path / "out.mkv").is_symlink()
    assert len(mg.probe(tmp_path / "out.mkv").frame_pts) == 12
