"""The writers (open_output): config, early refusals, the partial file, finish/abort, stream copy rules."""

from __future__ import annotations

import av
import pytest

import mediagen as mg
from streamfix.core.yaml_config import ConfigError, from_dict
from streamfix.core.errors import OptionError, OutputError
from streamfix.media.reader import DecodedFrame, InputReader, open_input
from streamfix.media.writer import (EncodeConfig, OutputWriter, check_writable, choose_pix_fmt, open_output,
                                    parse_bitrate, partial_path)

FAST = EncodeConfig(preset="ultrafast")


def quiet(line: str) -> None:
    pass


def copy_frames(reader: InputReader, writer: OutputWriter, limit: int | None = None) -> None:
    for item in reader.items():
        if isinstance(item, DecodedFrame):
            if limit is not None and item.index >= limit:
                break
            writer.write_frame(item.frame)
        else:
            writer.write_packet(item)


# --- config ------------------------------------------------------------------------


def test_config_defaults_are_x264_with_the_quality_taken_from_the_input():
    """CRF "auto": the output plan (pipeline/output_plan.py) picks it from the input's
    quantizer; FALLBACK_CRF is what an input without one gets."""
    from streamfix.media.encoding import FALLBACK_CRF

    config = EncodeConfig()
    assert (config.codec, config.crf, config.preset, config.pix_fmt) == ("libx264", "auto", "medium", None)
    assert FALLBACK_CRF == 16


def test_config_loads_strictly_from_yaml_data():
    config = from_dict(EncodeConfig, {"codec": "ffv1", "crf": None, "options": {"slices": "4"}}, "encode")
    assert config.codec == "ffv1" and config.crf is None and config.options == {"slices": "4"}
    with pytest.raises(ConfigError, match="'crff'"):
        from_dict(EncodeConfig, {"crff": 18}, "encode")


@pytest.mark.parametrize("bad", [{"crf": 99}, {"bitrate": "fast"}, {"bitrate": "-3M"}, {"pix_fmt": "yuv999p"}])
def test_config_refuses_bad_values(bad):
    with pytest.raises(OptionError):
        EncodeConfig(**bad)


def test_parse_bitrate():
    assert parse_bitrate("4M") == 4_000_000
    assert parse_bitrate("800k") == 800_000
    assert parse_bitrate("1500000") == 1_500_000


# --- refusing unwritable targets early ----------------------------------------------


def test_check_writable_refusals(tmp_path):
    clip = mg.write_clip(tmp_path / "in.mp4")
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    cases = {
        tmp_path / "missing" / "out.mp4": "does not exist",
        a_file / "out.mp4": "not a directory",
        tmp_path: "is a directory",
        clip.path: "is the input file itself",
        tmp_path / "out.xyz": "cannot tell the output format",
    }
    for target, message in cases.items():
        with pytest.raises(OutputError, match=message):
            check_writable(target, clip.path)
    assert check_writable(tmp_path / "out.mkv", clip.path) == tmp_path / "out.mkv"
    assert check_writable(tmp_path / "out.png", clip.path) == tmp_path / "out.png"
    assert check_writable(tmp_path / "out.bin", container_format="matroska") == tmp_path / "out.bin"


def test_unknown_container_format_is_refused(tmp_path):
    with pytest.raises(OutputError, match="unknown container format"):
        check_writable(tmp_path / "out.bin", container_format="not-a-format")


def test_bad_encoder_fails_before_any_frame_and_leaves_nothing(tmp_path):
    clip = mg.write_clip(tmp_path / "in.mp4")
    with open_input(clip.path) as reader:
        with pytest.raises(OutputError, match="encoder"):
            open_output(tmp_path / "out.mp4", reader.video, [], EncodeConfig(codec="no-such-codec"), log=quiet)
        with pytest.raises(OutputError, match="cannot start"):
            open_output(tmp_path / "out.mp4", reader.video, [],
                        EncodeConfig(options={"profile": "no-such-profile"}), log=quiet)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


# --- the partial file ------------------------------------------------------------


def test_partial_name():
    assert partial_path("/x/movie.mp4").name == "movie.partial.mp4"


def test_output_is_partial_until_finish(tmp_path):
    clip = mg.write_clip(tmp_path / "in.mp4", frames=6)
    target = tmp_path / "out.mp4"
    with open_input(clip.path) as reader:
        writer = open_output(target, reader.video, reader.copy_streams, FAST, log=quiet)
        copy_frames(reader, writer)
        assert partial_path(target).exists() and not target.exists()
        assert writer.finish() == target
    assert target.exists() and not partial_path(target).exists()
    assert writer.frames_written == 6 and len(mg.probe(target).frame_pts) == 6


