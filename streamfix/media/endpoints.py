"""Where media comes from and goes to: files, pipes, network URLs, open objects.

An endpoint is one of:
- a file path;
- a pipe: `-` (stdin for an input, stdout for an output) or FFmpeg's `pipe:N`
  (file descriptor N);
- a URL FFmpeg understands: udp://, tcp://, rtp://, rtmp://, srt://, http(s)://,
  an HLS playlist, ...;
- an object the caller opened: a binary file-like object, or (input only) an open
  PyAV input container.

Pipes and network URLs are *live*: there is no file to rename at the end, no
length to show, and the source may stall or disconnect. Files are not.

Why the timeout is set twice for URLs: FFmpeg's protocols each read their own
option (`timeout` in microseconds for tcp/udp/http/srt/rtsp, `rw_timeout` for all),
and PyAV's read timeout also covers a demuxer that keeps reading without finding a
packet (garbage on a socket). Either one ends the wait, whichever comes first.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

PIPE = "-"
# The container an output URL gets when none is named: what its protocol carries.
STREAM_FORMATS = {
    "udp": "mpegts", "tcp": "mpegts", "srt": "mpegts", "rtp": "rtp_mpegts", "unix": "mpegts",
    "rtmp": "flv", "rtmps": "flv", "rtmpt": "flv", "http": "mpegts", "https": "mpegts",
}
# Protocols whose own `timeout` option is a read/write timeout in microseconds.
MICROSECOND_TIMEOUT_PROTOCOLS = frozenset({"tcp", "udp", "http", "https", "srt", "rtsp", "unix"})


# PyAV opens an output URL without an options dictionary, so FFmpeg's network
# protocols (tcp, udp, srt, ...) read their options (listen, pkt_size, ...) from the
# URL's query string only. Output options go there, except these, which belong to
# the muxer (format-level options, and each muxer's own prefixed ones).
MUXER_OPTIONS = frozenset({"flush_packets", "fflags", "max_delay", "max_interleave_delta", "avoid_negative_ts",
                           "output_ts_offset", "muxdelay", "muxpreload", "packetsize", "metadata_header_padding",
                           "movflags", "flvflags", "rtpflags", "frag_duration", "min_frag_duration"})
MUXER_OPTION_PREFIXES = ("mpegts_", "hls_", "dash_", "matroska_", "mp4_")


def is_pipe(endpoint: Any) -> bool:
    return isinstance(endpoint, str) and (endpoint == PIPE or endpoint.startswith("pipe:"))


def is_url(endpoint: Any) -> bool:
    return isinstance(endpoint, str) and "://" in endpoint and not endpoint.startswith("file://")


def is_path(endpoint: Any) -> bool:
    """A file on disk (what gets a `.partial` name while written)."""
    return isinstance(endpoint, Path) or (isinstance(endpoint, str) and not is_pipe(endpoint)
                                          and not is_url(endpoint))


def is_live(endpoint: Any) -> bool:
    """Pipes and network streams: real time, no known length, may stall."""
    if is_url(endpoint):
        return True
    if endpoint == PIPE:
        return _is_fifo_or_socket(0)
    if isinstance(endpoint, str) and endpoint.startswith("pipe:"):
        fd = endpoint[5:]
        return fd.isdigit() and _is_fifo_or_socket(int(fd))
    return False


def _is_fifo_or_socket(fd: int) -> bool:
    """stdin redirected from a file (`< in.ts`) is not live; a pipe or socket is."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def scheme(endpoint: Any) -> str | None:
    return urlsplit(endpoint).scheme.lower() if is_url(endpoint) else None


def describe(endpoint: Any, *, output: bool = False) -> str:
    """How messages name the endpoint."""
    if endpoint == PIPE:
        return "stdout" if output else "stdin"
    if isinstance(endpoint, (str, Path)):
        return str(endpoint)
    name = getattr(endpoint, "name", None)
    return str(name) if isinstance(name, str) else type(endpoint).__name__


def output_format_for(target: Any) -> str | None:
    """The usual container for a URL target's protocol, or None (pipes, files)."""
    return STREAM_FORMATS.get(scheme(target) or "")


def timeout_options(source: str, seconds: float) -> dict[str, str]:
    """FFmpeg protocol options that end a read waiting longer than `seconds`."""
    microseconds = str(max(1, round(seconds * 1_000_000)))
    options = {"rw_timeout": microseconds}
    if scheme(source) in MICROSECOND_TIMEOUT_PROTOCOLS:
        options["timeout"] = microseconds
    return options


def parse_options(pairs: list[str] | tuple[str, ...], flag: str) -> dict[str, str]:
    """["listen=1", "pkt_size=1316"] -> {"listen": "1", "pkt_size": "1316"}."""
    from streamfix.core.errors import OptionError

    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise OptionError(f"{flag} {pair!r}: expected KEY=VALUE, e.g. {flag} timeout=5000000")
        options[key.strip()] = value
    return options


def split_output_options(target: Any, options: dict[str, str]) -> tuple[Any, dict[str, str]]:
    """(target, muxer options): a URL target gets its protocol options in its query."""
    if not is_url(target):
        return target, dict(options)
    muxer = {k: v for k, v in options.items() if k in MUXER_OPTIONS or k.startswith(MUXER_OPTION_PREFIXES)}
    protocol = {k: v for k, v in options.items() if k not in muxer}
    if not protocol:
        return target, muxer
    parts = urlsplit(target)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update(protocol)
    return urlunsplit(parts._replace(query=urlencode(query))), muxer


def option_strings(options: dict[str, Any]) -> dict[str, str]:
    """FFmpeg takes option values as strings; YAML gives ints and bools too."""
    return {str(k): str(int(v) if isinstance(v, bool) else v) for k, v in options.items()}


def listens_for_client(target: Any) -> bool:
    """Whether opening output URL `target` waits for a client to connect: a tcp:// URL
    in listen mode, whose wait streamfix cuts into slices (see video_writer.py). A
    listen_timeout the user gave is theirs to keep: then it is one wait, as asked."""
    if scheme(target) != "tcp":
        return False
    query = dict(parse_qsl(urlsplit(target).query, keep_blank_values=True))
    return query.get("listen", "0") not in ("", "0") and "listen_timeout" not in query


def with_query(url: str, **options: str) -> str:
    """`url` with `options` added to its query string."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update(options)
    return urlunsplit(parts._replace(query=urlencode(query)))
