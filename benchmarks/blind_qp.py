"""VP9 and AV1 restored through their quantizer fits, on clips the fits never saw.

For each held-out source and encoder setting: encode, then restore exactly as
`streamfix run` does (the reader, StreamStrength with QUANTIZER_FITS, the calibrated
gate), and report the luma PSNR gain against the source, next to the best a fixed
conditioning QP would have given for the whole clip (an oracle: it knows the source)
and how many frames the gate restored.

    python benchmarks/blind_qp.py ../shared/data/video/BasketballPass_416x240_png \\
        ../shared/data/video/foreman_qcif_10f.y4m --frames 20 [--only AV1]
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
from streamfix.restore.restorer import Restorer

SETTINGS = {
    "VP9 CRF 30": ("libvpx-vp9", {"crf": "30", "b": "0", "deadline": "good", "cpu-used": "4"}),
    "VP9 CRF 40": ("libvpx-vp9", {"crf": "40", "b": "0", "deadline": "good", "cpu-used": "4"}),
    "VP9 CRF 50": ("libvpx-vp9", {"crf": "50", "b": "0", "deadline": "good", "cpu-used": "4"}),
    "VP9 CRF 60": ("libvpx-vp9", {"crf": "60", "b": "0", "deadline": "good", "cpu-used": "4"}),
    **{f"AV1 CRF {crf}": ("libsvtav1", {"crf": str(crf), "preset": "8"}) for crf in (20, 30, 40, 50, 60)},
}
ORACLE_QPS = tuple(range(20, 53, 4))


def run(source: Path, frames: int, only: str = "") -> list[str]:
    refs = source_frames(source)[:frames]
    lumas = [plane_to_array(f, 0) for f in refs]
    lines = []
    with tempfile.TemporaryDirectory() as tmp, \
            Restorer(engine="onnxruntime", device="cpu", log=lambda m: None) as restorer:
        for name, (encoder, options) in SETTINGS.items():
            if not name.startswith(only):
                continue
            path = Path(tmp) / "in.mkv"
            encode_frames(refs, path, codec=encoder, options=options, container="matroska")
            with open_input(path, log=lambda m: None) as reader:
                restorer.prepare(reader.video)
                decoded = [d for d in reader.items() if isinstance(d, DecodedFrame)]
            before = np.mean([psnr(lumas[d.index], plane_to_array(d.frame, 0)) for d in decoded])
            start = restorer.restored
            outs = [restorer.restore_batch([d])[0] for d in decoded]
            restored = restorer.restored - start
            gain = np.mean([psnr(lumas[d.index], plane_to_array(o, 0)) for d, o in zip(decoded, outs)]) - before
            oracle = max(np.mean([psnr(lumas[d.index], plane_to_array(restorer.restore(d.frame, frame_qp=float(q)), 0))
                                  for d in decoded]) - before for q in ORACLE_QPS)
            lines.append(f"| {source.name} | {name} | {before:.2f} | {gain:+.3f} | {max(oracle, 0.0):+.3f} "
                         f"| {restored}/{len(decoded)} |")
            print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", type=Path)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--only", default="", help='settings whose name starts so, e.g. "AV1"')
    args = parser.parse_args()
    print("| source | setting | input PSNR | gain (fit + gate) | best fixed QP (oracle) | frames restored |\n"
          "|---|---|---|---|---|---|")
    for source in args.sources:
        run(source, args.frames, args.only)


if __name__ == "__main__":
    main()
