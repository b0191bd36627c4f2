"""Turn a training checkpoint into an inference weights file (BN folded).

    python -m streamfix.train.export RUN_DIR OUT.pt [--scores scores.json]

Used to ship the weights of a run (also one still in progress: the file records the
step it was taken at).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from streamfix.core import yaml_config as config_io
from streamfix.core.network import CARDRN, ModelArgs
from streamfix.core.weights import save_weights

from streamfix.train.config import load_train_config
from streamfix.train.train import _describe


def export(run_dir: Path, out: Path, scores: dict | None = None) -> Path:
    cfg = load_train_config(run_dir / "config.yaml")
    ckpt = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    model = CARDRN(ModelArgs.from_dict(ckpt["model_args"]))
    model.load_state_dict(ckpt["model"])
    model.eval()
    save_weights(
        out, model, name=out.stem, task=cfg.task, conditioning=cfg.conditioning,
        description=_describe(cfg),
        trained_on={"config": config_io.to_dict(cfg), "steps": ckpt["step"], "train_seconds": round(ckpt["seconds"])},
        scores=scores or {},
    )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--scores", type=Path, help="JSON file of measured scores to embed")
    args = parser.parse_args(argv)
    scores = json.loads(args.scores.read_text()) if args.scores else None
    print(export(args.run_dir, args.out, scores))


if __name__ == "__main__":
    main()
