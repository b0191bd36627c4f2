"""Make samples/sample.mp4: a 3-second, 320x240, low-bitrate H.264 clip with AAC audio.

The picture is scikit-image's `coffee` photograph (CC0, Rachel Michetti, courtesy of
Pikolo Espresso Bar), slowly panned and zoomed so the encoder has motion to code.
x264 at CRF 40 gives the blocking and ringing streamfix removes. The audio is a
quiet 220 Hz tone with a short 880 Hz beep at 0.5, 1.5 and 2.5 s; a white square
appears in the top-left corner for the same frames, so audio/video sync is easy to
check by eye and ear after a run.

scikit-image is needed only to run this script (`pip install scikit-image`), not by
streamfix; the clip it writes is committed. The RGB -> YUV conversion goes through
streamfix's `reformat` (one swscale thread: FFmpeg's threaded swscale was not
deterministic), so run it with streamfix installed, from the repository root:

    python samples/make_sample.py
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image
from skimage import data

from streamfix.media.planes import reformat

WIDTH, HEIGHT, FPS, SECONDS = 320, 240, 25, 3
CRF = 40
AUDIO_RATE = 48000
BEEPS_S = (0.5, 1.5, 2.5)
BEEP_LENGTH_S = 0.12
OUT = Path(__file__).with_name("sample.mp4")


def picture(index: int, source: Image.Image) -> np.ndarray:
    """Frame `index`: a crop of the photo that drifts right and zooms in slowly."""
    t = index / (FPS * SECONDS)
    crop_w = 520 - 120 * t  # 520 -> 400 px wide, 4:3
    crop_h = crop_w * 3 / 4
    left = 10 + 60 * t
    top = (source.height - crop_h) / 2
    frame = source.resize((WIDTH, HEIGHT), Image.Resampling.LANCZOS,
                          box=(left, top, left + crop_w, top + crop_h))
    pixels = np.array(frame)
    if any(abs(index / FPS - beep) < BEEP_LENGTH_S / 2 for beep in BEEPS_S):
        pixels[8:40, 8:40] = 255  # the sync marker
    return pixels


def tone(start: int, count: int) -> np.ndarray:
    """Samples [start, start + count) of the soundtrack, mono float32."""
    t = (start + np.arange(count)) / AUDIO_RATE
    signal = 0.05 * np.sin(2 * np.pi * 220 * t)
    for beep in BEEPS_S:
        on = np.abs(t - beep) < BEEP_LENGTH_S / 2
        signal[on] += 0.3 * np.sin(2 * np.pi * 880 * t[on])
    return signal.astype(np.float32)


def main() -> None:
    source = Image.fromarray(data.coffee())
    with av.open(str(OUT), "w") as out:
        video = out.add_stream("libx264", rate=FPS, options={"crf": str(CRF), "preset": "medium"})
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        # BT.601 tags: what x264 assumes for SD, written down so players agree.
        ctx = video.codec_context
        ctx.color_range, ctx.color_primaries, ctx.color_trc, ctx.colorspace = 1, 6, 6, 6
        audio = out.add_stream("aac", rate=AUDIO_RATE)
        audio.layout = "mono"

        for index in range(FPS * SECONDS):
            frame = av.VideoFrame.from_ndarray(picture(index, source), format="rgb24")
            frame = reformat(frame, format="yuv420p", dst_colorspace=av.video.reformatter.Colorspace.ITU601)
            frame.pts, frame.time_base = index, Fraction(1, FPS)
            frame.color_range, frame.color_primaries, frame.color_trc, frame.colorspace = 1, 6, 6, 6
            out.mux(video.encode(frame))
        out.mux(video.encode(None))

        size = 1024  # AAC frame
        for start in range(0, AUDIO_RATE * SECONDS, size):
            samples = tone(start, size)[np.newaxis, :]
            chunk = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts, chunk.time_base = AUDIO_RATE, start, Fraction(1, AUDIO_RATE)
            out.mux(audio.encode(chunk))
        out.mux(audio.encode(None))
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
