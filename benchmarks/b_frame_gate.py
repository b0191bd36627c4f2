"""Does the B-frame rule of the clean-frame gate help? (restore/strength.py)

Encodes a lossless clip with x264 set up like a hardware encoder (constant QP, no AQ,
B-frames at a lower QP than their references: `pbratio` under 1), restores every
frame (gate off), and tabulates the per-frame luma PSNR gain against the source by
frame type and own mean QP. The frames the B-frame rule adds to the restored set are
the B-frames under the gate whose last reference is at or over it: their summed gain
says whether the rule helps.

    python benchmarks/b_frame_gate.py ../shared/data/video/BasketballPass_416x240_png --frames 30
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from streamfix.media.crf_encode import encode_frames
from streamfix.media.planes import plane_to_array
from streamfix.media.reader import DecodedFrame, open_input
from streamfix.quality.evaluate import source_frames
from streamfix.quality.measures import psnr
from streamfix.restore.conditioning import CLEAN_QP
from streamfix.restore.restorer import Restorer
from streamfix.restore.strength import StreamStrength, picture_kind


def measure(source: Path, frames: int, qp: int, pbratio: float) -> list[dict]:
    refs = source_frames(source)[:frames]
    lumas = [plane_to_array(f, 0) for f in refs]
    params = f"qp={qp}:ipratio=1.0:pbratio={pbratio}:aq-mode=0:b-adapt=0:bframes=2:scenecut=0"
    rows = []
    with tempfile.TemporaryDirectory() as tmp, Restorer(engine="onnxruntime", device="cpu", gate="off") as restorer:
        path = Path(tmp) / "in.mkv"
        encode_frames(refs, path, codec="libx264", options={"x264-params": params}, container="matroska")
        with open_input(path) as reader:
            restorer.prepare(reader.video)
            strengths = StreamStrength(reader.video.codec_name)
            decoded = [d for d in reader.items() if isinstance(d, DecodedFrame)]
            levels = [strengths.of(d) for d in decoded]
        for d, s in zip(decoded, levels):
            restored = restorer.restore_batch([d])[0]
            before = psnr(lumas[d.index], plane_to_array(d.frame, 0))
            after = psnr(lumas[d.index], plane_to_array(restored, 0))
            rows.append({"type": picture_kind(d.frame.pict_type), "qp": s.mean_qp, "ref": s.reference_qp,
                         "gain": after - before})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--qp", type=int, nargs="+", default=[26, 28, 30])
    parser.add_argument("--pbratio", type=float, default=0.5)
    args = parser.parse_args()
    print("| P/I QP | B QPs | gain, frames the gate restores either way | gain, B-frames the rule adds (n) | "
          "gain, frames passed through either way (n) |\n|---|---|---|---|---|")
    for qp in args.qp:
        rows = measure(args.source, args.frames, qp, args.pbratio)
        own = [r for r in rows if r["qp"] >= CLEAN_QP]
        added = [r for r in rows if r["qp"] < CLEAN_QP and r["ref"] is not None and r["ref"] >= CLEAN_QP]
        left = [r for r in rows if r not in own and r not in added]
        b_qps = sorted({round(r["qp"]) for r in rows if r["type"] == "B"})

        def mean(group: list[dict]) -> str:
            return f"{np.mean([r['gain'] for r in group]):+.3f} ({len(group)})" if group else "- (0)"

        print(f"| {qp} | {b_qps} | {mean(own)} | {mean(added)} | {mean(left)} |")


if __name__ == "__main__":
    main()
