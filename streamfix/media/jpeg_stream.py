"""Is a JPEG file one picture, or a raw Motion-JPEG stream of many?

IP cameras and capture tools write MJPEG as JPEG images one after another in one
file (`.mjpeg`, `.mjpg`, often even `.jpg`). PIL opens such a file as a JPEG and sees
only its first image, so it was restored as one still picture: 1 frame of 30, exit
0, no warning. So before a JPEG goes the still-picture way, its first image is
walked marker by marker to its end (EOI), skipping every segment by its length, so
an EXIF thumbnail (a whole JPEG inside the APP1 segment) does not count as a second
image. If another image starts right after it, the file is a stream and goes to
FFmpeg, which reads every frame.
"""

from __future__ import annotations

from pathlib import Path

SOI, EOI, SOS = 0xD8, 0xD9, 0xDA
# Markers without a length field: TEM and the restart markers RST0-RST7.
_RESTARTS = frozenset(range(0xD0, 0xD8))
_STANDALONE = _RESTARTS | {0x01}
# A photo's first image ends within this; a longer "first image" is not looked past.
MAX_SCAN_BYTES = 64 * 1024 * 1024


def _end_of_entropy_data(data: bytes, pos: int) -> int | None:
    """Where the entropy-coded data from `pos` ends: at the next marker that is not a
    stuffed 0xFF00, a fill byte or a restart marker."""
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= len(data):
            return None
        after = data[pos + 1]
        if after in (0x00, 0xFF) or after in _RESTARTS:
            pos += 1
            continue
        return pos


def _end_of_image(data: bytes) -> int | None:
    """Where the image starting at byte 0 ends (just after its EOI), or None if it is
    cut short or not a JPEG."""
    n = len(data)
    if not data.startswith(b"\xff\xd8"):
        return None
    pos = 2
    while pos < n:
        if data[pos] != 0xFF:
            return None
        while pos < n and data[pos] == 0xFF:  # fill bytes before a marker
            pos += 1
        if pos >= n:
            return None
        marker = data[pos]
        pos += 1
        if marker == EOI:
            return pos
        if marker in _STANDALONE:
            continue
        if pos + 2 > n:
            return None
        pos += int.from_bytes(data[pos:pos + 2], "big")
        if marker == SOS:
            found = _end_of_entropy_data(data, pos)
            if found is None:
                return None
            pos = found
    return None


def holds_several_images(path: str | Path) -> bool:
    """Whether the JPEG at `path` is followed by a second JPEG image (an MJPEG stream)."""
    with open(path, "rb") as file:
        data = file.read(MAX_SCAN_BYTES)
    end = _end_of_image(data)
    if end is None:
        return False
    return data[end:].lstrip(b"\x00\r\n ").startswith(b"\xff\xd8")
