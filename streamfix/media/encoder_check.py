"""Checking the encoder settings, and saying what really failed when an output cannot start.

Before the output opens, every encoder option is looked up among the encoder's own
options (FFmpeg ignores names it does not know, so a typo such as `tnue:
zerolatency` silently did nothing): an unknown name is a warning line, and a value
that a named-value option cannot take (x264's presets and tunes, options with named
constants) is an error naming the valid values. x264 checks its preset itself only
while opening and prints its own line to stderr, so it is asked here first.

When the output still cannot start, FFmpeg's answer is one number (EINVAL) for
very different causes. `explain_start_failure` finds the cause by trying the parts
alone: the encoder with these settings (and, if it refuses, which one option it
refuses), then the container with a seekable in-memory target (if that works, the
container cannot go to a pipe or network stream), else the container refuses the
codec. The message says what failed and what to do about it.
"""

from __future__ import annotations

import io
import re
from fractions import Fraction

import av

from streamfix.core.errors import OutputError

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                "veryslow", "placebo")
# (encoder, option) -> the names it takes; tunes may be combined with commas.
NAMED_VALUES = {
    ("libx264", "preset"): X264_PRESETS,
    ("libx265", "preset"): X264_PRESETS,
    ("libx264", "tune"): ("film", "animation", "grain", "stillimage", "psnr", "ssim", "fastdecode", "zerolatency"),
    ("libx265", "tune"): ("psnr", "ssim", "grain", "zerolatency", "fastdecode", "animation"),
    ("libx264", "profile"): ("baseline", "main", "high", "high10", "high422", "high444"),
}
_A_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_NUMBER_TYPES = frozenset({"INT", "INT64", "UINT", "UINT64", "FLOAT", "DOUBLE"})
# Words FFmpeg accepts for any number option.
_NUMBER_WORDS = frozenset({"default", "max", "min", "none", "all"})


def _known_options(codec: str) -> dict[str, object]:
    try:
        ctx = av.CodecContext.create(codec, "w")
    except (ValueError, av.error.FFmpegError):
        return {}
    options = ctx.supported_options
    return {o.name: o for o in [*options.generic, *options.private]}


def valid_values(codec: str, key: str) -> tuple[str, ...] | None:
    """The names option `key` of `codec` takes, where there is a fixed list."""
    if (codec, key) in NAMED_VALUES:
        return NAMED_VALUES[codec, key]
    option = _known_options(codec).get(key)
    choices = tuple(c.name for c in getattr(option, "choices", ()) or ())
    return choices or None


def value_problem(codec: str, key: str, value: str) -> str | None:
    """Why `value` cannot be given to option `key` of `codec` (one clause), or None.
    Only names are judged: numbers and expressions are FFmpeg's to parse."""
    if not _A_NAME.match(value.replace(",", "_")):
        return None
    names = valid_values(codec, key)
    if names is None:
        option = _known_options(codec).get(key)
        kind = getattr(getattr(option, "type", None), "name", "")
        if kind in _NUMBER_TYPES and value not in _NUMBER_WORDS:
            low, high = getattr(option, "min", None), getattr(option, "max", None)
            span = f" from {low:g} to {high:g}" if low is not None and high is not None and high < 1e9 else ""
            return f"{key} {value!r} is not a number, and {codec} takes a number{span}"
        return None
    parts = value.split(",") if key == "tune" and (codec, key) in NAMED_VALUES else [value]
    if all(part in names for part in parts):
        return None
    return f"{key} {value!r} is not one {codec} knows; use one of {', '.join(names)}"


def unknown_options(codec: str, keys: list[str]) -> list[str]:
    """The option names `codec` does not have (FFmpeg would ignore them silently)."""
    known = _known_options(codec)
    return [key for key in keys if known and key not in known]


def check_options(codec: str, options: dict[str, str]) -> list[str]:
    """Raise OutputError for a value the encoder cannot take; return warning lines for
    option names it does not know."""
    for key, value in options.items():
        problem = value_problem(codec, key, str(value))
        if problem:
            raise OutputError(f"the encoder {codec} cannot start: {problem}")
    return [f"streamfix: warning: the encoder {codec} has no option {key!r}: ignored (check its spelling; "
            f"`ffmpeg -h encoder={codec}` lists them)" for key in unknown_options(codec, list(options))]


def _encoder_opens(codec: str, pix_fmt: str, width: int, height: int, time_base: Fraction,
                   options: dict[str, str]) -> str | None:
    """None if the encoder opens alone with these settings, else FFmpeg's reason."""
    try:
        ctx = av.CodecContext.create(codec, "w")
        ctx.width, ctx.height, ctx.pix_fmt = width, height, pix_fmt
        ctx.time_base = time_base
        ctx.options = dict(options)
        ctx.open()
    except (av.error.FFmpegError, ValueError) as exc:
        return getattr(exc, "strerror", None) or str(exc)
    return None


def _header_writes_in_memory(format_name: str, codec: str, width: int, height: int, pix_fmt: str,
                             time_base: Fraction, options: dict[str, str]) -> bool:
    try:
        with av.open(io.BytesIO(), "w", format=format_name) as out:
            stream = out.add_stream(codec, options=dict(options))
            stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
            stream.codec_context.time_base = time_base
            out.start_encoding()
    except (av.error.FFmpegError, ValueError, OSError):
        return False
    return True


def explain_start_failure(exc: BaseException, **setup: object) -> str:
    """What failed when the output could not start, and what to do (one clause).
    `setup`: the codec, pix_fmt, width, height, time_base, options, format_name and
    stream_output the output was started with."""
    try:
        return _explain(exc, **setup)  # type: ignore[arg-type]
    except Exception as probe_failure:  # noqa: BLE001 - the diagnosis must not hide the failure
        detail = getattr(exc, "strerror", None) or str(exc)
        return (f"the output cannot start ({detail}; finding out why failed too: {probe_failure}); "
                f"try another codec, pixel format or container")


def _explain(exc: BaseException, *, codec: str, pix_fmt: str, width: int, height: int, time_base: Fraction,
             options: dict[str, str], format_name: str, stream_output: bool) -> str:
    reason = _encoder_opens(codec, pix_fmt, width, height, time_base, options)
    if reason is not None:
        for key in options:
            rest = {k: v for k, v in options.items() if k != key}
            if _encoder_opens(codec, pix_fmt, width, height, time_base, rest) is None:
                return (f"the encoder {codec} cannot start: it refused {key}={options[key]!r} ({reason}); "
                        f"change or remove that setting")
        return (f"the encoder {codec} cannot start with {pix_fmt} {width}x{height} ({reason}); "
                f"try another codec (--codec) or pixel format (--pix-fmt)")
    if stream_output and _header_writes_in_memory(format_name, codec, width, height, pix_fmt, time_base, options):
        return (f"the {format_name} container cannot be written to a pipe or network stream (it must go back "
                f"and rewrite its header at the end); use --format mpegts, matroska or nut for streams")
    detail = getattr(exc, "strerror", None) or str(exc)
    return (f"the {format_name} container refused {codec} video ({detail}); choose an encoder it takes "
            f"(--codec) or another container")
