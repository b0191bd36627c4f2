"""`streamfix bench` runs end to end on tiny sizes and refuses bad options in one line.
(Its numbers are not checked here: speed is what the benchmark prints, not a test.)"""

from __future__ import annotations

import pytest
import torch

from streamfix.cli.main import main

torch.set_num_threads(1)


def test_bench_prints_both_tables(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # the exported graph goes here
    code = main(["bench", "--engines", "onnxruntime,torch", "--sizes", "64x48", "--batches", "1,2",
                 "--repeats", "1", "--warmup", "0", "--device", "cpu", "--no-grid",
                 "--pipeline-frames", "6", "--pipeline-batch", "2", "--pipeline-size", "64x48"])
    out = capsys.readouterr().out
    assert code == 0
    engine_rows = [line for line in out.splitlines() if line.startswith("| onnxruntime | 64x48")
                   or line.startswith("| torch | 64x48")]
    assert len(engine_rows) == 4 + 2, out  # 2 engines x 2 batches, then 2 pipeline rows
    pipeline_rows = [line for line in out.splitlines() if "| 6 (6) |" in line]
    assert len(pipeline_rows) == 2, "every frame of the CRF 40 clip should be restored"
    assert list(tmp_path.glob("streamfix/onnx/*.onnx"))


def exit_code(argv: list[str]) -> int:
    """main()'s return code, or the code argparse exits with on a usage error."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code)


@pytest.mark.parametrize("argv,message", [
    (["--engines", "tflite"], "unknown engine 'tflite'"),
    (["--grid-engines", "tflite"], "unknown engine 'tflite' for --grid-engines"),
    (["--precision", "fp8"], "--precision: invalid choice"),
    (["--sizes", "640"], "expected WIDTHxHEIGHT"),
    (["--batches", "0"], "batches >= 1"),
    (["--pipeline-frames", "4", "--pipeline-batch", "4"], "must exceed --pipeline-batch"),
])
def test_bad_bench_options_are_one_line_errors(capsys, argv, message):
    assert exit_code(["bench", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_the_engine_precision_table_has_speed_gain_memory_and_the_limit(tmp_path, monkeypatch, capsys):
    """One row per engine x precision x model x size, each measured in a child process
    (the graphs are made first, in this one), then the peak memory of a whole run."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    code = main(["bench", "--models", "video-x264-qp", "--grid-engines", "onnxruntime", "--precision", "int8",
                 "--sizes", "64x48", "--batches", "1", "--repeats", "1", "--warmup", "0", "--device", "cpu",
                 "--engines", "onnxruntime", "--pipeline-frames", "0", "--threads", "1", "--run-memory", "96x64"])
    out = capsys.readouterr().out
    assert code == 0
    (row,) = [line for line in out.splitlines() if line.startswith("| video-x264-qp | onnxruntime | int8 | 64x48 |")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == 14 and "failed" not in row
    gain, peak_rss = float(cells[11]), float(cells[13])
    assert 0.1 < gain < 0.5, "the shipped video model gains ~0.25 dB on the check split in int8"
    assert 50 < peak_rss < 4000
    assert "MAC/cycle/core" in out and list(tmp_path.glob("streamfix/onnx/*int8*.onnx"))
    (run,) = [line for line in out.splitlines() if line.startswith("| onnxruntime | int8 | 96x64 | 8 | 4 |")]
    assert 50 < float(run.split("|")[6]) < 4000, "a whole run's own peak, not the bench process's"


def test_the_default_row_runs_what_auto_chooses_and_says_so(tmp_path, monkeypatch, capsys):
    from streamfix.engines import auto_choice

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    # The choice itself is tested in test_auto_choice.py; here a stand-in measurement
    # makes torch fp32 the winner, so the row must be torch's, and say why.
    def measure(candidates, build, calibration):
        return [auto_choice.Measurement(c.label, seconds=0.1 if c.label == "torch fp32" else 1.0, gain_db=0.3)
                for c in candidates]

    monkeypatch.setattr(auto_choice, "measure", measure)
    monkeypatch.setattr(auto_choice, "reference_output", lambda model, x: x[:, :1] * 0 + 0.5)
    code = main(["bench", "--engines", "default", "--sizes", "64x48", "--batches", "1", "--repeats", "1",
                 "--warmup", "0", "--device", "cpu", "--no-grid", "--pipeline-frames", "0"])
    printed = capsys.readouterr()
    assert code == 0
    assert "default: engine auto on this CPU: torch fp32: fastest of" in printed.err, printed.err
    assert any(line.startswith("| default | 64x48 | 1 |") for line in printed.out.splitlines()), printed.out
