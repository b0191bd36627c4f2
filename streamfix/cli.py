"""The `streamfix` command: parses arguments and calls the library. Nothing imports it.

Every subcommand has an `_add_<name>(subparsers)` function that declares its flags and
a `_cmd_<name>(args) -> int` that calls the public API. Expected user errors
(StreamfixError and its kin) become one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import StreamfixError


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a CAR-DRN model from a YAML config",
                       description="Train (or resume) a CAR-DRN from configs/train/<name>.yaml.")
    p.add_argument("--config", required=True, type=Path, help="training config (YAML)")
    p.add_argument("--out-dir", type=Path, help="where runs live (default: from the config)")
    p.add_argument("--steps", type=int, help="override the number of steps")
    p.add_argument("--threads", type=int, help="torch CPU threads")


def _cmd_train(args: argparse.Namespace) -> int:
    from .train.train import main as train_main

    train_main(str(args.config), out_dir=args.out_dir, steps=args.steps, threads=args.threads)
    return 0


COMMANDS = {
    "train": (_add_train, _cmd_train),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamfix", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _, command = COMMANDS[args.command]
    try:
        return command(args)
    except StreamfixError as exc:
        print(f"streamfix: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("streamfix: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
