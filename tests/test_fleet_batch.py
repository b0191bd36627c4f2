"""`streamfix batch`: a folder of mixed files (a long video in pieces, a short one whole,
a JPEG, one in a subfolder, a broken one) restored through one worker pool, a line
and a summary entry per file, and a rerun that skips what is done."""

from __future__ import annotations

import dataclasses
import json

import pytest

import mediagen as mg
from segtools import BLOCKY_GOPS, LOSSLESS, assert_same_output, single_pass
from streamfix.cli.main import main
from streamfix.core.errors import OptionError
from streamfix.fleet.batch_inputs import collect


def mixed_folder(root):
    """The batch: what an archive folder holds."""
    root.mkdir()
    (root / "sub").mkdir()
    long = mg.h264_with_audio_and_subtitles(root / "long.mkv", frames=48, encoder_options=BLOCKY_GOPS)
    mg.write_clip(root / "short.mp4", frames=12, audio=True, encoder_options=BLOCKY_GOPS)
    mg.jpeg_still(root / "sub" / "photo.jpg", quality=15)
    mg.text_named_like_video(root / "broken.mp4")
    (root / "notes.md").write_text("not media")
    return long


def batch_args(tmp_path, root, *extra):
    cpu_yaml = tmp_path / "cpu.yaml"
    cpu_yaml.write_text("engine: torch\ndevice: cpu\nengines: {torch: {threads: 1}}\nencode: {codec: ffv1, crf: null}\n"
                        "progress: {mode: 'off'}\n")
    return ["batch", str(root), "--out-dir", str(tmp_path / "out"), "--config", str(cpu_yaml),
            "--segment-seconds", "0.6", *extra]


def run_cli(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out.strip().splitlines(), captured.err


def test_a_folder_of_mixed_files_is_restored_and_a_rerun_skips_it(tmp_path, capsys, cpu_config):
    root = tmp_path / "archive"
    long = mixed_folder(root)
    code, lines, err = run_cli(batch_args(tmp_path, root, "--workers", "2"), capsys)
    out = tmp_path / "out"

    assert code == 2, err  # the broken file
    by_file = {line.split()[1].rstrip(":"): line for line in lines}
    assert by_file[str(root / "broken.mp4")].startswith("failed") and "cannot be read" in by_file[str(root / "broken.mp4")]
    assert "2 pieces" in by_file[str(long.path)]
    for name in ("long.mkv", "short.mp4", "sub/photo.jpg"):
        assert by_file[str(root / name)].startswith("done"), lines
        assert (out / name).is_file()
    summary = json.loads((out / "streamfix-batch.json").read_text())
    assert (summary["done"], summary["skipped"], summary["failed"]) == (3, 0, 1)
    assert not list(out.rglob("*.pieces")), "work folders go once a file is joined"
    single_pass(long.path, tmp_path / "single.mkv", dataclasses.replace(cpu_config, encode=LOSSLESS))
    assert_same_output(out / "long.mkv", tmp_path / "single.mkv")

    code, lines, _ = run_cli(batch_args(tmp_path, root), capsys)
    assert code == 2
    assert sorted(line.split()[0] for line in lines) == ["failed", "skipped", "skipped", "skipped"]


def test_inputs_come_from_folders_lists_and_files_without_collisions(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    for folder in (a, b):
        (folder / "clip.mp4").write_bytes(b"x")
    (a / "x.pieces").mkdir()
    (a / "x.pieces" / "piece-0000.mp4").write_bytes(b"x")
    (a / "half.partial.mp4").write_bytes(b"x")
    listing = tmp_path / "list.txt"
    listing.write_text("# the second folder\nb/clip.mp4\n\n")
    items = collect([a], tmp_path / "out", suffix="mkv")
    assert [(i.source.name, i.target) for i in items] == [("clip.mp4", tmp_path / "out" / "clip.mkv")]
    with pytest.raises(OptionError, match="would both be written to"):
        collect([a, listing], tmp_path / "out")
    with pytest.raises(OptionError, match="would overwrite it"):
        collect([a], a)
