"""Training images: find them, split off validation images, cut augmented patches.

The validation split is taken from the training folders by a hash of each file's
name, so it is stable across runs and machines and never touches a test set.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from streamfix.core.jpeg import load_luma

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def find_images(folders: tuple[Path, ...]) -> list[Path]:
    paths: list[Path] = []
    for folder in folders:
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"training folder not found: {folder}")
        paths += [p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES]
    if not paths:
        raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {folders}")
    return sorted(paths)


def _is_validation(path: Path, fraction: float) -> bool:
    digest = hashlib.sha256(path.name.encode()).digest()
    return int.from_bytes(digest[:4], "little") / 2**32 < fraction


def split(paths: list[Path], fraction: float) -> tuple[list[Path], list[Path]]:
    """(training, validation) paths; at least one of each when there are two or more."""
    val = [p for p in paths if _is_validation(p, fraction)]
    train = [p for p in paths if not _is_validation(p, fraction)]
    if not val and len(train) > 1:
        val = [train.pop()]
    if not train:
        train = val[:1]
    return train, val


def load_lumas(paths: list[Path], min_side: int) -> list[np.ndarray]:
    """MATLAB-style luma of each image; images smaller than min_side are skipped."""
    images = [load_luma(p) for p in paths]
    return [im for im in images if min(im.shape) >= min_side]


def augment(planes: list[np.ndarray], k: int) -> list[np.ndarray]:
    """One of the 8 flips/rotations (k in 0..7), applied alike to every plane."""
    out = []
    for p in planes:
        p = np.rot90(p, k % 4)
        if k >= 4:
            p = p[:, ::-1]
        out.append(np.ascontiguousarray(p))
    return out


def aligned_crop_origin(rng: np.random.Generator, shape: tuple[int, int], size: int, grid: int) -> tuple[int, int]:
    """Top-left corner of a size x size crop whose origin lies on the block grid."""
    y = int(rng.integers(0, (shape[0] - size) // grid + 1)) * grid
    x = int(rng.integers(0, (shape[1] - size) // grid + 1)) * grid
    return y, x


def centre_crop(im: np.ndarray, size: int, grid: int = 16) -> np.ndarray:
    h = min(size, im.shape[0]) // grid * grid
    w = min(size, im.shape[1]) // grid * grid
    y = (im.shape[0] - h) // 2 // grid * grid
    x = (im.shape[1] - w) // 2 // grid * grid
    return im[y : y + h, x : x + w]
