"""The Restorer: YUV-native restoration, pass-through rules, formats, batching by size."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from mediagen import make_frame, write_clip
from streamfix.engines.select import engine_config
from streamfix.media.planes import plane_to_array
from streamfix.media.reader import DecodedFrame, MediaReader
from streamfix.restore.frame_planes import split_frame
from streamfix.restore.restorer import JPEG_MODEL, VIDEO_MODEL, Restorer, choose_model

COLOUR = {"color_range": 1, "colorspace": 1, "color_primaries": 1, "color_trc": 1}


def tagged_frame(width: int, height: int, pix_fmt: str, index: int = 3) -> av.VideoFrame:
    frame = make_frame(index, width, height, pix_fmt, pts=1234, time_base=Fraction(1, 1000))
    for key, value in COLOUR.items():
        setattr(frame, key, value)
    return frame


def qp_map(frame: av.VideoFrame, qp: float) -> np.ndarray:
    return np.full((-(-frame.height // 16), -(-frame.width // 16)), qp, np.float32)


@pytest.fixture(scope="module")
def blocky(tmp_path_factory) -> list[DecodedFrame]:
    """Frames of a heavily compressed (x264 CRF 45) clip at an odd size, with their QP
    maps: content the model really restores (a clean test pattern it may leave as is)."""
    path = tmp_path_factory.mktemp("restore") / "blocky.mkv"
    write_clip(path, width=65, height=49, pix_fmt="yuv444p", frames=2, encoder_options={"crf": "45"})
    with MediaReader(path) as reader:
        decoded = [item for item in reader.items() if isinstance(item, DecodedFrame)]
    for d in decoded:
        for key, value in COLOUR.items():
            setattr(d.frame, key, value)
    return decoded


@pytest.fixture(scope="module")
def restorer():
    with Restorer(VIDEO_MODEL, engine="torch", device="cpu", batch=2,
                  engine_configs={"torch": engine_config("torch", {"threads": 1})}, log=lambda m: None) as r:
        yield r


def test_restores_luma_in_a_new_frame_of_the_same_format(restorer, blocky):
    frame = blocky[0].frame
    out = restorer.restore(frame, qp_map=blocky[0].qp_map)
    assert out is not frame
    assert (out.width, out.height, out.format.name) == (65, 49, "yuv444p")
    assert (out.pts, out.time_base) == (frame.pts, frame.time_base)
    assert {k: int(getattr(out, k)) for k in COLOUR} == COLOUR
    assert not np.array_equal(plane_to_array(out, 0), plane_to_array(frame, 0))
    for i in (1, 2):  # chroma="passthrough": bit-identical
        assert np.array_equal(plane_to_array(out, i), plane_to_array(frame, i))


def test_clean_or_unknown_frames_pass_through_untouched(restorer):
    frame = tagged_frame(64, 48, "yuv420p")
    before = restorer.passed_through
    assert restorer.restore(frame, qp_map=qp_map(frame, 14)) is frame  # near-lossless
    assert restorer.restore(frame) is frame  # no QP known: restoring blind could harm
    assert restorer.restore(frame, frame_qp=12.0) is frame
    assert restorer.passed_through == before + 3


def test_ten_bit_stays_ten_bit(restorer, blocky):
    frame8 = blocky[0].frame
    frame = frame8.reformat(format="yuv444p10le")
    frame.pts, frame.time_base = frame8.pts, frame8.time_base
    out = restorer.restore(frame, qp_map=blocky[0].qp_map)
    luma_in, luma_out = plane_to_array(frame, 0), plane_to_array(out, 0)
    assert out.format.name == "yuv444p10le" and luma_out.dtype == np.uint16
    assert luma_out.max() <= 1023 and luma_out.max() > 255
    assert not np.array_equal(luma_in, luma_out)
    # Scaled to [0, 1] the same way, the 10-bit result lands next to the 8-bit one x 4.
    out8 = plane_to_array(restorer.restore(frame8, qp_map=blocky[0].qp_map), 0).astype(np.float64)
    assert np.abs(luma_out / 4.0 - out8).mean() < 1.0


def test_restore_batch_reads_the_side_data(restorer):
    frames = [tagged_frame(64, 48, "yuv420p", index=i) for i in range(3)]
    decoded = [DecodedFrame(index=0, frame=frames[0], qp_map=qp_map(frames[0], 42), packet_bytes=900, jpeg_quality=None),
               DecodedFrame(index=1, frame=frames[1], qp_map=qp_map(frames[1], 10), packet_bytes=9000, jpeg_quality=None),
               DecodedFrame(index=2, frame=frames[2], qp_map=qp_map(frames[2], 38), packet_bytes=800, jpeg_quality=None)]
    out = restorer.restore_batch(decoded)
    assert out[1] is frames[1]
    assert out[0] is not frames[0] and out[2] is not frames[2]
    assert [f.pts for f in out] == [f.pts for f in frames]


def test_jpeg_model_without_a_quality_leaves_the_input_and_says_so():
    messages = []
    with Restorer(JPEG_MODEL, engine="torch", device="cpu",
                  engine_configs={"torch": engine_config("torch", {"threads": 1})}, log=messages.append) as r:
        frame = tagged_frame(64, 48, "gray")
        assert r.restore(frame) is frame
        assert r.restore(frame) is frame
        assert sum("--jpeg-quality" in m for m in messages) == 1
        assert r.restore(frame, jpeg_quality=10) is not frame


def test_rgb_stills_change_luma_only(blocky):
    with Restorer(JPEG_MODEL, engine="torch", device="cpu", jpeg_quality=10,
                  engine_configs={"torch": engine_config("torch", {"threads": 1})}, log=lambda m: None) as r:
        frame = blocky[0].frame.reformat(format="rgb24")
        out = r.restore(frame)
    assert out.format.name == "rgb24"
    rgb_in = frame.to_ndarray().astype(np.float64)
    rgb_out = out.to_ndarray().astype(np.float64)
    assert not np.array_equal(rgb_in, rgb_out)
    # Only Y moved: R, G and B move together (up to rounding and clipping at 0/255).
    delta = rgb_out - rgb_in
    inside = (rgb_in > 8).all(axis=2) & (rgb_in < 247).all(axis=2)
    spread = delta.max(axis=2) - delta.min(axis=2)
    assert np.percentile(spread[inside], 99) <= 1.0


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv420p10le", "yuvj444p", "nv12", "yuyv422", "gray",
                                     "gray10le", "rgb24", "rgba"])
def test_unchanged_planes_give_back_the_same_pixels(pix_fmt):
    """Taking a frame apart and putting it together again must be lossless in every
    layout, or pixels the model leaves alone would still change."""
    frame = make_frame(5, 65, 49, pix_fmt) if pix_fmt != "yuyv422" else make_frame(5, 66, 49, pix_fmt)
    split = split_frame(frame, chroma=True)
    again = split.join(list(split.planes))
    assert again.format.name == pix_fmt
    for i in range(len(frame.planes)):
        assert np.array_equal(plane_to_array(again, i), plane_to_array(frame, i)), f"plane {i}"


class RecordingEngine:
    """Stands in for a real engine: records what it is given, returns a flat 0.5."""

    name, device = "recording", "cpu"

    def __init__(self) -> None:
        self.calls: list[tuple[int, ...]] = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def infer(self, batch: np.ndarray) -> np.ndarray:
        self.calls.append(batch.shape)
        return np.full((batch.shape[0], 1, *batch.shape[2:]), 0.5, np.float32)


@pytest.fixture
def recording(monkeypatch):
    """The recording engine behind the wrapper that select.choose puts around every
    backend (engines/tiling.py), which alone splits batches into engine calls."""
    from streamfix.engines.tiling import TiledEngine

    engine = RecordingEngine()
    monkeypatch.setattr("streamfix.engines.select.choose",
                        lambda *a, **k: (TiledEngine(engine, max_batch=k["max_batch"]), []))
    return engine


def test_engine_calls_hold_one_size_and_at_most_batch_planes(recording):
    with Restorer(VIDEO_MODEL, batch=2, log=lambda m: None) as r:
        frames = [tagged_frame(64, 48, "yuv420p", i) for i in range(3)] + [tagged_frame(32, 32, "yuv420p")]
        r.restore_frames(frames, [r.strength_of(DecodedFrame(i, f, qp_map(f, 40), None, None))
                                  for i, f in enumerate(frames)])
    assert recording.calls == [(2, 2, 48, 64), (1, 2, 48, 64), (1, 2, 32, 32)]


def test_luma_model_restores_chroma_with_a_subsampled_condition(recording):
    with Restorer(VIDEO_MODEL, batch=8, chroma="luma_model", log=lambda m: None) as r:
        frame = tagged_frame(65, 49, "yuv420p")
        out = r.restore(frame, qp_map=qp_map(frame, 40))
    assert sorted(recording.calls) == [(1, 2, 49, 65), (2, 2, 25, 33)]
    for i in range(3):  # every plane came from the engine: 0.5 of 255, rounded
        assert (plane_to_array(out, i) == 128).all()


class Info:
    def __init__(self, codec_name: str, is_still: bool = False) -> None:
        self.codec_name, self.is_still = codec_name, is_still


@pytest.mark.parametrize("codec, still, model", [
    ("h264", False, VIDEO_MODEL), ("hevc", False, VIDEO_MODEL), ("mjpeg", False, JPEG_MODEL),
    ("jpeg", True, JPEG_MODEL), ("png", True, JPEG_MODEL),
])
def test_the_model_is_chosen_per_input(codec, still, model):
    assert choose_model(Info(codec, still)) == model


def test_prepare_picks_the_model_for_the_input(recording):
    with Restorer(log=lambda m: None) as r:
        assert r.prepare(Info("mjpeg")).name == JPEG_MODEL
    with Restorer("video-x264-qp", log=lambda m: None) as r:
        assert r.prepare(Info("mjpeg")).name == VIDEO_MODEL  # an explicit model wins


@pytest.mark.parametrize("kwargs", [{"chroma": "both"}, {"batch": 0}])
def test_bad_arguments_are_refused(kwargs):
    with pytest.raises(ValueError):
        Restorer(**kwargs)


@pytest.mark.parametrize("width", [66, 70])
def test_packed_422_round_trip_is_exact_every_time(width):
    """FFmpeg's threaded swscale raced on yuv422p -> yuyv422 when the chroma width is
    odd, changing pixels in some conversions; conversions run single-threaded."""
    frame = make_frame(5, width, 49, "yuyv422")
    original = plane_to_array(frame, 0)
    for _ in range(100):
        split = split_frame(frame, chroma=True)
        assert np.array_equal(plane_to_array(split.join(list(split.planes)), 0), original)


def test_the_light_tier_restores_with_the_bundled_lite_model(blocky):
    with Restorer(VIDEO_MODEL, engine="torch", device="cpu", tier="light",
                  engine_configs={"torch": engine_config("torch", {"threads": 1})}, log=lambda m: None) as r:
        light = r.restore(blocky[0].frame, qp_map=blocky[0].qp_map)  # the first call too
        assert r.light_model == VIDEO_MODEL + "-lite" and r.default_tier == "light"
        full = r.restore_frames([blocky[0].frame], [r.strength_of(blocky[0])], tier="full")[0]
        assert r.restored_by_tier == {"full": 1, "light": 1}
    before = plane_to_array(blocky[0].frame, 0)
    assert not np.array_equal(plane_to_array(light, 0), before)
    assert not np.array_equal(plane_to_array(light, 0), plane_to_array(full, 0))
