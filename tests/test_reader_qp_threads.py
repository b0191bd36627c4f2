"""The QP map that conditions the model must be the same on every decode of a file."""

from __future__ import annotations

import threading

import av

import mediagen as mg
from streamfix.media.qp import EXPORT_QP_OPTIONS, frame_qp_map
from streamfix.media.reader import DecodedFrame, open_input


def _reader_qp_maps(path) -> list[bytes]:
    """QP maps as the pipeline reads them: the reader on a thread of its own."""
    found: list[bytes] = []

    def consume() -> None:
        with open_input(path) as reader:
            found.extend(item.qp_map.tobytes() for item in reader.items() if isinstance(item, DecodedFrame))

    thread = threading.Thread(target=consume)
    thread.start()
    thread.join()
    return found


def _single_threaded_qp_maps(path) -> list[bytes]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "NONE"
        stream.codec_context.options = {**stream.codec_context.options, **EXPORT_QP_OPTIONS}
        return [frame_qp_map(frame).tobytes() for packet in container.demux(stream) for frame in packet.decode()]


def _from_packet(source, target, first: int):
    """The video packets of `source` from decode position `first` on (a keyframe)."""
    with av.open(str(source)) as container, av.open(str(target), "w") as out:
        stream = container.streams.video[0]
        copy = out.add_stream_from_template(stream)
        for number, packet in enumerate(p for p in container.demux(stream) if p.size):
            if number >= first:
                packet.stream = copy
                out.mux(packet)
    return target


def test_every_decode_gives_each_frame_its_own_qp_map(tmp_path):
    """Bug: with frame threads, FFmpeg 8.1's H.264 decoder sometimes gave a frame the
    QP values of another (5 to 8 decodes in 20 of these clips, which start at an IDR
    inside a longer encode), so a frame could pass through unrestored on one run and
    be restored on the next, and a segmented run's pieces differed from the single
    pass. The reader now decodes H.264 with slice threads: 20 decodes of each clip
    must all match a single-threaded decode."""
    clip = mg.write_clip(tmp_path / "in.mkv", frames=48, start_s=0.5,
                         encoder_options={"crf": "40", "bf": "3", "g": "12"})
    for first in (24, 36):
        cut = _from_packet(clip.path, tmp_path / f"from{first}.mkv", first)
        reference = _single_threaded_qp_maps(cut)
        assert len(reference) == 48 - first
        differing = sum(_reader_qp_maps(cut) != reference for _ in range(20))
        assert differing == 0, f"from packet {first}: {differing} of 20 decodes gave other QP maps"
