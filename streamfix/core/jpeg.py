"""JPEG facts: MATLAB-style luma, and a JPEG file's quality read from its tables.

The published JPEG artifact-removal numbers use the Y channel of MATLAB's
`rgb2ycbcr` (BT.601, studio range 16-235) compressed by libjpeg's standard tables
scaled by quality q; the functions here reproduce both.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

# The IJG (libjpeg) standard luminance quantization table, in natural (row) order.
IJG_LUMA_TABLE = np.array(
    [
        16, 11, 10, 16, 24, 40, 51, 61,
        12, 12, 14, 19, 26, 58, 60, 55,
        14, 13, 16, 24, 40, 57, 69, 56,
        14, 17, 22, 29, 51, 87, 80, 62,
        18, 22, 37, 56, 68, 109, 103, 77,
        24, 35, 55, 64, 81, 104, 113, 92,
        49, 64, 78, 87, 103, 121, 120, 101,
        72, 92, 95, 98, 112, 100, 103, 99,
    ],
    dtype=np.int64,
)  # fmt: skip


def scaled_luma_table(quality: int) -> np.ndarray:
    """libjpeg's jpeg_quality_scaling + baseline clamp for quality 1..100."""
    q = min(max(int(quality), 1), 100)
    scale = 5000 // q if q < 50 else 200 - 2 * q
    return np.clip((IJG_LUMA_TABLE * scale + 50) // 100, 1, 255)


def rgb_to_matlab_y(rgb: np.ndarray) -> np.ndarray:
    """MATLAB rgb2ycbcr luma of an 8-bit RGB image, rounded to uint8 (16-235)."""
    rgb = np.asarray(rgb, dtype=np.float64)
    y = 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0
    return np.clip(np.round(y), 0, 255).astype(np.uint8)


def load_luma(path: str | Path) -> np.ndarray:
    """An image file as MATLAB-style luma (gray files are taken as they are)."""
    with Image.open(path) as im:
        if im.mode in ("L", "I;16", "I"):
            return np.asarray(im.convert("L"))
        return rgb_to_matlab_y(np.asarray(im.convert("RGB")))


def jpeg_roundtrip(gray: np.ndarray, quality: int) -> np.ndarray:
    """Compress a uint8 gray image with the standard tables at `quality` and decode it."""
    buf = io.BytesIO()
    Image.fromarray(gray, mode="L").save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("L"))


def quality_from_tables(tables: dict[int, list[int]] | None) -> int | None:
    """Estimate the IJG quality of a JPEG from its quantization tables.

    Table 0 is the luma table. Zigzag vs natural order does not matter for the
    comparison because both sides are compared as sorted multisets; the quality whose
    scaled standard table is nearest (sum of absolute differences) wins. Returns None
    when there is no table (not a JPEG).
    """
    if not tables or 0 not in tables:
        return None
    table = np.sort(np.asarray(tables[0], dtype=np.int64).ravel())
    if table.size != 64:
        return None
    errors = [np.abs(np.sort(scaled_luma_table(q)) - table).sum() for q in range(1, 101)]
    return int(np.argmin(errors)) + 1


def jpeg_quality_of_file(path: str | Path) -> int | None:
    """The quality of a JPEG file, or None if the file is not a JPEG."""
    try:
        with Image.open(path) as im:
            if im.format != "JPEG":
                return None
            return quality_from_tables(getattr(im, "quantization", None))
    except OSError:
        return None
