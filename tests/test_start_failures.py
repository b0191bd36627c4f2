"""When the output cannot start, the one line says what really failed and what to do;
settings FFmpeg would ignore silently are warned about."""

from __future__ import annotations

import subprocess
import sys

import pytest

import mediagen as mg
from clirun import CONFIG, assert_one_line_error, run_cli, warnings_about


@pytest.fixture
def clip(tmp_path):
    return mg.write_clip(tmp_path / "in.mp4", frames=6)


def test_a_bogus_preset_names_the_presets(tmp_path, capsys, clip):
    """`--preset bogus` said "try another codec or pixel format" (and x264 printed a
    line of its own)."""
    code, err, _ = run_cli([clip.path, tmp_path / "out.mp4", "--preset", "bogus"], capsys, tmp_path, stats=False)
    assert_one_line_error(code, err, "preset 'bogus' is not one libx264 knows", "veryfast")
    assert list(tmp_path.glob("out*")) == []


def test_an_option_the_encoder_refuses_is_named(tmp_path, capsys, clip):
    config = tmp_path / "mine.yaml"
    config.write_text(CONFIG + "encode:\n  options: {level: nonsense}\n")
    code, err, _ = run_cli([clip.path, tmp_path / "out.mp4", "--config", config], capsys, tmp_path, stats=False)
    assert_one_line_error(code, err, "refused level='nonsense'", "change or remove that setting")


def test_unknown_encoder_options_are_warned(tmp_path, capsys, clip):
    """Unknown encoder options in the config were ignored without a word."""
    config = tmp_path / "mine.yaml"
    config.write_text(CONFIG + "encode:\n  options: {tnue: zerolatency, g: 12}\n")
    code, err, _ = run_cli([clip.path, tmp_path / "out.mp4", "--config", config], capsys, tmp_path)
    assert code == 0, err
    assert len(warnings_about(err, "has no option 'tnue'")) == 1
    assert not warnings_about(err, "'g'")


def test_format_names_the_container_of_a_path_without_suffix(tmp_path, capsys, clip):
    """`--format` was ignored for an output path without a suffix, while the message
    told the user to name the format."""
    code, err, _ = run_cli([clip.path, tmp_path / "restored", "--format", "matroska"], capsys, tmp_path)
    assert code == 0, err
    assert mg.probe(tmp_path / "restored").format_name.startswith("matroska")


def test_a_container_that_cannot_go_to_a_pipe_says_so(tmp_path, clip):
    """MP4 to stdout said "try another codec or pixel format"."""
    config = tmp_path / "cpu.yaml"
    config.write_text(CONFIG)
    result = subprocess.run([sys.executable, "-m", "streamfix.cli.main", "run", str(clip.path), "-", "--format", "mp4",
                             "--engine", "torch", "--device", "cpu", "--config", str(config)],
                            capture_output=True, timeout=120)
    err = result.stderr.decode().strip().splitlines()
    assert_one_line_error(result.returncode, err, "cannot be written to a pipe or network stream",
                          "--format mpegts, matroska or nut")
    assert result.stdout == b""


def test_a_codec_the_container_cannot_hold_says_so(tmp_path, capsys, clip):
    code, err, _ = run_cli([clip.path, tmp_path / "out.webm", "--codec", "mpeg4"], capsys, tmp_path, stats=False)
    assert_one_line_error(code, err, "the webm container refused mpeg4 video", "--codec")


def test_an_encoder_whose_presets_are_numbers_starts_with_the_default(tmp_path, capsys):
    """SVT-AV1 takes preset numbers: the default name 'medium' must not stop it, while
    a preset asked for is checked."""
    clip = mg.write_clip(tmp_path / "in.mp4", frames=4, width=64, height=64)
    code, err, _ = run_cli([clip.path, tmp_path / "out.mkv", "--codec", "libsvtav1"], capsys, tmp_path)
    assert code == 0, err
    code, err, _ = run_cli([clip.path, tmp_path / "out2.mkv", "--codec", "libsvtav1", "--preset", "slow"],
                           capsys, tmp_path, stats=False)
    assert_one_line_error(code, err, "preset 'slow' is not a number", "from -2 to 13")


def test_a_preset_for_an_encoder_without_presets_is_warned(tmp_path, capsys, clip):
    """`--preset slow` with an encoder that has no presets (FFV1) was ignored silently."""
    code, err, _ = run_cli([clip.path, tmp_path / "out.mkv", "--codec", "ffv1", "--preset", "slow"], capsys, tmp_path)
    assert code == 0, err
    assert len(warnings_about(err, "ffv1 has no presets: preset 'slow' ignored")) == 1
