"""`streamfix eval`: measure restoration against pristine sources.

Images: each picture's luma (MATLAB-style Y, as the published tables use) is
JPEG-compressed with libjpeg's standard tables at each quality, written to a file,
and that file goes through the same reader and Restorer as `streamfix run photo.jpg
out.png` (the quality is read back from the file's tables, as it would be for a
user's file). Videos: a lossless source (a folder of PNG frames, a .y4m or any video
file) is converted to 4:2:0, encoded by this code at each codec/preset/CRF setting,
decoded by the same reader as `streamfix run` (QP maps included) and restored frame
by frame. In both cases the compressed baseline is measured by the same code in the
same run, on the luma plane: PSNR, SSIM and PSNR-B (B = 8).

Output: a markdown table, a JSON file and a PNG of side-by-side crops (source /
compressed / restored) for each setting, so a person can see the difference.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw

from streamfix.core.errors import InputError, OptionError
from streamfix.core.jpeg import load_luma
from streamfix.media.crf_encode import encode_at_crf
from streamfix.media.planes import plane_to_array, reformat
from streamfix.media.reader import DecodedFrame, MediaReader
from streamfix.quality.delivered import delivered
from streamfix.quality.measures import all_metrics
from streamfix.restore.restorer import Restorer

IMAGE_SUFFIXES = {".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff"}
METRICS = ("psnr", "ssim", "psnr_b")


@dataclass(frozen=True, slots=True)
class VideoSetting:
    codec: str  # libx264, libx265, ...
    crf: int
    preset: str = "medium"

    @classmethod
    def parse(cls, text: str) -> "VideoSetting":
        """'libx264:40' or 'libx264:medium:40'."""
        parts = text.split(":")
        try:
            if len(parts) == 2:
                return cls(parts[0], int(parts[1]))
            if len(parts) == 3:
                return cls(parts[0], int(parts[2]), parts[1])
        except ValueError:
            pass
        raise OptionError(f"bad video setting {text!r}: use CODEC:CRF or CODEC:PRESET:CRF, e.g. libx264:medium:40")

    def __str__(self) -> str:
        return f"{self.codec.removeprefix('lib')} {self.preset} CRF {self.crf}"


@dataclass
class Tally:
    """Per-item metrics of the compressed input and of the restored output."""

    compressed: list[dict[str, float]] = field(default_factory=list)
    restored: list[dict[str, float]] = field(default_factory=list)
    restored_count: int = 0  # items the model actually changed (the rest passed through)
    # Videos: the output of a real run with the default encoder (delivered.py).
    delivered: list[dict[str, float]] = field(default_factory=list)
    output_video: dict | None = None

    def add(self, reference: np.ndarray, compressed: np.ndarray, restored: np.ndarray) -> None:
        self.compressed.append(all_metrics(reference, compressed))
        self.restored.append(all_metrics(reference, restored))
        self.restored_count += int(not np.array_equal(compressed, restored))

    def summary(self) -> dict:
        def mean(rows: list[dict[str, float]]) -> dict[str, float]:
            return {m: float(np.mean([r[m] for r in rows])) for m in METRICS}

        comp, rest = mean(self.compressed), mean(self.restored)
        summary = {"count": len(self.compressed), "restored_count": self.restored_count,
                   "compressed": comp, "restored": rest, "gain": {m: rest[m] - comp[m] for m in METRICS}}
        if self.delivered:
            out = mean(self.delivered)
            summary.update(delivered=out, delivered_gain={m: out[m] - comp[m] for m in METRICS},
                           output_video=self.output_video)
        return summary


# ----------------------------------------------------------------------------- images
def image_files(folder: Path) -> list[Path]:
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    return files


def _restore_file(restorer: Restorer, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(decoded luma, restored luma) of one image file, through the run path."""
    with MediaReader(path) as reader:
        restorer.prepare(reader.video)
        frames = [item for item in reader.items() if isinstance(item, DecodedFrame)]
    (decoded,) = frames
    (restored,) = restorer.restore_batch([decoded])
    return plane_to_array(decoded.frame, 0), plane_to_array(restored, 0)


