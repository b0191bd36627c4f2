"""Restore video inside your own PyAV decode/encode loop, with inference on a worker
thread (streamfix.restore_stream) so decoding, restoring and encoding overlap.

    python examples/restore_in_decode_loop.py in.mp4 out.mkv

Audio is left out to keep the example short; `streamfix.run()` copies it for you.
The decoder is asked for its QP map (EXPORT_QP_OPTIONS): the video model reads how
strongly each macroblock was compressed from it, and leaves frames without one alone.
"""

from __future__ import annotations

import sys

import av

import streamfix
from streamfix.media.qp import EXPORT_QP_OPTIONS


def main(source: str, target: str) -> None:
    with av.open(source) as inp, av.open(target, "w") as out, streamfix.Restorer("video-x264-qp") as restorer:
        video = inp.streams.video[0]
        video.thread_type = "AUTO"
        video.codec_context.options = {**video.codec_context.options, **EXPORT_QP_OPTIONS}
        encoder = out.add_stream("libx264", rate=video.average_rate or 25, options={"crf": "16"})
        encoder.width, encoder.height, encoder.pix_fmt = video.width, video.height, "yuv420p"
        encoder.time_base = video.time_base
        # At most 8 frames inside the restorer at once: decoding waits when it is ahead.
        for frame in streamfix.restore_stream(restorer, inp.decode(video), max_pending=8):
            frame.pict_type = av.video.frame.PictureType.NONE  # let the encoder choose
            out.mux(encoder.encode(frame))
        out.mux(encoder.encode(None))
        print(f"{restorer.restored} frames restored, {restorer.passed_through} left as they were", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    main(sys.argv[1], sys.argv[2])
