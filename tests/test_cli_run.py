"""`streamfix run` and `streamfix info` through `streamfix.cli.main`: bad inputs, outputs
and options each give one line on stderr and exit code 2; a good run writes the file,
its stats, and a summary; Ctrl-C exits 130."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import mediagen as mg
from streamfix.cli.main import main

# The torch engine on one thread (the suite shares 2 cores), quiet progress.
CPU = ["--engine", "torch", "--device", "cpu"]


@pytest.fixture
def cpu_yaml(tmp_path) -> Path:
    path = tmp_path / "cpu.yaml"
    path.write_text("engines:\n  torch: {threads: 1}\nprogress: {mode: lines}\n")
    return path


def cli(args: list[str], capsys) -> tuple[int, list[str], str]:
    """Exit code, stderr lines, stdout (argparse errors exit through SystemExit)."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.err.strip().splitlines(), captured.out


def assert_one_line_error(code, err, *needles):
    assert code == 2, err
    assert len(err) == 1, err
    assert "Traceback" not in err[0] and "error" in err[0]
    for needle in needles:
        assert needle in err[0]


@pytest.fixture
def clip(tmp_path):
    return mg.write_clip(tmp_path / "in.mp4", frames=8, audio=True, encoder_options={"crf": "40"})


BAD_INPUTS = {
    "missing": (lambda d: d / "nope.mp4", "no such file"),
    "text named .mp4": (lambda d: mg.text_named_like_video(d / "notes.mp4"), "cannot be read as a video"),
    "audio only": (lambda d: mg.audio_only(d / "song.m4a"), "has no video stream"),
    "empty": (lambda d: mg.empty_file(d / "empty.mp4"), "empty"),
    "zero frames": (lambda d: mg.zero_frames(d / "zero.mkv"), "no decodable video frame"),
    "truncated mp4": (lambda d: mg.truncated_copy(mg.write_clip(d / "whole.mp4").path, d / "cut.mp4"),
                      "truncated or corrupt"),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_inputs_give_one_line(tmp_path, capsys, case):
    make, needle = BAD_INPUTS[case]
    source = make(tmp_path)
    code, err, _ = cli(["run", source, tmp_path / "out.mp4", *CPU], capsys)
    assert_one_line_error(code, err, needle)
    assert list(tmp_path.glob("out*")) == []


@pytest.mark.parametrize("target, needle", [
    ("no/such/dir/out.mp4", "does not exist"),
    (".", "is a directory"),
    ("out.xyz", "cannot tell the output format"),
])
def test_unwritable_outputs_give_one_line(tmp_path, capsys, clip, target, needle):
    code, err, _ = cli(["run", clip.path, tmp_path / target, *CPU], capsys)
    assert_one_line_error(code, err, needle)


@pytest.mark.parametrize("flags, needle", [
    (["--batch", "0"], "--batch: must be 1 or more"),
    (["--crf", "abc"], "--crf: expected a whole number"),
    (["--engine", "tflite"], "--engine: invalid choice"),
    (["--precision", "fp8"], "--precision: invalid choice"),
    (["--tile", "-1"], "--tile: must be 0 or more"),
    (["--memory-budget", "0"], "--memory-budget: must be 1 or more"),
    (["--crf", "99"], "crf 99 is out of range"),
    (["--bitrate", "fast"], "bitrate 'fast' is not a number"),
    (["--device", "gpu"], "unknown device 'gpu'"),
    (["--model", "no-such-model"], "no model named 'no-such-model'"),
    (["--codec", "no-such-codec"], "no-such-codec"),
    (["--pix-fmt", "yuv999p"], "unknown pixel format"),
    # Values that used to be accepted and then failed or hung (a traceback, or no progress).
    (["--max-latency", "inf"], "--max-latency: must be a finite number"),
    (["--input-timeout", "nan"], "--input-timeout: must be more than 0"),
    (["--tile", "1"], "tile must be 0 (whole frames) or from 32 to 16384"),
    (["--batch", "100000"], "batch must be from 1 to 64"),
])
def test_bad_option_values_give_one_line(tmp_path, capsys, clip, flags, needle):
    code, err, _ = cli(["run", clip.path, tmp_path / "out.mp4", *CPU, *flags], capsys)
    assert_one_line_error(code, err, needle)
    assert list(tmp_path.glob("out*")) == []


def test_a_stats_file_in_a_missing_directory_is_refused_before_the_run(tmp_path, capsys, clip):
    code, err, _ = cli(["run", clip.path, tmp_path / "out.mp4", *CPU, "--stats", tmp_path / "no" / "s.json"], capsys)
    assert_one_line_error(code, err, "stats file does not exist")
    assert list(tmp_path.glob("out*")) == []


@pytest.mark.parametrize("which", ["input", "output", "folder"])
def test_a_stats_path_that_is_the_input_output_or_a_folder_is_refused(tmp_path, capsys, clip, which):
    """`--stats in.mp4` replaced the input with JSON, `--stats out.mp4` the output."""
    before = Path(clip.path).read_bytes()
    stats = {"input": clip.path, "output": tmp_path / "out.mp4", "folder": tmp_path}[which]
    code, err, _ = cli(["run", clip.path, tmp_path / "out.mp4", *CPU, "--stats", stats], capsys)
    assert_one_line_error(code, err, "is a directory" if which == "folder" else f"is the {which} file")
    assert Path(clip.path).read_bytes() == before
    assert list(tmp_path.glob("out*")) == []


def test_an_unknown_config_key_gives_one_line(tmp_path, capsys, clip):
    config = tmp_path / "mine.yaml"
    config.write_text("batch: 2\nbach_timeout_ms: 5\n")
    code, err, _ = cli(["run", clip.path, tmp_path / "out.mp4", "--config", config], capsys)
    assert_one_line_error(code, err, "unknown key 'bach_timeout_ms'", str(config))


@pytest.mark.parametrize("make, needle", [
    (lambda d: (d / "cfg").mkdir() or d / "cfg", "is a folder"),
    (lambda d: (d / "latin1.yaml").write_bytes(b"batch: \xff\xfe\n") and d / "latin1.yaml", "not a text (UTF-8) file"),
    (lambda d: (d / "broken.yaml").write_text("batch: [1,\n  engine: x\n") and d / "broken.yaml",
     "not valid YAML (while parsing a flow sequence: expected ',' or ']'"),
], ids=["directory", "not UTF-8", "malformed"])
def test_unreadable_config_files_give_one_line(tmp_path, capsys, clip, make, needle):
    """A folder or a non-UTF-8 file as --config was a traceback; PyYAML's error was 7 lines."""
    code, err, _ = cli(["run", clip.path, tmp_path / "out.mp4", "--config", make(tmp_path)], capsys)
    assert_one_line_error(code, err, needle)


def _damaged_weights(path: Path, change) -> Path:
    import torch

    from streamfix.core.weights import bundled_paths

    data = torch.load(bundled_paths()["video-x264-qp"], weights_only=True)
    change(data)
    torch.save(data, path)
    return path


@pytest.mark.parametrize("change, needle", [
    (lambda d: d["state_dict"].pop("extract.weight"), "does not match its own model_args (missing extract.weight)"),
    (lambda d: d["state_dict"].__setitem__("map.weight", __import__("torch").zeros(3, 3, 3, 3)),
     "map.weight has shape (3, 3, 3, 3)"),
    (lambda d: d["model_args"].__setitem__("features", 10**6), "model_args.features must be a whole number from 1"),
    (lambda d: d["model_args"].__setitem__("colour", 3), "unknown model_args keys"),
    (lambda d: d.pop("name"), "'name' must be a text"),
    (lambda d: d.__setitem__("conditioning", "none"), "conditioning 'none' with 1 conditioning planes"),
], ids=["missing key", "wrong shape", "absurd size", "unknown arg", "no name", "inconsistent"])
def test_damaged_weights_files_give_one_line(tmp_path, capsys, clip, change, needle):
    """Valid torch files with wrong contents gave KeyErrors, shape tracebacks, or tried to
    allocate terabytes (features = 10^6) before anything checked them."""
    weights = _damaged_weights(tmp_path / "w.pt", change)
    code, err, _ = cli(["run", clip.path, tmp_path / "out.mp4", *CPU, "--model", weights], capsys)
    assert_one_line_error(code, err, needle)


def test_a_missing_config_file_gives_one_line(tmp_path, capsys, clip):
    code, err, _ = cli(["run", clip.path, tmp_path / "out.mp4", "--config", tmp_path / "none.yaml"], capsys)
    assert_one_line_error(code, err, "config file not found")


def test_a_run_writes_the_file_stats_and_a_summary(tmp_path, capsys, clip, cpu_yaml):
    stats = tmp_path / "stats.json"
    code, err, _ = cli(["run", clip.path, tmp_path / "out.mp4", *CPU, "--config", cpu_yaml,
                        "--batch", "3", "--crf", "20", "--preset", "veryfast", "--stats", stats], capsys)
    assert code == 0, err
    assert err[-1].startswith(f"streamfix: wrote {tmp_path / 'out.mp4'}: 8 frames (")
    assert any("engine torch fp32 on cpu" in line for line in err)  # a named engine alone computes in fp32
    data = json.loads(stats.read_text())
    assert data["frames_in"] == data["frames_out"] == 8
    assert data["engine"] == "torch" and data["restored"] + data["passed_through"] == 8
    assert set(data) >= {"fps", "fallbacks", "stage_seconds", "seconds"}
    assert len(mg.probe(tmp_path / "out.mp4").frame_pts) == 8


def test_quiet_prints_nothing(tmp_path, capsys, clip, cpu_yaml):
    code, err, out = cli(["run", clip.path, tmp_path / "out.mkv", *CPU, "--config", cpu_yaml, "--quiet"], capsys)
    assert code == 0 and err == [] and out == ""


def test_a_cut_mkv_is_restored_up_to_the_cut_with_a_warning(tmp_path, capsys, cpu_yaml):
    whole = mg.write_clip(tmp_path / "whole.mkv", frames=30, audio=True, encoder_options={"crf": "40"})
    cut = mg.truncated_copy(whole.path, tmp_path / "cut.mkv", keep=0.5)
    code, err, _ = cli(["run", cut, tmp_path / "out.mkv", *CPU, "--config", cpu_yaml], capsys)
    assert code == 0
    assert any("truncated or corrupt" in line and "closed cleanly" in line for line in err)


def test_ctrl_c_exits_130_and_says_what_the_output_holds(tmp_path, capsys, clip):
    config = tmp_path / "stop.yaml"
    config.write_text("engines:\n  torch: {threads: 1}\nbatch: 1\nstages:\n"
                      "  - {type: restore}\n  - {type: 'test_cli_run:InterruptAtFrame', index: 3}\n")
    code, err, _ = cli(["run", clip.path, tmp_path / "out.mkv", *CPU, "--config", config], capsys)
    assert code == 130
    assert err[-1] == f"streamfix: interrupted: {tmp_path / 'out.mkv'} holds the 3 frames restored so far"
    assert len(mg.probe(tmp_path / "out.mkv").frame_pts) == 3


class InterruptAtFrame:
    """A stage that behaves like a user pressing Ctrl-C when frame `index` arrives."""

    name = "interrupt"

    def __init__(self, index: int) -> None:
        self.index = index

    def open(self, video):
        return video

    def process(self, frames, context):
        if any(d.index == self.index for d in context.decoded):
            raise KeyboardInterrupt
        return frames

    def close(self):
        pass


def test_info_lists_versions_engines_and_models(capsys):
    code, err, out = cli(["info"], capsys)
    assert code == 0, err
    for needle in ("streamfix", "torch", "PyAV", "onnxruntime", "engines", "torch        yes",
                   "jpeg-y-blind", "video-x264-qp"):
        assert needle in out
    assert "tensorrt" in out  # usable or not, with its reason