def evaluate_images(restorer: Restorer, folder: Path, qualities: list[int], crops: list) -> dict:
    results = {}
    files = image_files(folder)
    with tempfile.TemporaryDirectory() as tmp:
        for quality in qualities:
            tally = Tally()
            for i, path in enumerate(files):
                reference = load_luma(path)
                jpeg_path = Path(tmp) / f"{path.stem}_q{quality}.jpg"
                Image.fromarray(reference, mode="L").save(jpeg_path, format="JPEG", quality=quality)
                compressed, restored = _restore_file(restorer, jpeg_path)
                tally.add(reference, compressed, restored)
                if i == 0:
                    crops.append((f"{folder.name} q{quality} ({path.name})", reference, compressed, restored))
            results[f"q{quality}"] = tally.summary()
    return results


# ----------------------------------------------------------------------------- videos
def source_frames(source: Path) -> list[av.VideoFrame]:
    """Lossless source frames as 4:2:0 YUV (a folder of images, or a video file)."""
    source = Path(source)
    if source.is_dir():
        rgb = [np.asarray(Image.open(p).convert("RGB")) for p in image_files(source)]
        frames = [av.VideoFrame.from_ndarray(x, format="rgb24") for x in rgb]
    elif source.is_file():
        with av.open(str(source)) as container:
            frames = list(container.decode(video=0))
    else:
        raise InputError(f"video source not found: {source}")
    # 4:2:0 with even sides, as encoders want; the same conversion as the training clips.
    out = []
    for f in frames:
        w, h = f.width // 2 * 2, f.height // 2 * 2
        out.append(reformat(f, width=w, height=h, format="yuv420p"))
    return out


def encode_video(frames: list[av.VideoFrame], setting: VideoSetting, path: Path) -> None:
    encode_at_crf(frames, path, codec=setting.codec, crf=setting.crf, preset=setting.preset)


def evaluate_video(restorer: Restorer, source: Path, settings: list[VideoSetting], crops: list,
                   options: dict | None = None) -> dict:
    """Per setting: the model's gain (restored frames, as a lossless output holds them)
    and, unless `options` is None, the gain of a real run's default output (delivered.py)."""
    frames = source_frames(source)
    references = [plane_to_array(f, 0) for f in frames]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for setting in settings:
            path = Path(tmp) / f"encoded_{setting.codec}_{setting.crf}.mp4"
            encode_video(frames, setting, path)
            results[str(setting)] = evaluate_encoded(restorer, path, references, crops=crops,
                                                     label=f"{Path(source).name} {setting}", options=options)
    return results


def evaluate_encoded(restorer: Restorer, path: Path, references: list[np.ndarray], *, crops: list | None = None,
                     label: str = "", options: dict | None = None) -> dict:
    """One compressed file (made by any encoder) against its source lumas: restored
    frames and, unless `options` is None, a real run's default output (delivered.py)."""
    tally = Tally()
    with MediaReader(path) as reader:
        restorer.prepare(reader.video)
        decoded = [item for item in reader.items() if isinstance(item, DecodedFrame)]
    if len(decoded) != len(references):
        raise RuntimeError(f"{label or path}: {len(decoded)} decoded frames for {len(references)} source frames")
    for start in range(0, len(decoded), 8):
        chunk = decoded[start : start + 8]
        for d, restored in zip(chunk, restorer.restore_batch(chunk)):
            tally.add(references[d.index], plane_to_array(d.frame, 0), plane_to_array(restored, 0))
            if crops is not None and d.index == len(decoded) // 2:
                crops.append((f"{label} frame {d.index}", references[d.index],
                              plane_to_array(d.frame, 0), plane_to_array(restored, 0)))
    if options is not None:
        with tempfile.TemporaryDirectory() as tmp:
            got = delivered(path, references, options, Path(tmp))
        tally.delivered, tally.output_video = got["metrics"], got["output_video"]
    return tally.summary()


