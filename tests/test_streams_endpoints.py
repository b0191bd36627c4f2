"""What kind of endpoint a source or target is, and which FFmpeg options it gets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streamfix.core.errors import OptionError
from streamfix.media import endpoints


def test_kinds_of_endpoint():
    assert endpoints.is_pipe("-") and endpoints.is_pipe("pipe:3")
    assert endpoints.is_url("udp://127.0.0.1:5000") and not endpoints.is_url("clip.mp4")
    assert endpoints.is_path("clip.mp4") and endpoints.is_path(Path("x.mkv"))
    assert not endpoints.is_path("-") and not endpoints.is_path("srt://127.0.0.1:9000")
    assert endpoints.is_live("tcp://127.0.0.1:9000") and not endpoints.is_live("clip.mp4")


def test_a_pipe_descriptor_is_live_and_a_regular_file_is_not(tmp_path):
    read, write = os.pipe()
    try:
        assert endpoints.is_live(f"pipe:{read}")
    finally:
        os.close(read)
        os.close(write)
    with open(tmp_path / "f.ts", "wb") as regular:
        assert not endpoints.is_live(f"pipe:{regular.fileno()}")


def test_input_timeout_in_microseconds_for_every_protocol_that_reads_one():
    assert endpoints.timeout_options("tcp://127.0.0.1:1", 2.5) == {"rw_timeout": "2500000", "timeout": "2500000"}
    assert endpoints.timeout_options("udp://127.0.0.1:1", 1) == {"rw_timeout": "1000000", "timeout": "1000000"}
    # rtmp reads `timeout` as a listen timeout in seconds: only rw_timeout there
    assert endpoints.timeout_options("rtmp://127.0.0.1/live", 1) == {"rw_timeout": "1000000"}


def test_output_format_follows_the_protocol():
    assert endpoints.output_format_for("udp://127.0.0.1:5000") == "mpegts"
    assert endpoints.output_format_for("rtmp://127.0.0.1/live/x") == "flv"
    assert endpoints.output_format_for("-") is None


def test_protocol_options_of_a_url_output_go_into_its_query():
    url, muxer = endpoints.split_output_options("tcp://127.0.0.1:9000?listen=1",
                                                {"listen_timeout": "5000", "mpegts_flags": "resend_headers",
                                                 "flush_packets": "1"})
    assert url == "tcp://127.0.0.1:9000?listen=1&listen_timeout=5000"
    assert muxer == {"mpegts_flags": "resend_headers", "flush_packets": "1"}
    assert endpoints.split_output_options("-", {"a": "1"}) == ("-", {"a": "1"})


def test_option_pairs_are_checked():
    assert endpoints.parse_options(["listen=1", "headers=a=b"], "--input-option") == {"listen": "1",
                                                                                     "headers": "a=b"}
    with pytest.raises(OptionError, match="KEY=VALUE"):
        endpoints.parse_options(["listen"], "--input-option")
