"""Checks that a stream's source can be used before a stream is added or changed.

A source is a file path, a capture device (/dev/video0), or a URL. A URL that cannot be
parsed, has no host, a port outside 1-65535 or a scheme FFmpeg would not open must be refused
up front with a clear message: let through, it fails later in places that expect a valid URL
(its redaction for logs and the API, the reader's retries).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from lanewatch.stream.sources.live import is_device

# Network protocols a camera or a relay is read over (FFmpeg's names).
NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt")
LISTEN_SCHEMES = ("udp", "tcp", "srt")  # udp://@:1234 listens on every address: no host


def source_problem(source: str) -> str | None:
    """Why `source` cannot be used, in one line; None when it can. Never quotes the URL
    itself: it may hold a password."""
    if "://" not in source or is_device(source):
        return None  # a file path or a capture device: checked when it is opened
    scheme = source.split("://", 1)[0].lower()
    if scheme == "file":
        return None if source[len("file://"):] else "source 'file://' names no file"
    if scheme not in NETWORK_SCHEMES:
        return (f"source scheme '{scheme}://' is not supported; use one of "
                f"{', '.join(s + '://' for s in NETWORK_SCHEMES)}, or a file path")
    try:
        parts = urlsplit(source)
        port = parts.port  # parsed lazily: raises for a port that is not a number in range
    except ValueError as err:  # its text may quote part of a password: not repeated
        if "Port" in str(err):
            return ("source URL port must be a number in 1-65535 (percent-encode any "
                    "@ : / ? # in the user name or password)")
        return ("source URL cannot be parsed: check its brackets, and percent-encode any "
                "@ : / ? # in the user name or password")
    if not parts.hostname and scheme not in LISTEN_SCHEMES:
        return f"source URL '{scheme}://...' has no host"
    if port == 0:
        return "source URL port must be a number in 1-65535, not 0"
    return None
