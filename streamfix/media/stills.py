"""Still images in and out through PIL, presented as one av.VideoFrame.

Why not FFmpeg for stills: the JPEG models were trained on images decoded by libjpeg
(through PIL), and FFmpeg's JPEG decoder uses a different IDCT whose output differs by
+-1 here and there; restoring an FFmpeg decode would feed the model inputs it never
saw. So JPEGs are decoded by PIL, straight to YCbCr with `Image.draft` (the planes the
JPEG actually stores, no RGB round trip), grayscale JPEGs stay gray, and lossless
formats (PNG/BMP/TIFF/WebP) are taken as they are.

Frame formats handed to the pipeline: "gray" (L), "gray16le" (16-bit gray),
"yuvj444p" (JPEG YCbCr: BT.601 matrix, full range) and "rgb24" (everything else, alpha
dropped). The quality of a JPEG comes from its quantization tables. EXIF and ICC blobs
are kept and written back, so a photo's orientation and colour profile survive.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, UnidentifiedImageError

from streamfix.core.errors import InputError
from streamfix.core.jpeg import quality_from_tables
from streamfix.media.jpeg_stream import holds_several_images
from streamfix.media.planes import array_to_plane, plane_to_array, reformat

# Single-image formats routed to PIL; animated/multi-page files go to FFmpeg instead.
STILL_FORMATS = frozenset({"JPEG", "PNG", "BMP", "TIFF", "WEBP"})
# Output suffix -> PIL format name.
IMAGE_SUFFIXES = {".png": "PNG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
                  ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
# High enough that the saved file does not re-introduce the artifacts just removed.
JPEG_OUTPUT_QUALITY = 95

# AVColorRange / AVColorSpace values used for the frames built here.
RANGE_FULL = 2
SPACE_BT601 = 5
SPACE_UNSPECIFIED = 2

# Modes PIL may return, mapped to the mode whose planes the pipeline restores.
_MODE_FOR_FRAME = {"1": "L", "L": "L", "LA": "L", "I;16": "I;16", "RGB": "RGB", "RGBA": "RGB",
                   "RGBX": "RGB", "P": "RGB", "PA": "RGB", "CMYK": "RGB", "YCbCr": "YCbCr"}
# EXIF orientation -> counter-clockwise display rotation (mirrored ones are left to EXIF).
_EXIF_ROTATION = {1: 0, 3: 180, 6: 270, 8: 90}


@dataclass(frozen=True, slots=True)
class Still:
    frame: av.VideoFrame
    format: str                                # PIL format name: "JPEG", "PNG", ...
    jpeg_quality: int | None
    rotation: int                              # from EXIF orientation, for video outputs
    metadata: tuple[tuple[str, bytes], ...]    # ("exif", ...), ("icc_profile", ...)
    conversions: tuple[str, ...] = ()          # what reading changed, one clause each (see _conversions)


def is_image_target(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def sniff_still(path: str | Path) -> str | None:
    """The PIL format name if `path` is a single-frame still image, else None.

    Decided by content, not by suffix: PIL reads only the header here, and a JPEG
    followed by more JPEG images is a Motion-JPEG stream, not a still."""
    try:
        with Image.open(path) as image:
            if image.format in STILL_FORMATS and getattr(image, "n_frames", 1) == 1:
                found = image.format
            else:
                return None
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    if found == "JPEG" and holds_several_images(path):
        return None  # a raw MJPEG stream: FFmpeg reads all its frames (jpeg_stream.py)
    return found


def read_still(path: str | Path) -> Still:
    """Decode a still with PIL into one frame (pts 0, time base 1/1)."""
    try:
        with Image.open(path) as image:
            image_format = image.format
            quality = quality_from_tables(getattr(image, "quantization", None)) if image_format == "JPEG" else None
            if image_format == "JPEG" and image.mode == "RGB":
                image.draft("YCbCr", image.size)  # decode to the stored YCbCr planes
            conversions = _conversions(image)  # before load(), which forgets how the file stores pixels
            image.load()
            metadata = tuple((k, image.info[k]) for k in ("exif", "icc_profile") if image.info.get(k))
            rotation = _EXIF_ROTATION.get(image.getexif().get(0x0112, 1), 0)
            frame = frame_from_image(image)
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"{path}: the image cannot be decoded ({exc}); the file is truncated or corrupt") from None
    frame.pts = 0
    frame.time_base = Fraction(1, 1)
    return Still(frame=frame, format=image_format, jpeg_quality=quality, rotation=rotation, metadata=metadata,
                 conversions=conversions)


def _conversions(image: Image.Image) -> tuple[str, ...]:
    """What becomes of this picture's pixels on the way in, where something is lost:
    PIL reads 16-bit colour at 8 bits, the restored frame has no alpha plane, and CMYK
    is turned into RGB without colour management."""
    stored = ""
    if image.tile:
        args = image.tile[0].args
        stored = args if isinstance(args, str) else str(args[0]) if args else ""
    found = []
    if image.mode in ("RGB", "RGBA") and ";16" in stored:
        found.append("its 16 bits per colour channel are reduced to 8 (only 16-bit grey keeps its depth)")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        found.append("its alpha channel (transparency) is dropped: the output is opaque")
    if image.mode == "CMYK":
        found.append("its CMYK colours are converted to RGB without colour management")
    return tuple(found)


def frame_from_image(image: Image.Image) -> av.VideoFrame:
    mode = _MODE_FOR_FRAME.get(image.mode)
    if mode is None:
        raise InputError(f"images of PIL mode {image.mode} are not supported; "
                         f"convert the image to 8-bit gray or RGB first")
    if image.mode != mode:
        image = image.convert(mode)
    pixels = np.asarray(image)
    height, width = pixels.shape[:2]
    if mode == "RGB":
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
        frame.color_range = RANGE_FULL
        return frame
    pix_fmt = {"L": "gray", "I;16": "gray16le", "YCbCr": "yuvj444p"}[mode]
    frame = av.VideoFrame(width, height, pix_fmt)
    planes = [pixels] if pixels.ndim == 2 else [pixels[..., i] for i in range(3)]
    for i, plane in enumerate(planes):
        array_to_plane(frame, i, plane)
    frame.color_range = RANGE_FULL
    frame.colorspace = SPACE_BT601 if mode == "YCbCr" else SPACE_UNSPECIFIED
    return frame


def image_from_frame(frame: av.VideoFrame, *, colorspace: int = SPACE_UNSPECIFIED,
                     color_range: int = 0) -> Image.Image:
    """A PIL image of `frame`: gray stays gray, YCbCr stays YCbCr (the caller converts).

    Other YUV formats (one frame of a video) are converted to RGB with the source's
    matrix and range given explicitly, so BT.601/709 and range are not guessed."""
    name = frame.format.name
    if name == "gray":
        return Image.fromarray(plane_to_array(frame, 0), mode="L")
    if name == "gray16le":
        return Image.fromarray(plane_to_array(frame, 0))  # uint16 arrays become I;16
    if name == "yuvj444p":
        return Image.fromarray(np.dstack([plane_to_array(frame, i) for i in range(3)]), mode="YCbCr")
    if name != "rgb24":
        frame = reformat(frame, format="rgb24", src_colorspace=swscale_matrix(colorspace),
                         src_color_range=color_range or None, dst_color_range=RANGE_FULL)
    return Image.fromarray(frame.to_ndarray(), mode="RGB")


# AVColorSpace -> swscale's matrix constant (SWS_CS_*); what swscale has no matrix for
# (unspecified, RGB, ...) maps to None: its BT.601 default.
_SWSCALE_MATRIX = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}


def swscale_matrix(colorspace: int) -> int | None:
    """The `src/dst_colorspace` value for `VideoFrame.reformat` for an AVColorSpace."""
    return _SWSCALE_MATRIX.get(int(colorspace))


def write_still(path: str | Path, frame: av.VideoFrame, *, image_format: str,
                metadata: tuple[tuple[str, bytes], ...] = (), colorspace: int = SPACE_UNSPECIFIED,
                color_range: int = 0) -> None:
    """Save one frame as an image of `image_format` (a PIL format name)."""
    image = image_from_frame(frame, colorspace=colorspace, color_range=color_range)
    options: dict[str, object] = dict(metadata) if image_format != "BMP" else {}
    if image_format == "JPEG":
        # JPEG stores YCbCr, so a YCbCr frame is written without an RGB round trip;
        # 4:4:4 keeps the chroma the model restored.
        options.update(quality=JPEG_OUTPUT_QUALITY, subsampling=0)
        if image.mode == "I;16":
            raise ValueError("16-bit gray cannot be stored as JPEG; write .png or .tif")
    elif image_format == "WEBP":
        options.update(lossless=True)  # lossy WebP would add new artifacts to a restored image
    if image.mode == "YCbCr" and image_format != "JPEG":
        image = image.convert("RGB")
    image.save(path, format=image_format, **options)
