"""Where should a QP-conditioned model stop restoring? Measure gain against mean QP.

    python -m streamfix.train.calibrate_gate runs/video-x264-qp [--clips 96] [--codecs libx264 libx264-hw]

Makes clips from the run's *validation* pictures (held out from training) at CRF
14-34 with the run's codec settings (or with each of --codecs in turn: libx264-hw is
x264 set up like a hardware encoder, at constant QP 14-34), restores every frame with
the run's current checkpoint, and prints the mean PSNR gain per mean-QP bucket. Frames whose mean QP is
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
from streamfix.train.degrade import build_clip_cache, load_clip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--clips", type=int, default=96)
    parser.add_argument("--codecs", nargs="+", help="one table per encoder (default: the run's own mix)")
    parser.add_argument("--checkpoint", type=Path, help="a training checkpoint (default: the run's own)")
    args = parser.parse_args(argv)
    cfg = load_train_config(args.run_dir / "config.yaml")
    ckpt = torch.load(args.checkpoint or args.run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    model = CARDRN(ModelArgs.from_dict(ckpt["model_args"]))
    model.load_state_dict(ckpt["model"])
    model.eval()
    _, val_paths = data_mod.split(data_mod.find_images(cfg.data.folders), cfg.data.val_fraction)
    crfs = tuple(range(14, 35, 2))
    print(f"step {ckpt['step']}; current CLEAN_QP = {CLEAN_QP}")
    for codecs in ([(c,) for c in args.codecs] if args.codecs else [cfg.video.codecs]):
        video = replace(cfg.video, crf_range=(14, 34), codecs=codecs)
        buckets = gain_by_qp(model, val_paths, args.clips, video, cfg.seed + 7, crfs)
        print(f"\n{' + '.join(codecs)}\nmean QP   frames   mean gain (dB)   share of frames with a loss")
        for qp in sorted(buckets):
            g = np.array(buckets[qp])
            print(f"{qp:3d}-{qp + 1:<3d}   {len(g):6d}   {g.mean():+.3f}            {np.mean(g < 0):.0%}")


def gain_by_qp(model: CARDRN, pictures: list[Path], clips: int, video, seed: int,
               crfs: tuple[int, ...]) -> dict[int, list[float]]:
    """Per-frame PSNR gains of `model` on clips of `pictures`, by mean QP (2-QP bins)."""
    buckets: dict[int, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        for path in build_clip_cache(Path(tmp), pictures, clips, video, seed, crfs=crfs, log=lambda *_: None):
            clip = load_clip(path)
            x = np.stack([clip.decoded.astype(np.float32) / 255.0, clip.qp / QP_SCALE], axis=1)
            out = model(torch.from_numpy(x))[:, 0].clamp(0, 1).numpy() * 255.0
            for t in range(clip.clean.shape[0]):
                ref = clip.clean[t].astype(np.float64)
                before = np.mean((clip.decoded[t] - ref) ** 2)
                after = np.mean((np.round(out[t]) - ref) ** 2)
                gain = 10 * np.log10(before / max(after, 1e-10))
                buckets.setdefault(int(np.mean(clip.qp[t]) // 2 * 2), []).append(gain)
    return buckets


if __name__ == "__main__":
    main()
