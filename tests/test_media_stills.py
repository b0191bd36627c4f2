"""Still images: decoded by PIL exactly as the training data was, written back with PIL."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import mediagen as mg
from streamfix.core.errors import InputError, OutputError
from streamfix.core.jpeg import jpeg_quality_of_file
from streamfix.media import stills
from streamfix.media.planes import plane_to_array
from streamfix.media.reader import DecodedFrame, open_input
from streamfix.media.writer import EncodeConfig, StillWriter, VideoWriter, open_output


def read_still(path):
    with open_input(path) as reader:
        items = list(reader.items())
    assert len(items) == 1 and isinstance(items[0], DecodedFrame)
    return reader.video, items[0]


def write_through(source, target, config: EncodeConfig | None = None):
    with open_input(source) as reader:
        with open_output(target, reader.video, reader.copy_streams, config or EncodeConfig(),
                         log=lambda line: None) as writer:
            for item in reader.items():
                writer.write_frame(item.frame)
    return target


def test_gray_jpeg_pixels_are_libjpegs_and_quality_is_found(tmp_path):
    """The acceptance case: PIL quality 10 gray JPEG -> same pixels as PIL, q=10."""
    path = mg.jpeg_still(tmp_path / "gray.jpg", quality=10, mode="L", width=72, height=40)
    info, item = read_still(path)
    assert info.is_still and info.pix_fmt == "gray" and (info.width, info.height) == (72, 40)
    assert item.jpeg_quality == 10
    assert item.frame.pts == 0 and item.qp_map is None
    with Image.open(path) as image:
        expected = np.asarray(image)
    np.testing.assert_array_equal(plane_to_array(item.frame, 0), expected)


def test_colour_jpeg_is_decoded_to_its_ycbcr_planes(tmp_path):
    path = mg.jpeg_still(tmp_path / "colour.jpg", quality=30, mode="RGB")
    info, item = read_still(path)
    assert info.pix_fmt == "yuvj444p" and info.color_range == 2 and item.jpeg_quality == 30
    with Image.open(path) as image:
        image.draft("YCbCr", image.size)
        expected = np.asarray(image)
    for i in range(3):
        np.testing.assert_array_equal(plane_to_array(item.frame, i), expected[..., i])


@pytest.mark.parametrize("mode, pix_fmt", [("RGB", "rgb24"), ("L", "gray")])
def test_png_is_read_as_it_is(tmp_path, mode, pix_fmt):
    path = mg.png_still(tmp_path / "in.png", mode=mode)
    info, item = read_still(path)
    assert info.pix_fmt == pix_fmt and item.jpeg_quality is None
    np.testing.assert_array_equal(item.frame.to_ndarray(), mg.still_pixels(mode=mode))


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".webp"])
def test_lossless_round_trip_is_exact(tmp_path, suffix):
    source = mg.png_still(tmp_path / "in.png", mode="RGB")
    out = write_through(source, tmp_path / f"out{suffix}")
    with Image.open(out) as image:
        np.testing.assert_array_equal(np.asarray(image.convert("RGB")), mg.still_pixels(mode="RGB"))


def test_sixteen_bit_gray_png_keeps_its_depth(tmp_path):
    values = (np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 21) % 65535
    source = tmp_path / "deep.png"
    Image.fromarray(values).save(source)  # uint16 -> mode I;16
    info, _ = read_still(source)
    assert (info.pix_fmt, info.bit_depth) == ("gray16le", 16)
    out = write_through(source, tmp_path / "out.png")
    with Image.open(out) as image:
        np.testing.assert_array_equal(np.asarray(image), values)


def test_gray_jpeg_to_png_keeps_pixels(tmp_path):
    source = mg.jpeg_still(tmp_path / "in.jpg", quality=10)
    out = write_through(source, tmp_path / "out.png")
    with Image.open(source) as a, Image.open(out) as b:
        assert b.mode == "L"
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_jpeg_output_uses_quality_95(tmp_path):
    source = mg.jpeg_still(tmp_path / "in.jpg", quality=10, mode="RGB")
    out = write_through(source, tmp_path / "out.jpg")
    assert jpeg_quality_of_file(out) == stills.JPEG_OUTPUT_QUALITY == 95


def test_colour_jpeg_to_png_matches_libjpeg_rgb(tmp_path):
    """YCbCr -> RGB through PIL: within rounding of libjpeg's own RGB decode."""
    source = mg.jpeg_still(tmp_path / "in.jpg", quality=50, mode="RGB")
    out = write_through(source, tmp_path / "out.png")
    with Image.open(source) as a, Image.open(out) as b:
        diff = np.abs(np.asarray(a).astype(int) - np.asarray(b.convert("RGB")).astype(int))
    assert diff.max() <= 2


