"""The embedding API: Restorer.stream / FrameStream (order, back-pressure, errors on
the caller's side) and streamfix.run on open containers and file-like objects."""

from __future__ import annotations

import dataclasses
import io
import threading

import av
import numpy as np
import pytest

import mediagen as mg
import streamfix
from streamfix.engines.select import engine_config
from streamfix.serve.frame_stream import FrameStream, FrameStreamError
from streamfix.media.qp import EXPORT_QP_OPTIONS
from streamfix.restore.restorer import Restorer
from test_pipeline import BLOCKY, LOSSLESS


def torch_restorer(batch: int = 2) -> Restorer:
    return Restorer("video-x264-qp", engine="torch", device="cpu", batch=batch,
                    engine_configs={"torch": engine_config("torch", {"threads": 1})}, log=lambda m: None)


def decoded_frames(path) -> list[av.VideoFrame]:
    """Frames decoded the way an embedder would, with the QP map exported."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {**stream.codec_context.options, **EXPORT_QP_OPTIONS}
        return list(container.decode(stream))


def test_stream_restores_in_order_like_frame_by_frame(tmp_path):
    clip = mg.write_clip(tmp_path / "in.mp4", frames=9, encoder_options=BLOCKY)
    frames = decoded_frames(clip.path)
    with torch_restorer() as restorer:
        one_by_one = [restorer.restore(f, qp_map=streamfix_qp(f)) for f in frames]
        streamed = list(streamfix.restore_stream(restorer, iter(frames), max_pending=3))
    assert [f.pts for f in streamed] == [f.pts for f in frames]
    for a, b in zip(streamed, one_by_one):
        assert np.abs(a.to_ndarray().astype(int) - b.to_ndarray().astype(int)).max() <= 1
    assert restorer.restored > 0


def streamfix_qp(frame):
    from streamfix.media.qp import frame_qp_map

    return frame_qp_map(frame)


def test_put_blocks_once_max_pending_frames_are_inside():
    """Back-pressure: with nobody taking frames out, the producer stops at max_pending."""
    with torch_restorer() as restorer, FrameStream(restorer, max_pending=3) as stream:
        frames = [mg.make_frame(i, 32, 16, "yuv420p") for i in range(5)]
        put = []

        def produce():
            for frame in frames:
                stream.put(frame)
                put.append(frame)

        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        producer.join(timeout=1.0)
        assert producer.is_alive() and len(put) == 3  # blocked on the fourth
        got = [stream.get(timeout=30) for _ in range(5)]
        producer.join(timeout=30)
        assert [g.pts for g in got] == [f.pts for f in frames]


def test_a_worker_failure_is_raised_by_get_with_the_frame_index():
    class Failing(Restorer):
        def restore_frames(self, frames, strengths):
            raise ZeroDivisionError("inside the model")

    with Failing(log=lambda m: None) as restorer, FrameStream(restorer) as stream:
        stream.put(mg.make_frame(0, 32, 16, "yuv420p"))
        with pytest.raises(FrameStreamError, match="stage 'restore' failed at frame 0: ZeroDivisionError") as info:
            stream.get(timeout=30)
        assert info.value.index == 0 and isinstance(info.value.__cause__, ZeroDivisionError)


def test_frames_restored_before_a_failure_are_handed_out_before_it():
    class FailsOnThird(Restorer):
        def restore_frames(self, frames, strengths):
            if any(f.pts == 2 for f in frames):
                raise ZeroDivisionError("inside the model")
            return list(frames)

    with FailsOnThird(batch=1, log=lambda m: None) as restorer, FrameStream(restorer, max_pending=4) as stream:
        for i in range(3):
            stream.put(mg.make_frame(i, 32, 16, "yuv420p", pts=i))
        assert [stream.get(timeout=30).pts for _ in range(2)] == [0, 1]
        with pytest.raises(FrameStreamError, match="at frame 2: ZeroDivisionError"):
            stream.get(timeout=30)
        with pytest.raises(FrameStreamError):  # and again: the stream stays failed
            stream.put(mg.make_frame(3, 32, 16, "yuv420p"))


def test_a_closed_stream_refuses_frames_instead_of_blocking():
    with torch_restorer() as restorer:
        stream = FrameStream(restorer, max_pending=1)
        stream.close()
        with pytest.raises(RuntimeError, match="closed"):
            stream.put(mg.make_frame(0, 32, 16, "yuv420p"))
        with pytest.raises(RuntimeError, match="closed"):
            stream.get(timeout=30)


def test_an_error_in_the_callers_iterable_reaches_the_caller():
    def frames():
        yield mg.make_frame(0, 32, 16, "yuv420p")
        raise ValueError("the camera went away")

    with torch_restorer() as restorer, pytest.raises(ValueError, match="camera went away"):
        list(streamfix.restore_stream(restorer, frames()))


def test_run_reads_an_open_container_and_writes_a_file_like_object(tmp_path, cpu_config):
    clip = mg.write_clip(tmp_path / "in.mkv", frames=6, encoder_options=BLOCKY)
    config = dataclasses.replace(cpu_config, encode=LOSSLESS)
    sink = io.BytesIO()
    with av.open(str(clip.path)) as container:
        result = streamfix.run(container, sink, config, output={"format": "matroska"})
        container.seek(0)  # still open: the container is the caller's to close
        assert next(container.decode(video=0)).width == clip.width
    assert result.frames_out == 6 and result.restored > 0
    sink.seek(0)
    with av.open(sink, format="matroska") as back:
        assert len(list(back.decode(video=0))) == 6


def test_run_options_reach_the_sections(tmp_path, cpu_config):
    clip = mg.write_clip(tmp_path / "in.mkv", frames=4, encoder_options=BLOCKY)
    result = streamfix.run(clip.path, tmp_path / "out.mkv", dataclasses.replace(cpu_config, encode=LOSSLESS),
                           live={"mode": "on", "max_latency_ms": 60_000})
    assert result.live and result.frames_out == 4 and result.restored + result.passed_through == 4


def test_pipeline_metrics_snapshot_counts_a_run(tmp_path, cpu_config):
    clip = mg.write_clip(tmp_path / "in.mkv", frames=5, encoder_options=BLOCKY)
    pipeline = streamfix.Pipeline(clip.path, tmp_path / "out.mkv", dataclasses.replace(cpu_config, encode=LOSSLESS),
                                  quiet=True, name="cam-7")
    before = pipeline.metrics.snapshot()
    assert before["frames_in"] == 0 and before["running"] is False
    result = pipeline.run()
    after = pipeline.metrics.snapshot()
    assert after["stream"] == "cam-7" and after["frames_in"] == after["frames_out"] == 5
    assert after["restored"] + after["passed_through"] == 5 == result.restored + result.passed_through
    assert set(after["queue_depth"]) == {"decoded", "batches", "processed"}
    assert {"decode", "restore", "encode"} <= set(after["stage_seconds"])
    assert after["engine"] == "torch" and after["latency_s"]["max"] >= after["latency_s"]["mean"] > 0
