"""Byte-mutated MP4, MKV and MPEG-TS files: streamfix exits 0, or 2 with one clean
error line; never a traceback, never a hang, never a file written next to the output.

The cases run in one subprocess (tests/fuzz_driver.py), which reports each as a JSON
line; a case that does not report within CASE_DEADLINE_S is a hang, a driver that
dies is a crash, and either is named with its seed and case number, which reproduce
it alone: `python tests/fuzz_driver.py DIR --seed S --only N`. The cases are seeded;
about a minute in CI (the driver stops starting cases after BUDGET_S). Run longer
or other seeds with STREAMFIX_FUZZ_SEED, STREAMFIX_FUZZ_CASES, STREAMFIX_FUZZ_BUDGET_S.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
from pathlib import Path

SEED = int(os.environ.get("STREAMFIX_FUZZ_SEED", "9"))
CASES = int(os.environ.get("STREAMFIX_FUZZ_CASES", "300"))
BUDGET_S = float(os.environ.get("STREAMFIX_FUZZ_BUDGET_S", "45"))
CASE_DEADLINE_S = 60
ENOUGH_CASES = 30  # fewer means the machine is far slower than CI; then the test says so
# What a case may leave in its folder besides its input and config.
ALLOWED = re.compile(r"^out(\.partial(-\d+)?)?\.(mkv|mp4|ts)$")
DRIVER = Path(__file__).with_name("fuzz_driver.py")


def _problems(case: dict) -> list[str]:
    """What is wrong with one case's outcome (nothing for a clean one)."""
    found = []
    errors = [line for line in case["stderr"] if line.startswith("streamfix: error:")]
    if any("Traceback" in line for line in case["stderr"]):
        found.append("a traceback")
    if case["code"] == 0 and errors:
        found.append("an error line with exit 0")
    elif case["code"] == 2 and not (len(errors) == 1 and case["stderr"][-1] == errors[0]):
        found.append(f"{len(errors)} error lines (one, the last line, expected)")
    elif case["code"] not in (0, 2):
        found.append(f"exit {case['code']}")
    output_suffix = case["output"].rsplit(".", 1)[1]
    for name in case["files"]:
        if not ALLOWED.match(name) or not name.endswith(output_suffix):
            found.append(f"wrote {name}")
    if case["stdout"]:
        found.append("wrote to stdout")
    return found


def _lines(stream, into: queue.Queue) -> None:
    for line in stream:
        into.put(line)
    into.put(None)


def test_mutated_files_never_crash_hang_or_touch_other_files(tmp_path):
    driver = subprocess.Popen([sys.executable, str(DRIVER), str(tmp_path), "--seed", str(SEED), "--cases",
                               str(CASES), "--budget", str(BUDGET_S)], cwd=DRIVER.parent,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_lines, args=(driver.stdout, lines), daemon=True).start()
    results, current, failures = [], None, []
    try:
        while True:
            try:
                line = lines.get(timeout=CASE_DEADLINE_S)
            except queue.Empty:
                raise AssertionError(f"case {current} (seed {SEED}) hung: no result within {CASE_DEADLINE_S} s")
            if line is None:
                driver.wait(timeout=30)
                raise AssertionError(f"the driver died in case {current} (seed {SEED}), exit {driver.returncode}: "
                                     f"{driver.stderr.read()[-2000:]}")
            report = json.loads(line)
            if report.get("done"):
                break
            if report.get("starting"):
                current = report["case"]
                continue
            results.append(report)
            problems = _problems(report)
            if problems:
                failures.append(f"case {report['case']} (seed {SEED}, {report['input']} -> {report['output']}): "
                                f"{', '.join(problems)}; stderr: {report['stderr'][-4:]}")
    finally:
        driver.kill()
        driver.wait()
    assert not failures, "\n".join(failures)
    assert len(results) >= ENOUGH_CASES, f"only {len(results)} cases ran within {BUDGET_S} s"
    # Both outcomes occur, so the checks above really looked at each kind.
    assert {r["code"] for r in results} == {0, 2}
