"""int8: which layers stay in float32, measured by the restoration gain each variant keeps.

    python -m streamfix.benchmarks.int8_layers \\
        --images ../shared/data/test/LIVE1_gray --video ../shared/data/video/BasketballPass_416x240_png

For each bundled model and each variant (a set of CAR-DRN roles kept in float32, a
calibration method), the int8 graph is made exactly as `--precision int8` makes it
(engines/int8_quantize.py, calibrated on the built-in set) and restores:
- the built-in check split (crops of held-out training pictures), and
- held-out evaluation material through the run path (`streamfix eval`'s code): the
  JPEG model on the first pictures of --images at JPEG quality 10, the video model on
  --video encoded by x264 at CRF 40 (QP maps from the decoder).
The yardstick is the gain against the pristine source, PSNR(restored) -
PSNR(compressed), next to float32's gain on the same inputs; the int8 speed-up is a
separate question (streamfix bench). The test sets are read for evaluation only.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from streamfix.core.weights import load_model
from streamfix.engines.calibration_set import calibration_set
from streamfix.engines.int8_quantize import ROLES, Int8Settings
from streamfix.engines.onnxruntime_engine import OnnxRuntimeConfig, OnnxRuntimeEngine
from streamfix.quality.evaluate import VideoSetting, evaluate_images, evaluate_video
from streamfix.restore.restorer import Restorer

def _minmax(keep_float: tuple[str, ...], **options) -> Int8Settings:
    """A variant with MinMax activation ranges unless it names its own: the tables in
    benchmarks/cpu.md were measured that way, so they stay reproducible now that the
    engines' default is percentile ranges."""
    return Int8Settings(keep_float=keep_float, **{"calibration": "minmax", **options})


VARIANTS: dict[str, Int8Settings | None] = {
    "fp32": None,
    "all int8": _minmax(()),
    "extract": _minmax(("extract",)),
    "reconstruct": _minmax(("reconstruct",)),
    "global_skip": _minmax(("global_skip",)),
    "extract+reconstruct": _minmax(("extract", "reconstruct")),
    "extract+global_skip": _minmax(("extract", "global_skip")),
    "extract+reconstruct+global_skip": _minmax(("extract", "reconstruct", "global_skip")),
    "extract+tail": _minmax(("extract", "enhance", "map2", "reconstruct", "global_skip")),
    "extract+tail+local_skip": _minmax(("extract", "enhance", "map2", "reconstruct", "global_skip", "local_skip")),
    "extract/percentile": _minmax(("extract",), calibration="percentile"),
    "global_skip/percentile": _minmax(("global_skip",), calibration="percentile"),  # the engines' default
    "global_skip/entropy": _minmax(("global_skip",), calibration="entropy"),
    "extract/reduce_range": _minmax(("extract",), reduce_range=True),
}


def _config(settings: Int8Settings | None, cache: Path, threads: int) -> OnnxRuntimeConfig:
    if settings is None:
        return OnnxRuntimeConfig(device="cpu", cache_dir=cache, threads=threads)
    return OnnxRuntimeConfig(device="cpu", cache_dir=cache, threads=threads, int8=True, quantization=settings)


def measure(model_name: str, variant: str, held_out: Path | None, cache: Path, threads: int,
            pictures: int) -> tuple[float, float | None]:
    """(gain on the built-in check split, gain on the held-out material) in dB."""
    model, info = load_model(model_name)
    config = _config(VARIANTS[variant], cache, threads)
    with OnnxRuntimeEngine(model, info, config) as engine:
        check = calibration_set(info)
        check_gain = check.gain_db(engine.infer(check.check))
    if held_out is None:
        return check_gain, None
    # No self-ensemble: it would multiply the cost by 8 and blur what the precision does.
    restorer = Restorer(model_name, engine="onnxruntime", device="cpu", engine_configs={"onnxruntime": config},
                        ensemble="never", log=lambda line: None)
    with restorer, tempfile.TemporaryDirectory() as tmp:
        if info.task == "jpeg":
            folder = Path(tmp) / "pictures"
            folder.mkdir()
            for path in sorted(held_out.iterdir())[:pictures]:
                shutil.copy(path, folder / path.name)
            result = evaluate_images(restorer, folder, [10], [])["q10"]
        else:
            result = next(iter(evaluate_video(restorer, held_out, [VideoSetting("libx264", 40)], []).values()))
    return check_gain, result["gain"]["psnr"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, help="pristine pictures for the JPEG model (e.g. LIVE1_gray); "
                                                    "without: the JPEG model is skipped")
    parser.add_argument("--video", type=Path, help="a lossless clip for the video model; without: skipped")
    parser.add_argument("--pictures", type=int, default=12, help="pictures of --images used (default 12)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, from: " + ", ".join(VARIANTS))
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant {unknown[0]!r}; known: {', '.join(VARIANTS)} (roles: {', '.join(ROLES)})")
    print("| model | variant | gain, check split (dB) | vs fp32 | gain, held-out (dB) | vs fp32 |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="streamfix-int8-") as cache:
        for model_name, held_out in (("video-x264-qp", args.video), ("jpeg-y-blind", args.images)):
            if held_out is None:
                continue
            base: tuple[float, float | None] | None = None
            for variant in ["fp32"] + [v for v in variants if v != "fp32"]:
                check, held = measure(model_name, variant, held_out, Path(cache), args.threads, args.pictures)
                base = base or (check, held)
                held_text = "" if held is None else f"{held:+.3f} | {held - base[1]:+.3f}"
                print(f"| {model_name} | {variant} | {check:+.3f} | {check - base[0]:+.3f} | {held_text} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
