"""`streamfix eval` measures the model's gain (restored frames, as a lossless output
holds them) and what a real run delivers with the default output encoder."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from streamfix.quality.evaluate import VideoSetting, evaluate


def _source_frames(folder, frames: int = 10, size: tuple[int, int] = (96, 64)) -> None:
    """A lossless source: PNG frames of a textured picture drifting right."""
    folder.mkdir()
    rng = np.random.default_rng(3)
    base = rng.integers(0, 255, (size[1], size[0] + frames, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(base).resize((size[0] + frames, size[1]), Image.BILINEAR))
    for i in range(frames):
        Image.fromarray(np.ascontiguousarray(smooth[:, i:i + size[0]])).save(folder / f"{i:03d}.png")


def test_video_rows_hold_the_lossless_and_the_default_output(tmp_path):
    _source_frames(tmp_path / "clip")
    settings = [VideoSetting("libx264", 45, "medium"), VideoSetting("libx264", 10, "medium")]
    results = evaluate(videos=[tmp_path / "clip"], settings=settings, out_dir=tmp_path / "out",
                       restorer_options={"engine": "torch", "device": "cpu"}, log=lambda line: None)
    rows = results["clip"]
    blocky, clean = rows["x264 medium CRF 45"], rows["x264 medium CRF 10"]
    assert blocky["restored_count"] > 0 and blocky["output_video"]["mode"] == "encode"
    assert set(blocky["delivered"]) == {"psnr", "ssim", "psnr_b"}
    # The default output re-encodes the restored frames: it keeps most of the model's gain.
    assert blocky["delivered_gain"]["psnr"] > blocky["gain"]["psnr"] - 0.15
    # Nothing to restore: the input's own video is copied, so the viewer gets exactly it.
    assert clean["restored_count"] == 0 and clean["output_video"]["mode"] == "copy"
    assert clean["delivered"] == clean["compressed"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "default output" in report and "copied" in report and "CRF " in report
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert "delivered_gain" in saved["results"]["clip"]["x264 medium CRF 45"]


def test_lossless_only_skips_the_run(tmp_path):
    _source_frames(tmp_path / "clip", frames=4)
    results = evaluate(videos=[tmp_path / "clip"], settings=[VideoSetting("libx264", 45, "medium")],
                       out_dir=tmp_path / "out", restorer_options={"engine": "torch", "device": "cpu"},
                       delivered_output=False, log=lambda line: None)
    assert "delivered" not in results["clip"]["x264 medium CRF 45"]


def test_decoded_sources_are_not_encoded_all_intra(tmp_path):
    """A decoded frame keeps its picture type and x264 obeys it: every frame of a .y4m
    source decodes as I, so eval's clips of .y4m sources were all keyframes."""
    import av

    from streamfix.media.crf_encode import encode_at_crf

    frames = []
    for i in range(8):
        frame = av.VideoFrame.from_ndarray(np.full((48, 64), 40 + 8 * i, np.uint8), format="gray")
        frame.pict_type = av.video.frame.PictureType.I
        frames.append(frame)
    encode_at_crf(frames, tmp_path / "out.mp4", codec="libx264", crf=30)
    with av.open(str(tmp_path / "out.mp4")) as container:
        keyframes = sum(frame.key_frame for frame in container.decode(video=0))
    assert keyframes == 1
