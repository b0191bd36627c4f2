"""Two or more video models on the same encodes: luma gain per clip and setting.

    python benchmarks/compare_models.py OLD.pt NEW.pt [--data ../shared/data]

Each lossless clip is encoded once per setting (x264 medium at CRF 18-45 and x264 set
up like a hardware encoder at QP 40), and every model restores the same decoded
frames through ONNX Runtime in float32 (the run path: QP maps, clean-frame gate), so
x264's small run-to-run differences cannot favour one model. Output: the gain of each
model, PSNR(restored) - PSNR(compressed) against the source, lossless output. This is
how a training stage is judged before it ships (docs/training.md).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from streamfix.media.crf_encode import encode_at_crf
from streamfix.media.planes import plane_to_array
from streamfix.media.reader import DecodedFrame, open_input
from streamfix.quality.evaluate import source_frames
from streamfix.quality.measures import psnr
from streamfix.restore.restorer import Restorer

CLIPS = {"BasketballPass": ("video/BasketballPass_416x240_png", 100), "foreman": ("video/foreman_qcif_10f.y4m", 10),
         "desk": ("video/desk_320x240.mp4", 36)}
SETTINGS = (("libx264", 18), ("libx264", 26), ("libx264", 35), ("libx264", 40), ("libx264", 45), ("libx264-hw", 40))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="weights files or bundled model names")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="the folder with video/ inside")
    args = parser.parse_args()
    restorers = {m: Restorer(m, engine="onnxruntime", precision="fp32", device="cpu", log=lambda *_: None)
                 for m in args.models}
    print("| clip | setting | compressed PSNR | " + " | ".join(Path(m).name for m in args.models) + " |")
    print("|---|---|---|" + "---|" * len(args.models))
    with tempfile.TemporaryDirectory() as tmp:
        for name, (relative, count) in CLIPS.items():
            source = source_frames(args.data / relative)[:count]
            pristine = [plane_to_array(f, 0) for f in source]
            for codec, crf in SETTINGS:
                path = Path(tmp) / "in.mp4"
                encode_at_crf(source, path, codec=codec, crf=crf)
                with open_input(path, log=lambda *_: None) as reader:
                    video = reader.video
                    decoded = [d for d in reader.items() if isinstance(d, DecodedFrame)]
                before = np.mean([psnr(pristine[d.index], plane_to_array(d.frame, 0)) for d in decoded])
                gains = []
                for restorer in restorers.values():
                    restorer.prepare(video)
                    restored = [f for i in range(0, len(decoded), 8) for f in restorer.restore_batch(decoded[i:i + 8])]
                    after = np.mean([psnr(pristine[d.index], plane_to_array(f, 0)) for d, f in zip(decoded, restored)])
                    gains.append(f"{after - before:+.4f}")
                print(f"| {name} | {codec} {crf} | {before:.2f} | " + " | ".join(gains) + " |", flush=True)


if __name__ == "__main__":
    main()
