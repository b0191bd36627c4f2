"""Runs `streamfix run` on byte-mutated copies of small MP4, MKV and MPEG-TS files, in
one process, and reports each case as one JSON line on stdout; test_fuzz.py reads
them, with a deadline per case, so a hang or a crash is caught and named.

    python tests/fuzz_driver.py WORKDIR --seed 9 --cases 45 --budget 50

Cases are a pure function of the seed: case i of seed s is the same mutation on every
machine, so a failure is reproduced with `--seed s --only i`. `--budget` stops
starting new cases after that many seconds, which keeps a slow machine inside CI's
time while a fast one runs them all.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import time
from pathlib import Path

import mediagen as mg

BASES = {"mp4": {}, "mkv": {}, "ts": {"container_format": "mpegts"}}
FLAGS = ["--engine", "torch", "--device", "cpu", "--batch", "2"]
CONFIG = "engines:\n  torch: {threads: 1}\nprogress: {mode: lines, interval_s: 3600}\n"


def make_bases(folder: Path) -> dict[str, bytes]:
    """The clean files every case mutates: tiny, with audio, B-frames and a GOP of 5."""
    data = {}
    for suffix, extra in BASES.items():
        clip = mg.write_clip(folder / f"base.{suffix}", frames=10, audio=True,
                             encoder_options={"g": "5", "bf": "2"}, **extra)
        data[suffix] = clip.path.read_bytes()
    return data


def mutate(data: bytes, rng: random.Random) -> bytes:
    """Flip, overwrite or cut bytes: the kinds of damage storage and networks do.
    Half the time the damage lands in the first tenth, where the headers are."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 24)):
        head = rng.random() < 0.5
        pos = rng.randrange(max(1, len(data) // 10) if head else len(data))
        kind = rng.random()
        if kind < 0.6:
            data[pos] = rng.randrange(256)
        elif kind < 0.85:
            run = rng.randint(2, 64)
            data[pos:pos + run] = bytes(rng.choice((0x00, 0xFF)) for _ in range(len(data[pos:pos + run])))
        else:
            del data[pos:pos + rng.randint(1, 32)]
    if rng.random() < 0.15:
        data = data[: rng.randint(len(data) // 3, len(data))]
    return bytes(data)


def run_case(folder: Path, base: bytes, suffix: str, index: int, rng: random.Random) -> dict:
    from streamfix.cli.main import main

    case_dir = folder / f"case{index:03d}"
    case_dir.mkdir()
    source = case_dir / f"in.{suffix}"
    source.write_bytes(mutate(base, rng))
    config = case_dir / "cpu.yaml"
    config.write_text(CONFIG)
    out_suffix = rng.choice(["mkv", "mp4", "ts"])
    args = ["run", str(source), str(case_dir / f"out.{out_suffix}"), *FLAGS, "--config", str(config)]
    err, out = io.StringIO(), io.StringIO()
    start = time.monotonic()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(args)
        except SystemExit as exc:
            code = exc.code
        except BaseException as exc:  # noqa: BLE001 - an escaped exception is what the test looks for
            import traceback

            traceback.print_exc(file=err)
            code = f"raised {type(exc).__name__}"
    files = sorted(p.name for p in case_dir.iterdir() if p.name not in (source.name, config.name))
    return {"case": index, "input": source.name, "output": f"out.{out_suffix}", "code": code,
            "stderr": err.getvalue().splitlines(), "stdout": out.getvalue(), "files": files,
            "seconds": round(time.monotonic() - start, 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path)
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--cases", type=int, default=45)
    parser.add_argument("--budget", type=float, default=50.0)
    parser.add_argument("--only", type=int)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    bases = make_bases(args.folder)
    suffixes = sorted(bases)
    start = time.monotonic()
    for index in range(args.cases):
        rng = random.Random(args.seed * 100_003 + index)  # each case on its own, reproducible alone
        suffix = suffixes[index % len(suffixes)]
        if args.only is not None and index != args.only:
            continue
        if time.monotonic() - start > args.budget:
            break
        print(json.dumps({"case": index, "starting": True}), flush=True)
        print(json.dumps(run_case(args.folder, bases[suffix], suffix, index, rng)), flush=True)
    print(json.dumps({"done": True}), flush=True)


if __name__ == "__main__":
    main()
