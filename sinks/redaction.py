"""Passwords kept out of logs, API replies, WebSocket stats and the screen.

`redact()` is total: it never raises, whatever the string (a URL that `urllib` rejects, such as a
port out of range, must not take down the API or the stats publisher), and it never shows a
URL's password. Camera passwords are often pasted unencoded, so the userinfo runs to the LAST
`@` of the URL: in `rtsp://user:p#ss/w?rd@host/stream` the password is `p#ss/w?rd`, where
`urllib` would read a fragment. When a path also holds an `@` this hides more than the password,
never less.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
# Query parameters that carry a secret (snapshot CGIs take `?user=admin&password=...`).
_SECRET_PARAMETER = re.compile(
    r"([?&;](?:password|passwd|pwd|pass|secret|token|access_token|api_key|apikey|auth)=)"
    r"[^&;#]*", re.IGNORECASE)
MASK = "***"


class Credentials(NamedTuple):
    """A URL cut at its userinfo: `scheme` ends with `://`, `rest` follows the `@`."""

    scheme: str
    user: str
    password: str | None  # None: no `:` in the userinfo
    rest: str


def split_credentials(url: str) -> Credentials | None:
    """The URL's userinfo, taken up to its last `@`; None when it has no scheme or no `@`."""
    m = _SCHEME.match(url)
    if m is None:
        return None
    after_scheme = url[m.end():]
    at = after_scheme.rfind("@")
    if at < 0:
        return None
    user, colon, password = after_scheme[:at].partition(":")
    return Credentials(m.group(0), user, password if colon else None, after_scheme[at + 1:])


def password_of(url: str) -> str | None:
    """The password in a URL's userinfo, or None (for scrubbing messages that quote it)."""
    parts = split_credentials(url)
    return parts.password if parts is not None else None


def redact(url: str) -> str:
    """The URL with its password (userinfo or a password-like query parameter) shown as ***;
    any other string unchanged. Never raises."""
    try:
        text = url if isinstance(url, str) else str(url)
        parts = split_credentials(text)
        if parts is not None and parts.password is not None:
            text = f"{parts.scheme}{parts.user}:{MASK}@{parts.rest}"
        return _SECRET_PARAMETER.sub(rf"\g<1>{MASK}", text)
    except Exception:  # noqa: BLE001 - a log line or a reply must never fail on a bad URL
        return "<unprintable url>"
