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
                 "--repeats", "1", "--warmup", "0", "--device", "cpu",
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
    (["--engines", "openvino"], "unknown engine 'openvino'"),
    (["--sizes", "640"], "expected WIDTHxHEIGHT"),
    (["--batches", "0"], "batches >= 1"),
    (["--pipeline-frames", "4", "--pipeline-batch", "4"], "must exceed --pipeline-batch"),
])
def test_bad_bench_options_are_one_line_errors(capsys, argv, message):
    assert exit_code(["bench", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
