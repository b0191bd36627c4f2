"""Which x264 settings re-encode the restored video most faithfully for the bits they spend.

    python benchmarks/output_tuning.py --data ../shared/data [--engine onnxruntime --precision int8]

Lossless sources (BasketballPass 100 frames, foreman 10, desk 36) are encoded with
x264 medium at CRF 22, 35 and 40, restored once by the same Restorer as `streamfix run`,
and the restored frames encoded again with each x264 variant at the output CRFs the
plan would use (pipeline/output_plan.py: mean QP - 32) and one step either side.
Every figure is against the pristine source: `cost` = restored (lossless) - re-encoded,
in luma PSNR (dB) and SSIM, next to the output's bits per pixel and the encoder's CPU
time per frame. The planned encode's `tune psnr` comes from this table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import av
import numpy as np

from streamfix.benchmarks.bench import machine_line
from streamfix.benchmarks.output_cost import markdown_table, over_clips
from streamfix.media.crf_encode import encode_at_crf
from streamfix.media.planes import plane_to_array
from streamfix.media.reader import DecodedFrame, open_input
from streamfix.quality.measures import psnr, ssim
from streamfix.restore.restorer import Restorer

CLIPS = {"BasketballPass": ("video/BasketballPass_416x240_png", 100), "foreman": ("video/foreman_qcif_10f.y4m", 10),
         "desk": ("video/desk_320x240.mp4", 36)}
INPUT_CRFS = {22: (1, 2), 35: (8, 9, 10), 40: (12, 13, 14, 16)}  # input CRF -> output CRFs (mean QP ~27/41/46)
COLUMNS = (("clip", "clip", "{}"), ("input CRF", "crf_in", "{}"), ("output CRF", "crf_out", "{}"),
           ("x264", "variant", "{}"), ("cost, PSNR (dB)", "cost", "{:.4f}"), ("cost, SSIM", "ssim_cost", "{:.5f}"),
           ("bpp out", "bpp", "{:.3f}"), ("encode ms/frame", "ms", "{:.1f}"))
VARIANTS = {"medium": {}, "medium, tune psnr": {"tune": "psnr"}, "slow": {"preset": "slow"},
            "slow, tune psnr": {"preset": "slow", "tune": "psnr"}}


def _decode(path: Path, restorer: Restorer | None = None) -> list[DecodedFrame]:
    """The frames of `path`, with `restorer` (if given) prepared for its video."""
    with open_input(path, log=lambda *_: None) as reader:
        if restorer is not None:
            restorer.prepare(reader.video)
        return [item for item in reader.items() if isinstance(item, DecodedFrame)]


def _scores(source: list[np.ndarray], frames: list[av.VideoFrame]) -> tuple[float, float]:
    lumas = [plane_to_array(f, 0) for f in frames]
    return (float(np.mean([psnr(a, b) for a, b in zip(source, lumas)])),
            float(np.mean([ssim(a, b) for a, b in zip(source, lumas)])))


def measure(name: str, source: list[av.VideoFrame], restorer: Restorer, tmp: Path) -> list[dict]:
    pristine = [plane_to_array(f, 0) for f in source]
    pixels = len(source) * source[0].width * source[0].height
    rows = []
    for crf_in, crfs_out in INPUT_CRFS.items():
        compressed = tmp / f"{name}_{crf_in}.mp4"
        encode_at_crf(source, compressed, codec="libx264", crf=crf_in)
        decoded = _decode(compressed, restorer)
        restored = [frame for i in range(0, len(decoded), 8) for frame in restorer.restore_batch(decoded[i:i + 8])]
        lossless_psnr, lossless_ssim = _scores(pristine, restored)
        for crf_out in crfs_out:
            for variant, options in VARIANTS.items():
                out = tmp / f"{name}_{crf_in}_{crf_out}.mp4"
                options = {"preset": "medium", **options}
                start = time.process_time()
                encode_at_crf(restored, out, codec="libx264", crf=crf_out, preset=options.pop("preset"),
                              options=options)
                seconds = time.process_time() - start
                out_psnr, out_ssim = _scores(pristine, [d.frame for d in _decode(out)])
                rows.append({"clip": name, "crf_in": crf_in, "crf_out": crf_out, "variant": variant,
                             "cost": lossless_psnr - out_psnr, "ssim_cost": lossless_ssim - out_ssim,
                             "bpp": out.stat().st_size * 8 / pixels, "ms": 1000 * seconds / len(source)})
                print(f"{name} CRF {crf_in} -> CRF {crf_out} {variant}: cost {rows[-1]['cost']:.4f} dB, "
                      f"bpp {rows[-1]['bpp']:.3f}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder (video/ inside)")
    parser.add_argument("--engine", default="onnxruntime")
    parser.add_argument("--precision", default="int8")
    parser.add_argument("--out", type=Path, help="write the table here (markdown)")
    args = parser.parse_args()
    with Restorer(engine=args.engine, precision=args.precision, log=lambda *_: None) as restorer:
        rows = over_clips(CLIPS, args.data, restorer, measure)
    table = markdown_table(rows, COLUMNS)
    print(table)
    if args.out:
        heading = (f"# {__doc__.splitlines()[0]}\n\n    python benchmarks/output_tuning.py --data DATA --engine "
                   f"{args.engine} --precision {args.precision}\n\nMachine: {machine_line()}.\n\n")
        args.out.write_text(heading + table)


if __name__ == "__main__":
    main()
