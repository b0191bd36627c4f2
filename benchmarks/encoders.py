"""H.264 from several encoders, restored with the defaults, against the source.

x264's QP statistics are one encoder's convention; a viewer's video may come from
another encoder. For each lossless source and each encoder at each quality level,
this encodes the clip, restores it exactly as `streamfix run` does (the QP map, the
clean-frame gate) and reports the luma PSNR gain with a lossless output ("model")
and with the default output of a real run ("delivered", output chosen by the plan).

Encoders:
- `x264`: libx264 medium at a CRF (PyAV): the encoder the model was trained on.
- `x264-hw`: libx264 set up like a hardware encoder (PyAV): constant QP, no adaptive
  quantization, no macroblock tree, no psychovisual tuning or trellis, B-frames at
  the P-frames' QP (what QSV/NVENC/VA-API do with a fixed QP per frame type).
- `openh264`: Cisco's OpenH264 through GStreamer's openh264enc (Debian's
  gstreamer1.0-plugins-bad), with its own bitrate rate control, as in video calls.
  The level is a bitrate in bits per pixel per frame.
- `minih264`: lieff's minih264 (the npm package h264-mp4-encoder, WebAssembly, run
  by Node.js) at a constant QP.

An encoder whose tool is missing is named and skipped.

    python benchmarks/encoders.py ../shared/data/video/BasketballPass_416x240_png \\
        ../shared/data/video/foreman_qcif_10f.y4m --frames 24 --out benchmarks/encoders.md

Set-up for the external encoders: `apt-get install gstreamer1.0-plugins-bad
gstreamer1.0-tools` and `npm install --prefix ~/.cache/streamfix-npm h264-mp4-encoder`
(or point --node-modules at any folder holding it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import av

from streamfix.media.crf_encode import HARDWARE_LIKE, RATE, encode_at_crf
from streamfix.engines.precision import cpu_description
from streamfix.media.planes import plane_to_array
from streamfix.quality.evaluate import evaluate_encoded, source_frames
from streamfix.restore.restorer import Restorer

HERE = Path(__file__).resolve().parent
LEVELS = {  # quality levels per encoder, from clean to very blocky
    "x264": (18, 26, 32, 36, 40, 44),  # CRF
    "x264-hw": (20, 26, 32, 36, 40, 44),  # QP
    "openh264": (1.0, 0.3, 0.12, 0.06, 0.03, 0.015),  # bits per pixel per frame
    "minih264": (20, 26, 32, 36, 40, 44),  # QP
}


def raw_i420(frames: list[av.VideoFrame], path: Path) -> None:
    with path.open("wb") as f:
        for frame in frames:
            f.write(frame.to_ndarray(format="yuv420p").tobytes())


def encode(encoder: str, level: float, frames: list[av.VideoFrame], path: Path, node_modules: Path) -> None:
    width, height = frames[0].width, frames[0].height
    if encoder == "x264":
        encode_at_crf(frames, path, codec="libx264", crf=int(level), preset="medium")
        return
    if encoder == "x264-hw":
        encode_at_crf(frames, path, codec=HARDWARE_LIKE, crf=int(level))
        return
    raw = path.with_suffix(".yuv")
    raw_i420(frames, raw)
    if encoder == "openh264":
        bitrate = int(level * width * height * RATE)
        cmd = ["gst-launch-1.0", "-q", "filesrc", f"location={raw}", "!", "rawvideoparse", f"width={width}",
               f"height={height}", "format=i420", f"framerate={RATE}/1", "!", "openh264enc",
               "rate-control=bitrate", f"bitrate={bitrate}", "complexity=high", "gop-size=250", "!",
               "h264parse", "!", "mp4mux", "!", "filesink", f"location={path}"]
        env = None
    elif encoder == "minih264":
        cmd = ["node", str(HERE / "minih264_encode.js"), str(raw), str(width), str(height), str(RATE),
               str(int(level)), "0", str(path)]
        env = {**os.environ, "NODE_PATH": str(node_modules)}
    else:
        raise ValueError(f"unknown encoder {encoder!r}")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode or not path.exists():
        raise RuntimeError(f"{encoder} failed: {(done.stderr or done.stdout).strip()[-300:]}")


def missing_tool(encoder: str, node_modules: Path) -> str | None:
    """Why `encoder` cannot run here, or None."""
    if encoder == "openh264":
        if not shutil.which("gst-launch-1.0"):
            return "gst-launch-1.0 not found (apt-get install gstreamer1.0-tools gstreamer1.0-plugins-bad)"
        inspect = subprocess.run(["gst-inspect-1.0", "openh264enc"], capture_output=True)
        if inspect.returncode:
            return "GStreamer has no openh264enc (apt-get install gstreamer1.0-plugins-bad)"
    if encoder == "minih264":
        if not shutil.which("node"):
            return "node not found"
        if not (node_modules / "h264-mp4-encoder").is_dir():
            return f"h264-mp4-encoder not in {node_modules} (npm install --prefix {node_modules.parent} h264-mp4-encoder)"
    return None


def level_text(encoder: str, level: float) -> str:
    return {"x264": f"CRF {level}", "openh264": f"{level} bpp"}.get(encoder, f"QP {level}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", type=Path)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--encoders", nargs="+", default=list(LEVELS), choices=list(LEVELS))
    parser.add_argument("--node-modules", type=Path,
                        default=Path.home() / ".cache" / "streamfix-npm" / "node_modules")
    parser.add_argument("--engine", default="onnxruntime")
    parser.add_argument("--out", type=Path, help="write the markdown report here (and the raw results beside it)")
    args = parser.parse_args()
    options = {"engine": args.engine}
    started = time.time()
    header = ("| source | encoder | level | mean QP | input PSNR | gain, lossless output | gain, default output "
              "| output | frames restored |\n|---|---|---|---|---|---|---|---|---|")
    lines, raw_results, skipped = [header], [], []
    print(header, flush=True)
    with Restorer(**options, log=lambda m: None) as restorer:
        for source in args.sources:
            frames = source_frames(source)[: args.frames]
            references = [plane_to_array(f, 0) for f in frames]
            for encoder in args.encoders:
                why = missing_tool(encoder, args.node_modules)
                if why:
                    skipped.append(f"{encoder}: {why}")
                    continue
                for level in LEVELS[encoder]:
                    with tempfile.TemporaryDirectory() as tmp:
                        path = Path(tmp) / "in.mp4"
                        encode(encoder, level, frames, path, args.node_modules)
                        r = evaluate_encoded(restorer, path, references, options=options)
                    plan = r["output_video"] or {}
                    out = "copied" if plan.get("mode") == "copy" else f"CRF {plan.get('crf')}"
                    qp = plan.get("mean_qp")
                    line = (f"| {source.name} | {encoder} | {level_text(encoder, level)} | "
                            f"{'-' if qp is None else f'{qp:.1f}'} | {r['compressed']['psnr']:.2f} | "
                            f"{r['gain']['psnr']:+.3f} | {r['delivered_gain']['psnr']:+.3f} | {out} | "
                            f"{r['restored_count']}/{r['count']} |")
                    lines.append(line)
                    print(line, flush=True)
                    raw_results.append({"source": source.name, "encoder": encoder, "level": level, **r})
    for s in sorted(set(skipped)):
        print(f"skipped {s}")
    if args.out:
        cpu = cpu_description()[0]
        args.out.write_text(
            "# H.264 from several encoders\n\n"
            f"Made by `python benchmarks/encoders.py {' '.join(map(str, args.sources))} --frames {args.frames}` "
            f"({time.time() - started:.0f} s, engine {args.engine}, {cpu}). Luma PSNR gain against the "
            "source, mean over the frames; \"lossless output\" is the restored frames, \"default output\" "
            "what `streamfix run` writes with its default output plan. Mean QP is the stream's own (first "
            "48 frames), as the output plan reads it.\n\n" + "\n".join(lines) + "\n"
            + "".join(f"\nSkipped: {s}\n" for s in sorted(set(skipped))))
        args.out.with_suffix(".json").write_text(json.dumps(raw_results, indent=1))


if __name__ == "__main__":
    main()
