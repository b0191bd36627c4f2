"""Segmented runs write what a single pass writes: same frames, timestamps, restored
pixels (bit for bit with FFV1), audio and subtitle packets, colour and container
metadata; and they cut only where a decoder can start."""

from __future__ import annotations

import dataclasses

import av

import mediagen as mg
from segtools import lossless  # noqa: F401 - a fixture
from segtools import BLOCKY_GOPS, InProcess, assert_same_output, segmented, single_pass
from streamfix.fleet.jobs import run_in_pieces
from streamfix.segments.job import SegmentedFile, restore_in_pieces



def test_two_workers_write_exactly_what_a_single_pass_writes(tmp_path, lossless):
    """B-frames, a late start, AAC audio and text subtitles; four pieces on two local
    worker processes."""
    clip = mg.h264_with_audio_and_subtitles(tmp_path / "in.mkv", frames=48, encoder_options=BLOCKY_GOPS)
    result = run_in_pieces(clip.path, tmp_path / "pieces.mkv", segmented(lossless, workers=2), log=lambda m: None)
    single = single_pass(clip.path, tmp_path / "single.mkv", lossless)

    assert (result.pieces, result.workers, result.reused) == (4, 2, 0)
    assert result.frames_out == single.frames_out == 48
    assert result.restored == single.restored > 40
    assert_same_output(tmp_path / "pieces.mkv", tmp_path / "single.mkv")
    assert not (tmp_path / "pieces.mkv.pieces").exists(), "the work folder is removed after the join"


def test_variable_frame_rate_mp4_with_audio(tmp_path, lossless):
    """Irregular frame spacing and an MP4 input (its own time base, edit lists for the
    B-frame delay); a keyframe every 3 frames."""
    clip = mg.variable_frame_rate(tmp_path / "in.mp4", audio=True,
                                  encoder_options={**BLOCKY_GOPS, "g": "3", "keyint_min": "3"})
    result = restore_in_pieces(clip.path, tmp_path / "pieces.mkv", segmented(lossless, 0.15), InProcess(),
                               log=lambda m: None)
    single_pass(clip.path, tmp_path / "single.mkv", lossless)
    assert result.pieces >= 3
    assert_same_output(tmp_path / "pieces.mkv", tmp_path / "single.mkv")


def test_lossy_x264_pieces_join_into_a_valid_stream(tmp_path, cpu_config):
    """The default encoder (x264, B-frames) restarts its GOP at each cut, so pixels are
    not bit-exact; frames, timestamps, audio and the header still are, and decode
    timestamps increase across the cuts (the muxer would refuse them otherwise)."""
    clip = mg.h264_bframes_late_start(tmp_path / "in.mp4", frames=48, audio=True, encoder_options=BLOCKY_GOPS)
    config = dataclasses.replace(cpu_config, encode=dataclasses.replace(cpu_config.encode, preset="veryfast"))
    restore_in_pieces(clip.path, tmp_path / "pieces.mp4", segmented(config), InProcess(), log=lambda m: None)
    single_pass(clip.path, tmp_path / "single.mp4", config)
    assert_same_output(tmp_path / "pieces.mp4", tmp_path / "single.mp4", exact_luma=False)
    seg = mg.probe(tmp_path / "pieces.mp4", keep_luma=True)
    one = mg.probe(tmp_path / "single.mp4", keep_luma=True)
    worst = max(float(abs(a.astype(int) - b.astype(int)).mean()) for a, b in zip(seg.luma, one.luma))
    assert worst < 3.0, "pieces encoded at the same CRF look like the single pass"


def test_a_file_with_one_keyframe_is_one_piece(tmp_path, lossless):
    clip = mg.write_clip(tmp_path / "in.mkv", frames=24, encoder_options={"crf": "40", "g": "100"})
    executor, lines = InProcess(), []
    result = restore_in_pieces(clip.path, tmp_path / "out.mkv", segmented(lossless, 0.2), executor,
                               log=lines.append)
    single_pass(clip.path, tmp_path / "single.mkv", lossless)
    assert result.pieces == 1 and len(executor.ran) == 1
    assert any("one piece" in line for line in lines)
    assert_same_output(tmp_path / "out.mkv", tmp_path / "single.mkv")


def test_the_output_plan_is_made_once_for_the_whole_input(tmp_path, cpu_config):
    """Default encoder (CRF "auto"): a clean input is copied whole, as a single pass
    copies it, instead of each piece deciding for itself; a blocky one is cut and every
    piece is encoded at the one CRF the whole input's quantizer gives."""
    clean = mg.write_clip(tmp_path / "clean.mkv", frames=24, encoder_options={"crf": "12", "g": "6"})
    executor = InProcess()
    restore_in_pieces(clean.path, tmp_path / "clean-out.mkv", segmented(cpu_config, 0.1), executor,
                      log=lambda m: None)
    assert len(executor.ran) == 1, "nothing to restore: one task, copied"
    with av.open(str(clean.path)) as a, av.open(str(tmp_path / "clean-out.mkv")) as b:
        original = [bytes(p) for p in a.demux(a.streams.video[0]) if p.size]
        copied = [bytes(p) for p in b.demux(b.streams.video[0]) if p.size]
    assert copied == original

    blocky = mg.write_clip(tmp_path / "blocky.mkv", frames=24, encoder_options=BLOCKY_GOPS)
    job = SegmentedFile(blocky.path, tmp_path / "blocky-out.mkv", segmented(cpu_config, 0.2), log=lambda m: None)
    assert len(job.plan()) > 1
    assert isinstance(job.config.encode.crf, int), "pieces get the whole input's CRF, not 'auto'"
    assert all(task.config.encode.crf == job.config.encode.crf for task in job.tasks())
    job.close()
