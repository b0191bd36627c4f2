"""Errors a user can act on. The CLI prints them as one line and exits with code 2."""

from __future__ import annotations


class StreamfixError(Exception):
    """A user-facing error: the message says what went wrong and what to do next."""


class InputError(StreamfixError):
    """The input cannot be read (missing, not media, no video, truncated, ...)."""


class OutputError(StreamfixError):
    """The output cannot be written."""


class OptionError(StreamfixError):
    """A bad option or config value."""
