"""What re-encoding the restored video costs, by input quantizer and output CRF.

    python benchmarks/output_cost.py --data ../shared/data [--out benchmarks/output.md]

Lossless sources (BasketballPass, 30 frames; foreman, 10 frames) are encoded with
x264 medium at several CRFs, restored by the same Restorer as `streamfix run`
(clean-frame gate included), and the restored frames encoded again with x264 medium
at several output CRFs. Every number is luma PSNR against the pristine source:
`gain` = restored (lossless) - compressed, `cost` = restored - re-encoded, and the
output's bits per pixel next to the input's. pipeline/output_plan.py's rule
(copy under mean QP 26, else CRF = mean QP - 32) comes from this table.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import av
import numpy as np

from streamfix.benchmarks.bench import machine_line
from streamfix.media.crf_encode import encode_at_crf
from streamfix.media.planes import plane_to_array
from streamfix.media.reader import DecodedFrame, open_input
from streamfix.quality.evaluate import source_frames
from streamfix.quality.measures import psnr
from streamfix.restore.restorer import Restorer

INPUT_CRFS = (18, 24, 30, 35, 40, 45)
OUTPUT_CRFS = (4, 8, 12, 16, 20)
CLIPS = {"BasketballPass": ("video/BasketballPass_416x240_png", 30), "foreman": ("video/foreman_qcif_10f.y4m", 10)}


def _decode(path: Path) -> list[DecodedFrame]:
    with open_input(path, log=lambda *_: None) as reader:
        return [item for item in reader.items() if isinstance(item, DecodedFrame)]


def _psnr(source: list[av.VideoFrame], frames: list[av.VideoFrame]) -> float:
    return float(np.mean([psnr(plane_to_array(a, 0), plane_to_array(b, 0)) for a, b in zip(source, frames)]))


def measure(name: str, source: list[av.VideoFrame], restorer: Restorer, tmp: Path) -> list[dict]:
    rows = []
    for crf_in in INPUT_CRFS:
        compressed = tmp / f"{name}_{crf_in}.mp4"
        encode_at_crf(source, compressed, codec="libx264", crf=crf_in)
        decoded = _decode(compressed)
        mean_qp = float(np.mean([np.mean(d.qp_map) for d in decoded if d.qp_map is not None]))
        restored = restorer.restore_batch(decoded)
        before, after = _psnr(source, [d.frame for d in decoded]), _psnr(source, restored)
        pixels = len(source) * source[0].width * source[0].height
        for crf_out in OUTPUT_CRFS:
            out = tmp / f"{name}_{crf_in}_{crf_out}.mp4"
            encode_at_crf(restored, out, codec="libx264", crf=crf_out)
            reencoded = _psnr(source, [d.frame for d in _decode(out)])
            rows.append({"clip": name, "crf_in": crf_in, "mean_qp": mean_qp, "crf_out": crf_out,
                         "gain": after - before, "cost": after - reencoded,
                         "bpp_in": compressed.stat().st_size * 8 / pixels, "bpp_out": out.stat().st_size * 8 / pixels})
            print(f"{name} CRF {crf_in} (QP {mean_qp:.1f}) -> CRF {crf_out}: gain {after - before:+.3f}, "
                  f"cost {after - reencoded:.3f} dB", flush=True)
    return rows


COLUMNS = (("clip", "clip", "{}"), ("input CRF", "crf_in", "{}"), ("mean QP", "mean_qp", "{:.1f}"),
           ("gain (lossless out)", "gain", "{:+.3f}"), ("output CRF", "crf_out", "{}"),
           ("cost of re-encoding", "cost", "{:.3f}"), ("bpp in", "bpp_in", "{:.3f}"), ("bpp out", "bpp_out", "{:.3f}"))


def markdown_table(rows: list[dict], columns: tuple[tuple[str, str, str], ...]) -> str:
    """`rows` as a markdown table; `columns` are (heading, key, format)."""
    lines = ["| " + " | ".join(c[0] for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt.format(r[key]) for _, key, fmt in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def over_clips(clips: dict[str, tuple[str, int]], data: Path, restorer: Restorer, measure) -> list[dict]:
    """The rows of `measure(name, source frames, restorer, scratch folder)` over `clips`
    (name -> (path under `data`, frames))."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (relative, count) in clips.items():
            rows += measure(name, source_frames(data / relative)[:count], restorer, Path(tmp))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder (video/ inside)")
    parser.add_argument("--engine", default="onnxruntime")
    parser.add_argument("--out", type=Path, help="write the table here (markdown)")
    args = parser.parse_args()
    with Restorer(engine=args.engine, log=lambda *_: None) as restorer:
        rows = over_clips(CLIPS, args.data, restorer, measure)
    table = markdown_table(rows, COLUMNS)
    print(table)
    if args.out:
        heading = (f"# {__doc__.splitlines()[0]}\n\n    python benchmarks/output_cost.py --data DATA --engine {args.engine}\n\n"
                   f"Machine: {machine_line()}. Luma PSNR against "
                   "the lossless source; `gain` = restored - compressed, `cost` = restored - re-encoded (dB).\n\n")
        args.out.write_text(heading + table)


if __name__ == "__main__":
    main()
