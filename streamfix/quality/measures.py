"""Quality metrics on one plane (luma/gray), 8-bit scale [0, 255].

- PSNR: 10 log10(255^2 / MSE).
- SSIM: Wang, Bovik, Sheikh & Simoncelli (2004): 11x11 Gaussian window (sigma 1.5),
  K1 = 0.01, K2 = 0.03, statistics over 'valid' windows only (as the authors' MATLAB
  code does), averaged over the image.
- PSNR-B: Yim & Bovik (2011), "Quality assessment of deblocked images": PSNR with the
  MSE increased by a blocking effect factor (BEF) computed on the *restored* image,
  block size B = 8. Pair counts come from the positions actually present, so widths
  that are not multiples of 8 are handled exactly as the definition reads.

Inputs may be uint8/uint16 or float arrays already on the 0-255 scale.
"""

from __future__ import annotations

import math

import numpy as np

PEAK = 255.0


def _as_float(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def _check(reference: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref, tst = _as_float(reference), _as_float(test)
    if ref.shape != tst.shape or ref.ndim != 2:
        raise ValueError(f"metrics need two 2-D planes of one shape, got {ref.shape} and {tst.shape}")
    return ref, tst


def mse(reference: np.ndarray, test: np.ndarray) -> float:
    ref, tst = _check(reference, test)
    return float(np.mean((ref - tst) ** 2))


def _psnr_from_mse(value: float) -> float:
    return math.inf if value == 0 else 10.0 * math.log10(PEAK**2 / value)


def psnr(reference: np.ndarray, test: np.ndarray) -> float:
    return _psnr_from_mse(mse(reference, test))


def blocking_effect_factor(image: np.ndarray, block: int = 8) -> float:
    """BEF of Yim & Bovik (2011) on one plane: how much stronger the differences
    across block boundaries are than the differences inside blocks."""
    img = _as_float(image)
    height, width = img.shape
    dx = (img[:, 1:] - img[:, :-1]) ** 2  # pair (c, c+1) lives at column c
    dy = (img[1:, :] - img[:-1, :]) ** 2
    cols = np.arange(width - 1)
    rows = np.arange(height - 1)
    col_edge = (cols % block) == block - 1
    row_edge = (rows % block) == block - 1
    boundary_sum = dx[:, col_edge].sum() + dy[row_edge, :].sum()
    inner_sum = dx[:, ~col_edge].sum() + dy[~row_edge, :].sum()
    boundary_n = height * col_edge.sum() + width * row_edge.sum()
    inner_n = height * (~col_edge).sum() + width * (~row_edge).sum()
    if boundary_n == 0 or inner_n == 0:
        return 0.0
    d_boundary = boundary_sum / boundary_n
    d_inner = inner_sum / inner_n
    if d_boundary <= d_inner:
        return 0.0
    eta = math.log2(block) / math.log2(min(height, width))
    return float(eta * (d_boundary - d_inner))


def psnr_b(reference: np.ndarray, test: np.ndarray, block: int = 8) -> float:
    return _psnr_from_mse(mse(reference, test) + blocking_effect_factor(test, block))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation with the 1-D window g along both axes."""
    n = g.size
    rows = sum(g[i] * img[i : img.shape[0] - n + 1 + i, :] for i in range(n))
    return sum(g[i] * rows[:, i : rows.shape[1] - n + 1 + i] for i in range(n))


def ssim(reference: np.ndarray, test: np.ndarray) -> float:
    ref, tst = _check(reference, test)
    g = _gaussian_window()
    if min(ref.shape) < g.size:
        raise ValueError(f"SSIM needs planes of at least {g.size}x{g.size}, got {ref.shape}")
    c1, c2 = (0.01 * PEAK) ** 2, (0.03 * PEAK) ** 2
    mu_x, mu_y = _filter_valid(ref, g), _filter_valid(tst, g)
    sxx = _filter_valid(ref * ref, g) - mu_x**2
    syy = _filter_valid(tst * tst, g) - mu_y**2
    sxy = _filter_valid(ref * tst, g) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2)
    return float(np.mean(num / den))


def all_metrics(reference: np.ndarray, test: np.ndarray) -> dict[str, float]:
    return {"psnr": psnr(reference, test), "ssim": ssim(reference, test), "psnr_b": psnr_b(reference, test)}
