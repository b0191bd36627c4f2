"""Damage does not end the run: decoding goes on past what cannot be decoded, the way
FFmpeg does, and the user hears what it cost (a warning line and --stats)."""

from __future__ import annotations

from pathlib import Path

import hostile_media as hm
import mediagen as mg
from clirun import run_cli, warnings_about
from streamfix.media.reader import DecodedFrame, open_input


def test_damaged_mp4_decodes_on(tmp_path, capsys):
    """One damaged packet in an MP4 stopped the run after 8 of 50 frames ("corrupt from
    there on", exit 2) while FFmpeg conceals it and decodes the rest."""
    source = hm.damaged_mp4(tmp_path / "in.mp4", frames=50, damaged=(25,))
    code, err, stats = run_cli([source, tmp_path / "out.mkv"], capsys, tmp_path)
    assert code == 0, err
    assert 40 <= stats["frames_out"] < 50 and stats["damaged_packets"] == 50 - stats["frames_out"]
    assert len(warnings_about(err, "is damaged")) == 1
    assert not warnings_about(err, "truncated"), "damage read past is not a cut file"
    assert len(mg.probe(tmp_path / "out.mkv").frame_pts) == stats["frames_out"]


def test_damaged_ts_decodes_on_from_the_next_keyframe(tmp_path, capsys):
    """A TS whose first keyframe is damaged failed to open (no frame before the first
    decoding error); from the next keyframe on, everything decodes."""
    source = hm.ts_with_damaged_start(tmp_path / "in.ts", frames=50)
    code, err, stats = run_cli([source, tmp_path / "out.mkv"], capsys, tmp_path)
    assert code == 0, err
    assert stats["frames_out"] == 40 and stats["damaged_packets"] == 10
    assert len(warnings_about(err, "is damaged")) == 1
    out = mg.probe(tmp_path / "out.mkv")
    assert len(out.frame_pts) == 40 and out.stream("audio").packet_sizes  # the audio is all there


def test_several_damaged_places_are_all_read_past(tmp_path):
    source = hm.damaged_mp4(tmp_path / "in.mp4", frames=50, damaged=(5, 25, 45))
    with open_input(source, log=lambda line: None) as reader:
        frames = [item for item in reader.items() if isinstance(item, DecodedFrame)]
        report = reader.report
    assert 20 <= len(frames) < 50
    assert [f.index for f in frames] == list(range(len(frames)))
    assert report.failed_packets >= 3 and report.lost_frames == 50 - len(frames)
    times = [f.frame.pts for f in frames]
    assert times == sorted(times) and len(set(times)) == len(times)


def test_undecodable_video_is_one_line(tmp_path, capsys):
    """With every video packet damaged there is nothing to restore: one clear line."""
    clip = mg.write_clip(tmp_path / "clean.mkv", frames=12, codec="ffv1")
    data = bytearray(clip.path.read_bytes())
    for pos, size, _ in hm.video_packet_places(clip.path):
        data[pos:pos + size] = bytes(size)
    broken = tmp_path / "broken.mkv"
    broken.write_bytes(bytes(data))
    code, err, _ = run_cli([broken, tmp_path / "out.mkv"], capsys, tmp_path, stats=False)
    assert code == 2 and len(err) == 1 and "no decodable video frame" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["clean.mkv", "broken.mkv", "cpu.yaml"])


def test_a_clean_input_reports_no_damage(tmp_path, capsys):
    clip = mg.h264_with_audio_and_subtitles(tmp_path / "in.mkv", frames=12)
    code, err, stats = run_cli([clip.path, tmp_path / "out.mkv"], capsys, tmp_path)
    assert code == 0, err
    assert not [line for line in err if "warning" in line], err
    assert (stats["damaged_packets"], stats["concealed"], stats["read_errors"], stats["timestamp_jumps"],
            stats["timestamps_fixed"]) == (0, 0, 0, 0, 0)


def test_packets_without_a_decoder_are_one_line(tmp_path, capsys):
    """A video stream whose codec this FFmpeg cannot decode is named, not a traceback."""
    clip = mg.write_clip(tmp_path / "in.mkv", frames=4)
    data = bytearray(Path(clip.path).read_bytes())
    # Matroska names the codec in text: V_MPEG4/ISO/AVC -> an ID no decoder has.
    at = data.index(b"V_MPEG4/ISO/AVC")
    data[at:at + 15] = b"V_NO_SUCH_CODEC"
    broken = tmp_path / "nodecoder.mkv"
    broken.write_bytes(bytes(data))
    code, err, _ = run_cli([broken, tmp_path / "out.mkv"], capsys, tmp_path, stats=False)
    assert code == 2 and len(err) == 1 and "cannot be decoded" in err[0], err
