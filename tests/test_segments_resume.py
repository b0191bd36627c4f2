"""Resume: a rerun reuses every piece a previous run finished (checked against the
manifest, sizes and hashes) and redoes only the rest, also after SIGKILL; a changed
input, model or option invalidates what it affects; one work folder, one run."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import FileLock

import mediagen as mg
from segtools import lossless  # noqa: F401 - a fixture
from segtools import BLOCKY_GOPS, InProcess, assert_same_output, segmented, single_pass
from streamfix.core.errors import OptionError
from streamfix.segments.job import PiecesInterrupted, restore_in_pieces

TESTS = Path(__file__).resolve().parent



@pytest.fixture
def clip(tmp_path):
    return mg.write_clip(tmp_path / "in.mkv", frames=48, audio=True, encoder_options=BLOCKY_GOPS)


def _restore(clip_path, target, config, **scale):
    executor = InProcess()
    result = restore_in_pieces(clip_path, target, segmented(config, **scale), executor, log=lambda m: None)
    return result, executor


def test_a_rerun_reuses_every_finished_piece(tmp_path, clip, lossless):
    first, _ = _restore(clip.path, tmp_path / "out.mkv", lossless, keep_pieces=True)
    manifest = json.loads((tmp_path / "out.mkv.pieces" / "manifest.json").read_text())
    assert len(manifest["finished"]) == first.pieces == 4
    assert all(len(r["sha256"]) == 64 and r["bytes"] > 0 for r in manifest["finished"])

    again, executor = _restore(clip.path, tmp_path / "again.mkv", lossless,
                               workdir=str(tmp_path / "out.mkv.pieces"))
    assert executor.ran == [] and again.reused == 4
    single_pass(clip.path, tmp_path / "single.mkv", lossless)
    assert_same_output(tmp_path / "again.mkv", tmp_path / "single.mkv")
    assert not (tmp_path / "out.mkv.pieces").exists()


def test_a_changed_option_or_a_damaged_piece_is_redone(tmp_path, clip, lossless):
    _restore(clip.path, tmp_path / "out.mkv", lossless, keep_pieces=True)
    work = tmp_path / "out.mkv.pieces"
    piece = work / "piece-0002.mkv"
    data = bytearray(piece.read_bytes())
    data[len(data) // 2] ^= 0xFF
    piece.write_bytes(bytes(data))
    _, executor = _restore(clip.path, tmp_path / "out.mkv", lossless, keep_pieces=True)
    assert [t.piece.index for t in executor.ran] == [2]

    luma_chroma = dataclasses.replace(lossless, chroma="luma_model")
    _, executor = _restore(clip.path, tmp_path / "out.mkv", luma_chroma)
    assert len(executor.ran) == 4
    single_pass(clip.path, tmp_path / "single.mkv", luma_chroma)
    assert_same_output(tmp_path / "out.mkv", tmp_path / "single.mkv")


def test_a_changed_input_invalidates_only_the_pieces_it_touches(tmp_path, clip, lossless):
    """The same file with its last GOP cut off: the first three pieces are still good."""
    import av

    _restore(clip.path, tmp_path / "out.mkv", lossless, keep_pieces=True)
    with av.open(str(clip.path)) as source, av.open(str(tmp_path / "shorter.mkv"), "w") as out:
        video = source.streams.video[0]
        copy = out.add_stream_from_template(video)
        for number, packet in enumerate(p for p in source.demux(video) if p.size):
            if number < 36:
                packet.stream = copy
                out.mux(packet)
    clip.path.unlink()
    (tmp_path / "shorter.mkv").rename(clip.path)
    result, executor = _restore(clip.path, tmp_path / "out.mkv", lossless)
    assert result.pieces == 3 and result.reused == 3 and executor.ran == []
    single_pass(clip.path, tmp_path / "single.mkv", lossless)
    assert_same_output(tmp_path / "out.mkv", tmp_path / "single.mkv")


def test_a_work_folder_in_use_is_refused_in_one_line(tmp_path, clip, lossless):
    work = tmp_path / "out.mkv.pieces"
    work.mkdir()
    with FileLock(str(work / ".lock")), pytest.raises(OptionError, match="another streamfix run is using"):
        _restore(clip.path, tmp_path / "out.mkv", lossless)


def _manifest_finished(work: Path) -> int:
    try:
        return len(json.loads((work / "manifest.json").read_text())["finished"])
    except (OSError, ValueError, KeyError):
        return 0


def test_sigkill_at_60_percent_then_the_same_command_finishes_the_rest(tmp_path, lossless):
    """`streamfix run ... --segment-seconds` killed with SIGKILL after 3 of 5 pieces,
    then started again: only the last pieces are restored, the output is the single
    pass's, and no worker outlives its killed driver."""
    clip = mg.write_clip(tmp_path / "in.mkv", frames=60, audio=True, encoder_options=BLOCKY_GOPS)
    config = tmp_path / "run.yaml"
    config.write_text("engines: {torch: {threads: 1}}\nprogress: {mode: 'off'}\n"
                      "stages: [{type: restore}, {type: 'flaky_stages:Slow', seconds: 0.15}]\n")
    out, stats, work = tmp_path / "out.mkv", tmp_path / "stats.json", tmp_path / "out.mkv.pieces"
    command = [sys.executable, "-m", "streamfix.cli", "run", str(clip.path), str(out), "--config", str(config),
               "--engine", "torch", "--device", "cpu", "--codec", "ffv1", "--segment-seconds", "0.4",
               "--workers", "1", "--stats", str(stats)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    first = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while _manifest_finished(work) < 3 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.poll() is None, f"the run ended before it could be killed: {first.stderr.read()}"
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = _manifest_finished(work)
    assert 3 <= killed_at < 5 and not out.exists()
    time.sleep(1.5)  # the workers' deaths follow their driver's
    workers = subprocess.run(["pgrep", "-f", f"--segment-seconds.*{clip.path}"], capture_output=True, text=True)
    assert workers.stdout.strip() == "", "a worker outlived its killed driver"

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    result = json.loads(stats.read_text())
    assert result["reused"] == killed_at and result["pieces"] == 5
    single_pass(clip.path, tmp_path / "single.mkv", lossless)
    assert_same_output(out, tmp_path / "single.mkv")


class _InterruptedAfterOne(InProcess):
    """Ctrl-C once the first piece is in."""

    def run(self, tasks, *, done, progress=lambda frames: None):
        super().run(tasks[:1], done=done, progress=progress)
        raise KeyboardInterrupt


def test_ctrl_c_keeps_the_finished_pieces_and_says_how_to_go_on(tmp_path, clip, lossless):
    with pytest.raises(PiecesInterrupted, match="1 of 4 pieces are restored and kept in .*out.mkv.pieces; run the same"):
        restore_in_pieces(clip.path, tmp_path / "out.mkv", segmented(lossless), _InterruptedAfterOne(),
                          log=lambda m: None)
    assert not (tmp_path / "out.mkv").exists()
    result, executor = _restore(clip.path, tmp_path / "out.mkv", lossless)
    assert result.reused == 1 and len(executor.ran) == 3
