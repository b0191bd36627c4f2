"""The aiortc adapter with aiortc's own media objects (no network): every frame comes
out once, in order, with its pts; inference runs off the event loop; late frames pass
through; a MediaPlayer's file is restored to its end."""

from __future__ import annotations

import asyncio
import fractions
import threading

import pytest

aiortc = pytest.importorskip("aiortc", reason="aiortc is an optional extra: pip install 'streamfix[webrtc]'")

from aiortc import VideoStreamTrack  # noqa: E402
from aiortc.contrib.media import MediaPlayer  # noqa: E402
from aiortc.mediastreams import MediaStreamError  # noqa: E402

import mediagen as mg  # noqa: E402
from streamfix.core.threads import WorkerError  # noqa: E402
from streamfix.serve.aiortc_track import RestoredVideoTrack  # noqa: E402
from streamfix.engines.select import engine_config  # noqa: E402
from streamfix.restore.restorer import Restorer  # noqa: E402


class PatternTrack(VideoStreamTrack):
    """aiortc's paced 30 fps video track, showing the moving test pattern."""

    def __init__(self, frames: int) -> None:
        super().__init__()
        self.left = frames
        self.sent: list[int] = []

    async def recv(self):
        if self.left == 0:
            self.stop()
            raise MediaStreamError
        self.left -= 1
        pts, time_base = await self.next_timestamp()
        frame = mg.make_frame(len(self.sent), 64, 48, "yuv420p", pts=pts, time_base=time_base)
        self.sent.append(pts)
        return frame


def torch_restorer() -> Restorer:
    return Restorer("video-x264-qp", engine="torch", device="cpu", batch=1,
                    engine_configs={"torch": engine_config("torch", {"threads": 1})}, log=lambda m: None)


async def drain(track) -> list:
    frames = []
    while True:
        try:
            frames.append(await track.recv())
        except MediaStreamError:
            return frames


def test_every_frame_comes_out_in_order_restored_off_the_event_loop():
    source = PatternTrack(frames=40)
    restorer = torch_restorer()
    threads: set[str] = set()
    restore_frames = restorer.restore_frames

    def spy(frames, strengths, **options):
        threads.add(threading.current_thread().name)
        return restore_frames(frames, strengths, **options)

    restorer.restore_frames = spy  # type: ignore[method-assign]
    track = RestoredVideoTrack(source, restorer, max_latency_ms=1000, assume_qp=40)
    frames = asyncio.run(drain(track))
    track.stop()
    restorer.close()

    assert [f.pts for f in frames] == source.sent and len(frames) == 40
    assert all(f.time_base == fractions.Fraction(1, 90000) for f in frames)
    stats = track.stats()
    assert stats["restored"] > 0 and stats["restored"] + stats["passed_through"] == 40
    assert threads and all(name.startswith("streamfix-webrtc") for name in threads)


def test_frames_that_cannot_make_their_deadline_pass_through_untouched():
    source = PatternTrack(frames=20)
    restorer = torch_restorer()
    track = RestoredVideoTrack(source, restorer, max_latency_ms=0.001, assume_qp=40)
    frames = asyncio.run(drain(track))
    track.stop()
    restorer.close()
    stats = track.stats()
    assert len(frames) == 20 and stats["restored"] == 0
    assert stats["late"] + stats["warming"] == 20 and stats["late"] > 0


def test_a_media_player_file_is_restored_to_its_end(tmp_path):
    clip = mg.write_clip(tmp_path / "call.mp4", frames=15, encoder_options={"crf": "40"})
    # What aiortc's player itself delivers (it does not drain its decoder at the end
    # of a file, so possibly a frame less than the file holds): the adapter must
    # pass on exactly that.
    direct = asyncio.run(drain(MediaPlayer(str(clip.path)).video))
    player = MediaPlayer(str(clip.path))
    restorer = torch_restorer()
    track = RestoredVideoTrack(player.video, restorer, max_latency_ms=1000, assume_qp=40)
    frames = asyncio.run(drain(track))
    track.stop()
    restorer.close()
    assert len(direct) >= 14 and [f.pts for f in frames] == [f.pts for f in direct]
    assert track.stats()["restored"] > 0


def test_a_restore_failure_is_raised_by_recv_naming_the_frame():
    # Frames pass through while the model warms up; 10 s of stream leaves it time.
    source = PatternTrack(frames=300)
    restorer = torch_restorer()

    def broken(frames, strengths):
        raise ZeroDivisionError("inside the model")

    restorer.restore_frames = broken  # type: ignore[method-assign]
    track = RestoredVideoTrack(source, restorer, max_latency_ms=60_000, assume_qp=40)
    with pytest.raises(WorkerError, match=r"stage 'restore' failed at frame \d+: ZeroDivisionError") as info:
        asyncio.run(drain(track))
    track.stop()
    restorer.close()
    assert info.value.index >= 1 and isinstance(info.value.__cause__, ZeroDivisionError)
