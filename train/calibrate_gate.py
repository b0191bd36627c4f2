"""Where should a QP-conditioned model stop restoring? Measure gain against mean QP.

    python -m streamfix.train.calibrate_gate runs/video-x264-qp [--clips 96]

Makes clips from the run's *validation* pictures (held out from training) at CRF
14-34 with the run's codec settings, restores every frame with the run's current
checkpoint, and prints the mean PSNR gain per mean-QP bucket. Frames whose mean QP is
under streamfix.restore.conditioning.CLEAN_QP pass through untouched at run time: pick it
where the gain stops being reliably positive.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from streamfix.restore.conditioning import CLEAN_QP
from streamfix.core.network import CARDRN, ModelArgs
from streamfix.core.weights import QP_SCALE

from streamfix.train import data as data_mod
from streamfix.train.config import load_train_config
from streamfix.train.degrade import build_clip_cache


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--clips", type=int, default=96)
    args = parser.parse_args(argv)
    cfg = load_train_config(args.run_dir / "config.yaml")
    ckpt = torch.load(args.run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    model = CARDRN(ModelArgs.from_dict(ckpt["model_args"]))
    model.load_state_dict(ckpt["model"])
    model.eval()
    _, val_paths = data_mod.split(data_mod.find_images(cfg.data.folders), cfg.data.val_fraction)
    crfs = tuple(range(14, 35, 2))
    video = replace(cfg.video, crf_range=(14, 34))
    buckets: dict[int, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        paths = build_clip_cache(Path(tmp), val_paths, args.clips, video, cfg.seed + 7, crfs=crfs, log=lambda *_: None)
        from streamfix.train.degrade import load_clip

        for path in paths:
            clip = load_clip(path)
            x = np.stack([clip.decoded.astype(np.float32) / 255.0, clip.qp / QP_SCALE], axis=1)
            out = model(torch.from_numpy(x))[:, 0].clamp(0, 1).numpy() * 255.0
            for t in range(clip.clean.shape[0]):
                ref = clip.clean[t].astype(np.float64)
                before = np.mean((clip.decoded[t] - ref) ** 2)
                after = np.mean((np.round(out[t]) - ref) ** 2)
                gain = 10 * np.log10(before / max(after, 1e-10))
                buckets.setdefault(int(np.mean(clip.qp[t]) // 2 * 2), []).append(gain)
    print(f"step {ckpt['step']}; current CLEAN_QP = {CLEAN_QP}")
    print("mean QP   frames   mean gain (dB)   share of frames with a loss")
    for qp in sorted(buckets):
        g = np.array(buckets[qp])
        print(f"{qp:3d}-{qp + 1:<3d}   {len(g):6d}   {g.mean():+.3f}            {np.mean(g < 0):.0%}")


if __name__ == "__main__":
    main()