def test_exif_orientation_survives(tmp_path):
    source = tmp_path / "portrait.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    Image.fromarray(mg.still_pixels(mode="RGB")).save(source, quality=40, exif=exif)
    info, _ = read_still(source)
    assert info.rotation == 270
    out = write_through(source, tmp_path / "out.jpg")
    with Image.open(out) as image:
        assert image.getexif().get(0x0112) == 6


def test_video_into_an_image_is_refused_before_work(tmp_path):
    clip = mg.write_clip(tmp_path / "in.mp4", frames=4)
    with open_input(clip.path) as reader:
        with pytest.raises(OutputError, match="holds one frame"):
            open_output(tmp_path / "out.png", reader.video, [], EncodeConfig())



def test_each_output_goes_to_its_writer(tmp_path):
    """The one choice open_output makes: an image suffix means PIL, unless a container
    format is named for the file."""
    with open_input(mg.jpeg_still(tmp_path / "in.jpg", mode="RGB")) as reader:
        (item,) = reader.items()
        image = open_output(tmp_path / "out.png", reader.video, [], log=lambda line: None)
        video = open_output(tmp_path / "mkv.png", reader.video, [], EncodeConfig(codec="ffv1", crf=None),
                            container_format="matroska", log=lambda line: None)
        for writer in (image, video):
            writer.write_frame(item.frame)
            writer.finish()
    assert isinstance(image, StillWriter) and isinstance(video, VideoWriter)
    with Image.open(tmp_path / "out.png") as written:
        assert written.format == "PNG"
    assert len(mg.probe(tmp_path / "mkv.png").frame_pts) == 1


def test_finishing_an_image_without_a_frame_says_so(tmp_path):
    """Bug: finishing a still-image output before any frame was written crashed with
    an AttributeError (the missing frame went on to PIL) instead of one clear line."""
    with open_input(mg.jpeg_still(tmp_path / "in.jpg")) as reader:
        writer = open_output(tmp_path / "out.png", reader.video, [], log=lambda line: None)
        with pytest.raises(OutputError, match="no frame was written$"):
            writer.finish()
    assert not (tmp_path / "out.png").exists() and not (tmp_path / "out.partial.png").exists()

def test_still_into_a_video_gives_one_frame(tmp_path):
    source = mg.jpeg_still(tmp_path / "in.jpg", quality=20, mode="RGB")
    out = write_through(source, tmp_path / "out.mkv", EncodeConfig(codec="ffv1", crf=None))
    dst = mg.probe(out)
    # FFV1 has no yuvj formats: the same planes go in as yuv444p, tagged full range.
    assert len(dst.frame_pts) == 1 and dst.pix_fmt == "yuv444p"
    assert dst.color["color_range"] == 2


def test_still_detection_is_by_content(tmp_path):
    assert stills.sniff_still(mg.jpeg_still(tmp_path / "a.dat")) == "JPEG"
    assert stills.sniff_still(mg.png_still(tmp_path / "b.mp4")) == "PNG"
    assert stills.sniff_still(mg.write_clip(tmp_path / "c.mp4").path) is None
    assert stills.sniff_still(mg.text_named_like_video(tmp_path / "d.jpg")) is None


def test_multi_frame_gif_goes_through_ffmpeg_as_video(tmp_path):
    path = tmp_path / "anim.gif"
    frames = [Image.fromarray(mg.still_pixels(mode="RGB")).rotate(90 * i) for i in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    with open_input(path) as reader:
        count = sum(isinstance(i, DecodedFrame) for i in reader.items())
    assert not reader.video.is_still and count == 3


def test_truncated_jpeg_is_an_input_error(tmp_path):
    source = mg.jpeg_still(tmp_path / "in.jpg", quality=50, mode="RGB", width=160, height=120)
    cut = mg.truncated_copy(source, tmp_path / "cut.jpg", keep=0.5)
    with pytest.raises(InputError, match="truncated or corrupt"):
        open_input(cut)
