"""JPEG quality recovered from the quantization tables; MATLAB-style luma."""

import io

import numpy as np
import pytest
from PIL import Image

from streamfix.core.jpeg import jpeg_quality_of_file, quality_from_tables, rgb_to_matlab_y


@pytest.mark.parametrize("quality", [5, 10, 15, 20, 30, 40, 50, 75, 90, 95])
def test_quality_read_back_from_a_pil_jpeg(tmp_path, quality):
    rng = np.random.default_rng(quality)
    path = tmp_path / "x.jpg"
    Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)).save(path, quality=quality)
    assert jpeg_quality_of_file(path) == quality


def test_not_a_jpeg(tmp_path):
    path = tmp_path / "x.png"
    Image.new("L", (8, 8)).save(path)
    assert jpeg_quality_of_file(path) is None
    assert quality_from_tables(None) is None


def test_matlab_luma_range():
    rgb = np.array([[[0, 0, 0], [255, 255, 255]]], dtype=np.uint8)
    assert rgb_to_matlab_y(rgb).tolist() == [[16, 235]]
