"""Which streams of an input are restored, which are copied, and which cannot be carried.

- The restored video is the first video stream that is not an attached picture
  (cover art is a one-frame "video" stream in MP4, MKV and MP3).
- Every other stream goes to the output unchanged where its packets can be copied:
  audio, subtitles, data, further video streams (a second camera angle, a
  picture-in-picture track, the cover art) and Matroska attachments (fonts for the
  subtitles). Whether the output container can take each one is the writer's
  decision, and it says so when it cannot.
- Anything else (streams of an unknown type or without a codec) cannot be copied:
  one note says which, instead of losing them without a word.
"""

from __future__ import annotations

import av

COPIED_STREAM_TYPES = ("audio", "subtitle", "data", "video", "attachment")


def _is_attached_picture(stream: av.stream.Stream) -> bool:
    return bool(stream.disposition & av.stream.Disposition.attached_pic)


def _describe(stream: av.stream.Stream) -> str:
    ctx = stream.codec_context
    if stream.type == "attachment":
        return f"attachment #{stream.index} ({getattr(stream, 'name', None) or 'unnamed'})"
    name = ctx.name if ctx is not None else "unknown codec"
    if stream.type == "video" and ctx is not None and ctx.width:
        name = f"{name} {ctx.width}x{ctx.height}"
    if stream.type == "video" and _is_attached_picture(stream):
        name += ", a cover picture"
    return f"{stream.type} #{stream.index} ({name})"


def restored_video(container: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    """The video stream streamfix restores, or None if the input has none that a
    decoder can read (no codec: damaged, or a codec FFmpeg does not know)."""
    for stream in container.streams.video:
        if not _is_attached_picture(stream) and stream.codec_context is not None:
            return stream
    return None


def copied_streams(container: av.container.InputContainer, video: av.stream.Stream,
                   source: str) -> tuple[list[av.stream.Stream], list[str]]:
    """The streams to copy unchanged, and the notes about the rest (one line each kind)."""
    copied, lost = [], []
    for stream in container.streams:
        if stream.index == video.index:
            continue
        if stream.type in COPIED_STREAM_TYPES and (stream.type == "attachment" or stream.codec_context is not None):
            copied.append(stream)
        else:
            lost.append(_describe(stream))
    notes = []
    others = [_describe(s) for s in copied if s.type == "video"]
    if others:
        notes.append(f"streamfix: {source}: only video #{video.index} is restored; "
                     f"{', '.join(others)} {'is' if len(others) == 1 else 'are'} copied unchanged")
    if lost:
        notes.append(f"streamfix: warning: {source}: {', '.join(lost)} cannot be copied "
                     f"(no codec FFmpeg knows): not in the output")
    return copied, notes


def describe_streams(container: av.container.InputContainer) -> str:
    """"audio #1 (aac), video #2 (mjpeg 300x300, a cover picture)" for messages."""
    return ", ".join(_describe(s) for s in container.streams) or "nothing"
