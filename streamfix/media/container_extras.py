"""What an output container carries besides its streams: tags, chapters, attachments.

A restored film must keep its title, its chapters and the fonts its subtitles need,
or the restoration has lost something the user did not ask to lose. Each is copied
where the output container can hold it; where it cannot (chapters in MPEG-TS, an
attachment outside Matroska), one line says what is not carried and where it would be.
"""

from __future__ import annotations

import av

from streamfix.media.decoded import VideoInfo

# Muxers that store chapters / attachments (FFmpeg writes them for these only).
CHAPTER_FORMATS = frozenset({"matroska", "webm", "mp4", "mov", "ipod", "3gp", "3g2", "ismv", "f4v"})
ATTACHMENT_FORMATS = frozenset({"matroska"})


def _attachments(streams: list[av.stream.Stream]) -> list[av.stream.Stream]:
    return [s for s in streams if s.type == "attachment"]


def extras_notes(format_name: str, video: VideoInfo, copy_streams: list[av.stream.Stream]) -> list[str]:
    """One line for each kind of extra that `format_name` cannot hold."""
    return extras_notes_for(format_name, len(video.chapters), copy_streams)


def extras_notes_for(format_name: str, chapters: int, streams: list[av.stream.Stream]) -> list[str]:
    """extras_notes from the parts (`chapters`: how many the input has)."""
    notes = []
    if chapters and format_name not in CHAPTER_FORMATS:
        notes.append(f"streamfix: warning: {format_name} cannot hold chapters: the input's {chapters} "
                     f"chapters are not in the output (write .mkv or .mp4 to keep them)")
    attachments = _attachments(streams)
    if attachments and format_name not in ATTACHMENT_FORMATS:
        names = ", ".join(getattr(s, "name", None) or f"#{s.index}" for s in attachments)
        notes.append(f"streamfix: warning: {format_name} cannot hold attachments: {names} not in the output "
                     f"(write .mkv to keep them)")
    return notes


def carry_extras(container: av.container.OutputContainer, video: VideoInfo,
                 copy_streams: list[av.stream.Stream]) -> None:
    """Copy the input's container tags, chapters and attachments into `container`
    (before its header is written), as far as its format holds them."""
    carry_container_extras(container, video.container_metadata, video.chapters, copy_streams)


def carry_container_extras(container: av.container.OutputContainer, tags: tuple[tuple[str, str], ...],
                           chapters: tuple[dict, ...], streams: list[av.stream.Stream]) -> None:
    """carry_extras from the parts: also what the video copy (remux.py) uses, which
    has no VideoInfo because it decodes nothing."""
    for key, value in tags:
        container.metadata[key] = value
    format_name = container.format.name
    if chapters and format_name in CHAPTER_FORMATS:
        container.set_chapters(list(chapters))
    if format_name in ATTACHMENT_FORMATS:
        for stream in _attachments(streams):
            container.add_attachment(stream.name or f"attachment-{stream.index}",
                                     stream.mimetype or "application/octet-stream", bytes(stream.data or b""))
