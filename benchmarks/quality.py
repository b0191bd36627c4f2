"""Measure the shipped models on the standard test sets and clips; write quality.md.

    python benchmarks/quality.py --data ../shared/data [--out benchmarks/quality.md] [--quick]

Everything goes through `streamfix eval` (streamfix.evaluate), i.e. through the
same reader and Restorer as `streamfix run`, with the default model choice. The raw
per-set results are kept next to the report (quality-results/).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path

from streamfix.evaluate import VideoSetting, evaluate
from streamfix.models import list_models

JPEG_SETS = ["LIVE1_gray", "classic5"]
JPEG_QUALITIES = [5, 10, 15, 20, 30, 40]
PAPER_SETS = ["Set5", "Set12", "Set14"]  # the CAR-DRN paper's 31 images
PAPER_QUALITIES = [5, 10, 15]
VIDEO_SOURCES = ["BasketballPass_416x240_png", "foreman_qcif_10f.y4m"]
VIDEO_SETTINGS = ["libx264:medium:18", "libx264:medium:35", "libx264:medium:40", "libx264:medium:45", "libx265:medium:40"]


def combined(results: dict, groups: list[str], setting: str) -> dict:
    """Image-weighted mean over several sets (e.g. the paper's 31 images)."""
    rows = [results[g][setting] for g in groups]
    n = sum(r["count"] for r in rows)
    out = {"count": n, "restored_count": sum(r["restored_count"] for r in rows)}
    for part in ("compressed", "restored", "gain"):
        out[part] = {m: sum(r[part][m] * r["count"] for r in rows) / n for m in ("psnr", "ssim", "psnr_b")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/quality.md"))
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--quick", action="store_true", help="q10 and x264 CRF 18/40 only")
    args = parser.parse_args()
    test, video = args.data / "test", args.data / "video"
    qualities = [10] if args.quick else JPEG_QUALITIES
    settings = ["libx264:medium:18", "libx264:medium:40"] if args.quick else VIDEO_SETTINGS
    raw = args.out.parent / "quality-results"
    options = {"engine": args.engine}
    started = time.time()

    sections = []
    jpeg = evaluate(images=[test / s for s in JPEG_SETS], qualities=qualities, out_dir=raw / "jpeg",
                    restorer_options=options)
    sections.append(("JPEG, gray/luma test sets", "streamfix eval --images " + " ".join(f"{args.data}/test/{s}" for s in JPEG_SETS)
                     + " --quality " + " ".join(map(str, qualities)) + f" --out {raw}/jpeg", jpeg, None))
    if not args.quick:
        paper = evaluate(images=[test / s for s in PAPER_SETS], qualities=PAPER_QUALITIES, out_dir=raw / "paper31",
                         restorer_options=options)
        names = [f"{s} (JPEG)" for s in PAPER_SETS]
        paper["Set5+Set12+Set14 (31 images)"] = {f"q{q}": combined(paper, names, f"q{q}") for q in PAPER_QUALITIES}
        sections.append(("JPEG, the CAR-DRN paper's 31 images (luma)", "streamfix eval --images " + " ".join(f"{args.data}/test/{s}" for s in PAPER_SETS)
                         + " --quality 5 10 15" + f" --out {raw}/paper31", paper, None))
    vid = evaluate(videos=[video / s for s in VIDEO_SOURCES], settings=[VideoSetting.parse(s) for s in settings],
                   out_dir=raw / "video", restorer_options=options)
    sections.append(("Video (luma, frame by frame against the lossless source)", "streamfix eval --video " + " ".join(f"{args.data}/video/{s}" for s in VIDEO_SOURCES)
                     + " --setting " + " ".join(settings) + f" --out {raw}/video", vid, None))

    from streamfix.evaluate import markdown_table

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    lines = [
        "# Quality of the shipped models",
        "",
        f"Measured with `python benchmarks/quality.py --data {args.data}` (commit {commit}, "
        f"{platform.machine()} CPU, engine {args.engine}, {time.time() - started:.0f} s). Each section also gives the "
        "single `streamfix eval` command that reproduces it. Default model choice (as `streamfix run`): "
        "JPEG input -> `jpeg-y-blind` (with the 8-transform self-ensemble used for still pictures), video -> `video-x264-qp`.",
        "",
        "Models: " + "; ".join(f"`{m.name}` ({m.trained_on.get('steps', '?')} steps)" for m in list_models()),
        "",
    ]
    for title, command, results, _ in sections:
        lines += [f"## {title}", "", f"    {command}", "", markdown_table(results), f"Crops: `{raw.name}/...`/crops.png", ""]
    args.out.write_text("\n".join(lines))
    (raw / "all.json").write_text(json.dumps({t: r for t, _, r, _ in sections}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
