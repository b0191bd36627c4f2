"""Train a CAR-DRN: config -> data -> model -> optimiser -> loop -> checkpoints -> weights.

    streamfix train --config configs/train/jpeg-q10.yaml

A run lives in `out_dir/name/`: the resolved config (config.yaml), the checkpoint
(checkpoint.pt, written every `checkpoint_every` steps by rename, so a kill never
leaves a half-written one), a log of metrics (log.jsonl) and, at the end, the
inference weights (`name.pt`). Starting the same config again resumes from the
checkpoint and continues exactly: every batch is drawn from a generator seeded by
(seed, step), so no data-order state needs saving.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from streamfix.core import yaml_config as config_io
from streamfix.core.network import CARDRN, ModelArgs, parameter_count
from streamfix.core.weights import save_weights
from streamfix.quality.measures import psnr
from streamfix.restore import conditioning

from streamfix.train import data as data_mod
from streamfix.train.config import TrainConfig, load_train_config
from streamfix.train.degrade import build_clip_cache, clip_patch, jpeg_patch, load_clip
from streamfix.core.jpeg import jpeg_roundtrip


def get_lr(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay from lr to lr_min at the last step."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * progress))


def model_args(cfg: TrainConfig) -> ModelArgs:
    return ModelArgs(
        channels=1,
        cond_channels=0 if cfg.conditioning == "none" else 1,
        features=cfg.model.features,
        mid_features=cfg.model.mid_features,
        slope=cfg.model.slope,
        dilation=cfg.model.dilation,
    )


@dataclass
class Samples:
    """What the loop draws batches from, for either task."""

    cfg: TrainConfig
    images: list[np.ndarray]  # jpeg: training lumas
    clips: list  # video: cached clips
    val_inputs: list[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]]  # (group, clean, degraded, cond)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, step])
        xs, ys = [], []
        for _ in range(cfg.batch):
            if cfg.task == "jpeg":
                image = self.images[int(rng.integers(len(self.images)))]
                clean, degraded, quality = jpeg_patch(rng, image, cfg.data.patch, cfg.jpeg)
                cond = conditioning.jpeg_quality_plane(quality, *clean.shape)
            else:
                clip = self.clips[int(rng.integers(len(self.clips)))]
                clean, degraded, qp = clip_patch(rng, clip, cfg.data.patch)
                cond = conditioning.qp_plane(qp)
            xs.append(_input(degraded, cond if cfg.conditioning != "none" else None))
            ys.append(conditioning.plane_to_unit(clean)[None])
        return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


def _input(degraded: np.ndarray, cond: np.ndarray | None) -> np.ndarray:
    """The model input, built by the same functions that build it at run time."""
    return conditioning.stack_input(conditioning.plane_to_unit(degraded), cond)


def prepare(cfg: TrainConfig, run_dir: Path, log) -> Samples:
    paths = data_mod.find_images(cfg.data.folders)
    if cfg.data.max_images:
        paths = paths[: cfg.data.max_images]
    train_paths, val_paths = data_mod.split(paths, cfg.data.val_fraction)
    log(f"images: {len(train_paths)} for training, {len(val_paths)} for validation")
    val_inputs = []
    if cfg.task == "jpeg":
        images = data_mod.load_lumas(train_paths, cfg.data.patch)
        for path, luma in zip(val_paths, data_mod.load_lumas(val_paths, 0)):
            clean = data_mod.centre_crop(luma, cfg.data.val_crop, 8)
            for q in cfg.jpeg.val_qualities:
                cond = conditioning.jpeg_quality_plane(q, *clean.shape)
                val_inputs.append((f"q{q}", clean, jpeg_roundtrip(clean, q), cond))
        return Samples(cfg, images, [], val_inputs)
    cache = Path(cfg.video.cache_dir)
    tag = f"{'-'.join(c.removeprefix('lib') for c in cfg.video.codecs)}_crf{cfg.video.crf_range[0]}-{cfg.video.crf_range[1]}_s{cfg.video.clip_size}x{cfg.video.clip_frames}_seed{cfg.seed}"
    t0 = time.time()
    train_files = build_clip_cache(cache / f"train_{tag}", train_paths, cfg.video.clips, cfg.video, cfg.seed, log=log)
    val_files = build_clip_cache(cache / f"val_{tag}", val_paths, cfg.video.val_clips, cfg.video, cfg.seed + 1,
                                 crfs=cfg.video.val_crfs, log=log)
    log(f"clip cache ready in {time.time() - t0:.0f} s ({len(train_files)} training, {len(val_files)} validation clips)")
    clips = [load_clip(p) for p in train_files]
    for path in val_files:
        clip = load_clip(path)
        for t in range(clip.clean.shape[0]):
            val_inputs.append((f"{clip.codec.removeprefix('lib')}-crf{clip.crf}", clip.clean[t], clip.decoded[t],
                                conditioning.qp_plane(clip.qp[t])))
    return Samples(cfg, [], clips, val_inputs)


@torch.no_grad()
def validate(model: CARDRN, samples: Samples) -> dict[str, dict[str, float]]:
    """Mean PSNR of the degraded input and of the restored output, per group."""
    model.eval()
    groups: dict[str, list[tuple[float, float]]] = {}
    use_cond = samples.cfg.conditioning != "none"
    for group, clean, degraded, cond in samples.val_inputs:
        x = torch.from_numpy(_input(degraded, cond if use_cond else None))[None]
        out = model(x)[0, 0].clamp(0, 1).numpy() * 255.0
        groups.setdefault(group, []).append((psnr(clean, degraded), psnr(clean, np.round(out))))
    model.train()
    return {
        g: {"input_psnr": float(np.mean([b for b, _ in v])), "output_psnr": float(np.mean([a for _, a in v])),
            "gain": float(np.mean([a - b for b, a in v]))}
        for g, v in sorted(groups.items())
    }


def _save_checkpoint(path: Path, model: CARDRN, optimiser: torch.optim.Optimizer, step: int, seconds: float) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"step": step, "model": model.state_dict(), "optimiser": optimiser.state_dict(),
                "model_args": model.args.to_dict(), "seconds": seconds}, tmp)
    tmp.replace(path)


def _init_weights(path: Path, model: CARDRN) -> dict:
    """The model of a training checkpoint, checked against the run's architecture."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise ValueError(f"init_from {path}: not a readable training checkpoint ({exc})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "optimiser" not in ckpt:
        # Shipped weights have batch norm folded away and cannot continue training.
        raise ValueError(f"init_from {path}: not a training checkpoint (use train/checkpoints/NAME.pt)")
    if ckpt.get("model_args") != model.args.to_dict():
        raise ValueError(f"init_from {path}: its model {ckpt.get('model_args')} differs from this run's {model.args.to_dict()}")
    return ckpt["model"]


