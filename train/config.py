"""The training run configuration: strict YAML -> frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from streamfix.core.yaml_config import load as load_config


@dataclass(frozen=True, slots=True, kw_only=True)
class DataConfig:
    folders: tuple[Path, ...]  # folders of training images, searched recursively
    patch: int = 48  # training patch side (a multiple of 8, to keep the block grid)
    val_fraction: float = 0.05  # share of the images held out for validation
    max_images: int = 0  # 0 = all; small numbers make smoke runs fast
    val_crop: int = 256  # validation images are centre-cropped to this side


@dataclass(frozen=True, slots=True, kw_only=True)
class JpegConfig:
    # Qualities are drawn uniformly from [low, high] (both included); low == high
    # trains a per-quality model.
    quality_range: tuple[int, int] = (10, 10)
    # Share of samples drawn from focus_range instead (to weight the hard, low
    # qualities in a blind model); 0 disables.
    focus_range: tuple[int, int] = (5, 20)
    focus_share: float = 0.0
    val_qualities: tuple[int, ...] = (10,)


@dataclass(frozen=True, slots=True, kw_only=True)
class VideoConfig:
    # Encoders the clips come from, drawn per clip: libx264, libx265, or libx264-hw
    # (x264 set up like a hardware encoder, constant QP = the drawn CRF; crf_encode.py).
    codecs: tuple[str, ...] = ("libx264",)
    crf_range: tuple[int, int] = (15, 46)
    presets: tuple[str, ...] = ("medium", "fast", "veryfast", "slow")
    clip_frames: int = 6  # frames per synthetic clip (I + P/B frames)
    clip_size: int = 128  # clip side in pixels (multiple of 16)
    clips: int = 2400  # clips in the cached training set
    val_clips: int = 48
    val_crfs: tuple[int, ...] = (18, 35, 40, 45)
    cache_dir: Path = Path("cache/clips")


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelConfig:
    features: int = 64
    mid_features: int = 16
    slope: float = 0.2
    dilation: int = 2
    identity_init: bool = False  # start as the identity (zero last layer); see model.py


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainConfig:
    name: str  # run name; also the weights name
    task: Literal["jpeg", "video"]
    conditioning: Literal["none", "jpeg_quality", "qp"] = "none"
    data: DataConfig
    jpeg: JpegConfig = field(default_factory=JpegConfig)
    video: VideoConfig = field(default_factory=VideoConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    out_dir: Path = Path("runs")  # the run lives in out_dir/name
    # A fine-tuning stage: a run with no checkpoint of its own starts from the model in
    # this training checkpoint (train/checkpoints/*.pt: batch norm unfolded), with a
    # fresh optimiser and its own warm-up and cosine. Resuming a stage does not read it.
    init_from: Path | None = None
    steps: int = 20000
    batch: int = 16
    lr: float = 1e-3
    lr_min: float = 1e-5
    warmup: int = 300
    checkpoint_every: int = 500
    val_every: int = 1000
    log_every: int = 50
    seed: int = 0
    threads: int = 0  # torch CPU threads; 0 = torch's default

    def __post_init__(self) -> None:
        if self.data.patch % 8:
            raise ValueError("data.patch must be a multiple of 8 (the JPEG/codec block grid)")
        if self.task == "jpeg" and self.conditioning == "qp":
            raise ValueError("a JPEG model cannot be conditioned on a video QP map")
        if self.task == "video" and self.conditioning == "jpeg_quality":
            raise ValueError("a video model cannot be conditioned on a JPEG quality")


def load_train_config(path: str | Path) -> TrainConfig:
    return load_config(TrainConfig, path)