def test_abort_leaves_a_playable_partial_file(tmp_path):
    clip = mg.write_clip(tmp_path / "in.mkv", frames=12)
    target = tmp_path / "out.mkv"
    with open_input(clip.path) as reader:
        writer = open_output(target, reader.video, reader.copy_streams, FAST, log=quiet)
        copy_frames(reader, writer, limit=5)
        left = writer.abort()
    assert left == partial_path(target) and not target.exists()
    assert len(mg.probe(left).frame_pts) == 5


def test_error_inside_with_block_aborts(tmp_path):
    clip = mg.h264_with_audio_and_subtitles(tmp_path / "in.mp4")
    target = tmp_path / "out.mp4"
    with open_input(clip.path) as reader:
        with pytest.raises(RuntimeError, match="restore failed"):
            with open_output(target, reader.video, reader.copy_streams, FAST, log=quiet) as writer:
                for item in reader.items():
                    if isinstance(item, DecodedFrame):
                        if item.index == 4:
                            raise RuntimeError("restore failed")
                        writer.write_frame(item.frame)
                    else:
                        writer.write_packet(item)
    assert not target.exists()
    assert len(mg.probe(partial_path(target)).frame_pts) == 4


def test_leaving_with_block_normally_finishes(tmp_path):
    clip = mg.write_clip(tmp_path / "in.mp4", frames=3)
    with open_input(clip.path) as reader:
        with open_output(tmp_path / "out.mp4", reader.video, [], FAST, log=quiet) as writer:
            copy_frames(reader, writer)
    assert (tmp_path / "out.mp4").exists()


def test_finish_without_frames_is_an_error(tmp_path):
    clip = mg.write_clip(tmp_path / "in.mp4", frames=3)
    with open_input(clip.path) as reader:
        writer = open_output(tmp_path / "out.mp4", reader.video, [], FAST, log=quiet)
        with pytest.raises(OutputError, match="no frame was written"):
            writer.finish()
    assert not (tmp_path / "out.mp4").exists()


# --- frames the writer refuses ----------------------------------------------------


def test_frames_must_match_size_and_carry_increasing_pts(tmp_path):
    clip = mg.write_clip(tmp_path / "in.mp4", frames=3)
    with open_input(clip.path) as reader:
        writer = open_output(tmp_path / "out.mp4", reader.video, [], FAST, log=quiet)
        with pytest.raises(ValueError, match="80x48"):
            writer.write_frame(mg.make_frame(0, 80, 48, "yuv420p"))
        bare = av.VideoFrame(64, 48, "yuv420p")
        with pytest.raises(ValueError, match="no pts"):
            writer.write_frame(bare)
        first = next(i.frame for i in reader.items())
        writer.write_frame(first)
        with pytest.raises(ValueError, match="not after"):
            writer.write_frame(first)
        writer.abort()


# --- encoder settings --------------------------------------------------------------


def test_crf_and_bitrate_reach_the_encoder(tmp_path):
    clip = mg.write_clip(tmp_path / "in.mkv", codec="ffv1", width=128, height=96, frames=8)
    sizes = {}
    for name, config in {"crf10": EncodeConfig(crf=10, preset="ultrafast"),
                         "crf45": EncodeConfig(crf=45, preset="ultrafast"),
                         "100k": EncodeConfig(bitrate="100k", preset="ultrafast")}.items():
        target = tmp_path / f"{name}.mp4"
        with open_input(clip.path) as reader, open_output(target, reader.video, [], config, log=quiet) as w:
            copy_frames(reader, w)
        sizes[name] = target.stat().st_size
    assert sizes["crf10"] > 2 * sizes["crf45"]
    assert sizes["100k"] != sizes["crf10"] and sizes["100k"] != sizes["crf45"]


def test_codecs_without_crf_get_no_crf(tmp_path):
    """FFV1 and MPEG-4 have no crf option; the default crf must not break them."""
    clip = mg.write_clip(tmp_path / "in.mp4", frames=3)
    for codec, suffix in (("ffv1", ".mkv"), ("mpeg4", ".avi")):
        target = tmp_path / f"out{suffix}"
        with open_input(clip.path) as reader, \
                open_output(target, reader.video, [], EncodeConfig(codec=codec), log=quiet) as w:
            copy_frames(reader, w)
        assert mg.probe(target).stream("video").codec == codec


def test_pix_fmt_override_and_fallback(tmp_path):
    clip = mg.ten_bit(tmp_path / "in.mp4", frames=3)
    notes = []
    with open_input(clip.path) as reader, open_output(
            tmp_path / "eight.mp4", reader.video, [], EncodeConfig(pix_fmt="yuv420p", preset="ultrafast"),
            log=notes.append) as w:
        copy_frames(reader, w)
    assert mg.probe(tmp_path / "eight.mp4").pix_fmt == "yuv420p" and not notes
    with open_input(clip.path) as reader, open_output(
            tmp_path / "mpeg4.avi", reader.video, [], EncodeConfig(codec="mpeg4"), log=notes.append) as w:
        copy_frames(reader, w)
    assert mg.probe(tmp_path / "mpeg4.avi").pix_fmt == "yuv420p"
    assert notes and "yuv420p10le" in notes[0]


