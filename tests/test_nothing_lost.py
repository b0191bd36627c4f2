"""Nothing the input holds is lost without a word: it is carried to the output, or one
line says what is dropped or converted and how to keep it."""

from __future__ import annotations

import av

import hostile_media as hm
import mediagen as mg
from clirun import run_cli, warnings_about


def test_raw_mjpeg_stream_is_video(tmp_path, capsys):
    """A raw MJPEG stream (JPEG images back to back, as IP cameras send) was read as one
    still picture: 1 frame of 30, exit 0, no warning."""
    source = hm.mjpeg_stream(tmp_path / "camera.mjpeg", frames=30)
    code, err, stats = run_cli([source, tmp_path / "out.mkv"], capsys, tmp_path)
    assert code == 0, err
    assert stats["frames_out"] == 30
    assert len(mg.probe(tmp_path / "out.mkv").frame_pts) == 30


def test_a_photo_with_a_thumbnail_is_still_one_picture(tmp_path):
    """The MJPEG check must not mistake an EXIF-style embedded thumbnail for a second
    frame: a JPEG inside a segment of the first image does not count."""
    from streamfix.media.jpeg_stream import holds_several_images

    photo = mg.jpeg_still(tmp_path / "photo.jpg", quality=80, width=160, height=120)
    thumb = mg.jpeg_still(tmp_path / "thumb.jpg", quality=80).read_bytes()
    data = photo.read_bytes()
    comment = b"\xff\xfe" + (len(thumb) + 2).to_bytes(2, "big") + thumb
    with_thumb = tmp_path / "with-thumb.jpg"
    with_thumb.write_bytes(data[:2] + comment + data[2:])
    assert not holds_several_images(photo) and not holds_several_images(with_thumb)
    assert holds_several_images(hm.mjpeg_stream(tmp_path / "cam.mjpeg", frames=2))


def test_a_second_video_stream_is_copied_and_named(tmp_path, capsys):
    """A second video stream was dropped without a word."""
    source = hm.two_video_streams(tmp_path / "in.mkv", frames=12)
    code, err, stats = run_cli([source, tmp_path / "out.mkv"], capsys, tmp_path)
    assert code == 0, err
    assert any("only video #0 is restored; video #1 (h264 32x24) is copied unchanged" in line for line in err), err
    with av.open(str(tmp_path / "out.mkv")) as out:
        sizes = sorted((s.codec_context.width, s.codec_context.height) for s in out.streams.video)
        copied = sum(1 for p in out.demux(out.streams.video[1]) if p.size)
    assert sizes == [(32, 24), (64, 48)] and copied == 12 and stats["frames_out"] == 12


def test_title_chapters_and_fonts_are_carried(tmp_path, capsys):
    """The container's title, its chapters and its attachments were all lost."""
    clip = mg.write_clip(tmp_path / "plain.mkv", frames=12, audio=True)
    source = hm.with_tags_chapters_and_font(clip.path, tmp_path / "in.mkv")
    code, err, _ = run_cli([source, tmp_path / "out.mkv"], capsys, tmp_path)
    assert code == 0, err
    with av.open(str(tmp_path / "out.mkv")) as out:
        assert out.metadata.get("title") == "A film"
        assert [c["metadata"]["title"] for c in out.chapters()] == ["One", "Two"]
        fonts = [s for s in out.streams if s.type == "attachment"]
        assert [f.name for f in fonts] == ["font.ttf"] and bytes(fonts[0].data).startswith(b"\x00\x01\x00\x00font")


def test_what_a_container_cannot_hold_is_named(tmp_path, capsys):
    clip = mg.write_clip(tmp_path / "plain.mkv", frames=12, audio=True)
    source = hm.with_tags_chapters_and_font(clip.path, tmp_path / "in.mkv")
    code, err, _ = run_cli([source, tmp_path / "out.ts"], capsys, tmp_path)
    assert code == 0, err
    assert len(warnings_about(err, "mpegts cannot hold chapters")) == 1
    assert len(warnings_about(err, "mpegts cannot hold attachments: font.ttf")) == 1


def test_16_bit_colour_and_alpha_are_said(tmp_path, capsys):
    """A 16-bit RGB PNG was written as 8-bit, an RGBA one without its alpha, silently."""
    deep = hm.png_16bit_rgb(tmp_path / "deep.png")
    code, err, _ = run_cli([deep, tmp_path / "deep-out.png", "--jpeg-quality", "50"], capsys, tmp_path)
    assert code == 0, err
    assert len(warnings_about(err, "16 bits per colour channel are reduced to 8")) == 1
    alpha = hm.png_with_alpha(tmp_path / "alpha.png")
    code, err, _ = run_cli([alpha, tmp_path / "alpha-out.png", "--jpeg-quality", "50"], capsys, tmp_path)
    assert code == 0, err
    assert len(warnings_about(err, "alpha channel (transparency) is dropped")) == 1


def test_16_bit_grey_keeps_its_depth_without_a_warning(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    grey = tmp_path / "grey16.png"
    Image.fromarray((np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 20)).save(grey)
    code, err, _ = run_cli([grey, tmp_path / "out.png", "--jpeg-quality", "50"], capsys, tmp_path)
    assert code == 0, err
    assert not [line for line in err if "warning" in line], err


def test_interlaced_video_is_said(tmp_path, capsys):
    """The interlaced flag was lost without a word (and reading the QP map of
    interlaced H.264 raised in PyAV, see test_other_codecs.py)."""
    source = hm.interlaced_h264(tmp_path / "in.mp4")
    code, err, stats = run_cli([source, tmp_path / "out.mkv"], capsys, tmp_path)
    assert code == 0, err
    assert stats["frames_out"] == 8
    if stats["restored"]:  # re-encoded as progressive frames (a copied video stays interlaced)
        assert len(warnings_about(err, "the video is interlaced")) == 1
