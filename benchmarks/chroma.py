"""Should the chroma planes go through the luma model, or pass through? Measure it.

    python benchmarks/chroma.py --data ../shared/data [--out benchmarks/chroma.md]

For colour JPEGs (LIVE1 colour at quality 10 and 30, PIL's default 4:2:0) and for
H.264 (BasketballPass, x264 medium CRF 35/40), the Cb and Cr planes of the restored
output are compared with the pristine source's, once with chroma passed through and
once restored by the luma model, through the same Restorer as `streamfix run`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image

from streamfix.quality.evaluate import VideoSetting, encode_video, image_files, source_frames
from streamfix.media.planes import plane_to_array
from streamfix.media.reader import DecodedFrame, MediaReader
from streamfix.quality.measures import psnr
from streamfix.restore.restorer import Restorer


def _restore(path: Path, chroma: str, engine: str) -> list[av.VideoFrame]:
    with Restorer(engine=engine, chroma=chroma, ensemble="never", log=lambda *_: None) as restorer, \
            MediaReader(path) as reader:
        restorer.prepare(reader.video)
        decoded = [i for i in reader.items() if isinstance(i, DecodedFrame)]
        return [decoded, restorer.restore_batch(decoded)]


def jpeg_rows(folder: Path, qualities: list[int], engine: str) -> list[str]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for q in qualities:
            scores = {"compressed": [], "passthrough": [], "luma_model": []}
            for src in image_files(folder):
                rgb = Image.open(src).convert("RGB")
                ref = np.asarray(rgb.convert("YCbCr"))  # JFIF full-range YCbCr, as JPEG codes it
                path = Path(tmp) / f"{src.stem}.jpg"
                rgb.save(path, quality=q)
                for mode in ("passthrough", "luma_model"):
                    decoded, restored = _restore(path, mode, engine)
                    out = restored[0]
                    if mode == "passthrough":
                        scores["compressed"].append(np.mean([psnr(ref[..., c], plane_to_array(decoded[0].frame, c)) for c in (1, 2)]))
                    scores[mode].append(np.mean([psnr(ref[..., c], plane_to_array(out, c)) for c in (1, 2)]))
            rows.append(f"| {folder.name} colour JPEG q{q} | {np.mean(scores['compressed']):.2f} | "
                        f"{np.mean(scores['passthrough']):.2f} | {np.mean(scores['luma_model']):.2f} |")
    return rows


def video_rows(source: Path, settings: list[str], engine: str) -> list[str]:
    rows = []
    frames = source_frames(source)
    refs = [(plane_to_array(f, 1), plane_to_array(f, 2)) for f in frames]
    with tempfile.TemporaryDirectory() as tmp:
        for text in settings:
            setting = VideoSetting.parse(text)
            path = Path(tmp) / "v.mp4"
            encode_video(frames, setting, path)
            result = {}
            for mode in ("passthrough", "luma_model"):
                decoded, restored = _restore(path, mode, engine)
                if mode == "passthrough":
                    result["compressed"] = np.mean([psnr(r[c - 1], plane_to_array(d.frame, c)) for r, d in zip(refs, decoded) for c in (1, 2)])
                result[mode] = np.mean([psnr(r[c - 1], plane_to_array(o, c)) for r, o in zip(refs, restored) for c in (1, 2)])
            rows.append(f"| {source.name} {setting} | {result['compressed']:.2f} | {result['passthrough']:.2f} | {result['luma_model']:.2f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/chroma.md"))
    parser.add_argument("--engine", default="auto")
    args = parser.parse_args()
    started = time.time()
    rows = jpeg_rows(args.data / "test/LIVE1", [10, 30], args.engine)
    rows += video_rows(args.data / "video/BasketballPass_416x240_png", ["libx264:medium:35", "libx264:medium:40"], args.engine)
    table = "\n".join(["| input | compressed Cb/Cr PSNR | chroma passed through | chroma through the luma model |",
                       "|---|---|---|---|", *rows])
    args.out.write_text(
        "# Chroma: pass through, or restore with the luma model?\n\n"
        f"Measured with `python benchmarks/chroma.py --data {args.data}` ({time.time() - started:.0f} s). "
        "Mean PSNR of the Cb and Cr planes against the pristine source (JPEG: full-range YCbCr at full "
        "resolution as decoded; H.264: the 4:2:0 planes).\n\n" + table + "\n")
    print(table)


if __name__ == "__main__":
    main()