@pytest.mark.parametrize("codec, wanted, size, expected", [
    ("libx264", "yuv420p", (64, 48), "yuv420p"),
    ("libx264", "yuv420p10le", (64, 48), "yuv420p10le"),
    ("libx264", "yuv420p", (65, 49), "yuv444p"),
    ("libx264", "yuv420p10le", (64, 49), "yuv444p10le"),
    ("libx264", "rgb24", (64, 48), "yuv444p"),
    ("ffv1", "yuv420p", (65, 49), "yuv420p"),
    ("mpeg4", "yuv420p10le", (64, 48), "yuv420p"),
])
def test_choose_pix_fmt(codec, wanted, size, expected):
    assert choose_pix_fmt(codec, wanted, *size) == expected


# --- streams the output container cannot hold ----------------------------------------


def test_uncopyable_stream_is_refused_up_front(tmp_path):
    clip = mg.h264_with_audio_and_subtitles(tmp_path / "in.mp4")
    with open_input(clip.path) as reader:
        with pytest.raises(OutputError, match="subtitle stream #2 \\(mov_text\\).*matroska"):
            open_output(tmp_path / "out.mkv", reader.video, reader.copy_streams, FAST, log=quiet)
        with pytest.raises(OutputError, match="mov_text.*mpegts"):
            open_output(tmp_path / "out.ts", reader.video, reader.copy_streams, FAST, log=quiet)
    assert not list(tmp_path.glob("out*"))


def test_uncopyable_stream_dropped_when_allowed_and_said(tmp_path):
    clip = mg.h264_with_audio_and_subtitles(tmp_path / "in.mp4")
    notes = []
    config = EncodeConfig(preset="ultrafast", drop_uncopyable=True)
    with open_input(clip.path) as reader:
        with open_output(tmp_path / "out.mkv", reader.video, reader.copy_streams, config, log=notes.append) as w:
            copy_frames(reader, w)
    assert any("mov_text" in n and "dropped" in n for n in notes)
    dst = mg.probe(tmp_path / "out.mkv")
    assert sorted(s.type for s in dst.streams) == ["audio", "video"]
    assert dst.stream("audio").packet_bytes == mg.probe(clip.path).stream("audio").packet_bytes


def test_writer_refuses_to_overwrite_its_input(tmp_path):
    clip = mg.write_clip(tmp_path / "in.mp4", frames=3)
    before = clip.path.read_bytes()
    with open_input(clip.path) as reader:
        with pytest.raises(OutputError, match="is the input file itself"):
            open_output(clip.path, reader.video, [], FAST, source=clip.path, log=quiet)
    assert clip.path.read_bytes() == before


def test_yaml_option_values_become_strings(tmp_path):
    clip = mg.write_clip(tmp_path / "in.mp4", frames=3)
    config = from_dict(EncodeConfig, {"codec": "ffv1", "crf": None, "options": {"slices": 4}}, "encode")
    with open_input(clip.path) as reader, open_output(tmp_path / "out.mkv", reader.video, [], config, log=quiet) as w:
        copy_frames(reader, w)
    assert len(mg.probe(tmp_path / "out.mkv").frame_pts) == 3


def test_source_frame_types_do_not_force_the_output_gop(tmp_path):
    """Decoded frames remember I/P/B; x264 would obey them and copy the source's GOP."""
    clip = mg.write_clip(tmp_path / "in.mkv", frames=12, encoder_options={"g": "3", "bf": "0"})
    with open_input(clip.path) as reader, open_output(tmp_path / "out.mkv", reader.video, [], FAST, log=quiet) as w:
        copy_frames(reader, w)
    keyframes = []
    for path in (clip.path, tmp_path / "out.mkv"):
        with av.open(str(path)) as container:
            keyframes.append(sum(p.is_keyframe for p in container.demux(video=0) if p.size))
    assert keyframes == [4, 1]


def test_directory_without_write_permission_is_refused(tmp_path, monkeypatch):
    """Tests run as root here, where chmod cannot take the right away; ask os.access."""
    import os

    real_access = os.access
    locked = tmp_path / "locked"
    locked.mkdir()
    monkeypatch.setattr(os, "access", lambda path, mode: False if str(path) == str(locked) else real_access(path, mode))
    with pytest.raises(OutputError, match="no permission to write"):
        check_writable(locked / "out.mp4")
