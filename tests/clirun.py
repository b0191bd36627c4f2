"""Running `streamfix` in the test process, as the hostile-input tests do: the exit
code, stderr's lines, and the --stats JSON, with the engine held to one CPU thread."""

from __future__ import annotations

import json
from pathlib import Path

from streamfix.cli.main import main

# The torch engine on the CPU; the config below holds it to one thread (the suite
# shares 2 cores) and keeps progress lines rare (warnings still show).
CPU = ["--engine", "torch", "--device", "cpu", "--batch", "2"]
CONFIG = "engines:\n  torch: {threads: 1}\nprogress: {mode: lines, interval_s: 3600}\n"


def run_cli(args: list, capsys, tmp_path: Path, *, stats: bool = True) -> tuple[int, list[str], dict]:
    """Exit code, stderr lines and the stats of `streamfix run ARGS` (stats {} if none).
    ARGS may bring their own --config (which should start with CONFIG)."""
    stats_path = tmp_path / "stats.json"
    extra = [*CPU] + (["--stats", stats_path] if stats else [])
    if "--config" not in args:
        config = tmp_path / "cpu.yaml"
        config.write_text(CONFIG)
        extra += ["--config", config]
    try:
        code = main(["run", *[str(a) for a in args], *[str(a) for a in extra]])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    report = json.loads(stats_path.read_text()) if stats and stats_path.exists() else {}
    return code, err, report


def warnings_about(err: list[str], needle: str) -> list[str]:
    return [line for line in err if "warning" in line and needle in line]


def assert_one_line_error(code: int, err: list[str], *needles: str) -> None:
    assert code == 2, err
    assert len(err) == 1, err
    assert err[0].startswith("streamfix: error: ") and "Traceback" not in err[0]
    for needle in needles:
        assert needle in err[0], err[0]