# ----------------------------------------------------------------------------- report
def _crop_box(reference: np.ndarray, size: int) -> tuple[int, int, int]:
    """The size x size window with the most detail (so artifacts are visible)."""
    size = min(size, *reference.shape)
    best, best_yx = -1.0, (0, 0)
    step = max(8, size // 4)
    for y in range(0, reference.shape[0] - size + 1, step):
        for x in range(0, reference.shape[1] - size + 1, step):
            v = float(reference[y : y + size, x : x + size].astype(np.float32).std())
            if v > best:
                best, best_yx = v, (y, x)
    return (*best_yx, size)


def side_by_side_png(crops: list, path: Path, size: int = 96, zoom: int = 3) -> None:
    """One row per setting: source / compressed / restored, enlarged without smoothing."""
    if not crops:
        return
    tile = size * zoom
    label_h = 16
    sheet = Image.new("L", (3 * tile + 4 * 4, len(crops) * (tile + label_h + 4) + 4), 255)
    draw = ImageDraw.Draw(sheet)
    for row, (title, reference, compressed, restored) in enumerate(crops):
        y, x, s = _crop_box(reference, size)
        top = 4 + row * (tile + label_h + 4)
        for col, (name, plane) in enumerate((("source", reference), ("compressed", compressed), ("restored", restored))):
            crop = Image.fromarray(np.ascontiguousarray(plane[y : y + s, x : x + s]).astype(np.uint8))
            left = 4 + col * (tile + 4)
            sheet.paste(crop.resize((s * zoom, s * zoom), Image.NEAREST), (left, top + label_h))
            draw.text((left, top + 2), f"{name}: {title}" if col == 0 else name, fill=0)
    sheet.save(path)


def _output_video(plan: dict | None) -> str:
    if not plan:
        return "-"
    if plan.get("mode") == "copy":
        return "copied"
    return " ".join([f"CRF {plan.get('crf')}", *(f"{k} {v}" for k, v in (plan.get("options") or {}).items())])


def markdown_table(results: dict) -> str:
    """One row per input and setting. "restored" is what a lossless output holds;
    "default output" is what a real run writes with the default encoder (videos)."""
    lines = ["| input | setting | n | compressed PSNR / SSIM / PSNR-B | restored PSNR / SSIM / PSNR-B | gain (dB) "
             "| default output PSNR / SSIM / PSNR-B | gain (dB) | output | restored frames |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for group, settings in results.items():
        for setting, r in settings.items():
            c, o, g = r["compressed"], r["restored"], r["gain"]
            d, dg = r.get("delivered"), r.get("delivered_gain")
            shown = (f"{d['psnr']:.2f} / {d['ssim']:.4f} / {d['psnr_b']:.2f} | {dg['psnr']:+.2f}" if d else "- | -")
            lines.append(f"| {group} | {setting} | {r['count']} | {c['psnr']:.2f} / {c['ssim']:.4f} / {c['psnr_b']:.2f} "
                         f"| {o['psnr']:.2f} / {o['ssim']:.4f} / {o['psnr_b']:.2f} | {g['psnr']:+.2f} | {shown} "
                         f"| {_output_video(r.get('output_video'))} | {r['restored_count']}/{r['count']} |")
    return "\n".join(lines) + "\n"


def evaluate(*, images: list[Path] = (), qualities: list[int] = (10,), videos: list[Path] = (),
             settings: list[VideoSetting] = (), out_dir: Path, restorer_options: dict | None = None,
             delivered_output: bool = True, log=print) -> dict:
    """Run the evaluation and write report.md, results.json and crops.png to out_dir.
    `delivered_output`: also measure a real run's default output for each video."""
    if not images and not videos:
        raise OptionError("nothing to evaluate: give --images FOLDER and/or --video SOURCE")
    if videos and not settings:
        raise OptionError("--video needs at least one --setting CODEC:CRF")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    crops: list = []
    started = time.time()
    options = dict(restorer_options or {})
    for folder in images:
        with Restorer(**options) as restorer:
            log(f"eval: {folder} at JPEG qualities {list(qualities)}")
            results[f"{Path(folder).name} (JPEG)"] = evaluate_images(restorer, Path(folder), list(qualities), crops)
    for source in videos:
        with Restorer(**options) as restorer:
            log(f"eval: {source} at {', '.join(map(str, settings))}")
            results[Path(source).name] = evaluate_video(restorer, Path(source), list(settings), crops,
                                                        options=None if not delivered_output else options)
    table = markdown_table(results)
    (out_dir / "report.md").write_text(
        f"# streamfix eval\n\nmodel: {options.get('model') or 'default for each input'}, "
        f"{time.time() - started:.0f} s\n\n{table}\n![crops](crops.png)\n")
    (out_dir / "results.json").write_text(json.dumps({"options": {k: str(v) for k, v in options.items()},
                                                      "results": results}, indent=2))
    side_by_side_png(crops, out_dir / "crops.png")
    log(table)
    return results