def run(cfg: TrainConfig, *, log=print) -> Path:
    """Train (or resume) the run described by `cfg`; returns the weights file."""
    run_dir = Path(cfg.out_dir) / cfg.name
    run_dir.mkdir(parents=True, exist_ok=True)
    config_io.dump(cfg, run_dir / "config.yaml")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    samples = prepare(cfg, run_dir, log)

    model = CARDRN(model_args(cfg), identity_init=cfg.model.identity_init)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    ckpt_path = run_dir / "checkpoint.pt"
    step, seconds = 0, 0.0
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        model.load_state_dict(ckpt["model"])
        optimiser.load_state_dict(ckpt["optimiser"])
        step, seconds = ckpt["step"], ckpt["seconds"]
        log(f"resumed {cfg.name} at step {step}")
    elif cfg.init_from is not None:
        model.load_state_dict(_init_weights(cfg.init_from, model))
        log(f"{cfg.name}: starting from the model in {cfg.init_from}")
    log(f"{cfg.name}: {parameter_count(model):,} parameters, {cfg.steps} steps of batch {cfg.batch} x {cfg.data.patch}^2")

    model.train()
    log_file = (run_dir / "log.jsonl").open("a")
    window_start, window_steps, window_loss = time.time(), 0, 0.0
    while step < cfg.steps:
        lr = get_lr(step, cfg)
        for group in optimiser.param_groups:
            group["lr"] = lr
        x, y = samples.batch(step)
        loss = torch.nn.functional.mse_loss(model(x), y)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        step += 1
        window_steps += 1
        window_loss += loss.item()  # a sync point, harmless on the CPU
        if step % cfg.log_every == 0 or step == cfg.steps:
            elapsed = time.time() - window_start
            seconds += elapsed
            rate = window_steps / max(elapsed, 1e-9)
            eta = (cfg.steps - step) / max(rate, 1e-9)
            record = {"step": step, "loss": window_loss / window_steps, "lr": lr, "steps_per_s": rate, "seconds": seconds}
            log(f"step {step}/{cfg.steps}  loss {record['loss']:.6f}  lr {lr:.2e}  {rate:.1f} steps/s  ETA {eta / 60:.1f} min")
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()
            window_start, window_steps, window_loss = time.time(), 0, 0.0
        if step % cfg.val_every == 0 or step == cfg.steps:
            scores = validate(model, samples)
            log("val " + "  ".join(f"{g}: {s['input_psnr']:.2f} -> {s['output_psnr']:.2f} ({s['gain']:+.2f})" for g, s in scores.items()))
            log_file.write(json.dumps({"step": step, "val": scores}) + "\n")
            log_file.flush()
            window_start = time.time()
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            _save_checkpoint(ckpt_path, model, optimiser, step, seconds)
    log_file.close()

    model.eval()
    scores = validate(model, samples)
    weights = run_dir / f"{cfg.name}.pt"
    save_weights(
        weights, model, name=cfg.name, task=cfg.task, conditioning=cfg.conditioning,
        description=_describe(cfg),
        trained_on={"config": config_io.to_dict(cfg), "steps": step, "train_seconds": round(seconds)},
        scores={"validation": scores},
    )
    log(f"weights written to {weights}")
    return weights


def _describe(cfg: TrainConfig) -> str:
    if cfg.task == "jpeg":
        lo, hi = cfg.jpeg.quality_range
        q = f"quality {lo}" if lo == hi else f"qualities {lo}-{hi}"
        return f"JPEG luma model, {q}, conditioning: {cfg.conditioning}"
    codecs = "/".join(dict.fromkeys(c.removeprefix("lib") for c in cfg.video.codecs))  # a repeat only weights the mix
    lo, hi = cfg.video.crf_range
    return f"video luma model, {codecs} CRF {lo}-{hi}, conditioning: {cfg.conditioning}"


def main(config_path: str, **overrides) -> Path:
    cfg = config_io.override(load_train_config(config_path), **overrides)
    return run(cfg)
