"""PSNR, SSIM and PSNR-B against values worked out by hand."""

import math

import numpy as np
import pytest

from streamfix.quality.measures import blocking_effect_factor, psnr, psnr_b, ssim


def test_psnr_of_a_constant_error():
    a = np.zeros((8, 8))
    b = np.full((8, 8), 5.0)  # MSE = 25
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 25))
    assert psnr(a, a) == math.inf


def test_ssim_of_constant_images():
    # With zero variance SSIM reduces to the luminance term (2ab + c1) / (a^2 + b^2 + c1).
    a, b = np.full((16, 16), 100.0), np.full((16, 16), 110.0)
    c1 = (0.01 * 255) ** 2
    assert ssim(a, b) == pytest.approx((2 * 100 * 110 + c1) / (100**2 + 110**2 + c1))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (32, 32)).astype(float)
    assert ssim(x, x) == pytest.approx(1.0)
    assert ssim(x, 255 - x) < 0


def test_bef_of_a_pure_block_edge():
    # 16x16 image: left 8 columns 0, right 8 columns 10. The only non-zero horizontal
    # difference is across the column-7/8 block boundary: 16 pairs of 10^2.
    img = np.zeros((16, 16))
    img[:, 8:] = 10.0
    # Boundary pairs: 16 rows x 1 column (horizontal) + 16 cols x 1 row (vertical) = 32
    d_boundary = 16 * 100 / 32
    d_inner = 0.0  # 16x14 + 16x14 inner pairs, all zero
    eta = math.log2(8) / math.log2(16)
    assert blocking_effect_factor(img) == pytest.approx(eta * (d_boundary - d_inner))
    # PSNR-B against a flat reference adds the BEF to the MSE.
    ref = np.zeros((16, 16))
    mse = 100 * 128 / 256
    assert psnr_b(ref, img) == pytest.approx(10 * math.log10(255**2 / (mse + eta * 50)))


def test_bef_is_zero_without_blocking():
    img = np.tile(np.arange(16.0) * 3, (16, 1))  # a smooth ramp: equal steps everywhere
    assert blocking_effect_factor(img) == 0.0
    assert psnr_b(img, img) == math.inf


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError):
        psnr(np.zeros((4, 4)), np.zeros((4, 5)))
